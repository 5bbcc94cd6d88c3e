"""Issue 16's hostile-input findings at the HTTP edge, through the real app (TestClient): JSON bounds (1), bounded
work (2, 3, 4), a full ingest queue (5), one set of image checks (10), trusted proxies (11), error sizes and the
self-hosted docs page (13). The process-level ones (the segfault, connection timeouts, a forged X-Forwarded-For
against ``provenance serve``) are in ``test_hardening_served.py``."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from provenance.api.app import create_app
from provenance.api.clients import ClientResolver, parse_trusted_proxies
from provenance.api.json_limits import json_depth
from provenance.config import Settings
from provenance.errors import ConfigError
from provenance.softbinding.manifest_ids import manifest_id_for
from tests.provenance.api.conftest import assert_error, bearer, ingest
from tests.provenance.api.fakes import FakeService, textured_image


def _png(size: tuple[int, int], seed: int = 0) -> bytes:
    return textured_image(seed, size=size)


# --- finding 1: JSON is bounded before it is parsed ----------------------------------------------------------------
@pytest.mark.parametrize(("text", "depth"), [
    (b"", 0), (b"1", 0), (b"[]", 1), (b'{"a": [1, {"b": []}]}', 4),
    (b'["[[[[", "]]]", "\\"[[["]', 1),  # brackets inside strings, escaped quotes
    (b'{"k\\\\": [[["x"]]]}', 4),  # an escaped backslash ends the string before the quote
    (b"[" * 5000 + b"]" * 5000, 5000),
])
def test_json_depth_counts_nesting_outside_strings(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_json_bodies_are_bounded_before_parsing(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_max_json_bytes=4096, api_max_json_depth=8)
    deep = '{"alg": "phash", "value": "AAAAAAAAAAA=", "x": ' + "[" * 9 + "]" * 9 + "}"
    err = assert_error(client.post("/matches/byBinding", content=deep,
                                   headers={"Content-Type": "application/json"}), 400, "json_too_deep")
    assert "nested 10 levels" in err["message"] and "limit of 8" in err["message"]
    big = '{"alg": "phash", "value": "AAAAAAAAAAA=", "x": "' + "a" * 5000 + '"}'
    assert_error(client.post("/matches/byBinding", content=big, headers={"Content-Type": "application/json"}), 413,
                 "json_too_large")
    assert_error(client.post("/matches/byBinding", content=b'{"alg": "\xff"}',
                             headers={"Content-Type": "application/json"}), 400, "invalid_json")
    # At the limits it is parsed and answered; without a JSON content type it is never parsed as JSON at all.
    ok = '{"alg": "phash", "value": "AAAAAAAAAAA=", "x": ' + "[" * 7 + "]" * 7 + "}"
    assert client.post("/matches/byBinding", content=ok, headers={"Content-Type": "application/json"}).json() == {
        "matches": []}
    assert client.post("/matches/byBinding", content=ok).status_code == 400  # soft-binding routes: 400, not 422


# --- finding 4 (and 11's proxy path): heavy work is bounded per client and overall --------------------------------
@pytest.fixture
def gated_lookup(fake_service: FakeService) -> Iterator[threading.Event]:
    """The fake lookup waits for the gate: lookups stay "in flight" until the test opens it."""
    gate = threading.Event()
    real = fake_service.lookup.lookup

    def slow(data: bytes, **kwargs: Any) -> Any:
        assert gate.wait(30), "gate never opened"
        return real(data, **kwargs)

    fake_service.lookup.lookup = slow  # type: ignore[method-assign]
    yield gate
    gate.set()


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_heavy_work_is_bounded_per_client_and_overall(tmp_path: Path, fake_service: FakeService,
                                                      gated_lookup: threading.Event) -> None:
    settings = Settings(data_dir=tmp_path / "data", max_image_bytes=2_000_000, api_heavy_concurrency=2,
                        api_heavy_per_client=1, api_heavy_wait_s=0.3, api_lookup_burst=100,
                        api_trusted_proxies="10.0.0.0/8")
    app = create_app(lambda: fake_service, settings=settings, anchor=False)
    image = _png((96, 64))

    def lookup_as(client_ip: str) -> Any:
        return client.post("/v1/lookup", files={"file": ("q.png", image, "image/png")},
                           headers={"X-Forwarded-For": f"{client_ip}, 10.0.0.9"})

    with TestClient(app, client=("10.0.0.2", 40000)) as client, ThreadPoolExecutor(4) as pool:
        work = app.state.api.work
        first = pool.submit(lookup_as, "198.51.100.1")
        _wait_until(lambda: work.busy == 1)
        err = assert_error(lookup_as("198.51.100.1"), 429, "too_many_concurrent")  # same client, at once
        assert "198.51.100.1" in err["message"]
        second = pool.submit(lookup_as, "198.51.100.2")  # another client: the second global slot
        _wait_until(lambda: work.busy == 2)
        started = time.monotonic()
        resp = lookup_as("198.51.100.3")  # every slot busy: waits api_heavy_wait_s, then 503
        assert 0.25 <= time.monotonic() - started < 5
        assert_error(resp, 503, "busy")
        assert int(resp.headers["Retry-After"]) >= 1
        # Light requests are not held up by heavy ones.
        assert client.get("/services/supportedAlgorithms").status_code == 200
        gated_lookup.set()
        assert first.result(10).status_code == 200 and second.result(10).status_code == 200
        assert work.busy == 0
        assert lookup_as("198.51.100.3").status_code == 200  # slots are given back


def test_trusted_proxies_are_parsed_and_only_they_are_believed() -> None:
    resolver = ClientResolver(parse_trusted_proxies(" 10.0.0.0/8 , 192.0.2.7 "))
    assert resolver.resolve("10.1.2.3", ["203.0.113.5"]) == "203.0.113.5"
    # Hops appended by trusted proxies are skipped; what the client wrote further left is never believed.
    assert resolver.resolve("10.1.2.3", ["6.6.6.6, 203.0.113.5, 192.0.2.7"]) == "203.0.113.5"
    assert resolver.resolve("10.1.2.3", ["6.6.6.6", "203.0.113.5"]) == "203.0.113.5"
    assert resolver.resolve("198.51.100.9", ["203.0.113.5"]) == "198.51.100.9"  # untrusted peer: header ignored
    assert resolver.resolve("10.1.2.3", ["not-an-ip"]) == "10.1.2.3"
    assert resolver.resolve("10.1.2.3", []) == "10.1.2.3"
    assert ClientResolver(()).resolve("127.0.0.1", ["203.0.113.5"]) == "127.0.0.1"  # the default: none trusted
    with pytest.raises(ConfigError, match="PROVENANCE_API_TRUSTED_PROXIES: 'ten.0.0.1'"):
        parse_trusted_proxies("10.0.0.1,ten.0.0.1")


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(tmp_path: Path,
                                                                     fake_service: FakeService) -> None:
    for trusted, expected in (("", "127.0.0.1"), ("127.0.0.1", "203.0.113.")):
        settings = Settings(data_dir=tmp_path / "data", api_lookup_burst=1, api_lookup_rate_per_s=0.001,
                            api_trusted_proxies=trusted)
        app = create_app(lambda: fake_service, settings=settings, anchor=False)
        with TestClient(app, client=("127.0.0.1", 40000)) as client:
            codes = [client.post("/v1/lookup", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                     for i in range(3)]
            if trusted:  # each claimed client its own bucket: never rate-limited (415: no image sent)
                assert codes == [415, 415, 415]
            else:  # one bucket, the peer's
                assert codes == [415, 429, 429]
                resp = client.post("/v1/lookup", headers={"X-Forwarded-For": "203.0.113.77"})
                assert expected in resp.json()["error"]["message"]


# --- finding 3: thumbnails ----------------------------------------------------------------------------------------
def test_thumbnail_sizes_snap_to_a_few_cached_renders(make_client: Callable[..., TestClient],
                                                      keys: dict[str, str]) -> None:
    client = make_client(api_image_burst=100)
    cid = ingest(client, keys["acme"], _png((1200, 900)))["record_cid"]
    seen: dict[int, bytes] = {}
    for size in (16, 50, 64, 65, 100, 128, 129, 200, 256, 300, 512, 700, 1000, 1024):
        resp = client.get(f"/v1/records/{cid}/image", params={"size": size})
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg"
        long_side = max(Image.open(io.BytesIO(resp.content)).size)
        snapped = next(s for s in (64, 128, 256, 512, 1024) if s >= size)
        assert long_side == snapped
        seen.setdefault(snapped, resp.content)
        assert seen[snapped] == resp.content
    assert len(client.app.state.api.thumbnails) == 5  # type: ignore[attr-defined]


def test_image_route_is_rate_limited(make_client: Callable[..., TestClient], keys: dict[str, str]) -> None:
    client = make_client(api_image_burst=3, api_image_rate_per_s=0.001)
    cid = ingest(client, keys["acme"], _png((160, 120)))["record_cid"]
    codes = [client.get(f"/v1/records/{cid}/image", params={"size": 64 * (i + 1)}).status_code for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    resp = client.get(f"/v1/records/{cid}/image")
    assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1


def test_thumbnail_of_a_wide_greyscale_16_bit_original(make_client: Callable[..., TestClient],
                                                       keys: dict[str, str]) -> None:
    """Shrunk while decoding, in its own mode: a 16-bit original is not rendered as solid white."""
    ramp = np.tile(np.linspace(0, 65535, 2400).astype(np.uint16), (300, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, "PNG")
    client = make_client()
    cid = ingest(client, keys["acme"], buf.getvalue())["record_cid"]
    thumb = Image.open(io.BytesIO(client.get(f"/v1/records/{cid}/image", params={"size": 256}).content))
    assert thumb.size == (256, 32)
    grey = np.asarray(thumb.convert("L"), np.float64)
    assert grey[:, :20].mean() < 40 and grey[:, -20:].mean() > 215


# --- finding 5: a full ingest queue ---------------------------------------------------------------------------------
def test_a_full_ingest_queue_answers_503_at_once(tmp_path: Path, fake_service: FakeService,
                                                 keys: dict[str, str]) -> None:
    from provenance.ingest import IngestPipeline
    from workers.queue import InProcessQueue

    gate = threading.Event()

    class SlowPipeline(IngestPipeline):  # a slow hasher, as on a loaded CPU machine
        def ingest_report(self, *args: Any, **kwargs: Any) -> Any:
            assert gate.wait(30), "gate never opened"
            return super().ingest_report(*args, **kwargs)

    pipeline = SlowPipeline(fake_service.ledger, fake_service.lookup)
    queue = InProcessQueue(pipeline, threads=1, max_pending=2, block_when_full=False)
    fake_service.pipeline, fake_service.queue = pipeline, queue  # type: ignore[assignment]
    app = create_app(lambda: fake_service, settings=Settings(data_dir=tmp_path / "data"), anchor=False)
    try:
        with TestClient(app) as client:
            def upload(seed: int) -> Any:
                return client.post("/v1/assets", headers=bearer(keys["acme"]),
                                   files={"file": ("p.png", _png((160, 120), seed), "image/png")})

            accepted = [upload(seed) for seed in (1, 2)]
            assert [resp.status_code for resp in accepted] == [202, 202]
            started = time.monotonic()
            resp = upload(3)
            assert time.monotonic() - started < 2  # at once, not after a slot frees
            err = assert_error(resp, 503, "queue_full")
            assert "2 images are waiting" in err["message"] and int(resp.headers["Retry-After"]) >= 1
            with ThreadPoolExecutor(8) as pool:  # many refused uploads hold no thread: the API still answers
                refused = [pool.submit(upload, seed) for seed in range(10, 18)]
                started = time.monotonic()
                assert client.get("/services/supportedAlgorithms").status_code == 200
                assert time.monotonic() - started < 2
                assert {f.result(10).status_code for f in refused} == {503}
            gate.set()
            for resp in accepted:  # the accepted ones were kept and run once the queue moved
                _wait_until(lambda: client.get(resp.headers["Location"]).json()["state"] in ("succeeded", "failed"))
            assert upload(4).status_code == 202  # a slot is free again
    finally:
        gate.set()
        queue.close()


# --- finding 10: one set of image checks ----------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1, 1), (31, 200), (200, 31)])
def test_every_image_query_route_refuses_tiny_images_alike(client: TestClient, size: tuple[int, int]) -> None:
    tiny = _png(size)
    lookup = assert_error(client.post("/v1/lookup", files={"file": ("q.png", tiny, "image/png")}), 422)
    # byContent answers 415 for an unusable asset, as the C2PA specification lists (docs/c2pa-softbinding.md)
    by_form = assert_error(client.post("/matches/byContent", files={"file": ("q.png", tiny, "image/png")}), 415)
    by_body = assert_error(client.post("/matches/byContent", content=tiny, headers={"Content-Type": "image/png"}),
                           415)
    for err in (lookup, by_form, by_body):
        assert err["code"] == "invalid_image" and "too small (each side must be at least 32 px)" in err["message"]


def test_by_content_hashes_large_queries_shrunk(client: TestClient, keys: dict[str, str],
                                               fake_service: FakeService) -> None:
    """byContent decodes like lookup: a 3000 px query is hashed from its bounded decode, and still finds its
    registered original."""
    original = _png((3000, 2000), seed=5)
    cid = ingest(client, keys["acme"], original)["record_cid"]
    resp = client.post("/matches/byContent", content=original, headers={"Content-Type": "image/png"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["matches"][0]["manifestId"] == manifest_id_for(cid)


# --- finding 13: error sizes and the docs page ------------------------------------------------------------------
def test_error_messages_do_not_echo_long_input(client: TestClient) -> None:
    long = "x" * 20_000
    # Where a route quotes what it was given, the quote is cut to 200 characters ...
    for resp in (client.post("/matches/byBinding", json={"alg": long, "value": "AAAAAAAAAAA="}),  # GET: 414
                 client.get(f"/v1/tasks/{long}"), client.get(f"/v1/change-maps/{long}")):
        assert 400 <= resp.status_code < 500, resp.text
        message = resp.json()["error"]["message"]
        assert "x" * 150 in message and "x" * 201 not in message and "20002 characters" in message, message
    # ... and no message at all is longer than 1,000 characters (deeper layers quote input too).
    for resp in (client.get(f"/v1/records/{long}"), client.get(f"/manifests/{long}"),
                 client.get(f"/v1/records/{long}/proof")):
        assert 400 <= resp.status_code < 500, resp.text
        message = resp.json()["error"]["message"]
        assert len(message) <= 1100 and "x" * 1001 not in message, (resp.url, len(message))


def test_docs_are_served_from_this_service(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    for src in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"):
        assert src in page.text
        asset = client.get(src)
        assert asset.status_code == 200 and len(asset.content) > 100, src
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text
    assert client.get("/docs/assets/redoc.standalone.js").status_code == 404
    assert client.get("/redoc").status_code == 404
