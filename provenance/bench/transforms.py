"""Benign transforms for the attribution dataset: what a photo suffers when it is re-shared, not edited.

Seen (the training augmentations of OSCAR-Net §3.5): a primary transform, resize + JPEG, always; then 1-3 secondary
transforms from flip, small rotation, sharpness, colour jitter, Gaussian noise and padding.
Unseen (held out, ImageNet-C style corruptions at mid severity): shot, impulse and speckle noise; Gaussian and
defocus blur; pixelate. Every function takes a numpy ``Generator`` so a dataset is reproducible from one seed, and
returns the image plus a token naming what was done (``kind`` in pairs.csv).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _from_float(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")


def resize_by(img: Image.Image, scale: float, min_side: int = 64) -> Image.Image:
    """Resize keeping the aspect ratio, never below ``min_side`` on the short side."""
    scale = max(scale, min_side / min(img.size))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BICUBIC) if size != img.size else img


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Round-trip through JPEG in memory (what a re-share does)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


# --- seen: secondary ----------------------------------------------------------------------------------------------

def flip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(img)


def rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = _u(rng, 2.0, 10.0) * (1 if rng.random() < 0.5 else -1)
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=(0, 0, 0))


def sharpness(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    factor = _u(rng, 0.2, 0.6) if rng.random() < 0.5 else _u(rng, 1.8, 3.0)  # soften or sharpen
    return ImageEnhance.Sharpness(img).enhance(factor)


def colour(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    img = ImageEnhance.Brightness(img).enhance(_u(rng, 0.75, 1.25))
    img = ImageEnhance.Contrast(img).enhance(_u(rng, 0.75, 1.25))
    return ImageEnhance.Color(img).enhance(_u(rng, 0.6, 1.4))


def gaussian_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    return _from_float(arr + rng.normal(0.0, _u(rng, 3.0, 12.0), arr.shape).astype(np.float32))


def padding(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    left, top, right, bottom = (int(rng.integers(0, max(2, int(0.1 * s)))) for s in (w, h, w, h))
    fill = tuple(int(c) for c in rng.integers(0, 256, 3))
    return ImageOps.expand(img, (left, top, right, bottom), fill=fill)


SECONDARY: dict[str, Transform] = {"flip": flip, "rotate": rotate, "sharpness": sharpness, "colour": colour,
                                   "gaussian_noise": gaussian_noise, "padding": padding}


def seen_variant(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, int, str]:
    """Primary (resize now, JPEG at save: returns its quality) then 1-3 distinct secondary transforms.

    Returns (image, jpeg quality, kind) with kind e.g. ``seen:jpeg_resize+flip+padding``.
    """
    img = resize_by(img, _u(rng, 0.5, 1.0))
    names = list(SECONDARY)
    chosen = [names[i] for i in rng.choice(len(names), size=int(rng.integers(1, 4)), replace=False)]
    for name in chosen:
        img = SECONDARY[name](img, rng)
    quality = int(rng.integers(50, 96))
    return img, quality, "seen:" + "+".join(["jpeg_resize", *chosen])


# --- unseen -------------------------------------------------------------------------------------------------------

def shot_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    lam = _u(rng, 25.0, 60.0)
    arr = np.asarray(img, dtype=np.float64) / 255.0
    return _from_float(rng.poisson(arr * lam) / lam * 255.0)


def impulse_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img).copy()
    amount = _u(rng, 0.01, 0.04)
    hit = rng.random(arr.shape) < amount
    arr[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def speckle_noise(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    return _from_float(arr + arr * rng.normal(0.0, _u(rng, 0.1, 0.25), arr.shape).astype(np.float32))


def gaussian_blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    sigma = _u(rng, 0.002, 0.005) * max(img.size)
    arr = cv2.GaussianBlur(np.asarray(img), (0, 0), sigmaX=max(0.5, sigma))
    return Image.fromarray(arr, "RGB")


def defocus_blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    radius = max(2, round(_u(rng, 0.003, 0.007) * max(img.size)))
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    kernel = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    kernel /= kernel.sum()
    return Image.fromarray(cv2.filter2D(np.asarray(img), -1, kernel, borderType=cv2.BORDER_REFLECT), "RGB")


def pixelate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = resize_by(img, _u(rng, 0.15, 0.35), min_side=16)
    return small.resize(img.size, Image.Resampling.NEAREST)


UNSEEN: dict[str, Transform] = {"shot_noise": shot_noise, "impulse_noise": impulse_noise,
                                "speckle_noise": speckle_noise, "gaussian_blur": gaussian_blur,
                                "defocus_blur": defocus_blur, "pixelate": pixelate}


def unseen_variant(img: Image.Image, name: str, rng: np.random.Generator) -> tuple[Image.Image, int, str]:
    """One unseen corruption, saved as a light JPEG (quality 80-95); kind ``unseen:<name>``."""
    return UNSEEN[name](img, rng), int(rng.integers(80, 96)), f"unseen:{name}"


def reshare(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, int]:
    """The light re-share every manipulated image gets: mild downscale; returns the JPEG quality to save with."""
    return resize_by(img, _u(rng, 0.8, 1.0)), int(rng.integers(80, 96))
