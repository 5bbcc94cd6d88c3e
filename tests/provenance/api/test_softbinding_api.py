"""The C2PA Soft Binding Resolution API: byBinding (GET/POST), byContent, manifests, supportedAlgorithms."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from provenance.records import PublisherMetadata
from tests.provenance.api.conftest import assert_error, ingest
from tests.provenance.api.fakes import FakeService, textured_image
from tests.provenance.api.test_records_api import UNKNOWN_CID


def _phash(fake_service: FakeService, image: bytes) -> str:
    return fake_service.ledger.hash_image(image)[0].value


@pytest.fixture
def registered(client: TestClient, keys: dict[str, str], fake_service: FakeService) -> dict[str, str]:
    """Three registered images: seed -> record CID."""
    return {str(seed): ingest(client, keys["acme"], textured_image(seed))["record_cid"] for seed in range(3)}


def test_supported_algorithms(client: TestClient) -> None:
    assert client.get("/services/supportedAlgorithms").json() == {"watermarks": [], "fingerprints": [{"alg": "phash"}]}


def test_by_binding_get_with_base64_and_hex(client: TestClient, fake_service: FakeService,
                                           registered: dict[str, str]) -> None:
    value_hex = _phash(fake_service, textured_image(1))
    b64 = base64.b64encode(bytes.fromhex(value_hex)).decode()
    for value in (b64, b64.rstrip("="), value_hex):
        body = client.get("/matches/byBinding", params={"alg": "phash", "value": value}).json()
        assert body["matches"][0] == {"manifestId": registered["1"], "similarityScore": 100}
        assert all(m["similarityScore"] >= 75 for m in body["matches"])  # unrelated images are not "matches"


def test_by_binding_scores_and_max_results(client: TestClient, fake_service: FakeService,
                                          registered: dict[str, str]) -> None:
    value = int(_phash(fake_service, textured_image(2)), 16) ^ 0b111  # 3 bits off
    body = client.get("/matches/byBinding", params={"alg": "phash", "value": f"{value:016x}", "maxResults": 1}).json()
    assert body == {"matches": [{"manifestId": registered["2"], "similarityScore": round(100 * (1 - 3 / 64))}]}


def test_by_binding_post(client: TestClient, fake_service: FakeService, registered: dict[str, str]) -> None:
    value = base64.b64encode(bytes.fromhex(_phash(fake_service, textured_image(0)))).decode()
    resp = client.post("/matches/byBinding", json={"alg": "phash", "value": value})
    assert resp.json()["matches"][0]["manifestId"] == registered["0"]


def test_by_binding_refusals(client: TestClient) -> None:
    err = assert_error(client.get("/matches/byBinding", params={"alg": "md5", "value": "AAAA"}), 400, "unsupported_alg")
    assert "phash" in err["message"]
    assert_error(client.get("/matches/byBinding", params={"alg": "phash", "value": "!!notbase64"}), 400,
                 "invalid_value")
    assert_error(client.get("/matches/byBinding", params={"alg": "phash", "value": "AAAA"}), 400, "invalid_value")
    assert_error(client.get("/matches/byBinding", params={"alg": "phash"}), 422, "invalid_request")
    assert_error(client.get("/matches/byBinding", params={"alg": "phash", "value": "AAAAAAAAAAA=", "maxResults": 0}),
                 422, "invalid_request")
    assert_error(client.post("/matches/byBinding", json={"alg": "phash"}), 422, "invalid_request")


def test_by_binding_on_an_empty_index_is_no_match(client: TestClient) -> None:
    assert client.get("/matches/byBinding", params={"alg": "phash", "value": "AAAAAAAAAAA="}).json() == {"matches": []}


def test_by_content_raw_body_and_multipart(client: TestClient, registered: dict[str, str]) -> None:
    image = textured_image(1, fmt="JPEG")
    raw = client.post("/matches/byContent", content=image, headers={"content-type": "image/jpeg"}).json()
    form = client.post("/matches/byContent", files={"file": ("q.jpg", image, "image/jpeg")}).json()
    assert raw == form and raw["matches"][0]["manifestId"] == registered["1"]
    assert raw["matches"][0]["similarityScore"] >= 90
    assert client.post("/matches/byContent", params={"alg": "phash", "maxResults": 1}, content=image,
                       headers={"content-type": "image/jpeg"}).json() == {"matches": raw["matches"][:1]}


def test_by_content_refusals(client: TestClient, registered: dict[str, str]) -> None:
    assert_error(client.post("/matches/byContent", content=b"plain text", headers={"content-type": "image/png"}),
                 415, "unsupported_media_type")
    assert_error(client.post("/matches/byContent", params={"alg": "nope"}, content=textured_image(1),
                             headers={"content-type": "image/png"}), 400, "unsupported_alg")


def test_manifest_is_our_record(client: TestClient, registered: dict[str, str], fake_service: FakeService) -> None:
    cid = registered["0"]
    body = client.get(f"/manifests/{cid}").json()
    assert body["manifestId"] == cid and body["record"] == fake_service.record(cid)
    assert body["c2pa_manifest_store"] is None  # the original carried no C2PA manifest
    assert_error(client.get(f"/manifests/{UNKNOWN_CID}"), 404, "not_found")
    assert_error(client.get("/manifests/urn:uuid:1234"), 400, "invalid_manifest_id")


def test_manifest_brings_the_originals_c2pa_store(client: TestClient, fake_service: FakeService) -> None:
    from provenance.c2pa import read_c2pa

    c2pa_file = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "c2pa" / "C.jpg"
    if not c2pa_file.is_file():
        pytest.skip(f"C2PA sample not found at {c2pa_file}")
    data = c2pa_file.read_bytes()
    result = fake_service.ledger.ingest(data, publisher="acme", metadata=PublisherMetadata(title="C"),
                                        c2pa=read_c2pa(data).to_obj())
    store = client.get(f"/manifests/{result.cid}").json()["c2pa_manifest_store"]
    assert store["active_manifest"] in store["manifests"]
    active = client.get(f"/manifests/{result.cid}", params={"returnActiveManifest": "true"}).json()
    assert active["c2pa_manifest_store"] == {"active_manifest": store["active_manifest"],
                                             "manifest": store["manifests"][store["active_manifest"]]}
