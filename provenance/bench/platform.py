"""Benign copies as real platforms and people make them (issue 13): the ``world`` recipe of ``make-dataset``.

Each kind is one thing a re-share does to a photo, on top of the resize and the encoding every copy gets: resize
(25-100 %, never under ``MIN_COPY_SIDE`` on the long side), JPEG at quality 60-95 with 4:2:0 chroma (once, or twice
at two qualities), WebP, mild sharpening as apps apply it, Gaussian and defocus blur of sigma <= 1.5 px, rotation of
up to 5 degrees cropped back to a rectangle without wedges, colour and gamma, flips, padding and letterboxing,
screenshots (the picture inside a UI frame at another scale, saved as PNG or JPEG), crops keeping 60-95 % of the
area, and mild shot noise. Every function draws from the ``Generator`` it is given, so a dataset is reproducible from
one seed; it returns the picture, how to encode it, and the recipe (``info``) for ``build.json``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

__all__ = ["KINDS", "MIN_COPY_SIDE", "THUMBNAIL_SCALES", "Encoding", "encode", "reshare_edit", "thumbnail_edit"]

MIN_COPY_SIDE = 128  # long side, px: smaller "copies" are icons, not photos anyone verifies
#: The size an edited picture is thumbnailed to (``thumbnail_edit``), as a share of its own: a preview, a feed.
THUMBNAIL_SCALES = (0.30, 0.65)


@dataclass(frozen=True)
class Encoding:
    """How a copy is saved: ``format`` JPEG (4:2:0 chroma), WEBP or PNG; ``quality`` for the lossy ones;
    ``first_quality`` when a JPEG was already encoded once before (re-encoded twice)."""

    format: str
    quality: int | None = None
    first_quality: int | None = None

    @property
    def suffix(self) -> str:
        return {"JPEG": ".jpg", "WEBP": ".webp", "PNG": ".png"}[self.format]

    def to_obj(self) -> dict[str, Any]:
        return {"format": self.format, "quality": self.quality, "first_quality": self.first_quality}


def _jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality), subsampling=2)  # 2 = 4:2:0, what cameras and platforms use
    return buf.getvalue()


def encode(img: Image.Image, enc: Encoding) -> bytes:
    """The file bytes of ``img`` saved as ``enc`` says."""
    if enc.format == "JPEG":
        assert enc.quality is not None
        if enc.first_quality is not None:
            with Image.open(io.BytesIO(_jpeg_bytes(img, enc.first_quality))) as first:
                img = first.convert("RGB")
        return _jpeg_bytes(img, enc.quality)
    buf = io.BytesIO()
    if enc.format == "WEBP":
        img.save(buf, "WEBP", quality=int(enc.quality or 80), method=4)
    else:
        img.save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _jpeg(rng: np.random.Generator, lo: int = 60, hi: int = 95) -> Encoding:
    return Encoding("JPEG", int(rng.integers(lo, hi + 1)))


def resize_share(img: Image.Image, scale: float) -> Image.Image:
    """Resize by ``scale`` (keeping the aspect), never below ``MIN_COPY_SIDE`` on the long side, never up."""
    scale = min(1.0, max(scale, MIN_COPY_SIDE / max(img.size)))
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS) if size != img.size else img


def _scaled(img: Image.Image, rng: np.random.Generator, lo: float = 0.5) -> tuple[Image.Image, float]:
    scale = _u(rng, lo, 1.0)
    return resize_share(img, scale), round(scale, 3)


Result = tuple[Image.Image, Encoding, dict[str, Any]]


def resize_jpeg(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng, 0.25)
    return out, _jpeg(rng), {"scale": s}


def jpeg_twice(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng)
    return out, Encoding("JPEG", int(rng.integers(60, 91)), int(rng.integers(70, 96))), {"scale": s}


def webp(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng, 0.4)
    return out, Encoding("WEBP", int(rng.integers(50, 91))), {"scale": s}


def sharpen(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng)
    radius, percent = _u(rng, 0.8, 2.0), int(rng.integers(40, 121))
    out = out.filter(ImageFilter.UnsharpMask(radius=radius, percent=percent, threshold=int(rng.integers(0, 4))))
    return out, _jpeg(rng, 70), {"scale": s, "radius": round(radius, 2), "percent": percent}


def gaussian_blur(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng)
    sigma = _u(rng, 0.5, 1.5)  # at the copy's own resolution
    arr = cv2.GaussianBlur(np.asarray(out), (0, 0), sigma)
    return Image.fromarray(arr), _jpeg(rng, 70), {"scale": s, "sigma": round(sigma, 2)}


def defocus_blur(img: Image.Image, rng: np.random.Generator) -> Result:
    """A uniform disk (lens defocus) of radius r: its standard deviation per axis is r / 2 <= 1.5 px."""
    out, s = _scaled(img, rng)
    radius = _u(rng, 1.2, 3.0)
    k = int(math.ceil(radius))
    yy, xx = np.mgrid[-k: k + 1, -k: k + 1].astype(np.float32)
    kernel = np.clip(radius + 0.5 - np.sqrt(xx ** 2 + yy ** 2), 0.0, 1.0)  # anti-aliased disk
    kernel /= kernel.sum()
    arr = cv2.filter2D(np.asarray(out), -1, kernel, borderType=cv2.BORDER_REFLECT)
    return Image.fromarray(arr), _jpeg(rng, 70), {"scale": s, "radius": round(radius, 2)}


def _inner_rect(w: int, h: int, angle_deg: float) -> tuple[int, int]:
    """Largest axis-aligned rectangle of the same aspect inside a w x h image rotated by the angle."""
    a = math.radians(abs(angle_deg))
    sin, cos = math.sin(a), math.cos(a)
    k = min(w / (w * cos + h * sin), h / (w * sin + h * cos))
    return max(1, int(w * k)), max(1, int(h * k))


def rotate_crop(img: Image.Image, rng: np.random.Generator) -> Result:
    angle = _u(rng, 1.0, 5.0) * (1 if rng.random() < 0.5 else -1)
    rotated = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False)
    cw, ch = _inner_rect(img.width, img.height, angle)
    x0, y0 = (img.width - cw) // 2, (img.height - ch) // 2
    out, s = _scaled(rotated.crop((x0, y0, x0 + cw, y0 + ch)), rng)
    return out, _jpeg(rng), {"angle": round(angle, 2), "scale": s}


def colour_gamma(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng)
    b, c, sat, gamma = _u(rng, 0.8, 1.2), _u(rng, 0.8, 1.2), _u(rng, 0.7, 1.3), _u(rng, 0.75, 1.35)
    out = ImageEnhance.Color(ImageEnhance.Contrast(ImageEnhance.Brightness(out).enhance(b)).enhance(c)).enhance(sat)
    lut = [min(255, round(255 * (i / 255) ** gamma)) for i in range(256)] * 3
    return out.point(lut), _jpeg(rng), {"scale": s, "brightness": round(b, 3), "contrast": round(c, 3),
                                        "saturation": round(sat, 3), "gamma": round(gamma, 3)}


def flip(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng)
    return ImageOps.mirror(out), _jpeg(rng), {"scale": s}


def padding(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng)
    w, h = out.size
    if rng.random() < 0.5:  # plain padding of a random colour
        left, top, right, bottom = (int(rng.integers(2, max(3, int(0.15 * v)))) for v in (w, h, w, h))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        return ImageOps.expand(out, (left, top, right, bottom), fill=fill), _jpeg(rng), {"scale": s, "pad": "plain"}
    aspect = float(rng.choice([16 / 9, 1.0, 9 / 16, 4 / 3]))  # letterbox / pillarbox to a frame shape
    fw, fh = (max(w, round(h * aspect)), h) if w / h < aspect else (w, max(h, round(w / aspect)))
    fill = (0, 0, 0) if rng.random() < 0.7 else (255, 255, 255)
    frame = Image.new("RGB", (fw, fh), fill)
    frame.paste(out, ((fw - w) // 2, (fh - h) // 2))
    return frame, _jpeg(rng), {"scale": s, "pad": "letterbox", "aspect": round(aspect, 3)}


def screenshot(img: Image.Image, rng: np.random.Generator) -> Result:
    """The picture shown inside an app's frame (status bar, header, caption lines) at another scale, captured."""
    scale = _u(rng, 0.6, 1.5)
    shown = img.resize((max(8, round(img.width * scale)), max(8, round(img.height * scale))),
                       Image.Resampling.BICUBIC)
    dark = rng.random() < 0.5
    bg, fg = ((18, 18, 18), (230, 230, 230)) if dark else ((250, 250, 250), (40, 40, 40))
    margin = int(rng.integers(0, max(1, shown.width // 10)))
    bar, header, caption = int(rng.integers(16, 30)), int(rng.integers(30, 60)), int(rng.integers(30, 90))
    canvas = Image.new("RGB", (shown.width + 2 * margin, bar + header + shown.height + caption), bg)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, canvas.width, bar - 1), fill=(0, 0, 0) if dark else (225, 225, 225))
    draw.ellipse((margin + 6, bar + 8, margin + 6 + header - 16, bar + header - 8), fill=(120, 140, 200))
    for i, width in enumerate((0.5, 0.3)):
        y = bar + 10 + 14 * i
        draw.rectangle((margin + header + 4, y, margin + header + 4 + int(width * shown.width), y + 6), fill=fg)
    canvas.paste(shown, (margin, bar + header))
    for i in range(max(1, caption // 22)):
        y = bar + header + shown.height + 10 + 20 * i
        draw.rectangle((margin + 6, y, margin + 6 + int(_u(rng, 0.3, 0.9) * shown.width), y + 8), fill=fg)
    enc = Encoding("PNG") if rng.random() < 0.5 else _jpeg(rng, 80)
    return canvas, enc, {"scale": round(scale, 3), "theme": "dark" if dark else "light"}


def crop(img: Image.Image, rng: np.random.Generator) -> Result:
    keep = _u(rng, 0.6, 0.95)  # share of the area kept
    aspect = _u(rng, 0.85, 1.15)
    cw = min(img.width, max(8, round(img.width * math.sqrt(keep) * math.sqrt(aspect))))
    ch = min(img.height, max(8, round(img.width * img.height * keep / cw)))
    x0, y0 = int(rng.integers(0, img.width - cw + 1)), int(rng.integers(0, img.height - ch + 1))
    out, s = _scaled(img.crop((x0, y0, x0 + cw, y0 + ch)), rng)
    return out, _jpeg(rng), {"kept": round(cw * ch / (img.width * img.height), 3), "scale": s}


def shot_noise(img: Image.Image, rng: np.random.Generator) -> Result:
    out, s = _scaled(img, rng)
    lam = _u(rng, 60.0, 200.0)  # photons at white: mild (ImageNet-C's mid severity is 25-60)
    arr = np.asarray(out, dtype=np.float64) / 255.0
    noisy = np.clip(np.rint(rng.poisson(arr * lam) / lam * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy), _jpeg(rng, 75), {"scale": s, "photons": round(lam, 1)}


KINDS: dict[str, Callable[[Image.Image, np.random.Generator], Result]] = {
    "resize_jpeg": resize_jpeg, "jpeg_twice": jpeg_twice, "webp": webp, "sharpen": sharpen,
    "gaussian_blur": gaussian_blur, "defocus_blur": defocus_blur, "rotate_crop": rotate_crop,
    "colour_gamma": colour_gamma, "flip": flip, "padding": padding, "screenshot": screenshot, "crop": crop,
    "shot_noise": shot_noise,
}


def reshare_edit(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Encoding]:
    """The light re-share an edited copy gets: a mild downscale, JPEG 75-95 with 4:2:0 chroma."""
    out, _ = _scaled(img, rng, 0.8)
    return out, _jpeg(rng, 75)


def thumbnail_edit(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Encoding, float]:
    """An edited picture as a feed or a preview shows it: downscaled to ``THUMBNAIL_SCALES`` of its size (never
    under ``MIN_COPY_SIDE``), JPEG 75-95 with 4:2:0 chroma. Returns the scale actually applied."""
    out = resize_share(img, _u(rng, *THUMBNAIL_SCALES))
    return out, _jpeg(rng, 75), round(out.width / img.width, 3)
