"""Aligned comparison on real photos: a re-share (JPEG, resize, padding, colour) comes out unaltered, an object
pasted in or removed comes out altered with a box on the true change, and bad inputs raise clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from provenance.lookup.compare import ALTERED_THRESHOLD, ChangeAnalysis, aligned_difference, uniform_borders
from provenance.lookup.errors import AnalysisInputError, InsufficientOverlapError
from provenance.lookup.features import LocalFeatures
from provenance.lookup.geometry import verify_image


def _analyse(query: np.ndarray, reference_rgb: np.ndarray, reference_features: LocalFeatures) -> ChangeAnalysis:
    result = verify_image(query, reference_features)
    assert result.passed, result.reason
    return aligned_difference(query, reference_rgb, result.homography)


def _box_hits_mask(box: tuple[int, int, int, int], mask: np.ndarray) -> bool:
    x, y, w, h = box
    return bool(mask[y: y + h, x: x + w].any())


def _iou_with_mask_box(box: tuple[int, int, int, int], mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    truth = np.zeros(mask.shape, bool)
    truth[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] = True
    pred = np.zeros(mask.shape, bool)
    x, y, w, h = box
    pred[y: y + h, x: x + w] = True
    return float((pred & truth).sum() / (pred | truth).sum())


def test_benign_reshare_is_not_altered(benign_query, reference_rgb, reference_features) -> None:
    a = _analyse(benign_query, reference_rgb, reference_features)
    assert not a.is_altered(), a.score
    assert a.score < 0.7 * ALTERED_THRESHOLD
    assert a.boxes == () and a.changed_fraction == 0.0
    assert a.overlap > 0.85  # the padding is outside the reference, not a hole in the comparison
    assert a.reference_size == (reference_rgb.shape[1], reference_rgb.shape[0])
    assert a.heat.dtype == np.float32 and a.heat.shape == a.compared.shape
    assert a.heat_at_reference_size().shape == reference_rgb.shape[:2]


def test_flipped_reshare_is_not_altered(flipped_query, reference_rgb, reference_features) -> None:
    assert not _analyse(flipped_query, reference_rgb, reference_features).is_altered()


@pytest.mark.parametrize("which", ["inserted_query", "removed_query"])
def test_local_edit_is_altered_and_boxed(which: str, request, reference_rgb, reference_features) -> None:
    query, mask = request.getfixturevalue(which)
    a = _analyse(query, reference_rgb, reference_features)
    assert a.is_altered(), a.score
    assert a.score > 2 * ALTERED_THRESHOLD
    assert a.boxes and _box_hits_mask(a.boxes[0], mask)  # the largest box is on the edit
    assert _iou_with_mask_box(a.boxes[0], mask) > 0.4
    assert 0.3 * mask.mean() < a.changed_fraction < 3 * mask.mean()
    assert a.is_altered(a.score) and not a.is_altered(a.score + 1e-3)


def test_uniform_borders_find_padding_not_content(reference_rgb: np.ndarray) -> None:
    img = ImageOps.expand(Image.fromarray(reference_rgb), (30, 0, 12, 45), fill=(200, 40, 160))
    noisy = np.clip(np.asarray(img, np.float32) + np.random.default_rng(0).normal(0, 10, (545, 542, 3)), 0, 255)
    left, top, right, bottom = uniform_borders(noisy.astype(np.uint8))
    assert abs(left - 30) <= 3 and top == 0 and abs(right - 12) <= 3 and abs(bottom - 45) <= 3
    assert uniform_borders(reference_rgb) == (0, 0, 0, 0)


def test_too_little_overlap_is_refused(reference_rgb: np.ndarray) -> None:
    shift = np.array([[1.0, 0, 450], [0, 1.0, 0], [0, 0, 1]])  # only a 50 px strip lands on the reference
    with pytest.raises(InsufficientOverlapError):
        aligned_difference(reference_rgb, reference_rgb, shift)


@pytest.mark.parametrize("h", [np.eye(2), np.zeros((3, 3)), np.full((3, 3), np.nan)])
def test_bad_homography_is_refused(reference_rgb: np.ndarray, h: np.ndarray) -> None:
    with pytest.raises(AnalysisInputError):
        aligned_difference(reference_rgb, reference_rgb, h)


def test_identity_comparison_is_clean(reference_rgb: np.ndarray) -> None:
    a = aligned_difference(reference_rgb, reference_rgb, np.eye(3))
    assert a.score < 1.0 and a.boxes == () and not a.is_altered()
