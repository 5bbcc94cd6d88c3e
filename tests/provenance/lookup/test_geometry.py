"""Geometric verification on real photos: re-shares pass (mirrored ones flagged, with a homography in the
unflipped query's pixels), edits of the same scene pass, unrelated photos and degenerate inputs fail with a
reason instead of an exception."""

from __future__ import annotations

import numpy as np
import pytest

from provenance.lookup.errors import AnalysisInputError
from provenance.lookup.features import LocalFeatures, extract_features
from provenance.lookup.geometry import (
    GeometryResult,
    match_features,
    query_features,
    verify,
    verify_image,
    verify_query,
)
from tests.provenance.lookup.conftest import load_rgb


def _map(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:]


@pytest.mark.parametrize("model", ["homography", "fundamental"])
def test_benign_reshare_verifies(benign_query: np.ndarray, reference_features: LocalFeatures, model: str) -> None:
    result = verify_image(benign_query, reference_features, model)
    assert result.passed, result.reason
    assert not result.mirrored and result.model == model
    assert result.inliers >= 50 and result.inlier_ratio > 0.5
    assert (result.homography is None) == (model == "fundamental")
    assert "verified" in result.reason


def test_homography_maps_query_pixels_onto_reference(benign_query: np.ndarray,
                                                     reference_features: LocalFeatures) -> None:
    qf = query_features(benign_query)
    result = verify_query(qf, reference_features)
    q_idx, r_idx = match_features(qf.straight, reference_features)
    err = np.linalg.norm(_map(result.homography, qf.straight.points[q_idx]) - reference_features.points[r_idx],
                         axis=1)
    assert np.median(err) < 1.0  # most matches land within a pixel of their reference keypoint
    assert not result.homography.flags.writeable


def test_features_started_on_a_pool_are_the_features_extracted_in_line(benign_query: np.ndarray) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        started = query_features(benign_query, pool)
    inline = query_features(benign_query)
    for a, b in ((started.straight, inline.straight), (started.mirrored, inline.mirrored)):
        assert len(a) > 100 and (a.width, a.height) == (b.width, b.height)
        assert np.array_equal(a.points, b.points) and np.array_equal(a.descriptors, b.descriptors)
    assert not np.array_equal(started.straight.points, started.mirrored.points)


def test_flipped_copy_verifies_mirrored_in_unflipped_coordinates(flipped_query: np.ndarray,
                                                                 reference_features: LocalFeatures) -> None:
    result = verify_image(flipped_query, reference_features)
    assert result.passed and result.mirrored, result.reason
    assert result.reason.startswith("mirrored query")
    assert np.linalg.det(result.homography[:2, :2]) < 0
    w = flipped_query.shape[1]
    pts = np.array([[10.0, 20.0], [250.0, 250.0], [480.0, 400.0]])
    expected = np.c_[w - 1 - pts[:, 0], pts[:, 1]]  # a pure flip: query (x, y) shows reference (W-1-x, y)
    assert np.allclose(_map(result.homography, pts), expected, atol=1.5)
    straight = verify(extract_features(flipped_query), reference_features)
    assert not straight.passed  # the flip is what made it verify


def test_edited_copies_still_verify(inserted_query, removed_query, reference_features: LocalFeatures) -> None:
    for query, _ in (inserted_query, removed_query):
        result = verify_image(query, reference_features)
        assert result.passed and not result.mirrored, result.reason


@pytest.mark.parametrize("model", ["homography", "fundamental"])
def test_unrelated_photo_fails(photo_paths, reference_features: LocalFeatures, model: str) -> None:
    result = verify_image(load_rgb(photo_paths["unrelated"]), reference_features, model)
    assert not result.passed and result.homography is None
    assert result.reason and "verified" not in result.reason


@pytest.mark.parametrize("image", [np.zeros((6, 9, 3), np.uint8), np.full((240, 320, 3), 128, np.uint8)],
                         ids=["tiny", "flat_grey"])
def test_tiny_or_featureless_query_fails_with_reason(image: np.ndarray, reference_features: LocalFeatures) -> None:
    result = verify_image(image, reference_features)
    assert isinstance(result, GeometryResult)
    assert not result.passed and result.inliers == 0 and "keypoints" in result.reason
    assert not verify(reference_features, LocalFeatures.empty(100, 100)).passed


def test_unknown_model_is_refused(reference_features: LocalFeatures) -> None:
    with pytest.raises(AnalysisInputError):
        verify(reference_features, reference_features, "affine")  # type: ignore[arg-type]


def test_result_is_frozen(reference_features: LocalFeatures) -> None:
    result = verify(reference_features, reference_features)
    assert result.passed and result.inlier_ratio > 0.9
    with pytest.raises(AttributeError):
        result.passed = False  # type: ignore[misc]


def test_a_thumbnail_query_is_enlarged_before_sift_and_still_maps_its_own_pixels(
        reference_rgb: np.ndarray, reference_features: LocalFeatures) -> None:
    """A 120 px re-share: enlarged to 512 px for extraction, keypoints reported in the thumbnail's own pixels."""
    import cv2

    from provenance.lookup.geometry import QUERY_UPSCALE_TO

    thumb = cv2.resize(reference_rgb, (120, 120), interpolation=cv2.INTER_AREA)
    plain = extract_features(thumb)
    enlarged = extract_features(thumb, upscale_to=QUERY_UPSCALE_TO)
    assert len(enlarged) > len(plain)
    assert enlarged.points[:, 0].max() < 120 and enlarged.points[:, 1].max() < 120  # thumbnail pixels, not 512's
    result = verify_query(query_features(thumb), reference_features)
    assert result.passed and result.inliers >= 2 * verify(plain, reference_features).inliers, result.reason
    h, w = reference_rgb.shape[:2]
    corner = result.homography @ np.array([119.0, 119.0, 1.0])
    assert np.allclose(corner[:2] / corner[2], [w - 1, h - 1], atol=0.03 * w)
    # images at least that large are never enlarged
    big = cv2.resize(reference_rgb, (640, 640), interpolation=cv2.INTER_CUBIC)
    assert np.array_equal(extract_features(big, upscale_to=QUERY_UPSCALE_TO).points, extract_features(big).points)
