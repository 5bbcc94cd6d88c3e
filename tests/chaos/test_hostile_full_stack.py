"""Issue 16's hostile inputs against the full services (docs/hardening.md, "Under the full services").

The findings were fixed and tested on the embedded default (``tests/provenance/api/test_hardening*.py``); here the
same requests go to the docker-compose topology of the chaos harness (``tests/chaos/topology.py``): ``provenance
serve`` with the Celery queue, one ``provenance worker``, private Redis (broker, task status and the shared rate
limiter), PostgreSQL, js-ipfs and ganache. One topology for the module. After each request: the documented status,
the API process alive and answering, and, for refused uploads, nothing written (records, log leaves, ingest tasks,
Celery queues unchanged).

Finding 1's crash needed web3 in the API process (it raises the recursion limit to 100,000). In this configuration
the API does not import it (the beat worker anchors, and readiness asks the node over plain JSON-RPC): checked with
gdb on the running API, ``web3``, ``py_ecc`` and ``eth`` were not in ``sys.modules`` and the limit was 1,000. The
100,000-limit condition is tested on a served API that imports web3 first (``test_hardening_served.py``); here the
same bodies are checked to be refused by this topology's API.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from PIL import Image
from sqlalchemy import create_engine, text

from tests.chaos.scenarios import wait_task
from tests.chaos.services import ServiceUnavailable
from tests.chaos.topology import Topology, start_topology
from tests.fixtures.services import unavailable
from tests.provenance.api.fakes import textured_image

pytestmark = [pytest.mark.timeout(300), pytest.mark.ipfs, pytest.mark.evm_rpc, pytest.mark.postgres]

LOOKUP_BURST = 12  # per-client lookup tokens for the module (refill: 1 per 1000 s); 7 spent before test 5
IMAGE_BURST = 6  # per-client image tokens
IMAGE_RATE_PER_S = 0.5
LIMITS = {
    # The topology lifts the per-client limits for its load; here they are what is tested, so set them back low.
    "PROVENANCE_API_LOOKUP_RATE_PER_S": "0.001", "PROVENANCE_API_LOOKUP_BURST": str(LOOKUP_BURST),
    "PROVENANCE_API_IMAGE_RATE_PER_S": str(IMAGE_RATE_PER_S), "PROVENANCE_API_IMAGE_BURST": str(IMAGE_BURST),
    "PROVENANCE_API_HEAVY_PER_CLIENT": "1",
    "PROVENANCE_ANCHOR_EVERY_S": "3600",  # no anchoring races the assertions on what was written
    "FORWARDED_ALLOW_IPS": "*",  # uvicorn's own proxy trust must play no part, whatever it is set to
}
FIGURES: dict[str, str] = {}


@dataclass
class Stack:
    topo: Topology
    key: str
    registered: dict[str, Any] = field(default_factory=dict)  # the 16-bit PNG's record: _registered_grey16

    @property
    def base(self) -> str:
        return self.topo.api.base

    def assert_alive(self) -> None:
        api = self.topo.api
        assert api.alive(), f"the API died (exit {api.proc.returncode if api.proc else None}):\n{api.log()[-3000:]}"
        resp = httpx.get(self.base + "/services/supportedAlgorithms", timeout=10)
        assert resp.status_code == 200, resp.text

    def written(self) -> dict[str, int]:
        """What an upload writes anywhere: PostgreSQL rows, Celery queues (db 0) and task results (db 1)."""
        engine = create_engine(self.topo.postgres.url)
        try:
            with engine.connect() as conn:
                counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
                          for t in ("records", "log_leaves", "ingest_tasks")}
        finally:
            engine.dispose()
        broker = redis.Redis.from_url(self.topo.redis.url(0))
        results = redis.Redis.from_url(self.topo.redis.url(1))
        try:
            counts["queued"] = sum(broker.llen(k) for k in broker.scan_iter(count=1000) if broker.type(k) == b"list")
            counts["unacked"] = broker.hlen("unacked")
            counts["task_results"] = results.dbsize()
        finally:
            broker.close()
            results.close()
        return counts

    def reset_peak(self) -> None:
        """Reset the API process's resident high-water mark to its current RSS (Linux >= 4.0)."""
        with open(f"/proc/{self.topo.api.pid}/clear_refs", "w") as fh:
            fh.write("5")

    def rss_kib(self) -> tuple[int, int]:
        """The API process's resident set now and its high-water mark (KiB)."""
        fields = {}
        with open(f"/proc/{self.topo.api.pid}/status") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                fields[name] = value.split()[0] if value.split() else "0"
        return int(fields["VmRSS"]), int(fields["VmHWM"])


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    t0 = time.monotonic()
    try:
        topo = start_topology(workers=1, disk_mb=None, extra_env=LIMITS)
    except ServiceUnavailable as exc:
        unavailable(str(exc))
        raise
    FIGURES["topology start"] = f"{time.monotonic() - t0:.1f} s"
    failed_before = request.session.testsfailed
    try:
        yield Stack(topo, topo.api_key)
    finally:
        keep = request.session.testsfailed > failed_before or bool(os.environ.get("PROVENANCE_CHAOS_KEEP"))
        topo.close(keep_files=keep)
        if keep:
            print(f"\nhostile: logs and state kept in {topo.tmp}")
        print("\nhostile input, full services: " + "; ".join(f"{k}: {v}" for k, v in FIGURES.items()))


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _grey16() -> bytes:
    """A textured 16-bit greyscale PNG (mode I;16): detail in the high byte, noise in the low one."""
    grey = np.asarray(Image.open(io.BytesIO(textured_image(16, (480, 360)))).convert("L"), np.uint16)
    low = np.random.default_rng(16).integers(0, 256, grey.shape, dtype=np.uint16)
    img = Image.fromarray(grey * 256 + low)
    assert img.mode == "I;16"
    return _png(img)


def _error(resp: httpx.Response, status: int | set[int]) -> dict[str, Any]:
    wanted = {status} if isinstance(status, int) else status
    assert resp.status_code in wanted, f"{resp.status_code}: {resp.text[:500]}"
    return resp.json()["error"]


# --- finding 1: 100,000 levels of JSON ----------------------------------------------------------------------------
def test_deeply_nested_json_is_refused_and_the_api_survives(stack: Stack) -> None:
    before = stack.written()
    attack = '{"alg":"phash","value":"AAAAAAAAAAA=","x":' + _nested(100_000) + "}"
    resp = httpx.post(stack.base + "/matches/byBinding", content=attack, timeout=30,
                      headers={"Content-Type": "application/json"})
    # 200 KB: over the 64 KiB default, refused before it is even scanned
    assert _error(resp, 413)["code"] == "json_too_large"
    stack.assert_alive()
    small = '{"alg":"phash","value":"AAAAAAAAAAA=","x":' + _nested(10_000) + "}"  # 20 KB: the depth check's
    resp = httpx.post(stack.base + "/matches/byBinding", content=small, timeout=30,
                      headers={"Content-Type": "application/json"})
    err = _error(resp, 400)
    assert err["code"] == "json_too_deep", err
    stack.assert_alive()
    for depth in (100_000, 20_000):
        resp = httpx.post(stack.base + "/v1/assets", headers=_bearer(stack.key), timeout=30,
                          files={"file": ("photo.png", textured_image(1), "image/png")},
                          data={"metadata": '{"title": "t", "extra": ' + _nested(depth) + "}"})
        assert 400 <= resp.status_code < 500 and resp.json()["error"]["code"], resp.text[:500]
        stack.assert_alive()
    assert stack.written() == before
    resp = httpx.post(stack.base + "/matches/byBinding", json={"alg": "phash", "value": "AAAAAAAAAAA=", "x": [[1]]})
    assert resp.status_code == 200 and resp.json() == {"matches": []}, resp.text


# --- finding 2: a 9000 x 9000 all-zero PNG ------------------------------------------------------------------------
def test_a_9000_px_zero_png_lookup_is_bounded(stack: Stack) -> None:
    bomb = _png(Image.new("RGB", (9000, 9000)))
    # warm up first (the hashers' networks load on the first lookup), so the figure is the query's own cost
    warm = httpx.post(stack.base + "/v1/lookup", files={"file": ("w.png", textured_image(2), "image/png")}, timeout=120)
    assert warm.status_code == 200, warm.text[:500]
    stack.reset_peak()
    rss0, hwm0 = stack.rss_kib()
    t0 = time.monotonic()
    resp = httpx.post(stack.base + "/v1/lookup", files={"file": ("zero.png", bomb, "image/png")}, timeout=120)
    took = time.monotonic() - t0
    rss1, hwm1 = stack.rss_kib()
    peak_added_mb = (max(hwm1, hwm0) - rss0) / 1024
    FIGURES["9000 px zero PNG lookup"] = (f"{resp.status_code} in {took:.1f} s, {len(bomb) // 1024} KiB, "
                                          f"API RSS {rss0 // 1024} -> {rss1 // 1024} MB, peak added "
                                          f"{peak_added_mb:.0f} MB")
    print(f"\n9000 px zero PNG: {FIGURES['9000 px zero PNG lookup']}")
    assert resp.status_code in (200, 413, 422, 503), resp.text[:500]
    if resp.status_code == 200:
        assert resp.json()["verdict"] == "no_match", resp.text[:500]
    # Unbounded, this request took 2.7 GB (docs/hardening.md); bounded, one decode (243 MB) plus the hashers' work.
    assert peak_added_mb < 1000, FIGURES["9000 px zero PNG lookup"]
    assert took < 90
    stack.assert_alive()


# --- a 16-bit greyscale original through the Celery worker ----------------------------------------------------------
def _registered_grey16(stack: Stack) -> dict:  # type: ignore[type-arg]
    """The 16-bit greyscale PNG registered through the worker, once per stack (whichever test needs it first)."""
    if stack.registered:
        return stack.registered
    data = _grey16()
    before = stack.written()
    t0 = time.monotonic()
    with httpx.Client(timeout=60) as client:
        resp = client.post(stack.base + "/v1/assets", headers=_bearer(stack.key),
                           files={"file": ("grey16.png", data, "image/png")}, data={"metadata": '{"title": "g16"}'})
        assert resp.status_code == 202, resp.text
        status = wait_task(client, stack.base, resp.json()["task_id"], timeout_s=180)
        assert status.get("state") == "succeeded", status
    FIGURES["16-bit PNG via the worker"] = f"ingest {time.monotonic() - t0:.1f} s"
    after = stack.written()  # what the refused uploads are checked against moves for an accepted one
    assert after["records"] == before["records"] + 1 and after["log_leaves"] > before["log_leaves"], (before, after)
    stack.registered = {"cid": status["record_cid"], "data": data}
    return stack.registered


def test_a_16_bit_greyscale_png_registered_by_the_worker_is_found_by_its_own_bytes(stack: Stack) -> None:
    registered = _registered_grey16(stack)
    with httpx.Client(timeout=60) as client:
        resp = client.post(stack.base + "/v1/lookup", files={"file": ("grey16.png", registered["data"], "image/png")})
    assert resp.status_code == 200, resp.text[:500]
    body = resp.json()
    assert body["verdict"] == "match" and body["record_cid"] == registered["cid"], body
    stack.assert_alive()


# --- finding 9: malformed metadata --------------------------------------------------------------------------------
@pytest.mark.parametrize("metadata, reason", [
    pytest.param(json.dumps({f"k{i}": "v" for i in range(10_000)}), "10000 fields exceed the limit of 64",
                 id="10k-keys"),
    pytest.param('{"title": "\\ud800"}', "not valid UTF-8 text", id="lone-surrogate"),
    pytest.param('{"title": ' + "9" * 5_000 + "}", "must be a string, not a number", id="5000-digit-int"),
    pytest.param('{"capture_time": "not a time"}', "not an RFC 3339 / ISO 8601 time", id="bad-time"),
])
def test_malformed_metadata_is_422_and_nothing_is_queued(stack: Stack, metadata: str, reason: str) -> None:
    before = stack.written()
    resp = httpx.post(stack.base + "/v1/assets", headers=_bearer(stack.key), data={"metadata": metadata},
                      files={"file": ("a.png", textured_image(7), "image/png")}, timeout=30)
    err = _error(resp, 422)
    assert err["code"] == "invalid_metadata" and reason in err["message"], err
    assert stack.written() == before
    stack.assert_alive()


def test_metadata_that_is_not_utf8_is_422_and_nothing_is_queued(stack: Stack) -> None:
    before = stack.written()
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n".encode()
            + b'{"title": "caf\xe9 \xff"}'
            + f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
              f"Content-Type: image/png\r\n\r\n".encode() + textured_image(8) + f"\r\n--{boundary}--\r\n".encode())
    resp = httpx.post(stack.base + "/v1/assets", content=body, timeout=30,
                      headers={**_bearer(stack.key), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    err = _error(resp, 422)
    assert err["code"] == "invalid_metadata" and "not valid UTF-8" in err["message"], err
    assert stack.written() == before
    stack.assert_alive()


# --- finding 10: a 1 x 1 image, on both query routes --------------------------------------------------------------
def test_a_1x1_image_is_refused_alike_by_lookup_and_by_content(stack: Stack) -> None:
    tiny = _png(Image.new("RGB", (1, 1), (200, 10, 10)))
    lookup = _error(httpx.post(stack.base + "/v1/lookup", files={"file": ("q.png", tiny, "image/png")}), 422)
    by_form = _error(httpx.post(stack.base + "/matches/byContent", files={"file": ("q.png", tiny, "image/png")}), 415)
    by_body = _error(httpx.post(stack.base + "/matches/byContent", content=tiny,
                                headers={"Content-Type": "image/png"}), 415)
    for err in (lookup, by_form, by_body):
        assert err["code"] == "invalid_image" and "too small" in err["message"], err
    stack.assert_alive()


# --- finding 11: a forged X-Forwarded-For, on the shared (Redis) limiter ------------------------------------------
def test_a_forged_x_forwarded_for_gets_no_bucket_of_its_own_in_redis(stack: Stack) -> None:
    codes = []
    for i in range(LOOKUP_BURST + 2):
        resp = httpx.post(stack.base + "/v1/lookup", headers={"X-Forwarded-For": f"203.0.113.{i + 1}"},
                          content=b"", timeout=10)
        codes.append(resp.status_code)
    # One bucket, the loopback peer's (some of its tokens spent by the tests above): it runs dry whatever address
    # each request claims. A believed header would give every request a full bucket (415 for the empty body).
    assert set(codes) <= {415, 429} and codes[-2:] == [429, 429], codes
    assert "127.0.0.1" in resp.json()["error"]["message"] and int(resp.headers["Retry-After"]) >= 1
    limiter = redis.Redis.from_url(stack.topo.redis.url(0))
    try:
        keys = {k.decode() for k in limiter.scan_iter("provenance:limits:*", count=1000)}
    finally:
        limiter.close()
    assert any(k.endswith(":127.0.0.1") for k in keys), keys  # the bucket is the shared one, in Redis
    assert not any("203.0.113." in k for k in keys), keys
    stack.assert_alive()


# --- finding 3: thumbnails of many sizes --------------------------------------------------------------------------
def test_thumbnails_of_many_sizes_are_snapped_cached_and_rate_limited(stack: Stack) -> None:
    cid = _registered_grey16(stack)["cid"]
    rss0, _ = stack.rss_kib()
    sizes = list(range(16, 1025, 37))  # 28 distinct sizes
    codes: list[int] = []
    longest: dict[int, set[int]] = {}
    t0 = time.monotonic()
    with httpx.Client(timeout=60) as client:
        for size in sizes:
            resp = client.get(f"{stack.base}/v1/records/{cid}/image", params={"size": size})
            codes.append(resp.status_code)
            if resp.status_code == 200:
                assert resp.headers["content-type"] == "image/jpeg"
                longest.setdefault(max(Image.open(io.BytesIO(resp.content)).size), set()).add(size)
            else:
                assert _error(resp, 429)["code"] == "rate_limited" and int(resp.headers["Retry-After"]) >= 1
    took = time.monotonic() - t0
    rss1, _ = stack.rss_kib()
    FIGURES["thumbnails"] = (f"{len(sizes)} sizes in {took:.1f} s: {codes.count(200)} x 200, {codes.count(429)} x 429, "
                             f"{len(longest)} distinct renders, API RSS {rss0 // 1024} -> {rss1 // 1024} MB")
    print(f"\nthumbnails: {FIGURES['thumbnails']}")
    assert codes.count(200) >= IMAGE_BURST and codes.count(429) >= len(sizes) // 2, codes
    assert set(longest) <= {64, 128, 256, 480}, longest  # snapped (64/128/256/512/1024), never past the original
    stack.assert_alive()


# --- finding 12: a withdrawn record's image, from PostgreSQL + IPFS ------------------------------------------------
def _image(stack: Stack, cid: str) -> httpx.Response:
    """GET the original, waiting out the image rate limit the thumbnails test spent."""
    deadline = time.monotonic() + 30
    while True:
        resp = httpx.get(f"{stack.base}/v1/records/{cid}/image", timeout=30)
        if resp.status_code != 429 or time.monotonic() > deadline:
            return resp
        time.sleep(float(resp.headers.get("Retry-After", "1")))


def test_a_withdrawn_records_image_is_no_longer_served(stack: Stack) -> None:
    registered = _registered_grey16(stack)
    cid, data = registered["cid"], registered["data"]
    resp = _image(stack, cid)
    assert resp.status_code == 200 and resp.content == data  # served from IPFS, the bytes registered
    resp = httpx.delete(f"{stack.base}/v1/records/{cid}", headers=_bearer(stack.key), timeout=30)
    assert resp.status_code == 200 and resp.json()["withdrawn"] is True, resp.text
    err = _error(_image(stack, cid), 410)
    assert err["code"] == "withdrawn" and cid in err["message"], err
    stack.assert_alive()
