"""The stand-ins for edits that replace most of the picture (issue 13's stretch goal): each changes only inside its
mask, the share it claims, most of the picture (background replacement) or a large region of it (regeneration),
the same way for the same seed; and it needs donor photos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from provenance.bench import large_edits as L
from provenance.bench import manipulations as M


@pytest.fixture(scope="module")
def img(shared_photos: Path) -> np.ndarray:
    with Image.open(shared_photos / "kodak24/kodim23.png") as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize(("name", "lo", "hi"), [("background_replacement", 0.5, 0.9),
                                                ("large_regeneration", 0.25, 0.6)])
def test_a_large_edit_replaces_what_its_mask_says(name: str, lo: float, hi: float, img, shared_photos) -> None:
    edit = L.LARGE_EDITS[name]
    w, h = img.shape[1], img.shape[0]
    for ctx in (M.EditContext(donors=(str(shared_photos / "skimage/coffee.png"),)),
                M.EditContext(donors=(str(shared_photos / "kodak24/kodim05.png"),),
                              regions=((w // 4, h // 4, 3 * w // 4, 3 * h // 4),))):
        for seed in range(3):
            out, mask, info = edit(img, np.random.default_rng(seed), ctx)
            assert out.shape == img.shape and out.dtype == np.uint8 and mask.shape == img.shape[:2]
            assert lo <= mask.mean() <= hi and info["mask_share"] == round(float(mask.mean()), 4), (seed, info)
            changed = np.abs(out.astype(int) - img.astype(int)).max(-1) > 0
            assert not (changed & ~mask).any()
            assert changed.mean() > 0.8 * mask.mean()  # the donor really replaced the masked pixels
            again, again_mask, _ = edit(img, np.random.default_rng(seed), ctx)
            assert np.array_equal(again, out) and np.array_equal(again_mask, mask)
            json.dumps(info)


def test_a_large_edit_needs_donors(img) -> None:
    with pytest.raises(ValueError, match="donor"):
        L.background_replacement(img, np.random.default_rng(0), M.EditContext())
