"""Gatekeeping for image bytes at ingest and lookup: decode fully, within limits, before anything is written."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from provenance.errors import InvalidImageError

_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
                "TIFF": "image/tiff", "BMP": "image/bmp"}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp"})


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    width: int
    height: int


def _checked_decode(data: bytes, *, max_bytes: int, max_pixels: int, name: str,
                    convert: bool) -> tuple[ImageInfo, np.ndarray | None]:
    """One decode with every check of :func:`inspect_image`; with ``convert``, also the RGB pixels (EXIF-oriented)."""
    if not data:
        raise InvalidImageError(f"{name}: empty file")
    if len(data) > max_bytes:
        raise InvalidImageError(f"{name}: {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    rgb = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format or ""
                width, height = img.size
                if width * height > max_pixels:
                    raise InvalidImageError(
                        f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
                    )
                media_type = _MEDIA_TYPES.get(fmt)
                if media_type is None:
                    raise InvalidImageError(f"{name}: unsupported image format {fmt or 'unknown'!r}")
                img.load()
                if convert:
                    rgb = np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(img).convert("RGB")))
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{name}: not an image (no decoder recognises these bytes)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    return ImageInfo(media_type=media_type, width=width, height=height), rgb


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "image") -> ImageInfo:
    """Return the image's type and size, or raise :class:`InvalidImageError` saying why it is refused.

    The whole image is decoded (not just the header) so truncated files are caught; the pixel limit is checked from
    the header first, so a decompression bomb is refused before it is decoded.
    """
    return _checked_decode(data, max_bytes=max_bytes, max_pixels=max_pixels, name=name, convert=False)[0]


#: Smallest side a lookup query may have: below it neither hash nor local features say anything reliable.
MIN_QUERY_SIDE = 32


def decode_rgb(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "image",
               min_side: int = 1) -> np.ndarray:
    """Check ``data`` like :func:`inspect_image`, then decode it to an ``H x W x 3`` uint8 RGB array with the EXIF
    orientation applied (first frame of an animation; alpha dropped)."""
    _, rgb = _checked_decode(data, max_bytes=max_bytes, max_pixels=max_pixels, name=name, convert=True)
    assert rgb is not None
    if min(rgb.shape[:2]) < min_side:
        raise InvalidImageError(f"{name}: {rgb.shape[1]}x{rgb.shape[0]} is too small (each side must be at least "
                                f"{min_side} px)")
    return rgb
