"""Lookup end to end on real photos, on the embedded default (SQLite, local block store, FAISS files, OSCAR-Net +
pHash): the three verdicts with their evidence, withdrawal, the empty index, and bad queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.config import Settings
from provenance.demo import benign_reshare, paste_object
from provenance.errors import InvalidImageError
from provenance.records import PublisherMetadata
from provenance.services import open_service

PHOTOS = ("kodak24/kodim03.png", "kodak24/kodim15.png", "kodak24/kodim20.png")


@pytest.fixture(scope="module")
def service(tmp_path_factory, shared_photos):
    svc = open_service(Settings(data_dir=tmp_path_factory.mktemp("lookup")))
    svc.ledger.add_publisher("acme")
    svc.cids = {}
    for rel in PHOTOS:
        result = svc.pipeline.ingest((shared_photos / rel).read_bytes(), publisher="acme",
                                     metadata=PublisherMetadata(title=rel))
        svc.cids[rel] = result.cid
    yield svc
    svc.close()


def test_a_benign_reshare_is_a_match_with_its_evidence(service, shared_photos):
    query = benign_reshare((shared_photos / PHOTOS[0]).read_bytes())
    v = service.lookup.lookup(query)
    assert v.verdict == "match", v.explanation
    assert v.record_cid == service.cids[PHOTOS[0]]
    best = next(c for c in v.candidates if c.record_cid == v.record_cid)
    assert best.passed and best.inliers >= 15 and best.distance is not None
    obj = v.to_obj()
    assert obj["model"].startswith("oscar-") and len(obj["hash"]) == 16 and obj["change_map"] is None
    json.dumps(obj)


def test_a_pasted_object_is_altered_with_a_change_map(service, shared_photos):
    edited = paste_object((shared_photos / PHOTOS[1]).read_bytes(), (shared_photos / PHOTOS[2]).read_bytes())
    v = service.lookup.lookup(edited)
    assert v.verdict == "altered", v.explanation
    assert v.record_cid == service.cids[PHOTOS[1]]
    assert v.change_map is not None and Path(v.change_map).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert v.regions, "an altered verdict names the changed regions"


def test_an_unrelated_photo_is_no_match(service, shared_photos):
    v = service.lookup.lookup((shared_photos / "kodak24/kodim08.png").read_bytes())
    assert v.verdict == "no_match" and v.record_cid is None
    assert all(not c.passed for c in v.candidates)


def test_a_tiny_or_corrupt_query_is_refused_clearly(service, shared_photos):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "PNG")
    with pytest.raises(InvalidImageError, match="too small"):
        service.lookup.lookup(buf.getvalue())
    with pytest.raises(InvalidImageError, match="not an image"):
        service.lookup.lookup(b"%PDF-1.4 not an image")


def test_an_empty_index_answers_no_match(tmp_path, shared_photos):
    svc = open_service(Settings(data_dir=tmp_path))
    try:
        v = svc.lookup.lookup((shared_photos / PHOTOS[0]).read_bytes())
        assert v.verdict == "no_match" and v.explanation == "no candidate in the index"
    finally:
        svc.close()
