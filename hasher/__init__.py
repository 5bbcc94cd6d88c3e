"""Robust image hashing: image -> 64-bit code. A library; never imports ``provenance`` or ``workers``."""

from hasher.errors import HasherError, ImageDecodeError
from hasher.phash import PHASH_MODEL_ID, hamming64, phash64

__all__ = ["HasherError", "ImageDecodeError", "PHASH_MODEL_ID", "hamming64", "phash64"]
