"""Records, proofs, images, checkpoints and withdrawal over HTTP."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from provenance.cid import b58encode, cid_for_bytes, parse_cid
from provenance.translog import verify_checkpoint_note_with, verify_inclusion
from tests.provenance.api.conftest import assert_error, bearer, ingest
from tests.provenance.api.fakes import FakeService, textured_image

UNKNOWN_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_record_is_served_as_its_exact_canonical_bytes(client: TestClient, keys: dict[str, str]) -> None:
    cid = ingest(client, keys["acme"], textured_image(1))["record_cid"]
    resp = client.get(f"/v1/records/{cid}")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert cid_for_bytes(resp.content) == cid  # anyone can re-derive the id from what we serve
    assert resp.json()["statement"]["publisher"]["id"] == "acme"
    assert "immutable" in resp.headers["cache-control"]
    # the same CID in another multibase finds the same record
    z = "z" + b58encode(parse_cid(cid).to_bytes())
    assert client.get(f"/v1/records/{z}").content == resp.content


def test_unknown_and_malformed_cids(client: TestClient) -> None:
    assert_error(client.get(f"/v1/records/{UNKNOWN_CID}"), 404, "not_found")
    assert_error(client.get("/v1/records/not-a-cid"), 400, "invalid_cid")
    assert_error(client.get(f"/v1/records/{UNKNOWN_CID}/proof"), 404)
    assert_error(client.get(f"/v1/records/{UNKNOWN_CID}/image"), 404)


def test_proof_and_latest_checkpoint(client: TestClient, keys: dict[str, str], fake_service: FakeService) -> None:
    assert_error(client.get("/v1/checkpoints/latest"), 404, "not_found")
    cids = [ingest(client, keys["acme"], textured_image(i))["record_cid"] for i in range(3)]
    assert client.get(f"/v1/records/{cids[0]}/proof").json()["checkpoint"] is None
    fake_service.ledger.anchor()
    cp = client.get("/v1/checkpoints/latest").json()
    # the two publishers' key registrations are leaves 0 and 1, then the three records
    assert set(cp) == {"origin", "tree_size", "root", "note", "verifier_key", "anchor"} and cp["tree_size"] == 5
    assert verify_checkpoint_note_with(cp["note"], [cp["verifier_key"]]).size == 5
    assert set(cp["anchor"]) >= {"chain_id", "contract", "tx", "block", "block_timestamp", "block_time", "ephemeral"}
    for cid in cids:
        proof = client.get(f"/v1/records/{cid}/proof").json()
        assert proof["checkpoint"] == cp and proof["tree_size"] == 5
        verify_inclusion(proof["leaf_index"], 5, bytes.fromhex(proof["leaf_hash"]),
                         [bytes.fromhex(h) for h in proof["inclusion_proof"]], bytes.fromhex(cp["root"]))


def test_image_and_thumbnail(client: TestClient, keys: dict[str, str]) -> None:
    original = textured_image(1, size=(400, 300))
    cid = ingest(client, keys["acme"], original)["record_cid"]
    full = client.get(f"/v1/records/{cid}/image")
    assert full.content == original and full.headers["content-type"] == "image/png"
    thumb = client.get(f"/v1/records/{cid}/image", params={"size": 64})
    assert thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (64, 48)
    assert client.get(f"/v1/records/{cid}/image", params={"size": 64}).content == thumb.content  # cached
    assert_error(client.get(f"/v1/records/{cid}/image", params={"size": 5}), 422, "invalid_request")


def test_withdraw_only_by_the_owning_publisher(client: TestClient, keys: dict[str, str],
                                               fake_service: FakeService) -> None:
    cid = ingest(client, keys["acme"], textured_image(1))["record_cid"]
    assert_error(client.delete(f"/v1/records/{cid}"), 401, "unauthorized")
    err = assert_error(client.delete(f"/v1/records/{cid}", headers=bearer(keys["globex"])), 403, "forbidden")
    assert "another publisher" in err["message"]
    assert fake_service.lookup.withdrawn == set()
    resp = client.delete(f"/v1/records/{cid}", headers=bearer(keys["acme"]))
    body = resp.json()
    assert resp.status_code == 200 and body["record_cid"] == cid and body["withdrawn"] is True
    event = fake_service.ledger.withdrawal(cid)  # signed with acme's custodial key, appended to the log
    assert event is not None and body["event_cid"] == event.cid and event.event.publisher == "acme"
    again = client.delete(f"/v1/records/{cid}", headers=bearer(keys["acme"])).json()
    assert again["event_cid"] == event.cid  # idempotent: one withdrawal event
    assert fake_service.lookup.withdrawn == {cid}
    answer = client.post("/v1/lookup", files={"file": ("q.png", textured_image(1))}).json()
    assert answer["verdict"] == "no_match"  # not pretending it never existed: the lookup says it was withdrawn
    [w] = answer["withdrawn"]
    assert (w["record_cid"], w["publisher"], w["event_cid"]) == (cid, "acme", body["event_cid"])
    assert w["withdrawn_at"] == event.event.issued_at and "withdrawn at" in answer["explanation"]
    assert_error(client.delete(f"/v1/records/{UNKNOWN_CID}", headers=bearer(keys["acme"])), 404)


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/v1/records"])
def test_unknown_routes_have_the_error_shape(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


def test_wrong_method_has_the_error_shape(client: TestClient) -> None:
    assert_error(client.put("/v1/lookup"), 405, "method_not_allowed")
