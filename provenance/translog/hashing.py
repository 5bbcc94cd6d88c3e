"""RFC 6962 / RFC 9162 Merkle tree hashing (SHA-256), with the two domain-separation prefixes.

``leaf_hash(d) = SHA-256(0x00 || d)`` and ``node_hash(l, r) = SHA-256(0x01 || l || r)``; the hash of the empty
tree is ``SHA-256("")``. Pure functions, no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Final

HASH_SIZE: Final = 32
"""Bytes in every hash of this log (SHA-256)."""

LEAF_PREFIX: Final = b"\x00"
"""Prepended to leaf data before hashing (RFC 6962 §2.1)."""

NODE_PREFIX: Final = b"\x01"
"""Prepended to the concatenated child hashes of an interior node (RFC 6962 §2.1)."""

EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""Root hash of the tree with no leaves: ``SHA-256()`` of the empty string."""


def leaf_hash(data: bytes) -> bytes:
    """Hash of a leaf holding ``data``."""
    return hashlib.sha256(LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node whose children hash to ``left`` and ``right``."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def record_leaf_data(record_cid: str) -> bytes:
    """Leaf data committing to a record: the UTF-8 bytes of its CID string."""
    return record_cid.encode("utf-8")
