"""Synthetic local manipulations for the attribution dataset, each returning the edited image and its change mask.

Edits (``kind`` in pairs.csv): object_insertion, object_removal, object_replacement, recolour, copy_move, splice,
local_warp, text_insertion, logo_insertion. They are local on purpose: the benchmark asks whether a hash tells an
edited image from a merely re-shared one, and a global change would make that trivial.

Object-level edits use candidate object boxes supplied by the builder (from ``hasher.detect`` when available, else a
saliency box). Cut-outs for insertion/replacement/logos come from openclipart-png (public domain, RGBA) when it is
installed; without it a feathered region from another photo stands in (recorded as ``source: donor-fallback``).
Every random choice comes from the ``Generator`` passed in, so a dataset is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive)
EditResult = tuple[np.ndarray, np.ndarray, dict[str, Any]]  # image HxWx3 uint8, mask HxW bool, recipe info

_WORDS = ("SALE", "BREAKING", "FAKE", "2024", "HELLO", "WORLD", "NEWS", "EXCLUSIVE", "LIVE", "OFFICIAL", "PROOF",
          "CONFIRMED", "DAY 1", "TOP", "FREE", "NO", "YES", "CITY", "REAL", "STOP")


@dataclass(frozen=True)
class EditContext:
    """What an edit may draw on besides the image: object boxes, cut-out pools, donor photos, a font file."""

    regions: tuple[Box, ...] = ()
    clipart: tuple[str, ...] = ()
    logos: tuple[str, ...] = ()
    donors: tuple[str, ...] = ()
    font: str | None = None
    # Target share of the picture the edit changes, (lo, hi); None: each edit's own range. The world recipe of
    # make-dataset sets it per edit to cover size buckets down to 0.5 % (the edit's geometry is scaled to reach it;
    # the share actually changed is measured from the mask).
    area: tuple[float, float] | None = None
    people: tuple[Box, ...] = ()  # detected people (``small_edits.object_swap`` swaps their faces)


#: Share of its bounding box an elliptical edit (copy-move, recolour, splice, inpainting) changes.
ELLIPSE_FILL = float(np.pi / 4)


def _area(ctx: EditContext, lo: float, hi: float, fill: float = 1.0) -> tuple[float, float]:
    """The box-share range an edit draws from: its own, or the context's target shares divided by ``fill``."""
    if ctx.area is None:
        return lo, hi
    return ctx.area[0] / fill, ctx.area[1] / fill


# --- geometry helpers ---------------------------------------------------------------------------------------------

def random_box(rng: np.random.Generator, w: int, h: int, lo: float, hi: float) -> Box:
    """A box covering a share U(lo, hi) of the image, aspect ratio 0.6-1.6, uniformly placed."""
    area = rng.uniform(lo, hi) * w * h
    aspect = rng.uniform(0.6, 1.6)
    bw = int(np.clip(np.sqrt(area * aspect), 8, w - 1))
    bh = int(np.clip(area / max(bw, 1), 8, h - 1))
    x = int(rng.integers(0, w - bw + 1))
    y = int(rng.integers(0, h - bh + 1))
    return x, y, x + bw, y + bh


def fit_box(box: Box, w: int, h: int, lo: float, hi: float) -> Box:
    """Scale a box about its centre so its area share lies in [lo, hi], then clamp it into the image."""
    x1, y1, x2, y2 = box
    bw, bh = max(x2 - x1, 4), max(y2 - y1, 4)
    share = bw * bh / (w * h)
    scale = np.sqrt(np.clip(share, lo, hi) / share)
    bw, bh = min(int(bw * scale), w - 1), min(int(bh * scale), h - 1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    nx = int(np.clip(cx - bw / 2, 0, w - bw))
    ny = int(np.clip(cy - bh / 2, 0, h - bh))
    return nx, ny, nx + bw, ny + bh


def pick_region(rng: np.random.Generator, ctx: EditContext, w: int, h: int, lo: float = 0.03,
                hi: float = 0.2) -> tuple[Box, str]:
    """An object box (most of the time, when there are any) fitted to [lo, hi] of the image, else a random box."""
    if ctx.regions and rng.random() < 0.85:
        box = ctx.regions[int(rng.integers(0, len(ctx.regions)))]
        return fit_box(box, w, h, lo, hi), "object"
    return random_box(rng, w, h, lo, hi), "random"


def ellipse_alpha(bw: int, bh: int, feather: float = 0.15) -> np.ndarray:
    """Float alpha (bh, bw): 1 inside an inscribed ellipse, falling to 0 over ``feather`` of its radius."""
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    r = np.sqrt(((xx + 0.5 - bw / 2) / (bw / 2)) ** 2 + ((yy + 0.5 - bh / 2) / (bh / 2)) ** 2)
    return np.clip((1.0 - r) / feather, 0.0, 1.0)


def paste(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray, x: int, y: int) -> np.ndarray:
    """Alpha-blend ``src`` (h, w, 3) into ``dst`` at (x, y) in place; returns the change mask of the full image."""
    h, w = alpha.shape
    region = dst[y : y + h, x : x + w].astype(np.float32)
    a = alpha[..., None].astype(np.float32)
    dst[y : y + h, x : x + w] = np.clip(np.rint(region * (1 - a) + src.astype(np.float32) * a), 0, 255).astype(np.uint8)
    mask = np.zeros(dst.shape[:2], dtype=bool)
    mask[y : y + h, x : x + w] = alpha > 0  # every pixel the paste can touch
    return mask


def colour_match(src: np.ndarray, alpha: np.ndarray, target: np.ndarray, strength: float) -> np.ndarray:
    """Move the cut-out's alpha-weighted channel means and spread toward those of where it lands."""
    wts = alpha.reshape(-1)[:, None] + 1e-6
    s = src.reshape(-1, 3).astype(np.float32)
    s_mean = (s * wts).sum(0) / wts.sum()
    s_std = np.sqrt(((s - s_mean) ** 2 * wts).sum(0) / wts.sum()) + 1e-3
    t = target.reshape(-1, 3).astype(np.float32)
    t_mean, t_std = t.mean(0), t.std(0) + 1e-3
    matched = (s - s_mean) * (t_std / s_std) ** (0.5 * strength) + s_mean + strength * (t_mean - s_mean)
    return np.clip(matched, 0, 255).reshape(src.shape)


MAX_CUTOUT_PIXELS = 16_000_000


def load_cutout(rng: np.random.Generator, pool: tuple[str, ...], tries: int = 30) -> tuple[np.ndarray, np.ndarray,
                                                                                           str] | None:
    """A random RGBA cut-out cropped to its alpha box: (rgb, alpha in [0, 1], path), or None if none qualifies."""
    for _ in range(tries if pool else 0):
        path = pool[int(rng.integers(0, len(pool)))]
        try:
            with Image.open(path) as im:
                if im.width * im.height > MAX_CUTOUT_PIXELS:
                    continue  # a few openclipart PNGs are poster-sized (up to 6e8 px): not worth decoding
                rgba = np.asarray(im.convert("RGBA"))
        except (OSError, Image.DecompressionBombError):
            continue
        alpha = rgba[..., 3].astype(np.float32) / 255.0
        ys, xs = np.nonzero(alpha > 0.05)
        if ys.size == 0:
            continue
        y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        alpha = alpha[y1:y2, x1:x2]
        if min(alpha.shape) < 32 or not 0.2 <= float((alpha > 0.5).mean()) <= 0.95:
            continue  # too small, or a full rectangle / a wisp: not an object
        return rgba[y1:y2, x1:x2, :3], alpha, path
    return None


def donor_cutout(rng: np.random.Generator, ctx: EditContext, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray,
                                                                                            str]:
    """A feathered elliptical region of another photo, resized to ``size`` (w, h): the no-clipart stand-in."""
    path = ctx.donors[int(rng.integers(0, len(ctx.donors)))]
    with Image.open(path) as im:
        donor = np.asarray(im.convert("RGB"))
    dh, dw = donor.shape[:2]
    x1, y1, x2, y2 = random_box(rng, dw, dh, 0.05, 0.2)
    patch = np.asarray(Image.fromarray(donor[y1:y2, x1:x2]).resize(size, Image.Resampling.BICUBIC))
    return patch, ellipse_alpha(size[0], size[1]), path


def _resize_cutout(rgb: np.ndarray, alpha: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    w, h = max(w, 4), max(h, 4)
    rgb2 = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.LANCZOS))
    a2 = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).resize((w, h), Image.Resampling.LANCZOS))
    return rgb2, a2.astype(np.float32) / 255.0


def _cutout_for(rng: np.random.Generator, ctx: EditContext, pool: tuple[str, ...], max_w: int,
                max_h: int) -> tuple[np.ndarray, np.ndarray, str]:
    """A cut-out (clipart, or the donor fallback) scaled to fit inside max_w x max_h, keeping its aspect ratio."""
    got = load_cutout(rng, pool)
    if got is None:
        rgb, alpha, path = donor_cutout(rng, ctx, (max_w, max_h))
        return rgb, alpha, f"donor-fallback:{Path(path).name}"
    rgb, alpha, path = got
    scale = min(max_w / alpha.shape[1], max_h / alpha.shape[0])
    rgb, alpha = _resize_cutout(rgb, alpha, int(alpha.shape[1] * scale), int(alpha.shape[0] * scale))
    return rgb, alpha, path


def _inpaint(img: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    x1, y1, x2, y2 = box
    mask = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(mask, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, 255, -1)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8))
    return cv2.inpaint(img, mask, 7, cv2.INPAINT_TELEA), mask > 0


# --- the edits ----------------------------------------------------------------------------------------------------

def object_insertion(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    side = int(np.sqrt(rng.uniform(*_area(ctx, 0.05, 0.14, 0.6)) * w * h))
    rgb, alpha, src = _cutout_for(rng, ctx, ctx.clipart, max(4, min(side, w - 2)), max(4, min(side, h - 2)))
    ah, aw = alpha.shape
    x, y = int(rng.integers(0, w - aw + 1)), int(rng.integers(0, h - ah + 1))
    rgb = colour_match(rgb, alpha, img[y : y + ah, x : x + aw], strength=float(rng.uniform(0.3, 0.6)))
    out = img.copy()
    return out, paste(out, rgb, alpha, x, y), {"source": src, "at": [x, y, aw, ah]}


def object_removal(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    box, how = pick_region(rng, ctx, w, h, *_area(ctx, 0.03, 0.15, 1.25 * ELLIPSE_FILL))  # + the dilation
    out, mask = _inpaint(img, box)
    return out, mask, {"box": list(box), "region": how}


def object_replacement(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    box, how = pick_region(rng, ctx, w, h, 0.04, 0.15)
    out, mask = _inpaint(img, box)
    x1, y1, x2, y2 = box
    rgb, alpha, src = _cutout_for(rng, ctx, ctx.clipart, int((x2 - x1) * 0.95), int((y2 - y1) * 0.95))
    ah, aw = alpha.shape
    x, y = (x1 + x2 - aw) // 2, (y1 + y2 - ah) // 2
    rgb = colour_match(rgb, alpha, img[y1:y2, x1:x2], strength=float(rng.uniform(0.2, 0.5)))
    mask |= paste(out, rgb, alpha, x, y)
    return out, mask, {"box": list(box), "region": how, "source": src}


def recolour(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = box = pick_region(rng, ctx, w, h, *_area(ctx, 0.04, 0.2, ELLIPSE_FILL))[0]
    hsv = cv2.cvtColor(img[y1:y2, x1:x2], cv2.COLOR_RGB2HSV).astype(np.int32)
    shift = int(rng.integers(30, 91))  # OpenCV hue is 0-179: a 60-180 degree turn
    hsv[..., 0] = (hsv[..., 0] + shift) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.2 + 50, 0, 255)  # tint grey regions too, or the turn changes nothing
    new = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    out = img.copy()
    return out, paste(out, new, ellipse_alpha(x2 - x1, y2 - y1), x1, y1), {"box": list(box), "hue_shift": shift * 2}


def copy_move(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    sx1, sy1, sx2, sy2 = src = pick_region(rng, ctx, w, h, *_area(ctx, 0.03, 0.1, ELLIPSE_FILL))[0]
    bw, bh = sx2 - sx1, sy2 - sy1
    dx, dy = 0, 0
    for _ in range(30):  # a destination that does not overlap the source, when there is room
        dx, dy = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        if abs(dx - sx1) >= bw or abs(dy - sy1) >= bh:
            break
    out = img.copy()
    mask = paste(out, img[sy1:sy2, sx1:sx2], ellipse_alpha(bw, bh), dx, dy)
    return out, mask, {"from": list(src), "to": [dx, dy, dx + bw, dy + bh]}


def copy_move_blend(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    """A copy-move as a forger makes it: the region is pasted where it blends in (of 40 places that do not overlap
    it, the one whose content is closest to it), so the aligned comparison sees little and the copy-move's own
    tell-tale (a second correspondence) has to give it away."""
    h, w = img.shape[:2]
    sx1, sy1, sx2, sy2 = src = pick_region(rng, ctx, w, h, *_area(ctx, 0.03, 0.1, ELLIPSE_FILL))[0]
    bw, bh = sx2 - sx1, sy2 - sy1
    patch = img[sy1:sy2, sx1:sx2].astype(np.float32)
    alpha = ellipse_alpha(bw, bh)
    best, dx, dy = np.inf, 0, 0
    for _ in range(40):
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        if abs(x - sx1) < bw and abs(y - sy1) < bh:
            continue
        cost = float((np.abs(img[y: y + bh, x: x + bw].astype(np.float32) - patch).sum(axis=2) * alpha).mean())
        if cost < best:
            best, dx, dy = cost, x, y
    out = img.copy()
    mask = paste(out, img[sy1:sy2, sx1:sx2], alpha, dx, dy)
    return out, mask, {"from": list(src), "to": [dx, dy, dx + bw, dy + bh], "blend_cost": round(best, 2)}


def splice(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = box = pick_region(rng, ctx, w, h, *_area(ctx, 0.04, 0.12, ELLIPSE_FILL))[0]
    patch, alpha, src = donor_cutout(rng, ctx, (x2 - x1, y2 - y1))
    if rng.random() < 0.5:  # a rectangular splice with a soft border, instead of an ellipse
        alpha = np.minimum(ellipse_alpha(x2 - x1, y2 - y1, feather=1.0) * 4, 1.0)
    out = img.copy()
    return out, paste(out, patch, alpha, x1, y1), {"box": list(box), "donor": Path(src).name}


def local_warp(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = pick_region(rng, ctx, w, h, 0.04, 0.15)[0]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = max(8.0, float(rng.uniform(0.12, 0.22)) * min(h, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    d = np.sqrt(dx**2 + dy**2) / r
    inside = d < 1.0
    mode = "swirl" if rng.random() < 0.5 else "bulge"
    if mode == "swirl":
        theta = float(rng.uniform(0.8, 1.6)) * (1 - np.clip(d, 0, 1)) ** 2
        cos, sin = np.cos(theta), np.sin(theta)
        map_x, map_y = cx + dx * cos - dy * sin, cy + dx * sin + dy * cos
    else:
        k = np.where(inside, np.clip(d, 1e-3, 1.0) ** float(rng.uniform(0.3, 0.6)) / np.clip(d, 1e-3, 1.0), 1.0)
        map_x, map_y = cx + dx * k, cy + dy * k
    map_x, map_y = np.where(inside, map_x, xx).astype(np.float32), np.where(inside, map_y, yy).astype(np.float32)
    out = cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = np.hypot(map_x - xx, map_y - yy) > 1e-3
    return out, mask, {"centre": [round(cx), round(cy)], "radius": round(r), "mode": mode}


def _font(ctx: EditContext, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if ctx.font:
        return ImageFont.truetype(ctx.font, size)
    return ImageFont.load_default(size=size)


def text_insertion(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    text = " ".join(_WORDS[int(i)] for i in rng.choice(len(_WORDS), size=int(rng.integers(1, 3)), replace=False))
    size = max(10, int(rng.uniform(0.06, 0.12) * h))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    if ctx.area is not None:  # scale the type so the lettering (about 60 % of its box, outlined) covers the target
        target = float(rng.uniform(*ctx.area)) * w * h
        left, top, right, bottom = probe.textbbox((0, 0), text, font=_font(ctx, size), stroke_width=max(1, size // 15))
        size = max(6, int(size * np.sqrt(target / (0.6 * max(1, (right - left) * (bottom - top))))))
    font = _font(ctx, size)
    stroke = max(1, size // 15)
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
    tw, th = right - left, bottom - top
    x = int(rng.integers(0, max(1, w - tw))) - left
    y = int(rng.integers(0, max(1, h - th))) - top
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    outline = (0, 0, 0) if sum(fill) > 384 else (255, 255, 255)
    pil = Image.fromarray(img)
    ImageDraw.Draw(pil).text((x, y), text, font=font, fill=fill, stroke_width=stroke, stroke_fill=outline)
    mask_img = Image.new("L", pil.size, 0)
    ImageDraw.Draw(mask_img).text((x, y), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    return np.asarray(pil).copy(), np.asarray(mask_img) > 0, {"text": text, "size": size, "at": [x, y]}


def _drawn_logo(rng: np.random.Generator, ctx: EditContext, side: int) -> tuple[np.ndarray, np.ndarray]:
    """A simple emblem (disc + initials) when no clipart logos are installed."""
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    rgba = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(rgba)
    draw.ellipse((0, 0, side - 1, side - 1), fill=(*colour, 255))
    letters = "".join(chr(65 + int(i)) for i in rng.integers(0, 26, 2))
    draw.text((side // 2, side // 2), letters, font=_font(ctx, max(8, side // 2)), fill=(255, 255, 255, 255),
              anchor="mm")
    arr = np.asarray(rgba)
    return arr[..., :3], arr[..., 3].astype(np.float32) / 255.0


def logo_insertion(img: np.ndarray, rng: np.random.Generator, ctx: EditContext) -> EditResult:
    h, w = img.shape[:2]
    side = max(16, int(np.sqrt(rng.uniform(0.015, 0.05) * w * h)))
    got = load_cutout(rng, ctx.logos)
    if got is None:
        rgb, alpha = _drawn_logo(rng, ctx, side)
        src = "drawn"
    else:
        rgb, alpha, src = got
        scale = side / max(alpha.shape)
        rgb, alpha = _resize_cutout(rgb, alpha, int(alpha.shape[1] * scale), int(alpha.shape[0] * scale))
    alpha = alpha * float(rng.uniform(0.6, 1.0))
    ah, aw = alpha.shape
    margin = int(0.03 * min(w, h))
    corner = int(rng.integers(0, 4))  # watermark-style: near a corner
    x = margin if corner in (0, 2) else w - aw - margin
    y = margin if corner in (0, 1) else h - ah - margin
    x, y = int(np.clip(x, 0, w - aw)), int(np.clip(y, 0, h - ah))
    out = img.copy()
    return out, paste(out, rgb, alpha, x, y), {"source": src, "at": [x, y, aw, ah]}


EDITS: dict[str, Callable[[np.ndarray, np.random.Generator, EditContext], EditResult]] = {
    "object_insertion": object_insertion, "object_removal": object_removal, "object_replacement": object_replacement,
    "recolour": recolour, "copy_move": copy_move, "splice": splice, "local_warp": local_warp,
    "text_insertion": text_insertion, "logo_insertion": logo_insertion,
}
#: Edits only the world recipe uses (kept out of ``EDITS`` so classic datasets stay byte-identical).
EXTRA_EDITS: dict[str, Callable[[np.ndarray, np.random.Generator, EditContext], EditResult]] = {
    "copy_move_blend": copy_move_blend,
}
