"""POST /v1/lookup, change maps, the rate limit, the upload limit and the error mapping."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient

from provenance.errors import BlockStoreUnavailableError, ChainUnavailableError, InvalidImageError
from provenance.translog import verify_inclusion
from tests.provenance.api.conftest import assert_error, ingest
from tests.provenance.api.fakes import FakeService, textured_image

VERDICT_KEYS = {"verdict", "record_cid", "hash", "model", "candidates", "change_map", "thresholds"}


def _lookup(client: TestClient, image: bytes, name: str = "q.png"):  # type: ignore[no-untyped-def]
    return client.post("/v1/lookup", files={"file": (name, image, "application/octet-stream")})


def test_match_carries_record_proof_and_query_c2pa(client: TestClient, keys: dict[str, str],
                                                    fake_service: FakeService) -> None:
    task = ingest(client, keys["acme"], textured_image(1))
    fake_service.ledger.anchor()
    resp = _lookup(client, textured_image(1, fmt="JPEG"))  # a re-encoded copy
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert VERDICT_KEYS | {"record", "proof", "c2pa", "change_map_url"} <= set(body)
    assert body["verdict"] == "match" and body["record_cid"] == task["record_cid"]
    assert body["record"] == fake_service.record(task["record_cid"])
    assert body["change_map"] is None and body["change_map_url"] is None
    assert body["c2pa"]["status"] == "absent" and body["c2pa"]["format"] == "image/jpeg"
    proof = body["proof"]
    cp = proof["checkpoint"]
    assert cp["anchor"]["tx"].startswith("0x") and cp["anchor"]["ephemeral"] is True
    verify_inclusion(proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["leaf_hash"]),
                     [bytes.fromhex(h) for h in proof["inclusion_proof"]], bytes.fromhex(cp["root"]))


def test_match_before_any_checkpoint_has_an_empty_proof(client: TestClient, keys: dict[str, str]) -> None:
    ingest(client, keys["acme"], textured_image(1))
    proof = _lookup(client, textured_image(1)).json()["proof"]
    assert proof["checkpoint"] is None and proof["inclusion_proof"] == [] and proof["tree_size"] is None


def test_altered_serves_its_change_map(client: TestClient, keys: dict[str, str], fake_service: FakeService) -> None:
    ingest(client, keys["acme"], textured_image(1))
    query = textured_image(1, fmt="JPEG")
    fake_service.lookup.altered.add(hashlib.sha256(query).digest())
    body = _lookup(client, query).json()
    assert body["verdict"] == "altered"
    url = body["change_map_url"]
    assert url == f"/v1/change-maps/{body['change_map']}" and "/" not in body["change_map"]
    png = client.get(url)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["nope.png", "..%2F..%2Fledger.sqlite3", "map.png", "a" * 20 + ".txt"])
def test_unknown_change_maps_are_404(client: TestClient, name: str) -> None:
    assert client.get(f"/v1/change-maps/{name}").status_code == 404


def test_no_match(client: TestClient, keys: dict[str, str]) -> None:
    ingest(client, keys["acme"], textured_image(1))
    body = _lookup(client, textured_image(99)).json()
    assert body["verdict"] == "no_match" and body["record"] is None and body["proof"] is None


def test_lookup_refusals(client: TestClient) -> None:
    assert_error(_lookup(client, b"GIF89a-but-not-really" + b"\0" * 10), 422, "invalid_image")
    assert_error(_lookup(client, b"hello world"), 415, "unsupported_media_type")
    assert_error(client.post("/v1/lookup", data={"x": "y"}), 415)


def test_lookups_are_rate_limited_before_the_upload_is_read(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(api_lookup_burst=2, api_lookup_rate_per_s=0.01)
    image = textured_image(1)
    assert [_lookup(client, image).status_code for _ in range(2)] == [200, 200]
    resp = _lookup(client, b"not even an image")  # 429 wins over 415: the body is never looked at
    err = assert_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1 and "retry in" in err["message"]
    assert_error(client.get("/matches/byBinding", params={"alg": "phash", "value": "AAAAAAAAAAA="}), 429)
    assert client.get("/services/supportedAlgorithms").status_code == 200  # only lookups are limited


def test_upload_over_the_limit_is_413_before_reading_it_all(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client(api_max_upload_bytes=100_000)
    # declared length over the limit: refused from the header
    resp = client.post("/v1/lookup", files={"file": ("big.png", b"\x89PNG" + b"\0" * 200_000, "image/png")})
    assert_error(resp, 413, "content_too_large")
    # no declared length (chunked): cut off when the streamed body crosses the limit, the rest never read
    consumed, status = _stream_to_app(client.app, chunk=10_000, chunks=100)
    assert status == 413
    assert consumed <= 11  # 100 KB limit / 10 KB chunks (+ the part header), not all 100


def _stream_to_app(app, *, chunk: int, chunks: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Drive the ASGI app with a chunked multipart body; return (chunks it read, response status)."""
    import asyncio
    import threading

    head = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n\x89PNG'
    pieces = [head] + [b"\0" * chunk] * chunks
    read = 0
    out: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        read += 1
        body = pieces[read - 1] if read <= len(pieces) else b""
        return {"type": "http.request", "body": body, "more_body": read < len(pieces)}

    async def send(message: dict) -> None:
        out.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/lookup", "raw_path": b"/v1/lookup", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"multipart/form-data; boundary=xyz"), (b"host", b"testserver")],
             "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}
    # In a thread of its own: a session-scoped Playwright browser (tests/e2e) may keep an event loop running in the
    # main thread, where asyncio.run() refuses to start another.
    worker = threading.Thread(target=lambda: asyncio.run(app(scope, receive, send)))
    worker.start()
    worker.join(timeout=60)
    return read, next(m["status"] for m in out if m["type"] == "http.response.start")


@pytest.mark.parametrize("exc, status, code, part", [
    (BlockStoreUnavailableError("IPFS daemon unreachable", where="http://127.0.0.1:5001"), 503,
     "blockstore_unavailable", "block store unavailable"),
    (ChainUnavailableError("EVM node unreachable", where="http://127.0.0.1:8545"), 503, "chain_unavailable",
     "chain unavailable"),
    (InvalidImageError("query: image is 8x8 px, too small to look up"), 422, "invalid_image", "too small"),
])
def test_provenance_errors_map_to_status_codes(client: TestClient, fake_service: FakeService, exc: Exception,
                                               status: int, code: str, part: str) -> None:
    fake_service.lookup.error = exc
    err = assert_error(_lookup(client, textured_image(1)), status, code)
    assert part in err["message"]
    if status == 503:
        assert "127.0.0.1" in err["message"]
