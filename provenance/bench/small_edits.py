"""The edits that move the fewest pixels (issue 17): what a tamper-sensitive hash has most trouble noticing.

Each changes between 1 and 5 % of the picture (``SMALL_AREA``), measured on its change mask, and returns
``(edited image, mask, recipe info)`` like the edits of ``manipulations`` (whose geometry helpers and size-aimable
edits they reuse: the world recipe aims the same ``object_insertion`` and ``object_removal`` at its size buckets):

* ``small_insertion``: a cut-out pasted in (``manipulations.object_insertion``, aimed at the range);
* ``small_removal``: an object inpainted away (``manipulations.object_removal``, aimed at the range);
* ``object_swap``: two parts of the photo trade places: two faces (the head of each of two detected people) when the
  photo has them, else two detected objects, else an object and another place of the same size;
* ``text_line_change``: a line of text (found by its dense strokes; else the flattest band of the picture, as on a
  sign) is erased and another line written in its place.

An edit whose first draw misses the range is drawn again with its aim corrected by what the mask measured (at most
``TRIES`` draws); the share changed and the number of draws are recorded. Every random choice comes from the
generator passed in, so a dataset stays byte-reproducible from its seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np
from PIL import Image, ImageDraw

from provenance.bench import manipulations as M

__all__ = ["SMALL_AREA", "SMALL_EDITS", "find_text_lines", "head_box", "object_swap", "small_insertion",
           "small_removal", "text_line_change"]

SMALL_AREA = (0.01, 0.05)  # share of the picture's pixels a small edit changes
TRIES = 6
Edit = Callable[[np.ndarray, np.random.Generator, M.EditContext], M.EditResult]


def _range(ctx: M.EditContext) -> tuple[float, float]:
    return ctx.area if ctx.area is not None else SMALL_AREA


def _aimed(edit: Edit, img: np.ndarray, rng: np.random.Generator, ctx: M.EditContext) -> M.EditResult:
    """Run a size-aimable edit until its mask covers a share inside the range (the aim corrected each time by the
    ratio of the range's middle to the share measured); the closest draw when none lands inside."""
    lo, hi = _range(ctx)
    aim, best, best_gap = (lo, hi), None, math.inf
    for attempt in range(1, TRIES + 1):
        out, mask, info = edit(img, rng, replace(ctx, area=aim))
        share = float(mask.mean())
        gap = 0.0 if lo <= share <= hi else min(abs(share - lo), abs(share - hi))
        if gap < best_gap:
            best, best_gap = (out, mask, {**info, "draws": attempt}), gap
        if gap == 0.0:
            break
        factor = math.sqrt(lo * hi) / max(share, 1e-6)
        aim = (min(0.9, aim[0] * factor), min(0.9, aim[1] * factor))
    assert best is not None
    return best


def small_insertion(img: np.ndarray, rng: np.random.Generator, ctx: M.EditContext) -> M.EditResult:
    return _aimed(M.object_insertion, img, rng, ctx)


def small_removal(img: np.ndarray, rng: np.random.Generator, ctx: M.EditContext) -> M.EditResult:
    return _aimed(M.object_removal, img, rng, ctx)


# --- swap -----------------------------------------------------------------------------------------------------------

def head_box(person: M.Box) -> M.Box:
    """Where a standing or sitting person's face is: a square at the top centre of the person's box, 45 % of its
    width (capped at a quarter of its height)."""
    x1, y1, x2, y2 = person
    side = max(4, int(min(0.45 * (x2 - x1), 0.25 * (y2 - y1))))
    cx = (x1 + x2) // 2
    return cx - side // 2, y1, cx - side // 2 + side, y1 + side


def _overlap(a: M.Box, b: M.Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _pair(boxes: list[M.Box], rng: np.random.Generator) -> tuple[M.Box, M.Box] | None:
    pairs = [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if not _overlap(a, b)]
    return pairs[int(rng.integers(0, len(pairs)))] if pairs else None


def _partner(rng: np.random.Generator, box: M.Box, w: int, h: int) -> M.Box:
    """A box of the same size elsewhere in the picture, not overlapping ``box`` when there is room."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    out = box
    for _ in range(40):
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        out = (x, y, x + bw, y + bh)
        if not _overlap(out, box):
            break
    return out


def object_swap(img: np.ndarray, rng: np.random.Generator, ctx: M.EditContext) -> M.EditResult:
    """Two parts of the photo trade places (each resized to the other's box, with a feathered elliptical edge)."""
    h, w = img.shape[:2]
    lo, hi = _range(ctx)
    # each box's share, so that the two ellipses together cover [lo, hi] of the picture
    each = (lo / (2 * M.ELLIPSE_FILL), hi / (2 * M.ELLIPSE_FILL))
    fitted = lambda boxes: [M.fit_box(b, w, h, *each) for b in boxes]  # noqa: E731
    pair, what = _pair(fitted([head_box(p) for p in ctx.people]), rng), "faces"
    if pair is None:
        pair, what = _pair(fitted(list(ctx.regions)), rng), "objects"
    if pair is None:
        first, how = M.pick_region(rng, ctx, w, h, *each)
        pair, what = (first, _partner(rng, first, w, h)), f"{how} region and another place"
    a, b = pair
    out = img.copy()
    mask = np.zeros((h, w), bool)
    for src, dst in ((a, b), (b, a)):
        dw, dh = dst[2] - dst[0], dst[3] - dst[1]
        patch = np.asarray(Image.fromarray(img[src[1]:src[3], src[0]:src[2]]).resize((dw, dh),
                                                                                    Image.Resampling.BICUBIC))
        mask |= M.paste(out, patch, M.ellipse_alpha(dw, dh), dst[0], dst[1])
    return out, mask, {"what": what, "boxes": [list(a), list(b)]}


# --- text line ------------------------------------------------------------------------------------------------------

def find_text_lines(img: np.ndarray) -> list[M.Box]:
    """Boxes of text-like lines, densest first: strokes (morphological gradient, Otsu) closed along the line, kept
    when the run is long (at least 3 times its height), 1.5-8 % of the picture high and densely stroked."""
    h, w = img.shape[:2]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    _, strokes = cv2.threshold(grad, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    runs = cv2.morphologyEx(strokes, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (max(9, w // 60), 1)))
    contours, _ = cv2.findContours(runs, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    found = []
    for c in contours:
        x, y, bw, bh = cv2.boundingRect(c)
        if not (0.015 * h <= bh <= 0.08 * h and bw >= 3 * bh and bw <= 0.9 * w):
            continue
        density = float((strokes[y:y + bh, x:x + bw] > 0).mean())
        if 0.25 <= density <= 0.85:
            found.append((density, (x, y, x + bw, y + bh)))
    return [box for _, box in sorted(found, key=lambda t: -t[0])]


def _flat_band(img: np.ndarray, rng: np.random.Generator) -> M.Box:
    """The flattest of 24 random line-shaped boxes (3-5 % of the height, 25-50 % of the width): a sign's surface."""
    h, w = img.shape[:2]
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    best, best_std = (0, 0, w, h), math.inf
    for _ in range(24):
        bh = max(6, int(rng.uniform(0.03, 0.05) * h))
        bw = min(w - 1, max(3 * bh, int(rng.uniform(0.25, 0.5) * w)))
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        std = float(gray[y:y + bh, x:x + bw].std())
        if std < best_std:
            best, best_std = (x, y, x + bw, y + bh), std
    return best


def _fit_line(box: M.Box, w: int, h: int, lo: float, hi: float) -> M.Box:
    """Widen or narrow a line box about its centre (then grow its height if the width runs out) so that its share
    of the picture lies in [lo, hi]."""
    x1, y1, x2, y2 = box
    area = w * h
    bh = y2 - y1
    target = min(max((x2 - x1) * bh / area, lo), hi)
    bw = min(w, max(4, round(target * area / bh)))
    while bw * bh > hi * area and bw > 4:
        bw -= 1
    while bw * bh < lo * area and bw < w:
        bw += 1
    if bw * bh < lo * area:
        bh = min(h, int(math.ceil(lo * area / bw)))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    nx, ny = int(np.clip(cx - bw / 2, 0, w - bw)), int(np.clip(cy - bh / 2, 0, h - bh))
    return nx, ny, nx + bw, ny + bh


def text_line_change(img: np.ndarray, rng: np.random.Generator, ctx: M.EditContext) -> M.EditResult:
    """Erase a line of text (inpainted) and write another in its place, in a colour that stands out from what is
    left; everything drawn stays inside the line's box, which is the mask."""
    h, w = img.shape[:2]
    lo, hi = _range(ctx)
    lines = find_text_lines(img)
    if lines:
        line, found = lines[int(rng.integers(0, min(3, len(lines))))], "text-like line"
    else:
        line, found = _flat_band(img, rng), "none: the flattest band"
    x1, y1, x2, y2 = box = _fit_line(line, w, h, lo, hi)
    mask = np.zeros((h, w), bool)
    mask[y1:y2, x1:x2] = True
    erased = cv2.inpaint(img, mask.astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)
    text = " ".join(M._WORDS[int(i)] for i in rng.choice(len(M._WORDS), size=int(rng.integers(1, 4)), replace=False))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    size = max(6, int(0.8 * (y2 - y1)))
    while size > 6:  # the largest type whose line fits the box
        left, top, right, bottom = probe.textbbox((0, 0), text, font=M._font(ctx, size))
        if right - left <= 0.95 * (x2 - x1) and bottom - top <= 0.95 * (y2 - y1):
            break
        size -= 1
    font = M._font(ctx, size)
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    background = erased[y1:y2, x1:x2].reshape(-1, 3).mean(0)
    fill = (20, 20, 20) if background.mean() > 128 else (235, 235, 235)
    canvas = Image.fromarray(erased)
    at = (x1 + (x2 - x1 - (right - left)) // 2 - left, y1 + (y2 - y1 - (bottom - top)) // 2 - top)
    ImageDraw.Draw(canvas).text(at, text, font=font, fill=fill)
    out = img.copy()
    out[mask] = np.asarray(canvas)[mask]  # the erased line and the new text, nothing outside the box
    return out, mask, {"line": found, "box": list(box), "found_box": list(line), "text": text, "size": size}


SMALL_EDITS: dict[str, Edit] = {
    "small_insertion": small_insertion, "small_removal": small_removal, "object_swap": object_swap,
    "text_line_change": text_line_change,
}
