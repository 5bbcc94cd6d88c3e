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
                    convert: bool, max_side: int | None = None) -> tuple[ImageInfo, np.ndarray | None]:
    """One decode with every check of :func:`inspect_image`; with ``convert``, also the RGB pixels (EXIF-oriented),
    shrunk while decoding to a long side of at most ``max_side`` when given (see :func:`_shrink`)."""
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
                if convert and max_side is not None:
                    _draft(img, max_side)
                img.load()
                if convert:
                    rgb = rgb_array(ImageOps.exif_transpose(img) if max_side is None else _shrink(img, max_side))
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{name}: not an image (no decoder recognises these bytes)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    return ImageInfo(media_type=media_type, width=width, height=height), rgb


#: Pillow modes of one channel wider than 8 bits: 16-bit greyscale PNG/TIFF ("I;16*") and 32-bit integers ("I").
_WIDE_GREY = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


def rgb_array(img: Image.Image) -> np.ndarray:
    """``img`` as an ``H x W x 3`` uint8 RGB array. Pillow's own ``convert("RGB")`` clips 16-bit greyscale at 255
    (a 16-bit PNG becomes solid white), so wide greyscale is scaled here: 16-bit modes by 255/65535 (what any
    converter to 8 bits does, so a re-shared 8-bit copy decodes to the same pixels), 32-bit ``I`` the same when it
    holds 16-bit values and as-is when it holds 8-bit ones; float ``F`` is stretched over its range."""
    if img.mode in _WIDE_GREY:
        wide = np.asarray(img).astype(np.float64)
        if img.mode == "I" and float(wide.max(initial=0)) <= 255:
            grey = wide
        else:
            grey = wide * (255.0 / 65535.0)
        return np.ascontiguousarray(np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2))
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min(initial=0)), float(arr.max(initial=0))
        grey = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return np.ascontiguousarray(np.repeat(np.rint(grey).astype(np.uint8)[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "image") -> ImageInfo:
    """Return the image's type and size, or raise :class:`InvalidImageError` saying why it is refused.

    The whole image is decoded (not just the header) so truncated files are caught; the pixel limit is checked from
    the header first, so a decompression bomb is refused before it is decoded.
    """
    return _checked_decode(data, max_bytes=max_bytes, max_pixels=max_pixels, name=name, convert=False)[0]


#: Smallest side a lookup query may have: below it neither hash nor local features say anything reliable.
MIN_QUERY_SIDE = 32


def decode_rgb(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "image",
               min_side: int = 1, max_side: int | None = None) -> np.ndarray:
    """Check ``data`` like :func:`inspect_image`, then decode it to an ``H x W x 3`` uint8 RGB array with the EXIF
    orientation applied (first frame of an animation; alpha dropped); with ``max_side``, shrunk while decoding by
    the whole factor that brings its long side to at most that (see :func:`decode_query`)."""
    _, rgb = _checked_decode(data, max_bytes=max_bytes, max_pixels=max_pixels, name=name, convert=True,
                             max_side=max_side)
    assert rgb is not None
    if min(rgb.shape[:2]) < min_side:
        raise InvalidImageError(f"{name}: {rgb.shape[1]}x{rgb.shape[0]} is too small (each side must be at least "
                                f"{min_side} px)")
    return rgb


# --- bounded decoding of untrusted queries (lookup, /matches/byContent) ------------------------------------------
#: Longest side a lookup query is decoded to. Lookup works at <= 1024 px (RootSIFT, ``lookup.features.MAX_SIDE``)
#: and compares at <= 512 px (``lookup.compare.WORK_SIDE``); the hashers work at <= 512 px. Shrinking by a whole
#: factor ``f = ceil(long side / QUERY_DECODE_SIDE)`` always leaves more than half of this bound, i.e. more than 1024
#: px, so nothing downstream loses detail, while an 81 Mpx query costs what a 4 Mpx one does.
QUERY_DECODE_SIDE = 2048

# Modes Pillow's ``reduce`` cannot average directly, and the mode to average them in (palette indices and bit masks
# are not intensities; 16-bit greyscale goes through 32-bit "I" and back, see _shrink).
_REDUCE_VIA = {"1": "L", "P": "RGB", "PA": "RGBA", "I;16": "I", "I;16L": "I", "I;16B": "I", "I;16N": "I"}


def _shrink_factor(size: tuple[int, int], max_side: int) -> int:
    return max(1, -(-max(size) // max_side))


def _draft(img: Image.Image, max_side: int) -> None:
    """JPEG: let the decoder itself scale by 1/2, 1/4 or 1/8 (DCT scaling) while staying at least as large as the
    whole-factor shrink of :func:`_shrink` needs; other formats ignore drafts."""
    factor = _shrink_factor(img.size, max_side)
    if factor > 1 and img.format == "JPEG":
        width, height = img.size
        img.draft(img.mode, (max(1, width // factor), max(1, height // factor)))


_ORIENTATION = 0x0112
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    """``img`` EXIF-oriented and box-averaged by the whole factor that brings its long side to at most ``max_side``
    (just oriented when it already fits). Averaging runs in the image's own mode, before any conversion to RGB, and
    before orienting, so the full-size image is held once, at its own bytes per pixel."""
    factor = _shrink_factor(img.size, max_side)
    if factor == 1:
        return ImageOps.exif_transpose(img)
    via = _REDUCE_VIA.get(img.mode)
    if via is None:
        small = img.reduce(factor)
    else:
        small = img.convert(via).reduce(factor)
        if img.mode.startswith("I;16"):
            small = Image.fromarray(np.clip(np.asarray(small), 0, 65535).astype(np.uint16))  # mode I;16
    method = _TRANSPOSE.get(img.getexif().get(_ORIENTATION, 1))
    return small.transpose(method) if method is not None else small


@dataclass(frozen=True)
class QueryImage:
    """An untrusted query, checked and decoded once with a bounded size: ``rgb`` (long side at most the decode
    bound), ``width`` and ``height`` as uploaded, and ``hash_input``, what the hashers are given: the uploaded bytes
    when the image fits the bound (so hashes are exactly those of the file), else a PNG of ``rgb``."""

    rgb: np.ndarray
    width: int
    height: int
    hash_input: bytes

    @property
    def shrunk(self) -> bool:
        return max(self.rgb.shape[:2]) < max(self.width, self.height)


def decode_query(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "query",
                 max_side: int = QUERY_DECODE_SIDE, min_side: int = MIN_QUERY_SIDE) -> QueryImage:
    """The one set of checks every image query passes (``POST /v1/lookup``, ``/matches/byContent``, ``provenance
    lookup``): :func:`inspect_image`'s limits, each side at least ``min_side`` px, then a decode shrunk to
    ``max_side`` (JPEG through DCT scaling; others by box averaging in their own mode)."""
    info, rgb = _checked_decode(data, max_bytes=max_bytes, max_pixels=max_pixels, name=name, convert=True,
                                max_side=max_side)
    assert rgb is not None
    _check_min_side(info, min_side, name)
    hash_input = data
    if max(rgb.shape[:2]) < max(info.width, info.height):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
        hash_input = buf.getvalue()
    return QueryImage(rgb=rgb, width=info.width, height=info.height, hash_input=hash_input)


def _check_min_side(info: ImageInfo, min_side: int, name: str) -> None:
    if min(info.width, info.height) < min_side:
        raise InvalidImageError(f"{name}: {info.width}x{info.height} is too small (each side must be at least "
                                f"{min_side} px)")


def check_query_header(data: bytes, *, max_bytes: int, max_pixels: int, name: str = "query",
                       min_side: int = MIN_QUERY_SIDE) -> ImageInfo:
    """:func:`decode_query`'s checks that need only the header (byte and pixel limits, a format we decode, each side
    at least ``min_side``), in about a millisecond: the HTTP layer runs them on every image query before it spends
    a work slot on the decode, which then also catches corrupt or truncated files."""
    if not data:
        raise InvalidImageError(f"{name}: empty file")
    if len(data) > max_bytes:
        raise InvalidImageError(f"{name}: {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format or "", img.size
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{name}: refused as a decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(f"{name}: not an image (no decoder recognises these bytes)") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImageError(f"{name}: corrupt or truncated image ({exc})") from exc
    if width * height > max_pixels:
        raise InvalidImageError(f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}")
    media_type = _MEDIA_TYPES.get(fmt)
    if media_type is None:
        raise InvalidImageError(f"{name}: unsupported image format {fmt or 'unknown'!r}")
    info = ImageInfo(media_type=media_type, width=width, height=height)
    _check_min_side(info, min_side, name)
    return info
