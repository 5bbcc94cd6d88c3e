"""Copies downscaled with no anti-aliasing filter (provenance.lookup.resampling), on a real photo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from provenance.bench.transforms import jpeg
from provenance.lookup.geometry import verify_image
from provenance.lookup.resampling import MIN_ZOOM, unfiltered_rendering


def _copy(ref: np.ndarray, scale: float, interpolation: int) -> np.ndarray:
    return np.asarray(jpeg(Image.fromarray(cv2.resize(ref, None, fx=scale, fy=scale, interpolation=interpolation)), 85))


def _median_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.median(np.sqrt(((a.astype(np.float32) - b.astype(np.float32)) ** 2).sum(axis=2))))


@pytest.mark.parametrize("interpolation", [cv2.INTER_NEAREST, cv2.INTER_LINEAR])
def test_an_unfiltered_downscale_is_rendered_the_way_it_was_made(house, interpolation) -> None:
    ref, features = house
    query = _copy(ref, 0.4, interpolation)
    geo = verify_image(query, features)
    assert geo.passed, geo.reason
    rendered = unfiltered_rendering(query, ref, geo.homography, 1 / 0.4)
    assert rendered is not None and rendered.shape == query.shape and rendered.dtype == np.uint8
    # The rendering reproduces the copy far better than a proper resize of the reference does.
    filtered = cv2.resize(ref, (query.shape[1], query.shape[0]), interpolation=cv2.INTER_AREA)
    assert _median_error(rendered, query) < 0.6 * _median_error(filtered, query)


@pytest.mark.parametrize("interpolation", [cv2.INTER_AREA, cv2.INTER_LANCZOS4])
def test_a_filtered_downscale_is_not(house, interpolation) -> None:
    ref, features = house
    if interpolation == cv2.INTER_LANCZOS4:  # as PIL resizes: Lanczos with its support scaled to the reduction
        im = Image.fromarray(ref)
        query = np.asarray(jpeg(im.resize((round(im.width * 0.4), round(im.height * 0.4)), Image.Resampling.LANCZOS),
                                85))
    else:
        query = _copy(ref, 0.4, interpolation)
    geo = verify_image(query, features)
    assert geo.passed, geo.reason
    assert unfiltered_rendering(query, ref, geo.homography, 1 / 0.4) is None


def test_close_to_full_size_or_flat_it_is_not_tried(house) -> None:
    ref, features = house
    query = _copy(ref, 0.85, cv2.INTER_NEAREST)
    geo = verify_image(query, features)
    assert geo.passed, geo.reason
    assert unfiltered_rendering(query, ref, geo.homography, 1 / 0.85) is None  # below MIN_ZOOM
    assert 1 / 0.85 < MIN_ZOOM
    flat = np.full((300, 400, 3), 128, np.uint8)
    scale = np.diag([2.0, 2.0, 1.0])
    assert unfiltered_rendering(flat[:150, :200], flat, scale, 2.0) is None  # nothing tells the renderings apart
