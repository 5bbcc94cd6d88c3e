"""Dense verification (``provenance.lookup.dense``): the fallback for small, low-texture copies that keypoints cannot
tie to their original, and the verdict's treatment of such a tie. Real photos from ``../shared/data/photos``."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from provenance.lookup.dense import DENSE_MODEL, dense_align, verify_dense
from provenance.lookup.errors import AnalysisInputError
from provenance.lookup.evidence import dense_worth_trying, examine
from provenance.lookup.features import extract_features
from provenance.lookup.geometry import query_features, verify_query
from provenance.lookup.verdict import MATCH, NO_MATCH, Candidate, Policy, decide

LOW_TEXTURE = "skimage/moon.png"  # a dim, smooth photo: about 130 SIFT keypoints at 256 px
OTHERS = ("skimage/rocket.jpg", "kodak24/kodim10.png", "kodak24/kodim12.png", "kodak24/kodim20.png",
          "skimage/coffee.png", "thorn_perception/image5.jpg")  # low-texture too (sky, sea, a plain background)
POLICY = Policy(hash_threshold=22, hash_altered=22, change_threshold=12.7)


def _load(root: Path, name: str, side: int = 256) -> np.ndarray:
    with Image.open(root / name) as im:
        rgb = np.asarray(im.convert("RGB"))
    s = side / max(rgb.shape[:2])
    size = (round(rgb.shape[1] * s), round(rgb.shape[0] * s))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        return np.asarray(im.convert("RGB"))


def _degraded_copy(rgb: np.ndarray, seed: int = 1) -> np.ndarray:
    """A small re-share as messaging apps leave it: 75 %, Gaussian blur of 2 px, shot noise (120 photons at
    white), JPEG 75."""
    h, w = rgb.shape[:2]
    out = cv2.resize(rgb, (round(w * 0.75), round(h * 0.75)), interpolation=cv2.INTER_AREA)
    out = cv2.GaussianBlur(out, (0, 0), 2.0)
    photons = 120.0
    noisy = np.random.default_rng(seed).poisson(out / 255.0 * photons) / photons * 255.0
    return _jpeg(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), 75)


@pytest.fixture(scope="module")
def moon(shared_photos: Path) -> np.ndarray:
    return _load(shared_photos, LOW_TEXTURE)


@pytest.fixture(scope="module")
def moon_copy(moon: np.ndarray) -> np.ndarray:
    return _degraded_copy(moon)


def test_keypoints_fail_on_a_blurred_noisy_small_copy_of_a_low_texture_photo(moon, moon_copy):
    reference = extract_features(moon)
    query = query_features(moon_copy)
    assert not verify_query(query, reference).passed  # the case the fallback exists for
    assert dense_worth_trying(query, reference)


def test_dense_verification_ties_that_copy_to_its_original(moon, moon_copy):
    g = verify_dense(moon_copy, moon)
    assert g.passed and g.model == DENSE_MODEL
    assert g.inliers == 0 and not g.mirrored and "dense alignment verified" in g.reason
    # the homography is the resize: query pixel centres land on the original's (0.75 scale, pixel-centre convention)
    qh, qw = moon_copy.shape[:2]
    pts = np.array([[x, y, 1.0] for x in (5, qw // 2, qw - 6) for y in (5, qh // 2, qh - 6)])
    got = pts @ np.asarray(g.homography).T
    got = got[:, :2] / got[:, 2:]
    want = np.stack([(pts[:, 0] + 0.5) * moon.shape[1] / qw - 0.5, (pts[:, 1] + 0.5) * moon.shape[0] / qh - 0.5], 1)
    assert np.abs(got - want).max() < 1.5


def test_a_mirrored_crop_is_verified_with_a_flipping_homography(moon):
    h, w = moon.shape[:2]
    x0, y0, cw, ch = 20, 30, 210, 200
    crop = np.ascontiguousarray(moon[y0: y0 + ch, x0: x0 + cw][:, ::-1])
    query = _jpeg(cv2.GaussianBlur(cv2.resize(crop, (160, 152), interpolation=cv2.INTER_AREA), (0, 0), 1.2), 80)
    g = verify_dense(query, moon)
    assert g.passed and g.mirrored
    hom = np.asarray(g.homography)
    assert np.linalg.det(hom[:2, :2]) < 0
    qx, qy = np.meshgrid([4.0, 80.0, 155.0], [4.0, 76.0, 147.0])
    pts = np.stack([qx.ravel(), qy.ravel(), np.ones(qx.size)], 1)
    got = pts @ hom.T
    got = got[:, :2] / got[:, 2:]
    cx = (pts[:, 0] + 0.5) * cw / 160 - 0.5  # crop frame (flipped)
    cy = (pts[:, 1] + 0.5) * ch / 152 - 0.5
    want = np.stack([x0 + (cw - 1 - cx), y0 + cy], 1)
    assert np.abs(got - want).max() < 1.5


def test_different_photos_are_never_verified(shared_photos, moon, moon_copy):
    photos = {name: _load(shared_photos, name) for name in OTHERS}
    for name, ref in photos.items():
        g = verify_dense(moon_copy, ref)  # a degraded copy of one low-texture photo against another
        assert not g.passed, (name, g.reason)
        assert not verify_dense(_degraded_copy(ref, seed=2), moon).passed, name
    for a, b in zip(OTHERS, OTHERS[1:]):
        assert not verify_dense(_degraded_copy(photos[a]), photos[b]).passed, (a, b)


def test_plain_walls_carry_too_little_detail_to_verify():
    """Two smooth, noisy surfaces (a wall, an empty sky) agree everywhere in the large, and nowhere in detail: they
    are never verified, not even against themselves, as there is nothing to verify them with."""
    yy, xx = np.mgrid[0:200, 0:300].astype(np.float32)
    walls = []
    for seed in (0, 1):
        base = 120 + 0.1 * xx + 0.05 * yy + np.random.default_rng(seed).normal(0, 2.0, (200, 300))
        walls.append(np.clip(np.dstack([base, base * 0.95, base * 0.9]), 0, 255).astype(np.uint8))
    for query, ref in ((walls[0], walls[1]), (_jpeg(walls[0], 70), walls[0])):
        g = verify_dense(query, ref)
        assert not g.passed


def test_another_photo_of_the_same_scene_is_not_verified(shared_photos):
    """The motorcycle stereo pair: a new capture from beside the first, at several sizes (small ones hide parallax
    best)."""
    for ref_side, query_side in ((512, 512), (256, 256), (256, 128), (384, 200)):
        for a, b in (("motorcycle_left", "motorcycle_right"), ("motorcycle_right", "motorcycle_left")):
            ref = _load(shared_photos, f"skimage/{a}.png", ref_side)
            query = _load(shared_photos, f"skimage/{b}.png", query_side)
            assert not verify_dense(query, ref).passed, (a, ref_side, query_side)


def test_bad_input_is_an_error_and_tiny_images_simply_fail(moon):
    with pytest.raises(AnalysisInputError):
        verify_dense(moon.astype(np.float32), moon)
    with pytest.raises(AnalysisInputError):
        verify_dense(moon, moon[:, :, 0])
    with pytest.raises(AnalysisInputError):
        dense_align(moon[:0], moon)
    g = verify_dense(moon[:12, :12], moon)
    assert not g.passed and g.model == DENSE_MODEL and g.homography is None


def test_examine_falls_back_to_dense_and_the_verdict_says_match(moon, moon_copy):
    ev = examine(moon_copy, query_features(moon_copy), extract_features(moon), lambda: moon)
    assert ev.geometry.passed and ev.geometry.model == DENSE_MODEL and "keypoints:" in ev.geometry.reason
    assert ev.analysis is not None and ev.scene is None
    c = ev.candidate("moon")
    assert c.dense and c.passed and c.inliers == 0
    v = decide([c], POLICY, query_hash="00", model="m")
    assert v.verdict == MATCH and v.record_cid == "moon" and "dense alignment" in v.explanation
    assert c.to_obj()["dense"] is True


def test_examine_does_not_verify_another_photo_through_the_fallback(shared_photos, moon):
    query = _degraded_copy(_load(shared_photos, "skimage/rocket.jpg"))
    ev = examine(query, query_features(query), extract_features(moon), lambda: moon)
    assert not ev.geometry.passed and "dense alignment failed" in ev.geometry.reason
    assert decide([ev.candidate("moon")], POLICY, query_hash="00", model="m").verdict == NO_MATCH


def _dense_candidate(score: float) -> Candidate:
    return Candidate("a", ("phash",), 5, 3, 0, 0.0, True, False, "dense alignment verified", score, (), {},
                     changed_fraction=0.0, comparison_side=200, dense=True)


def test_a_dense_tie_supports_match_but_never_altered():
    """Pixels alone cannot tell an edit from another photo of the scene (no correspondences to test for parallax):
    a dense tie whose comparison finds a change is no_match, never altered."""
    clean = decide([_dense_candidate(3.0)], POLICY, query_hash="00", model="m")
    assert clean.verdict == MATCH and "dense alignment" in clean.explanation
    changed = decide([_dense_candidate(40.0)], POLICY, query_hash="00", model="m")
    assert changed.verdict == NO_MATCH and changed.record_cid is None
    assert "dense alignment" in changed.explanation and "too weak" in changed.explanation


def test_a_keypoint_verified_copy_outranks_a_dense_one():
    keypoints = Candidate("b", ("phash",), 5, 3, 200, 0.95, True, False, "verified", 3.0, (), {},
                          changed_fraction=0.0, comparison_side=400)
    v = decide([_dense_candidate(3.0), keypoints], POLICY, query_hash="00", model="m")
    assert v.verdict == MATCH and v.record_cid == "b"
