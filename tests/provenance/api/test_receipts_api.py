"""Receipts through the HTTP API: POST /v1/lookup (key ``receipt``), POST /matches/byContent (header + Link, the
spec's body unchanged), and the permalink GET /v1/receipts/{id}."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient

from provenance.errors import ReceiptError
from provenance.receipts import SignedReceipt, verify_receipt
from provenance.translog import encode_verifier_key
from provenance.softbinding.manifest_ids import manifest_id_for
from tests.provenance.api.conftest import assert_error, ingest
from tests.provenance.api.fakes import FakeService, textured_image


def _lookup(client: TestClient, image: bytes):  # type: ignore[no-untyped-def]
    return client.post("/v1/lookup", files={"file": ("q.png", image, "application/octet-stream")})


def _verifier_key(service: FakeService) -> str:
    return encode_verifier_key(service.ledger.config.log_key_name, service.ledger.log_public_key())


def test_lookup_returns_a_receipt_that_verifies_and_has_a_permalink(client: TestClient, keys: dict[str, str],
                                                                    fake_service: FakeService) -> None:
    task = ingest(client, keys["acme"], textured_image(1))
    cp = fake_service.ledger.anchor()
    query = textured_image(1, fmt="JPEG")
    body = _lookup(client, query).json()
    receipt = verify_receipt(json.dumps(body["receipt"]), body["proof"]["checkpoint"]["verifier_key"])
    assert receipt.verdict == body["verdict"] == "match" and receipt.record_cid == task["record_cid"]
    assert receipt.query_sha256 == hashlib.sha256(query).hexdigest()
    assert (receipt.checkpoint.size, receipt.checkpoint.root.hex()) == (cp.tree_size, cp.root.hex())
    assert receipt.checkpoint.origin == fake_service.ledger.config.origin
    assert [c.alg for c in receipt.codes] == ["phash"] and receipt.codes[0].value == body["hash"]
    assert receipt.candidates[0].distances == {"phash": body["candidates"][0]["distance"]}
    assert body["receipt_url"] == f"/v1/receipts/{receipt.receipt_id}"
    stored = client.get(body["receipt_url"])
    assert stored.status_code == 200 and stored.headers["content-type"] == "application/json"
    assert stored.content == SignedReceipt.from_obj(body["receipt"]).to_bytes()
    assert verify_receipt(stored.content, _verifier_key(fake_service)) == receipt


def test_no_match_receipt_names_the_checkpoint_it_was_not_in(client: TestClient, keys: dict[str, str],
                                                             fake_service: FakeService) -> None:
    ingest(client, keys["acme"], textured_image(1))
    cp = fake_service.ledger.anchor()
    body = _lookup(client, textured_image(99)).json()
    receipt = verify_receipt(json.dumps(body["receipt"]), _verifier_key(fake_service))
    assert receipt.verdict == "no_match" and receipt.record_cid is None
    assert receipt.no_match_statement == f"not registered as of checkpoint {cp.tree_size}"


def test_a_tampered_receipt_from_the_api_fails(client: TestClient, fake_service: FakeService) -> None:
    body = _lookup(client, textured_image(5)).json()
    tampered = dict(body["receipt"], verdict="match")
    with pytest.raises(ReceiptError) as info:
        verify_receipt(json.dumps(tampered), _verifier_key(fake_service))
    assert info.value.check in ("signature", "field:record_cid")


def test_by_content_links_its_receipt_and_keeps_the_spec_body(client: TestClient, keys: dict[str, str],
                                                              fake_service: FakeService) -> None:
    task = ingest(client, keys["acme"], textured_image(2))
    cp = fake_service.ledger.anchor()
    resp = client.post("/matches/byContent", content=textured_image(2), headers={"Content-Type": "image/png"})
    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"matches"}
    assert resp.json()["matches"][0] == {"manifestId": manifest_id_for(task["record_cid"]), "similarityScore": 100}
    receipt_id = resp.headers["X-Provenance-Receipt-Id"]
    assert resp.headers["Link"] == f'</v1/receipts/{receipt_id}>; rel="describedby"; type="application/json"'
    receipt = verify_receipt(client.get(f"/v1/receipts/{receipt_id}").content, _verifier_key(fake_service))
    assert receipt.verdict == "match" and receipt.record_cid == task["record_cid"]  # byContent runs the lookup
    assert receipt.checkpoint.size == cp.tree_size
    assert receipt.candidates[0].record_cid == task["record_cid"] and receipt.candidates[0].distances == {"phash": 0}


def test_by_content_without_matches_is_a_no_match_receipt(client: TestClient, keys: dict[str, str],
                                                          fake_service: FakeService) -> None:
    task = ingest(client, keys["acme"], textured_image(2))
    resp = client.post("/matches/byContent", files={"file": ("q.png", textured_image(77), "image/png")})
    assert resp.json() == {"matches": []}
    stored = client.get(f"/v1/receipts/{resp.headers['X-Provenance-Receipt-Id']}")
    receipt = verify_receipt(stored.content, _verifier_key(fake_service))
    assert receipt.verdict == "no_match"  # byContent runs the lookup: the receipt lists what it examined, unverified
    assert [c.record_cid for c in receipt.candidates] == [task["record_cid"]]


def test_openapi_documents_the_receipt_header(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    headers = spec["paths"]["/matches/byContent"]["post"]["responses"]["200"]["headers"]
    assert {"X-Provenance-Receipt-Id", "Link"} <= set(headers)
    assert "/v1/receipts/{receipt_id}" in spec["paths"]


@pytest.mark.parametrize("receipt_id", ["0" * 32, "not-a-receipt", "A" * 32, "..%2F..%2Fledger.sqlite3"])
def test_unknown_receipts_are_404(client: TestClient, receipt_id: str) -> None:
    assert_error(client.get(f"/v1/receipts/{receipt_id}"), 404, "not_found")


def test_refused_lookups_issue_no_receipt(client: TestClient, fake_service: FakeService) -> None:
    from sqlalchemy import func, select

    from provenance.receipts_store import lookup_receipts

    assert_error(_lookup(client, b"hello world"), 415)
    assert_error(_lookup(client, b"GIF89a-but-not-really" + b"\0" * 10), 422)
    with fake_service.ledger.reader.connect() as conn:
        assert conn.execute(select(func.count()).select_from(lookup_receipts)).scalar_one() == 0
