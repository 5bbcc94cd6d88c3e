"""Thumbnails of registered images for the journalist page, cached in memory by (image CID, size).

Sizes are snapped up to a few allowed long sides (:data:`THUMBNAIL_SIZES`), so a client cycling ``size=16..1024``
gets at most five renders per image, not a thousand; each render decodes the original shrunk while decoding (JPEG:
DCT scaling; others: a whole-factor box average in the image's own mode) to about twice the size, never to full
resolution in RGB. Images are content-addressed, so a thumbnail never goes stale and the cache needs no
invalidation; it is bounded by entry count and by bytes.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image

from provenance.images import decode_rgb

THUMBNAIL_SIZES = (64, 128, 256, 512, 1024)
MAX_THUMBNAIL_SIDE = THUMBNAIL_SIZES[-1]


def snap_thumbnail_size(size: int) -> int:
    """The smallest allowed size at least ``size`` (the largest for anything above it)."""
    return next((s for s in THUMBNAIL_SIZES if s >= size), MAX_THUMBNAIL_SIDE)


def make_thumbnail(data: bytes, size: int, *, max_bytes: int, max_pixels: int) -> bytes:
    """A JPEG whose long side is at most ``size`` px, EXIF orientation applied (``InvalidImageError`` when the
    stored image cannot be decoded within the limits)."""
    rgb = decode_rgb(data, max_bytes=max_bytes, max_pixels=max_pixels, name="stored image", max_side=2 * size)
    thumb = Image.fromarray(rgb)
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


class ThumbnailCache:
    def __init__(self, max_entries: int = 256, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, image_cid: str, size: int) -> bytes | None:
        with self._lock:
            value = self._items.get((image_cid, size))
            if value is not None:
                self._items.move_to_end((image_cid, size))
            return value

    def put(self, image_cid: str, size: int, thumb: bytes) -> None:
        with self._lock:
            old = self._items.pop((image_cid, size), None)
            self._bytes -= len(old) if old is not None else 0
            self._items[(image_cid, size)] = thumb
            self._bytes += len(thumb)
            while self._items and (len(self._items) > self.max_entries or self._bytes > self.max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
