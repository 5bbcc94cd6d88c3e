"""The verdict on real photos (issue 13), through the lookup's own evidence (``evidence.examine``) and the shipped
policy (``verdict_calibration.json``), without the index: another photo of the same scene is never *altered*, a
small copy-move that the comparison alone scores under its threshold is *altered*, and small, blurred genuine copies
stay *match*."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from provenance.bench import manipulations as M
from provenance.lookup.calibration import load_calibration
from provenance.lookup.evidence import PairEvidence, examine
from provenance.lookup.features import extract_features
from provenance.lookup.geometry import query_features
from provenance.lookup.verdict import ALTERED, MATCH, SAME_SCENE, Verdict, decide


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def _small(path: Path, side: int) -> np.ndarray:
    with Image.open(path) as im:
        img = im.convert("RGB")
    s = side / max(img.size)
    return np.asarray(img.resize((round(img.width * s), round(img.height * s)), Image.Resampling.LANCZOS))


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def judge(query: np.ndarray, reference: np.ndarray) -> tuple[Verdict, PairEvidence]:
    cal = load_calibration()
    policy = cal.policy(hash_threshold=22, hash_altered=22, identity_gate=None)
    ev = examine(query, query_features(query), extract_features(reference), lambda: reference)
    v = decide([ev.candidate("registered")], policy, query_hash="", model="")
    return (cal.confidence.apply(v) if cal.confidence is not None else v), ev


@pytest.mark.parametrize("registered, query", [("motorcycle_left", "motorcycle_right"),
                                               ("motorcycle_right", "motorcycle_left")])
def test_the_motorcycle_stereo_pair_is_another_photo_of_the_scene_never_altered(shared_photos, registered, query):
    v, ev = judge(_rgb(shared_photos / f"skimage/{query}.png"), _rgb(shared_photos / f"skimage/{registered}.png"))
    assert ev.geometry.passed and ev.analysis is not None and ev.analysis.score > 100  # differs all over
    assert v.verdict == SAME_SCENE, v.explanation
    assert v.record_cid == "registered" and "parallax" in v.explanation and v.regions == ()


def test_a_small_copy_move_that_blends_in_is_altered_by_its_second_correspondence(shared_photos):
    reference = _small(shared_photos / "kodak24/kodim13.png", 384)
    edited, mask, info = M.copy_move_blend(reference, np.random.default_rng(1), M.EditContext(area=(0.008, 0.012)))
    assert 0.009 <= mask.mean() <= 0.012  # about 1 % of the pixels
    v, ev = judge(_jpeg(edited, 85), reference)
    assert ev.analysis is not None and not ev.analysis.is_altered(v.policy.change_threshold)  # quiet on its own
    assert v.verdict == ALTERED and "copy-move" in v.explanation, v.explanation
    x, y, w, h = ev.clone.box
    x1, y1, x2, y2 = info["to"]
    assert x < x2 and x + w > x1 and y < y2 and y + h > y1  # the box lies on the copy


@pytest.mark.parametrize("photo", ["kodak24/kodim05.png", "kodak24/kodim08.png", "skimage/coffee.png"])
@pytest.mark.parametrize("blur", ["gaussian", "defocus"])
def test_a_small_mildly_blurred_copy_stays_match(shared_photos, photo, blur):
    """A 256 px registered photo, copied at 60 % and blurred with sigma 1.5 px (the mildest blur the issue lists as
    benign, at its strongest), then JPEG 75: a genuine copy, not an edit."""
    reference = _small(shared_photos / photo, 256)
    copy = cv2.resize(reference, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    if blur == "gaussian":
        copy = cv2.GaussianBlur(copy, (0, 0), 1.5)
    else:  # a uniform disk of radius 3 px: standard deviation 1.5 px per axis
        yy, xx = np.mgrid[-3:4, -3:4]
        disk = ((xx ** 2 + yy ** 2) <= 9).astype(np.float32)
        copy = cv2.filter2D(copy, -1, disk / disk.sum(), borderType=cv2.BORDER_REFLECT)
    v, ev = judge(_jpeg(copy, 75), reference)
    assert v.verdict == MATCH, v.explanation
    assert ev.clone is None


def test_a_copy_move_leaves_a_second_correspondence_in_the_keypoints(shared_photos):
    reference = _rgb(shared_photos / "kodak24/kodim05.png")
    edited, _, info = M.copy_move(reference, np.random.default_rng(0), M.EditContext(area=(0.04, 0.05)))
    v, ev = judge(_jpeg(edited, 90), reference)
    assert v.verdict == ALTERED
    assert ev.clone is not None and ev.clone.gap is None and ev.clone.matches >= 5  # found by keypoints
    x, y, w, h = ev.clone.box
    x1, y1, x2, y2 = info["to"]
    assert x < x2 and x + w > x1 and y < y2 and y + h > y1
    (fx, fy), (dx, dy) = info["from"][:2], ev.clone.move
    assert abs((x1 - fx) - dx) < 8 and abs((y1 - fy) - dy) < 8  # the move, in the original's pixels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_repetitive_texture_is_not_taken_for_a_copy_move(shared_photos, seed):
    """Bricks repeat all over the wall: a genuine copy must not read as a region pasted from another place."""
    from provenance.bench import platform as P

    reference = _rgb(shared_photos / "skimage/brick.png")
    img, enc, _ = P.KINDS[("resize_jpeg", "colour_gamma", "sharpen")[seed]](Image.fromarray(reference),
                                                                           np.random.default_rng(seed))
    copy = np.asarray(Image.open(io.BytesIO(P.encode(img, enc))).convert("RGB"))
    v, ev = judge(copy, reference)
    assert ev.clone is None and v.verdict == MATCH, v.explanation


def test_a_screenshot_of_a_texture_photo_is_a_match_though_its_hash_moved_far(shared_photos):
    """The world photos set's screenshot of ``skimage/grass`` at 256 px (the exact recipe and seed): the object-graph
    code of a photo with no objects moves 27 bits (v1's ``hash_altered`` is 25) while the pixels compare clean. The
    hash alone used to call this genuine copy *altered* (with confidence 0.002); the comparison outranks it now."""
    import dataclasses

    import hasher
    from provenance.bench import platform as P
    from provenance.bench.make_dataset import _variant_rng
    from provenance.bench.world import _resized

    with Image.open(shared_photos / "skimage/grass.png") as im:
        reference_img = _resized(im.convert("RGB"), 256)
    reference = np.asarray(Image.open(io.BytesIO(P.encode(reference_img, P.Encoding("JPEG", 90)))).convert("RGB"))
    shot, enc, _ = P.KINDS["screenshot"](reference_img, _variant_rng(2, "skimage__grass@256", 1006))
    query = np.asarray(Image.open(io.BytesIO(P.encode(shot, enc))).convert("RGB"))
    oscar = hasher.load()
    cal = load_calibration()
    far = cal.hash_altered_for(oscar.model_id, int(oscar.threshold))
    distance = oscar.distance(oscar.hash(Image.fromarray(query)), oscar.hash(Image.fromarray(reference)))
    assert distance > far, (distance, far)  # the premise: the hash alone would say "edited"
    policy = cal.policy(hash_threshold=int(oscar.threshold), hash_altered=far, identity_gate=None)
    ev = examine(query, query_features(query), extract_features(reference), lambda: reference)
    candidate = dataclasses.replace(ev.candidate("registered"), distance=distance)
    v = decide([candidate], policy, query_hash="", model=oscar.model_id)
    assert candidate.change_score is not None and candidate.change_score < policy.change_threshold / 4
    assert v.verdict == MATCH and "the aligned comparison outranks it" in v.explanation, v.explanation
    # the same pair with the pixels left uncompared falls back on the hash
    assert decide([dataclasses.replace(candidate, change_score=None)], policy, query_hash="",
                  model="").verdict == ALTERED
