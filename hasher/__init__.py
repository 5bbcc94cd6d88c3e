"""Robust image hashing: image -> 64-bit code (OSCAR-Net). A library; never imports ``provenance`` or ``workers``.

``hasher.load()`` returns the OSCAR-Net hasher; it is imported lazily so that importing ``hasher`` for the classical
pHash does not pull in torch.
"""

from typing import Any

from hasher.errors import HasherError, ImageDecodeError
from hasher.phash import PHASH_MODEL_ID, hamming64, phash64

__all__ = ["HasherError", "ImageDecodeError", "PHASH_MODEL_ID", "hamming64", "load", "phash64"]


def __getattr__(name: str) -> Any:
    if name in ("load", "OscarHasher", "ImageHash", "OSCAR_VARIANTS"):
        from hasher import api

        return getattr(api, name)
    raise AttributeError(f"module 'hasher' has no attribute {name!r}")
