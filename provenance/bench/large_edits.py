"""Edits that replace most of the picture (issue 13's stretch goal): what a generator does when it replaces a
photo's background or regenerates a large object from a text prompt. No generator runs here, so each is a
stand-in built from another photo, with the same geometry: most of the pixels new, a part of the original kept.

* ``background_replacement``: the subject is kept (an object box when the builder supplies one, else a central
  region: 15-45 % of the picture, elliptical and feathered) and everything around it comes from a donor photo,
  its colours moved halfway towards the original's;
* ``large_regeneration``: one region of 35-65 % of the picture (an object box grown to that size, else a random
  box; elliptical and feathered) is replaced by donor content, colour-matched the same way, the rest kept.

Each returns ``(edited image, change mask, recipe info)`` like ``manipulations.EDITS``; the share of the picture
changed is in the info (``mask_share``). Every random choice comes from the generator passed in.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image

from provenance.bench import manipulations as M

__all__ = ["LARGE_EDITS", "background_replacement", "large_regeneration"]

KEEP_SHARE = (0.15, 0.45)  # background replacement: the share of the picture the kept subject's box covers
REGENERATED_SHARE = (0.35, 0.65)  # large regeneration: the share of the picture the replaced box covers
COLOUR_STRENGTH = 0.5  # how far the donor's colours move towards the original's (0: not at all, 1: fully)


def _donor(rng: np.random.Generator, ctx: M.EditContext, w: int, h: int) -> np.ndarray:
    """A donor photo (``ctx.donors``) cropped to the picture's aspect and resized to it."""
    if not ctx.donors:
        raise ValueError("a large edit needs donor photos (EditContext.donors)")
    with Image.open(ctx.donors[int(rng.integers(0, len(ctx.donors)))]) as im:
        donor = np.asarray(im.convert("RGB"))
    dh, dw = donor.shape[:2]
    aspect = w / h
    cw, ch = (dw, round(dw / aspect)) if dw / dh < aspect else (round(dh * aspect), dh)
    cw, ch = max(1, min(cw, dw)), max(1, min(ch, dh))
    x, y = int(rng.integers(0, dw - cw + 1)), int(rng.integers(0, dh - ch + 1))
    return cv2.resize(np.ascontiguousarray(donor[y: y + ch, x: x + cw]), (w, h), interpolation=cv2.INTER_AREA)


def _box_alpha(box: M.Box, w: int, h: int) -> np.ndarray:
    """Full-picture float alpha: 1 inside the ellipse inscribed in ``box``, feathered at its rim, 0 elsewhere."""
    x1, y1, x2, y2 = box
    alpha = np.zeros((h, w), np.float32)
    alpha[y1:y2, x1:x2] = M.ellipse_alpha(x2 - x1, y2 - y1)
    return alpha


def _blend(img: np.ndarray, donor: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(np.rint(img.astype(np.float32) * (1 - a) + donor.astype(np.float32) * a), 0, 255).astype(np.uint8)


def background_replacement(img: np.ndarray, rng: np.random.Generator, ctx: M.EditContext) -> M.EditResult:
    h, w = img.shape[:2]
    box, how = M.pick_region(rng, ctx, w, h, *KEEP_SHARE)
    alpha = 1.0 - _box_alpha(box, w, h)  # everything but the kept subject
    donor = M.colour_match(_donor(rng, ctx, w, h), alpha, img, COLOUR_STRENGTH).astype(np.uint8)
    mask = alpha > 0
    return _blend(img, donor, alpha), mask, {"kept": list(box), "kept_from": how,
                                             "mask_share": round(float(mask.mean()), 4)}


def large_regeneration(img: np.ndarray, rng: np.random.Generator, ctx: M.EditContext) -> M.EditResult:
    h, w = img.shape[:2]
    box, how = M.pick_region(rng, ctx, w, h, *REGENERATED_SHARE)
    alpha = _box_alpha(box, w, h)
    x1, y1, x2, y2 = box
    donor = M.colour_match(_donor(rng, ctx, w, h), alpha, img[y1:y2, x1:x2], COLOUR_STRENGTH).astype(np.uint8)
    mask = alpha > 0
    return _blend(img, donor, alpha), mask, {"box": list(box), "box_from": how,
                                             "mask_share": round(float(mask.mean()), 4)}


LARGE_EDITS: dict[str, Callable[[np.ndarray, np.random.Generator, M.EditContext], M.EditResult]] = {
    "background_replacement": background_replacement,
    "large_regeneration": large_regeneration,
}
