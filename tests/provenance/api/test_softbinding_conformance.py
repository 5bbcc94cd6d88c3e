"""Conformance run of our soft-binding endpoints against the specification's own OpenAPI document.

The document is C2PA 2.2's "C2PA Soft Binding Resolution API" 1.0.0 (OpenAPI 3.0.3), vendored unmodified in
``tests/provenance/c2pa/spec/`` with its source and licence (CC BY 4.0; see ``SOURCE.md`` there). Every response
of the run is checked against it: its status must be one the operation lists (or one of the departures
docs/c2pa-softbinding.md justifies, listed in :data:`DEPARTURES`), its media type one the response lists, and a JSON
body must validate against the response's schema (jsonschema, with the document's ``$ref``s resolved).

The service is the real one with pHash as its only hash (real ledger, index, lookup with geometric verification,
C2PA signing with a test PKI), so byContent's answers are the lookup's verified ones: an exact copy of a registered
Kodak photo must return that photo alone, although the lookup examined every other registered photo too."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from provenance.api.app import create_app
from provenance.config import Settings
from provenance.hashing import PHashHasher
from provenance.records import PublisherMetadata
from provenance.softbinding.manifest_ids import manifest_id_for
from tests.provenance.api.light_service import open_light_service, photo
from tests.provenance.c2pa.pki import make_pki

SPEC = json.loads((Path(__file__).parents[1] / "c2pa" / "spec" / "soft-binding-resolution-api-1.0.0.json").read_text())
PHASH = "org.provenance-service.phash.1"
TOKEN = "conformance-token"
#: Statuses we answer that the document does not list for the operation, each justified in docs/c2pa-softbinding.md.
DEPARTURES: dict[tuple[str, str], set[int]] = {
    ("get", "/matches/byBinding"): {401, 429},
    ("post", "/matches/byBinding"): {401, 408, 413, 429},
    ("post", "/matches/byContent"): {400, 401, 408, 413, 429, 503},  # 400: C2PA 2.3 (API 1.1.0) lists it
    ("get", "/manifests/{manifestId}"): {401, 410, 503},
    ("get", "/services/supportedAlgorithms"): set(),
}
#: The soft binding algorithm list's pattern for names (softbinding-algorithm-list.schema.json, c2pa-org).
LIST_NAME = r"^[A-Za-z]{2,63}(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+\.?$"


def _resolved(schema: Any) -> Any:
    """``schema`` with the document's ``#/components/schemas/...`` references inlined (the document has no cycles)."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _resolved(SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]])
        return {k: _resolved(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_resolved(v) for v in schema]
    return schema


class Conformance:
    """Checks responses against the document and keeps what it saw (for the final coverage check)."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, template: str, resp: Any) -> Any:
        operation = SPEC["paths"][template][method]
        status = resp.status_code
        self.seen.add((method, template, status))
        listed = operation["responses"].get(str(status))
        if listed is None:
            assert status in DEPARTURES[(method, template)], (method, template, status, resp.text[:300])
            return resp
        content = listed.get("content") or {}
        if content:
            media = resp.headers["content-type"].split(";")[0].strip()
            assert media in content, (method, template, status, media, list(content))
            schema = content[media].get("schema")
            if schema is not None:
                jsonschema.Draft4Validator(_resolved(schema)).validate(resp.json())
        return resp


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, shared_photos: Path) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("conformance")
    files = make_pki().write(tmp)
    service = open_light_service(tmp / "data", c2pa_signing_cert=files["chain"], c2pa_signing_key=files["key"],
                                 api_lookup_burst=10_000, api_lookup_rate_per_s=1000)
    service.ledger.add_publisher("acme")
    images = {n: photo(shared_photos, n, side=256) for n in (3, 5, 7, 9, 20)}
    cids = {n: service.pipeline.ingest(images[n], publisher="acme", metadata=PublisherMetadata(title=f"k{n}")).cid
            for n in (3, 5, 7, 9)}  # kodim20 stays unregistered
    service.ledger.anchor()
    clients = {}
    for name, extra in (("open", {}), ("token", {"softbinding_token": TOKEN})):
        settings = Settings.model_validate({**service.settings.model_dump(), **extra})
        clients[name] = TestClient(create_app(lambda: service, settings=settings, anchor=False))
        clients[name].__enter__()
    yield {"service": service, "images": images, "cids": cids, "client": clients["open"],
           "token_client": clients["token"], "conf": Conformance()}
    for client in clients.values():
        client.__exit__(None, None, None)
    service.close()


def _value(data: bytes) -> str:
    return base64.b64encode(bytes.fromhex(PHashHasher().hash_image(data).value)).decode()


def test_supported_algorithms(world: dict[str, Any]) -> None:
    body = world["conf"].check("get", "/services/supportedAlgorithms",
                               world["client"].get("/services/supportedAlgorithms")).json()
    assert body == {"watermarks": [], "fingerprints": [{"alg": PHASH}]}
    import re

    assert all(re.match(LIST_NAME, a["alg"]) for a in body["fingerprints"])


def test_by_binding(world: dict[str, Any]) -> None:
    c, conf, images, cids = world["client"], world["conf"], world["images"], world["cids"]
    get = lambda **params: conf.check("get", "/matches/byBinding", c.get("/matches/byBinding", params=params))  # noqa: E731
    post = lambda body, **kw: conf.check("post", "/matches/byBinding",  # noqa: E731
                                         c.post("/matches/byBinding", **({"json": body} if body is not None else kw)))
    exact = get(alg=PHASH, value=_value(images[5])).json()
    assert exact == {"matches": [{"manifestId": manifest_id_for(cids[5]), "similarityScore": 100}]}
    assert post({"alg": PHASH, "value": _value(images[5])}, ).json() == exact
    assert get(alg=PHASH, value=_value(images[20])).json() == {"matches": []}  # an unregistered photo
    for params in ({"alg": PHASH}, {"value": "AAAAAAAAAAA="}, {"alg": PHASH, "value": "AAAAAAAAAAA=", "maxResults": 0},
                   {"alg": "com.example.nope", "value": "AAAAAAAAAAA="}, {"alg": PHASH, "value": "###"}):
        assert get(**params).status_code == 400, params
    assert get(alg=PHASH, value="A" * 4000).status_code == 414
    for body in ({"alg": PHASH}, {"value": "AAAAAAAAAAA="}, {"alg": 3, "value": []}):
        assert post(body).status_code == 400, body
    assert post(None, content=b'{"alg": "x", ', headers={"content-type": "application/json"}).status_code == 400


def test_by_content_returns_only_verified_records(world: dict[str, Any]) -> None:
    c, conf, images, cids = world["client"], world["conf"], world["images"], world["cids"]
    post = lambda data, **params: conf.check("post", "/matches/byContent", c.post(  # noqa: E731
        "/matches/byContent", params=params, content=data, headers={"content-type": "image/png"}))
    resp = post(images[3])
    assert resp.json() == {"matches": [{"manifestId": manifest_id_for(cids[3]), "similarityScore": 100}]}
    receipt = c.get(resp.headers["Link"].split(">")[0].lstrip("<")).json()
    examined = {cand["record_cid"] for cand in receipt["candidates"]}
    assert examined == set(cids.values())  # every registered photo was a candidate; one was verified
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(images[7])).convert("RGB").resize((200, 200)).save(buf, "JPEG", quality=70)
    reshared = conf.check("post", "/matches/byContent", c.post("/matches/byContent", content=buf.getvalue(),
                                                               headers={"content-type": "image/jpeg"})).json()
    assert [m["manifestId"] for m in reshared["matches"]] == [manifest_id_for(cids[7])]
    assert 50 <= reshared["matches"][0]["similarityScore"] <= 100
    assert post(images[20]).json() == {"matches": []}
    assert post(b"not an image").status_code == 415
    assert post(images[3][:200]).status_code == 415  # truncated
    assert post(images[3], maxResults=0).status_code == 400


def test_manifests(world: dict[str, Any]) -> None:
    import c2pa

    c, conf, images, cids = world["client"], world["conf"], world["images"], world["cids"]
    get = lambda mid, **params: conf.check("get", "/manifests/{manifestId}",  # noqa: E731
                                           c.get(f"/manifests/{mid}", params=params))
    urn = manifest_id_for(cids[9])
    for params in ({}, {"returnActiveManifest": "true"}):
        resp = get(urn, **params)
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/c2pa"
        with c2pa.Reader("image/png", io.BytesIO(images[9]), manifest_data=resp.content) as reader:
            store = json.loads(reader.json())
        assert store["active_manifest"] == urn
        labels = [a["label"] for a in store["manifests"][urn]["assertions"]]
        assert {"c2pa.soft-binding", "org.provenance-service.record", "org.provenance-service.proof-bundle"} <= set(
            labels)
    assert get(manifest_id_for("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")).status_code == 404
    assert get("urn:c2pa:12345678-1234-4234-8234-1234567890ab:someone").status_code == 404
    assert get("urn:c2pa:not-a-uuid").status_code == 400
    assert get("not a manifest id").status_code == 400


def test_bearer_token(world: dict[str, Any]) -> None:
    c, conf, images = world["token_client"], world["conf"], world["images"]
    params = {"alg": PHASH, "value": _value(images[5])}
    resp = conf.check("get", "/matches/byBinding", c.get("/matches/byBinding", params=params))
    assert resp.status_code == 401 and "fetch:manifests" in resp.headers["www-authenticate"]
    resp = conf.check("get", "/matches/byBinding", c.get("/matches/byBinding", params=params,
                                                         headers={"Authorization": f"Bearer {TOKEN}"}))
    assert resp.status_code == 200 and resp.json()["matches"]
    assert conf.check("get", "/services/supportedAlgorithms", c.get("/services/supportedAlgorithms")).status_code == 200


def test_every_operation_was_exercised(world: dict[str, Any]) -> None:
    """Runs last (file order): each operation of the document was called and answered 200 at least once."""
    seen = {(m, t) for m, t, s in world["conf"].seen if s == 200}
    assert seen == {(m, t) for t, ops in SPEC["paths"].items() for m in ops}
