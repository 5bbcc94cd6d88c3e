"""Thumbnails of registered images for the journalist page, cached in memory by (image CID, size).

Images are content-addressed, so a thumbnail never goes stale and the cache needs no invalidation; it is bounded
by entry count (a thumbnail of at most 1024 px as JPEG is tens of KiB).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image, ImageOps

from provenance.errors import InvalidImageError

MAX_THUMBNAIL_SIDE = 1024


def make_thumbnail(data: bytes, size: int) -> bytes:
    """A JPEG whose long side is at most ``size`` px, EXIF orientation applied."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when that is enough
            thumb = ImageOps.exif_transpose(img)
            thumb = thumb.convert("RGB") if thumb.mode != "RGB" else thumb.copy()
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"stored image cannot be decoded: {exc}") from exc
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=85, optimize=True)
    return out.getvalue()


class ThumbnailCache:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, image_cid: str, size: int) -> bytes | None:
        with self._lock:
            value = self._items.get((image_cid, size))
            if value is not None:
                self._items.move_to_end((image_cid, size))
            return value

    def put(self, image_cid: str, size: int, thumb: bytes) -> None:
        with self._lock:
            self._items[(image_cid, size)] = thumb
            self._items.move_to_end((image_cid, size))
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)
