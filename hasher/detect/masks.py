"""Instance masks for box detections: OpenCV GrabCut seeded by each box.

The bundled detector gives boxes only and no instance-segmentation weights exist offline, so each box is refined
by GrabCut: outside the box is certain background, inside is probable foreground. For speed it runs on a small
context crop (longest side ``work_size`` px, a few iterations) and the result is scaled back. GrabCut's GMM
initialisation draws from OpenCV's RNG, which is re-seeded before every call, so masks are reproducible.
When GrabCut fails or degenerates (tiny box, no background to learn from, almost nothing kept) the object's mask
is its filled box: a coarse mask is better for the scene graph than a missing object.

``iterations=0`` (``OscarConfig.grabcut_iterations = 0``) skips GrabCut and gives every object its filled box: zero
refinement steps of GrabCut's probable-foreground seed. That is the "box masks" preprocessing the detector study
(``benchmarks/detector_study.py``) weighs against GrabCut; it costs nothing per object, and the default stays 2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from hasher.detect.base import check_rgb_image
from hasher.errors import SceneGraphError
from hasher.types import Detection, SegmentedObject

WORK_SIZE = 160  # longest side of the crop GrabCut sees: ~25k pixels, tens of ms per object
ITERATIONS = 3
MARGIN = 0.15  # context around the box, as a fraction of its size, to learn the background colours from
MIN_FILL = 0.05  # a GrabCut mask covering less of its box than this is treated as a failure
MIN_BACKGROUND = 32  # fewer certain-background pixels than this: add a probable-background ring inside the box
_SEED = 0x05CA


def box_pixels(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int]:
    """Integer pixel bounds (x1, y1, x2, y2), half-open, covering ``box`` and clipped to the image; >= 1 px."""
    x1 = min(max(math.floor(box[0]), 0), width - 1)
    y1 = min(max(math.floor(box[1]), 0), height - 1)
    x2 = max(min(math.ceil(box[2]), width), x1 + 1)
    y2 = max(min(math.ceil(box[3]), height), y1 + 1)
    return x1, y1, x2, y2


def box_mask(box: Sequence[float], height: int, width: int) -> np.ndarray:
    """The filled box as a bool (height, width) mask: the fallback mask."""
    x1, y1, x2, y2 = box_pixels(box, height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def grabcut_mask(image: np.ndarray, box: Sequence[float], *, work_size: int = WORK_SIZE,
                 iterations: int = ITERATIONS, margin: float = MARGIN) -> np.ndarray | None:
    """GrabCut foreground of ``box`` as a bool mask of the whole image, or None when GrabCut cannot run."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = box_pixels(box, height, width)
    pad_x, pad_y = max(2, round((x2 - x1) * margin)), max(2, round((y2 - y1) * margin))
    cx1, cy1 = max(0, x1 - pad_x), max(0, y1 - pad_y)
    cx2, cy2 = min(width, x2 + pad_x), min(height, y2 + pad_y)
    crop = image[cy1:cy2, cx1:cx2]
    scale = min(1.0, work_size / max(crop.shape[:2]))
    sw, sh = max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))
    # RGB is fine as is: GrabCut's colour GMMs do not care about channel order.
    small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else np.ascontiguousarray(crop)
    # The box in crop-small coordinates.
    bx1, by1 = math.floor((x1 - cx1) * scale), math.floor((y1 - cy1) * scale)
    bx2, by2 = min(sw, math.ceil((x2 - cx1) * scale)), min(sh, math.ceil((y2 - cy1) * scale))
    if bx2 - bx1 < 3 or by2 - by1 < 3:
        return None
    seed = np.full((sh, sw), cv2.GC_BGD, dtype=np.uint8)
    seed[by1:by2, bx1:bx2] = cv2.GC_PR_FGD
    if int((seed == cv2.GC_BGD).sum()) < MIN_BACKGROUND:  # box fills the image: learn background from its rim
        ring = max(1, round(0.06 * min(bx2 - bx1, by2 - by1)))
        seed[by1:by2, bx1:bx2] = cv2.GC_PR_BGD
        seed[by1 + ring:by2 - ring, bx1 + ring:bx2 - ring] = cv2.GC_PR_FGD
    bgd_model, fgd_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(_SEED)
    try:
        cv2.grabCut(small, seed, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    fg = ((seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)).astype(np.float32)
    if scale < 1:
        fg = cv2.resize(fg, (cx2 - cx1, cy2 - cy1), interpolation=cv2.INTER_LINEAR)
    mask = np.zeros((height, width), dtype=bool)
    mask[cy1:cy2, cx1:cx2] = fg > 0.5
    inside = np.zeros_like(mask)
    inside[y1:y2, x1:x2] = True
    return mask & inside  # scaling back may bleed a pixel past the box


def segment(image: np.ndarray, detections: Sequence[Detection], *, work_size: int = WORK_SIZE,
            iterations: int = ITERATIONS, min_fill: float = MIN_FILL) -> list[SegmentedObject]:
    """One mask per detection (same order), each a bool array of the image's (H, W); ``iterations=0``: the boxes."""
    check_rgb_image(image)
    if iterations < 0:
        raise SceneGraphError(f"GrabCut iterations must be >= 0, got {iterations}")
    height, width = image.shape[:2]
    out = []
    for det in detections:
        if iterations == 0:
            out.append(SegmentedObject(detection=det, mask=box_mask(det.box, height, width)))
            continue
        mask = grabcut_mask(image, det.box, work_size=work_size, iterations=iterations)
        x1, y1, x2, y2 = box_pixels(det.box, height, width)
        if mask is None or mask.sum() < min_fill * (x2 - x1) * (y2 - y1):
            mask = box_mask(det.box, height, width)
        out.append(SegmentedObject(detection=det, mask=mask))
    return out


def background_mask(objects: Sequence[SegmentedObject], shape: tuple[int, ...]) -> np.ndarray:
    """Pixels covered by no object's mask, as a bool array of ``shape[:2]`` (an image's shape works too)."""
    height, width = shape[:2]
    covered = np.zeros((height, width), dtype=bool)
    for obj in objects:
        if obj.mask.shape != (height, width):
            raise SceneGraphError(f"mask shape {obj.mask.shape} differs from the image's {(height, width)}")
        covered |= obj.mask.astype(bool, copy=False)
    return ~covered
