"""GET /v1/records/{cid}/bundle: the offline proof bundle over HTTP, pinned by ?tree_size=N to fixed bytes."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from provenance.bundle import ProofBundle, VerifyPolicy, verify_bundle
from tests.provenance.api.conftest import assert_error, ingest
from tests.provenance.api.fakes import FakeService, textured_image

UNKNOWN_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_bundle_route_serves_a_verifiable_pinned_bundle(client: TestClient, keys: dict[str, str],
                                                        fake_service: FakeService) -> None:
    image = textured_image(1)
    cid = ingest(client, keys["acme"], image)["record_cid"]
    err = assert_error(client.get(f"/v1/records/{cid}/bundle"), 404, "not_found")
    assert "not in a checkpoint" in err["message"]
    assert_error(client.get(f"/v1/records/{UNKNOWN_CID}/bundle"), 404, "not_found")
    fake_service.ledger.anchor()
    cp = client.get("/v1/checkpoints/latest").json()
    resp = client.get(f"/v1/records/{cid}/bundle")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.headers["etag"] == f'"{hashlib.sha256(resp.content).hexdigest()}"'
    report = verify_bundle(ProofBundle.from_json(resp.content), image=image,
                           policy=VerifyPolicy(log_key=cp["verifier_key"]))
    assert report.record_cid == cid and report.tree_size == cp["tree_size"] and report.log_key_trust == "given"

    ingest(client, keys["acme"], textured_image(2))
    fake_service.ledger.anchor()  # the log grows: the latest bundle changes, the pinned one does not
    pinned = client.get(f"/v1/records/{cid}/bundle", params={"tree_size": cp["tree_size"]})
    assert pinned.content == resp.content
    assert client.get(f"/v1/records/{cid}/bundle").content != resp.content
    assert_error(client.get(f"/v1/records/{cid}/bundle", params={"tree_size": 999}), 404, "not_found")
    assert_error(client.get(f"/v1/records/{cid}/bundle", params={"tree_size": 0}), 422)
