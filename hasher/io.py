"""Turn whatever the caller has (path, bytes, PIL image, numpy array) into an RGB uint8 array, safely.

EXIF orientation is applied; CMYK, 16-bit, palette, alpha and greyscale images are converted to RGB (alpha is
composited onto white); animated images contribute their first frame; a pixel limit refuses decompression bombs
from the header, before decoding.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from hasher.errors import ImageDecodeError

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, Image.Image, np.ndarray]
DEFAULT_MAX_PIXELS = 100_000_000


def _to_rgb(img: Image.Image) -> Image.Image:
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit modes always span 0-65535 (a dark 16-bit image is still 16-bit); only 32-bit "I" may hold 8-bit values
        peak = 65535.0 if img.mode != "I" or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(scaled.astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return img.convert("RGB")


def load_rgb(image: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return an H x W x 3 uint8 RGB array, or raise :class:`ImageDecodeError` saying why not."""
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image)
    if isinstance(image, Image.Image):
        return np.asarray(_to_rgb(image), dtype=np.uint8).copy()
    name = "image bytes"
    try:
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
        else:
            name = str(image)
            data = Path(image).read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if not data:
        raise ImageDecodeError(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageDecodeError(f"{name}: {w}x{h} pixels exceeds the limit of {max_pixels}")
                img.load()
                return np.asarray(_to_rgb(img), dtype=np.uint8).copy()
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(f"{name}: not an image") from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: corrupt or truncated image ({exc})") from exc


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """uint8, uint16 (scaled by 1/257) or float (0-1 or 0-255) arrays of H x W, H x W x 1, 3 or 4 channels."""
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape[:2]:
        raise ImageDecodeError(f"array of shape {arr.shape} is not an H x W x {{1,3,4}} image")
    if arr.dtype == np.uint16:
        scaled = arr / 257.0
    elif arr.dtype.kind == "f":
        scaled = arr * (255.0 if float(arr.max()) <= 1.0 else 1.0)
    else:
        scaled = arr.astype(np.float64)
    if arr.shape[2] == 4:
        alpha = scaled[:, :, 3:4] / 255.0
        rgb = scaled[:, :, :3] * alpha + 255.0 * (1.0 - alpha)
    elif arr.shape[2] == 1:
        rgb = np.repeat(scaled, 3, axis=2)
    else:
        rgb = scaled
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
