"""Which image format some bytes are, from their magic numbers: enough to tell c2pa how to look for a manifest."""

from __future__ import annotations

# ISO-BMFF brands (the ``ftyp`` box) of the HEIF family that c2pa reads.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx"})
_HEIF_BRANDS = frozenset({b"mif1", b"msf1"})

# Image formats c2pa 0.38 can embed a manifest in and read one from (a subset of Reader.get_supported_mime_types()).
C2PA_IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/tiff", "image/gif", "image/heic", "image/heif", "image/avif"}
)
# Images we recognise that have no place for an embedded manifest: reading one is "absent", not an error.
NO_MANIFEST_IMAGE_TYPES = frozenset({"image/bmp"})


def sniff_media_type(data: bytes) -> str | None:
    """The media type the leading bytes announce, or None when they are no image format we know."""
    head = data[:32]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[4:8] == b"ftyp":
        return _heif_family(data)
    if head.startswith(b"BM") and len(head) >= 14:
        return "image/bmp"
    return None


def _heif_family(data: bytes) -> str | None:
    """Major brand first, then the compatible brands of the ``ftyp`` box."""
    size = int.from_bytes(data[0:4], "big")
    if size < 16 or size > len(data):
        return None
    brands = [data[8:12]] + [data[i : i + 4] for i in range(16, size - 3, 4)]
    for brand in brands:
        if brand in _AVIF_BRANDS:
            return "image/avif"
        if brand in _HEIC_BRANDS:
            return "image/heic"
    if any(b in _HEIF_BRANDS for b in brands):
        return "image/heif"
    return None
