"""The change map: a PNG of the reference with the heat overlaid and the changed regions outlined."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from provenance.lookup.changemap import BOX_COLOUR, render_change_map
from provenance.lookup.compare import aligned_difference
from provenance.lookup.errors import AnalysisInputError
from provenance.lookup.geometry import verify_image


def test_change_map_png_shows_the_edit(inserted_query, reference_rgb, reference_features) -> None:
    query, mask = inserted_query
    result = verify_image(query, reference_features)
    analysis = aligned_difference(query, reference_rgb, result.homography)
    png = render_change_map(reference_rgb, analysis)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == analysis.reference_size and im.mode == "RGB"
        out = np.asarray(im)
    x, y, w, h = analysis.boxes[0]
    assert tuple(out[y + h // 2, x]) == BOX_COLOUR  # the outline is drawn on the box edge
    inside, outside = mask, ~mask & analysis.heat_at_reference_size().__lt__(1.0)
    diff = np.abs(out.astype(int) - reference_rgb.astype(int)).sum(axis=2)
    assert diff[inside].mean() > 3 * diff[outside].mean()  # overlay concentrated on the change

    small = render_change_map(reference_rgb, analysis, max_side=200)
    with Image.open(io.BytesIO(small)) as im:
        assert max(im.size) == 200


def test_change_map_refuses_a_different_reference(benign_query, reference_rgb, reference_features) -> None:
    result = verify_image(benign_query, reference_features)
    analysis = aligned_difference(benign_query, reference_rgb, result.homography)
    with pytest.raises(AnalysisInputError):
        render_change_map(reference_rgb[:100], analysis)
