"""64-bit DCT perceptual hash (pHash): the classical baseline and the ledger's interim hash slot.

Grey image -> 32x32 (Lanczos) -> 2-D DCT-II -> the 8x8 lowest frequencies -> one bit per coefficient, set when it is
above the median of those 64. The DCT is done as two matrix products with an orthonormal basis (numpy only).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, UnidentifiedImageError

from hasher.errors import ImageDecodeError

PHASH_MODEL_ID = "phash-dct64-v1"
_SIZE = 32
_LOW = 8


@lru_cache(maxsize=1)
def _dct_basis(n: int = _SIZE) -> np.ndarray:
    k = np.arange(n)[:, None]
    x = np.arange(n)[None, :]
    basis = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    basis[0, :] /= np.sqrt(2.0)
    return basis


def phash64(image: Image.Image | bytes) -> int:
    """Return the 64-bit pHash of an image (PIL image or encoded bytes) as an unsigned int, MSB first."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        try:
            image = Image.open(io.BytesIO(bytes(image)))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    grey = image.convert("L").resize((_SIZE, _SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    basis = _dct_basis()
    coeffs = basis @ pixels @ basis.T
    low = coeffs[:_LOW, :_LOW].ravel()
    bits = low > np.median(low)
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming64(a: int, b: int) -> int:
    return (a ^ b).bit_count()
