"""Lookup end to end on real photos, on the embedded default (SQLite, local block store, FAISS files, OSCAR-Net +
pHash): the three verdicts with their evidence, withdrawal, the empty index, and bad queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance.config import Settings
from provenance.demo import benign_reshare, paste_object
from provenance.errors import InvalidImageError
from provenance.lookup.calibration import CALIBRATION_FILE
from provenance.records import PublisherMetadata
from provenance.services import open_service

PHOTOS = ("kodak24/kodim03.png", "kodak24/kodim15.png", "kodak24/kodim20.png", "kodak24/kodim12.png")


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


def test_an_altered_verdict_stands_when_its_change_map_cannot_be_written(service, shared_photos, tmp_path):
    """A full disk (here: the maps directory's path is taken by a file) costs the picture, not the answer."""
    edited = paste_object((shared_photos / PHOTOS[1]).read_bytes(), (shared_photos / PHOTOS[2]).read_bytes())
    blocked = tmp_path / "maps"
    blocked.write_bytes(b"")
    v = service.lookup.lookup(edited, change_map_dir=blocked / "sub")
    assert v.verdict == "altered" and v.record_cid == service.cids[PHOTOS[1]] and v.regions
    assert v.change_map is None and "change map not written" in v.explanation


def test_only_the_verdicts_own_change_map_is_drawn(tmp_path, shared_photos, monkeypatch):
    """A photo registered at two sizes gives an altered copy two altered candidates; the change map is drawn once,
    for the record the verdict names, on that record's original (drawing costs ~10 ms each)."""
    import cv2

    from provenance.lookup import changemap

    full = _rgb(shared_photos / PHOTOS[1])
    small = cv2.resize(full, (full.shape[1] * 3 // 4, full.shape[0] * 3 // 4), interpolation=cv2.INTER_AREA)
    svc = open_service(Settings(data_dir=tmp_path / "svc"))
    try:
        svc.ledger.add_publisher("acme")
        cids = [svc.pipeline.ingest(data, publisher="acme", metadata=PublisherMetadata(title=str(i))).cid
                for i, data in enumerate(((shared_photos / PHOTOS[1]).read_bytes(), _jpeg(small)))]
        drawn: list[tuple[int, ...]] = []
        real = changemap.render_change_map

        def counting(reference_rgb, *args, **kwargs):  # type: ignore[no-untyped-def]
            drawn.append(reference_rgb.shape)
            return real(reference_rgb, *args, **kwargs)

        monkeypatch.setattr(changemap, "render_change_map", counting)
        edited = paste_object((shared_photos / PHOTOS[1]).read_bytes(), (shared_photos / PHOTOS[2]).read_bytes())
        v = svc.lookup.lookup(edited, change_map_dir=tmp_path / "maps")
        assert v.verdict == "altered" and v.record_cid in cids, v.explanation
        compared = [c for c in v.candidates if c.record_cid in cids and c.change_score is not None]
        assert len(compared) == 2, [c.reason for c in v.candidates]
        assert len(drawn) == 1 and v.change_map is not None
        original = full if v.record_cid == cids[0] else small
        assert drawn[0] == original.shape
    finally:
        svc.close()


def _rgb(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def _jpeg(rgb) -> bytes:  # type: ignore[no-untyped-def]
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _astronaut_pasted_into_the_airshow(shared_photos: Path) -> bytes:
    """A person (the astronaut, from another photo) pasted into kodim20's lower right, re-shared as JPEG."""
    import cv2

    base = _rgb(shared_photos / PHOTOS[2])
    person = cv2.resize(_rgb(shared_photos / "skimage/astronaut.png")[16:512, 6:359], (140, 197),
                        interpolation=cv2.INTER_AREA)
    base[280:477, 330:470] = person
    return _jpeg(base)


def test_an_inserted_person_is_described_as_an_added_object(service, shared_photos):
    v = service.lookup.lookup(_astronaut_pasted_into_the_airshow(shared_photos))
    assert v.verdict == "altered" and v.record_cid == service.cids[PHOTOS[2]], v.explanation
    added = [c for c in v.object_changes if c.kind == "added"]
    assert [c.label for c in added] == ["person"], v.object_changes
    x, y = added[0].near
    assert 330 <= x <= 470 and 280 <= y <= 477  # "near" lies inside the pasted block, in the original's pixels
    assert "person added near" in v.explanation
    obj = v.to_obj()
    assert obj["object_changes"][0]["description"] == added[0].description and "objects" in obj["timings_ms"]


def test_a_removed_person_is_described_as_a_removed_object(service, shared_photos):
    import cv2
    import numpy as np

    photo = _rgb(shared_photos / PHOTOS[3])  # two surfers; the left one (x 83-167, y 101-337) is painted out
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[95:345, 78:172] = 255
    v = service.lookup.lookup(_jpeg(cv2.inpaint(photo, mask, 5, cv2.INPAINT_TELEA)))
    assert v.verdict == "altered" and v.record_cid == service.cids[PHOTOS[3]], v.explanation
    removed = [c for c in v.object_changes if c.kind == "removed"]
    assert [c.label for c in removed] == ["person"], v.object_changes
    assert 78 <= removed[0].near[0] <= 172 and 95 <= removed[0].near[1] <= 345
    assert all(c.kind != "added" for c in v.object_changes)


def test_a_benign_copy_has_no_object_changes_and_a_failing_detector_costs_only_the_description(
        service, shared_photos, monkeypatch):
    v = service.lookup.lookup(benign_reshare((shared_photos / PHOTOS[3]).read_bytes()))
    assert v.verdict == "match" and v.object_changes == () and v.to_obj()["object_changes"] == []

    sensitive = service.lookup._hasher("oscar-net")

    def broken(*_args, **_kwargs):
        raise RuntimeError("detector exploded")

    monkeypatch.setattr(sensitive, "detect_objects", broken)
    v = service.lookup.lookup(_astronaut_pasted_into_the_airshow(shared_photos))
    assert v.verdict == "altered" and v.record_cid == service.cids[PHOTOS[2]] and v.regions
    assert v.object_changes == ()


def _rotated_and_padded(path: Path) -> bytes:
    """Rotated 8 degrees (black wedges), shrunk, padded with a grey border, JPEG: a re-share pHash loses."""
    from PIL import Image

    with Image.open(path) as im:
        rotated = im.convert("RGB").rotate(8, resample=Image.BILINEAR, expand=True)
    small = rotated.resize((rotated.width * 2 // 3, rotated.height * 2 // 3), Image.BILINEAR)
    canvas = Image.new("RGB", (small.width + 80, small.height + 40), (120, 120, 120))
    canvas.paste(small, (40, 20))
    import numpy as np

    return _jpeg(np.asarray(canvas))


def test_every_record_carries_the_global_identity_code_and_it_finds_a_rotated_padded_copy(service, shared_photos):
    from provenance.lookup.service import Channels, Lookup

    record = service.lookup.record(service.cids[PHOTOS[1]])
    codes = {h.alg: h for h in record.record.hashes}
    assert set(codes) == {"oscar-net", "phash", "global-id"}
    assert codes["global-id"].bits == 256 and len(codes["global-id"].value) == 64
    # Only the global-id channel, and only its nearest record: it must be the source.
    lookup = Lookup(service.ledger, service.lookup.index, channels=Channels(tolerant=("global-id",), mirrored=()), k=1)
    v = lookup.lookup(_rotated_and_padded(shared_photos / PHOTOS[1]))
    assert v.verdict == "match" and v.record_cid == service.cids[PHOTOS[1]], v.explanation
    source = next(c for c in v.candidates if c.record_cid == v.record_cid)
    assert "global-id" in source.channels and source.tolerant_distances["global-id"] <= 70
    assert v.to_obj()["candidates"][0]["tolerant_distances"].keys() == {"global-id"}


def test_the_hash_alone_altered_distance_follows_the_configured_model(service):
    """Each model's benign copies spread differently: its fitted distance (verdict_calibration.json), not its match
    threshold (v2 16 bits, v1 22), is where the hash alone says edited (a model without an entry keeps its
    threshold: test_verdict_scene)."""
    from provenance.hashing import OscarNetHasher
    from provenance.lookup.service import Lookup

    v2 = OscarNetHasher(str(Path(__file__).resolve().parents[3] / "hasher/weights/oscar_v2.safetensors"))
    hashers = [v2 if h.alg == v2.alg else h for h in service.ledger.hashers]
    policy = Lookup(service.ledger, service.lookup.index, hashers=hashers).policy
    fitted = json.loads(CALIBRATION_FILE.read_text())["hash_altered"]
    assert policy.hash_threshold == v2.threshold == 16
    assert policy.hash_altered == fitted[v2.model_id] > 16
    v1 = next(h for h in service.ledger.hashers if h.alg == v2.alg)
    assert v1.threshold == 22 and service.lookup.policy.hash_altered == fitted[v1.model_id] == 25
    assert policy.hash_altered != service.lookup.policy.hash_altered


def test_candidates_beyond_the_identity_gate_are_not_verified(service, shared_photos):
    from dataclasses import replace

    from provenance.lookup.service import Channels, Lookup

    query = _rotated_and_padded(shared_photos / PHOTOS[1])
    shipped = service.lookup.policy
    assert shipped.identity_gate == 112 and shipped.to_obj()["identity_gate"] == 112  # from the weights file
    fitted = json.loads(CALIBRATION_FILE.read_text())["hash_altered"]  # per model, from the calibration file
    sensitive = next(h for h in service.ledger.hashers if h.alg == service.lookup.channels.sensitive)
    assert shipped.hash_altered == fitted.get(sensitive.model_id, shipped.hash_threshold) >= shipped.hash_threshold
    without = Lookup(service.ledger, service.lookup.index, channels=Channels(tolerant=("phash",)))
    assert without.policy.identity_gate is None  # no global-id channel searched: nothing gated
    strict = Lookup(service.ledger, service.lookup.index, policy=replace(shipped, identity_gate=0))
    v = strict.lookup(query)
    assert v.verdict == "no_match" and v.candidates
    assert all(not c.passed and c.reason.startswith("not verified: global-id distance") for c in v.candidates
               if c.tolerant_distances.get("global-id", 0) > 0)
    v = service.lookup.lookup(query)  # at the shipped gate the source is verified, and the others are not
    assert v.verdict == "match" and v.record_cid == service.cids[PHOTOS[1]], v.explanation
    skipped = [c for c in v.candidates if c.reason.startswith("not verified")]
    assert all(c.tolerant_distances["global-id"] > 112 for c in skipped)


def test_codes_of_another_global_id_model_are_not_compared(service, shared_photos, monkeypatch):
    from dataclasses import replace

    from provenance.lookup.service import Lookup

    impl = service.lookup._hasher("global-id")._model()
    monkeypatch.setattr(impl, "model_id", "global-id-v2-00000000")  # the query's code now comes from a newer model
    strict = Lookup(service.ledger, service.lookup.index, policy=replace(service.lookup.policy, identity_gate=0))
    v = strict.lookup(_rotated_and_padded(shared_photos / PHOTOS[1]))
    assert v.verdict == "match" and v.record_cid == service.cids[PHOTOS[1]], v.explanation  # nothing was gated
    assert all("global-id" not in c.tolerant_distances and "phash" in c.tolerant_distances for c in v.candidates)


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


def test_a_large_copy_decoded_shrunk_gets_the_verdicts_a_full_decode_gets(service, shared_photos):
    """Queries over the decode bound (issue 16, finding 2) are decoded shrunk by a whole factor; lookup works at
    <= 1024 px, so a 3072 px benign copy and a 3072 px edited copy get the verdicts and the record that decoding
    them at full size gets."""
    import io

    from PIL import Image

    def enlarged_jpeg(data: bytes) -> bytes:
        img = Image.open(io.BytesIO(data)).convert("RGB")
        buf = io.BytesIO()
        img.resize((img.width * 4, img.height * 4), Image.Resampling.LANCZOS).save(buf, "JPEG", quality=92)
        return buf.getvalue()

    original = (shared_photos / PHOTOS[1]).read_bytes()
    edited = paste_object(original, (shared_photos / PHOTOS[2]).read_bytes())
    queries = {"match": enlarged_jpeg(benign_reshare(original)), "altered": enlarged_jpeg(edited)}
    bound = service.lookup.decode_max_side
    for expected, query in queries.items():
        shrunk = service.lookup.lookup(query)
        try:
            service.lookup.decode_max_side = 10**9
            full = service.lookup.lookup(query)
        finally:
            service.lookup.decode_max_side = bound
        assert (shrunk.verdict, shrunk.record_cid) == (full.verdict, full.record_cid) == (
            expected, service.cids[PHOTOS[1]]), (shrunk.explanation, full.explanation)
        best = {c.record_cid: c for c in shrunk.candidates}[shrunk.record_cid]
        best_full = {c.record_cid: c for c in full.candidates}[full.record_cid]
        assert best.inliers >= 0.7 * best_full.inliers, (best.inliers, best_full.inliers)


def test_a_close_phash_vouches_for_a_candidate_beyond_the_identity_gate(service, shared_photos):
    """A re-share whose pHash stays a near-duplicate's is verified even when its global-id distance is over the
    gate (small, blurred or noisy copies of dark or smooth photos land there); the gate still skips the rest."""
    from dataclasses import replace

    from provenance.lookup.service import VOUCH_RADIUS, Lookup

    strict = Lookup(service.ledger, service.lookup.index, policy=replace(service.lookup.policy, identity_gate=0))
    v = strict.lookup(benign_reshare((shared_photos / PHOTOS[0]).read_bytes()))
    assert v.verdict == "match" and v.record_cid == service.cids[PHOTOS[0]], v.explanation
    source = next(c for c in v.candidates if c.record_cid == v.record_cid)
    assert source.passed and source.tolerant_distances["phash"] <= VOUCH_RADIUS["phash"]
    assert source.tolerant_distances["global-id"] > 0  # beyond the (zero) gate, verified all the same
    others = [c for c in v.candidates if c.record_cid != v.record_cid]
    assert others and all(c.reason.startswith("not verified") for c in others)


def test_another_photo_of_the_scene_is_same_scene_with_the_record_as_lead(service, shared_photos):
    """The motorcycle stereo pair through the whole lookup: the left photo registered, the right one looked up."""
    left = service.pipeline.ingest((shared_photos / "skimage/motorcycle_left.png").read_bytes(), publisher="acme",
                                   metadata=PublisherMetadata(title="motorcycle, left camera"))
    v = service.lookup.lookup((shared_photos / "skimage/motorcycle_right.png").read_bytes())
    assert v.verdict == "same_scene" and v.record_cid == left.cid, v.explanation
    assert v.change_map is None and v.regions == () and v.object_changes == ()
    lead = next(c for c in v.candidates if c.record_cid == left.cid)
    assert lead.passed and lead.off_plane_share is not None and lead.off_plane_share >= v.policy.scene_off_plane
    obj = v.to_obj()
    assert obj["verdict"] == "same_scene" and obj["confidence"] is None  # no model for it: too few real pairs
    assert obj["thresholds"]["scene_off_plane"] == v.policy.scene_off_plane


def _answer_from_the_pool(out) -> None:  # type: ignore[no-untyped-def]
    from provenance.lookup import service as lookup_service

    try:
        out.put(lookup_service._feature_pool().submit(int, "42").result(timeout=10))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        out.put(repr(exc))


def test_a_forked_child_gets_a_working_thread_pool():
    """A pre-forking server forks after the parent has looked something up: the child inherits the lookup pool
    without its threads, and must start its own instead of waiting forever on the inherited one."""
    import multiprocessing

    from provenance.lookup import service as lookup_service

    pool = lookup_service._feature_pool()
    assert [f.result() for f in [pool.submit(int, str(i)) for i in range(8)]] == list(range(8))  # threads started
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_answer_from_the_pool, args=(out,))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and out.get(timeout=5) == 42
    assert lookup_service._feature_pool() is pool  # the parent keeps its own
