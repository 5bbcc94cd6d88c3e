"""Building a publisher statement for an image file, on the publisher's machine."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.cid import cid_for_bytes
from provenance.errors import InvalidImageError
from provenance.metadata import PublisherMetadata
from provenance.statements import PublisherStatement, SignedStatement, key_id_for, utc_now

# The formats the service accepts, by their magic bytes (the service sniffs the same way, with Pillow).
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"BM", 0, "image/bmp"),
)


def sniff_media_type(data: bytes, source: str = "image") -> str:
    for magic, offset, media_type in _MAGIC:
        if data[offset:offset + len(magic)] == magic and (media_type != "image/webp" or data[:4] == b"RIFF"):
            return media_type
    raise InvalidImageError(f"{source}: not a JPEG, PNG, GIF, WebP, TIFF or BMP image")


def build_statement(data: bytes, *, publisher: str, key: Ed25519PrivateKey, metadata: PublisherMetadata,
                    source: str = "image", issued_at: str | None = None) -> SignedStatement:
    """The signed statement for ``data``: its sha256, CID and media type, the metadata, the key id, the time."""
    statement = PublisherStatement(
        image_sha256=hashlib.sha256(data).hexdigest(), image_cid=cid_for_bytes(data),
        media_type=sniff_media_type(data, source), metadata=metadata, publisher_id=publisher,
        key_id=key_id_for(key.public_key()), issued_at=issued_at or utc_now())
    return statement.sign(key)
