"""Publisher registration by public key (admin route), whoami, and the upload of a statement-carrying image through
the fake service (real ledger): the HTTP edge of publisher custody (issue 14)."""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from provenance.client.statement import build_statement
from provenance.metadata import PublisherMetadata
from provenance.records import parse_record
from provenance.statements import key_id_for
from tests.provenance.api.conftest import assert_error, bearer
from tests.provenance.api.fakes import FakeService, textured_image

TOKEN = "admin-token-for-tests-0123456789"


def _pem(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_admin_route_registers_a_public_key_only(make_client: Callable[..., TestClient],
                                                 fake_service: FakeService) -> None:
    off = make_client()
    assert_error(off.post("/v1/admin/publishers", json={"name": "herald", "public_key": "x"}), 404, "not_found")
    client = make_client(admin_token=TOKEN)
    key = Ed25519PrivateKey.generate()
    body = {"name": "herald", "public_key": _pem(key)}
    assert_error(client.post("/v1/admin/publishers", json=body), 401, "unauthorized")
    assert_error(client.post("/v1/admin/publishers", json=body, headers=bearer("wrong")), 401, "unauthorized")
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    err = assert_error(client.post("/v1/admin/publishers", json={"name": "herald", "public_key": private_pem},
                                   headers=bearer(TOKEN)), 422)
    assert "PRIVATE key" in err["message"]
    resp = client.post("/v1/admin/publishers", json=body, headers=bearer(TOKEN))
    assert resp.status_code == 201, resp.text
    out = resp.json()
    assert out["key_id"] == key_id_for(key.public_key()) and out["custody"] == "publisher"
    assert_error(client.post("/v1/admin/publishers", json=body, headers=bearer(TOKEN)), 422)  # already registered
    me = client.get("/v1/publisher", headers=bearer(out["api_key"])).json()
    assert me["publisher"] == "herald" and me["custody"] == "publisher"
    assert [k["key_id"] for k in me["keys"]] == [out["key_id"]]
    # the statement-carrying upload works through the queue; one without a statement is refused before queueing
    image = textured_image(7)
    st = build_statement(image, publisher="herald", key=key, metadata=PublisherMetadata(title="Quay"))
    resp = client.post("/v1/assets", headers=bearer(out["api_key"]), files={"file": ("q.png", image, "image/png")},
                       data={"statement": st.to_bytes().decode()})
    assert resp.status_code == 202, resp.text
    task = client.get(resp.headers["Location"]).json()
    assert task["state"] == "succeeded", task
    rec = parse_record(client.get(f"/v1/records/{task['record_cid']}").content)
    assert rec.custody == "publisher" and rec.record.metadata.title == "Quay"
    err = assert_error(client.post("/v1/assets", headers=bearer(out["api_key"]),
                                   files={"file": ("r.png", textured_image(8), "image/png")}), 422,
                       "statement_required")
    assert "holds its own key" in err["message"]


def test_key_events_must_be_the_callers_own(client: TestClient, keys: dict[str, str],
                                            fake_service: FakeService) -> None:
    from provenance import keyevents

    acme = fake_service.ledger.keyring.publisher_key("acme")
    event = keyevents.revocation("acme", key_id_for(acme.public_key()), acme)
    err = assert_error(client.post("/v1/key-events", content=event.to_bytes(), headers=bearer(keys["globex"])),
                       403, "forbidden")
    assert "'acme'" in err["message"]
    assert_error(client.post("/v1/key-events", content=b"[[[[", headers=bearer(keys["acme"])), 400)
    resp = client.post("/v1/key-events", content=event.to_bytes(), headers=bearer(keys["acme"]))
    assert resp.status_code == 201 and resp.json()["kind"] == "key-revocation"
    assert_error(client.post("/v1/key-events", content=event.to_bytes(), headers=bearer(keys["acme"])), 409,
                 "replayed")
