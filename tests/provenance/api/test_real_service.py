"""The API over the real service (``open_service`` on a temp data dir: SQLite, local block store, in-process EVM,
in-process queue, OSCAR-Net + pHash + global-id, the real hash index and lookup) with real photos from ../shared/data/photos."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from provenance.api.app import create_app
from provenance.api.keys import create_api_key
from provenance.cid import cid_for_bytes
from provenance.config import Settings
from provenance.services import open_ledger
from provenance.translog import verify_checkpoint_note_with, verify_inclusion
from tests.provenance.api.conftest import assert_error, bearer

pytestmark = pytest.mark.slow

PHOTOS = {"kodim23.png": "Parrots", "kodim05.png": "Motocross", "kodim15.png": "Withdrawn later"}


@dataclass
class Live:
    client: TestClient
    service: Any
    keys: dict[str, str]
    cids: dict[str, str]
    photos: Path


def _wait_task(client: TestClient, url: str, timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        task = client.get(url).json()
        if task["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return task
        time.sleep(0.2)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, shared_photos: Path) -> Iterator[Live]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("api-real") / "data")
    ledger = open_ledger(settings)
    for name in ("acme", "globex"):
        ledger.add_publisher(name)
    keys = {name: create_api_key(ledger.engine, name) for name in ("acme", "globex")}
    ledger.close()
    app = create_app(settings=settings, anchor=False)
    photos = shared_photos / "kodak24"
    with TestClient(app) as client:
        urls = {}
        for name, title in PHOTOS.items():
            resp = client.post("/v1/assets", headers=bearer(keys["acme"]), data={"metadata": f'{{"title": "{title}"}}'},
                               files={"file": (name, (photos / name).read_bytes(), "image/png")})
            assert resp.status_code == 202, resp.text
            urls[name] = resp.json()["status_url"]
        cids = {}
        for name, url in urls.items():
            task = _wait_task(client, url)
            assert task["state"] == "succeeded", task
            cids[name] = task["record_cid"]
        service = app.state.api.service
        service.ledger.anchor()
        yield Live(client, service, keys, cids, photos)


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _reshared(path: Path) -> bytes:
    img = Image.open(path).convert("RGB")
    return _jpeg(img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.LANCZOS), 80)


def _edited(path: Path) -> bytes:
    img = Image.open(path).convert("RGB")
    w, h = img.size
    img.paste(img.crop((0, 0, w // 4, h // 4)), (w // 2 - w // 8, h // 2 - h // 8))
    return _jpeg(img, 90)


def _lookup(live: Live, data: bytes) -> dict[str, Any]:
    resp = live.client.post("/v1/lookup", files={"file": ("q.jpg", data, "image/jpeg")})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_reshared_copy_matches_with_record_and_anchored_proof(live: Live) -> None:
    body = _lookup(live, _reshared(live.photos / "kodim23.png"))
    assert body["verdict"] == "match", body.get("explanation")
    cid = live.cids["kodim23.png"]
    assert body["record_cid"] == cid and body["record"]["metadata"]["title"] == "Parrots"
    assert {"hash", "model", "candidates", "thresholds", "change_map"} <= set(body)
    assert body["c2pa"]["status"] == "absent"
    proof = body["proof"]
    cp = proof["checkpoint"]
    assert cp["anchor"]["ephemeral"] is True and cp["anchor"]["tx"].startswith("0x")
    # two publishers' key registrations, then the photos
    assert verify_checkpoint_note_with(cp["note"], [cp["verifier_key"]]).size == len(PHOTOS) + 2
    verify_inclusion(proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["leaf_hash"]),
                     [bytes.fromhex(h) for h in proof["inclusion_proof"]], bytes.fromhex(cp["root"]))
    assert cid_for_bytes(live.client.get(f"/v1/records/{cid}").content) == cid


def test_edited_copy_is_altered_with_a_change_map(live: Live) -> None:
    body = _lookup(live, _edited(live.photos / "kodim05.png"))
    assert body["verdict"] == "altered", body.get("explanation")
    assert body["record_cid"] == live.cids["kodim05.png"]
    png = live.client.get(body["change_map_url"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_unrelated_photo_is_no_match(live: Live) -> None:
    body = _lookup(live, (live.photos / "kodim20.png").read_bytes())
    assert body["verdict"] == "no_match" and body["record"] is None and body["proof"] is None


def test_soft_binding_resolution_on_the_real_index(live: Live) -> None:
    from provenance.softbinding.algorithms import registered_name
    from provenance.softbinding.manifest_ids import manifest_id_for

    algs = {a["alg"] for a in live.client.get("/services/supportedAlgorithms").json()["fingerprints"]}
    cid = live.cids["kodim23.png"]
    record = live.client.get(f"/manifests/{cid}").json()["record"]
    assert algs == {registered_name(h["alg"], h["model_id"]) for h in record["hashes"]}  # soft binding list names
    from provenance.softbinding.calibration import calibration_for

    for h in record["hashes"]:
        value = base64.b64encode(bytes.fromhex(h["value"])).decode()
        name = registered_name(h["alg"], h["model_id"])
        cal = calibration_for(name)
        for alg in (h["alg"], name):  # the record's name is accepted too
            matches = live.client.get("/matches/byBinding", params={"alg": alg, "value": value}).json()["matches"]
            if cal is not None and cal.cutoff is None:  # unrelated photos' codes come too close (calibration)
                assert matches == [], alg
            else:
                assert matches[0] == {"manifestId": manifest_id_for(cid), "similarityScore": 100}, alg
    content = live.client.post("/matches/byContent", content=_reshared(live.photos / "kodim23.png"),
                               headers={"content-type": "image/jpeg"}).json()["matches"]
    assert content[0]["manifestId"] == manifest_id_for(cid) and content[0]["similarityScore"] >= 50


def test_withdraw_by_owner_only_then_lookups_stop_finding_it(live: Live) -> None:
    cid = live.cids["kodim15.png"]
    query = _reshared(live.photos / "kodim15.png")
    assert _lookup(live, query)["record_cid"] == cid
    assert_error(live.client.delete(f"/v1/records/{cid}", headers=bearer(live.keys["globex"])), 403, "forbidden")
    resp = live.client.delete(f"/v1/records/{cid}", headers=bearer(live.keys["acme"]))
    assert resp.status_code == 200 and resp.json()["withdrawn"] is True and resp.json()["event_cid"]
    assert _lookup(live, query)["record_cid"] != cid
    assert live.client.get(f"/v1/records/{cid}").status_code == 200  # the log is append-only: still auditable


def test_every_real_lookup_carries_a_receipt_signed_with_the_log_key(live: Live) -> None:
    """Receipts on the real lookup (three channels, real index; docs/receipts.md): the codes and distances are the
    lookup's own, and the checkpoint is the anchored one (every record in it registered; a withdrawal does not
    hold it back)."""
    import json

    from provenance.receipts import verify_receipt

    body = _lookup(live, _reshared(live.photos / "kodim23.png"))
    latest = live.client.get("/v1/checkpoints/latest").json()
    receipt = verify_receipt(json.dumps(body["receipt"]), latest["verifier_key"])
    assert receipt.verdict == body["verdict"] == "match" and receipt.record_cid == live.cids["kodim23.png"]
    assert (receipt.checkpoint.size, receipt.checkpoint.root.hex()) == (latest["tree_size"], latest["root"])
    assert {c.alg: c.value for c in receipt.codes} == body["hashes"]
    assert {c.alg: c.bits for c in receipt.codes} == {"oscar-net": 64, "phash": 64, "global-id": 256}
    assert next(c.model_id for c in receipt.codes if c.alg == "oscar-net") == body["model"]
    best = next(c for c in body["candidates"] if c["record_cid"] == receipt.record_cid)
    distances = next(c.distances for c in receipt.candidates if c.record_cid == receipt.record_cid)
    assert distances == {"oscar-net": best["distance"], **best["tolerant_distances"]}
    assert {c.record_cid for c in receipt.candidates} == {c["record_cid"] for c in body["candidates"]}
    assert live.client.get(body["receipt_url"]).json() == body["receipt"]
