"""The C2PA Soft Binding Resolution API: byBinding (GET/POST), byContent, manifests, supportedAlgorithms.

Over the API tests' fake service (real ledger, pHash only, fake lookup). The specification's own OpenAPI document
checks every answer in ``test_softbinding_conformance.py`` (real lookup, real signing)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from provenance.records import PublisherMetadata
from provenance.softbinding.calibration import calibration_for
from provenance.softbinding.manifest_ids import manifest_id_for
from tests.provenance.api.conftest import assert_error, ingest
from tests.provenance.api.fakes import FakeService, textured_image
from tests.provenance.api.test_records_api import UNKNOWN_CID

PHASH = "org.provenance-service.phash.1"


def _phash(fake_service: FakeService, image: bytes) -> str:
    return fake_service.ledger.hash_image(image)[0].value


@pytest.fixture
def registered(client: TestClient, keys: dict[str, str], fake_service: FakeService) -> dict[str, str]:
    """Three registered images: seed -> record CID."""
    return {str(seed): ingest(client, keys["acme"], textured_image(seed))["record_cid"] for seed in range(3)}


def test_supported_algorithms_are_list_names(client: TestClient) -> None:
    assert client.get("/services/supportedAlgorithms").json() == {"watermarks": [], "fingerprints": [{"alg": PHASH}]}


def test_by_binding_get_with_base64_hex_and_the_record_name(client: TestClient, fake_service: FakeService,
                                                           registered: dict[str, str]) -> None:
    value_hex = _phash(fake_service, textured_image(1))
    b64 = base64.b64encode(bytes.fromhex(value_hex)).decode()
    for alg, value in ((PHASH, b64), (PHASH, b64.rstrip("=")), (PHASH, value_hex), ("phash", b64)):
        body = client.get("/matches/byBinding", params={"alg": alg, "value": value}).json()
        assert body == {"matches": [{"manifestId": manifest_id_for(registered["1"]), "similarityScore": 100}]}


def test_by_binding_cutoff_and_scores_come_from_the_calibration(client: TestClient, fake_service: FakeService,
                                                               registered: dict[str, str]) -> None:
    cal = calibration_for(PHASH)
    assert cal is not None and cal.cutoff is not None
    code = int(_phash(fake_service, textured_image(2)), 16)
    within = code ^ ((1 << cal.cutoff) - 1)  # exactly at the cutoff
    beyond = code ^ ((1 << (cal.cutoff + 1)) - 1)
    body = client.get("/matches/byBinding", params={"alg": PHASH, "value": f"{within:016x}", "maxResults": 1}).json()
    assert body == {"matches": [{"manifestId": manifest_id_for(registered["2"]),
                                 "similarityScore": cal.similarity_score(cal.cutoff)}]}
    assert 50 <= cal.similarity_score(cal.cutoff) < 100
    assert client.get("/matches/byBinding", params={"alg": PHASH, "value": f"{beyond:016x}"}).json() == {
        "matches": []}


def test_by_binding_post(client: TestClient, fake_service: FakeService, registered: dict[str, str]) -> None:
    value = base64.b64encode(bytes.fromhex(_phash(fake_service, textured_image(0)))).decode()
    resp = client.post("/matches/byBinding", json={"alg": PHASH, "value": value})
    assert resp.json()["matches"][0]["manifestId"] == manifest_id_for(registered["0"])


def test_by_binding_refusals_are_400(client: TestClient) -> None:
    err = assert_error(client.get("/matches/byBinding", params={"alg": "md5", "value": "AAAA"}), 400, "unsupported_alg")
    assert PHASH in err["message"]
    assert_error(client.get("/matches/byBinding", params={"alg": PHASH, "value": "!!notbase64"}), 400, "invalid_value")
    assert_error(client.get("/matches/byBinding", params={"alg": PHASH, "value": "AAAA"}), 400, "invalid_value")
    # missing or malformed parameters: 400 here (the specification), where the rest of the API answers 422
    assert_error(client.get("/matches/byBinding", params={"alg": PHASH}), 400, "invalid_request")
    assert_error(client.get("/matches/byBinding", params={"value": "AAAAAAAAAAA="}), 400, "invalid_request")
    assert_error(client.get("/matches/byBinding", params={"alg": PHASH, "value": "AAAAAAAAAAA=", "maxResults": 0}),
                 400, "invalid_request")
    assert_error(client.get("/matches/byBinding", params={"alg": PHASH, "value": "AAAAAAAAAAA=", "maxResults": "x"}),
                 400, "invalid_request")
    assert_error(client.post("/matches/byBinding", json={"alg": PHASH}), 400, "invalid_request")
    assert_error(client.post("/matches/byBinding", content=b'{"alg": ', headers={"Content-Type": "application/json"}),
                 400, "invalid_request")
    assert_error(client.post("/matches/byBinding", content=b"alg=x"), 400, "invalid_request")
    assert client.get("/v1/records/not-a-cid/proof").status_code == 400  # elsewhere nothing changed ...
    assert client.get("/v1/receipts/x", params={"tree_size": "x"}).status_code == 404
    assert client.get("/v1/records/" + UNKNOWN_CID + "/bundle", params={"tree_size": "x"}).status_code == 422


def test_a_query_string_too_long_for_a_value_is_414(client: TestClient) -> None:
    value = "A" * 3000
    err = assert_error(client.get("/matches/byBinding", params={"alg": PHASH, "value": value}), 414, "uri_too_long")
    assert "POST /matches/byBinding" in err["message"]
    assert_error(client.post("/matches/byBinding", json={"alg": PHASH, "value": value}), 400, "invalid_value")


def test_by_binding_on_an_empty_index_is_no_match(client: TestClient) -> None:
    assert client.get("/matches/byBinding", params={"alg": PHASH, "value": "AAAAAAAAAAA="}).json() == {"matches": []}


def test_by_content_raw_body_and_multipart(client: TestClient, registered: dict[str, str]) -> None:
    image = textured_image(1, fmt="JPEG")
    raw = client.post("/matches/byContent", content=image, headers={"content-type": "image/jpeg"}).json()
    form = client.post("/matches/byContent", files={"file": ("q.jpg", image, "image/jpeg")}).json()
    assert raw == form and raw["matches"][0]["manifestId"] == manifest_id_for(registered["1"])
    assert raw["matches"][0]["similarityScore"] >= 50
    assert client.post("/matches/byContent", params={"alg": PHASH, "maxResults": 1}, content=image,
                       headers={"content-type": "image/jpeg"}).json() == {"matches": raw["matches"][:1]}


def test_by_content_returns_only_what_the_lookup_verified(client: TestClient, fake_service: FakeService,
                                                         registered: dict[str, str]) -> None:
    fake_service.lookup.codes = {cid: (pub, "0" * 16) for cid, (pub, _) in fake_service.lookup.codes.items()}
    body = client.post("/matches/byContent", content=textured_image(1), headers={"content-type": "image/png"}).json()
    assert body == {"matches": []}  # every record is a candidate, none passes verification (all > 10 bits away)


def test_by_content_refusals(client: TestClient, registered: dict[str, str]) -> None:
    assert_error(client.post("/matches/byContent", content=b"plain text", headers={"content-type": "image/png"}),
                 415, "unsupported_media_type")
    assert_error(client.post("/matches/byContent", content=b"", headers={"content-type": "image/png"}),
                 415, "invalid_image")
    assert_error(client.post("/matches/byContent", params={"alg": "nope"}, content=textured_image(1),
                             headers={"content-type": "image/png"}), 400, "unsupported_alg")
    assert_error(client.post("/matches/byContent", params={"maxResults": 0}, content=textured_image(1),
                             headers={"content-type": "image/png"}), 400, "invalid_request")
    assert_error(client.post("/matches/byContent", params={"hintAlg": PHASH}, content=textured_image(1),
                             headers={"content-type": "image/png"}), 400, "invalid_request")
    assert_error(client.post("/matches/byContent", files={"other": ("q.png", textured_image(1), "image/png")}),
                 400, "invalid_request")


def test_manifest_by_cid_is_our_record_as_before(client: TestClient, registered: dict[str, str],
                                                 fake_service: FakeService) -> None:
    cid = registered["0"]
    body = client.get(f"/manifests/{cid}").json()
    assert body["manifestId"] == manifest_id_for(cid) and body["record_cid"] == cid
    assert body["record"] == fake_service.record(cid)
    assert body["c2pa_manifest_store"] is None  # the original carried no C2PA manifest
    assert_error(client.get(f"/manifests/{UNKNOWN_CID}"), 404, "not_found")
    assert_error(client.get("/manifests/urn:uuid:1234"), 400, "invalid_manifest_id")


def test_manifest_by_c2pa_label(client: TestClient, registered: dict[str, str], fake_service: FakeService) -> None:
    cid = registered["1"]
    urn = manifest_id_for(cid)
    # no signing certificate here: no manifest store to serve, and the answer says where the record is
    err = assert_error(client.get(f"/manifests/{urn}"), 404, "no_manifest_store")
    assert "Accept: application/json" in err["message"]
    body = client.get(f"/manifests/{urn}", headers={"Accept": "application/json"}).json()
    assert body["record_cid"] == cid and body["manifestId"] == urn
    uuid_part = urn.split(":")[2]
    assert client.get(f"/manifests/{urn.replace(uuid_part, uuid_part.upper())}",  # UUIDs compare case-blind
                      headers={"Accept": "application/json"}).json()["record_cid"] == cid
    other = manifest_id_for(UNKNOWN_CID)
    assert_error(client.get(f"/manifests/{other}"), 404, "not_found")
    assert_error(client.get("/manifests/urn:c2pa:not-a-uuid"), 400, "invalid_manifest_id")
    assert_error(client.get(f"/manifests/{urn.replace(':provenance', ':someone-else')}"), 404, "not_found")


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


def test_bearer_token_when_configured(make_client: Callable[..., TestClient], keys: dict[str, str],
                                      fake_service: FakeService) -> None:
    client = make_client(softbinding_token="s3cret-token")
    cid = ingest(client, keys["acme"], textured_image(4))["record_cid"]
    value = base64.b64encode(bytes.fromhex(_phash(fake_service, textured_image(4)))).decode()
    calls = [("GET", "/matches/byBinding", {"params": {"alg": PHASH, "value": value}}, 200),
             ("POST", "/matches/byBinding", {"json": {"alg": PHASH, "value": value}}, 200),
             ("POST", "/matches/byContent", {"content": textured_image(4), "headers": {"content-type": "image/png"}},
              200),
             ("GET", f"/manifests/{manifest_id_for(cid)}", {}, 404)]  # authorised, but this service signs no store
    for method, url, kwargs, status in calls:
        for auth in (None, "Bearer wrong", "Basic s3cret-token", "Bearer s3cret-token2"):
            headers = {**kwargs.get("headers", {}), **({"Authorization": auth} if auth else {})}
            resp = client.request(method, url, **{**kwargs, "headers": headers})
            assert_error(resp, 401, "unauthorized")
            assert 'scope="fetch:manifests"' in resp.headers["www-authenticate"]
        headers = {**kwargs.get("headers", {}), "Authorization": "Bearer s3cret-token"}
        assert client.request(method, url, **{**kwargs, "headers": headers}).status_code == status, url
    assert client.get("/services/supportedAlgorithms").status_code == 200  # public: the spec gives it no security
    assert client.get(f"/manifests/{cid}").json()["record_cid"] == cid  # the record view is public (/v1/records)
    assert client.post("/v1/lookup", files={"file": ("q.png", textured_image(4), "image/png")}).status_code == 200
