"""The one door from ``provenance`` to ``hasher``: a small ``Hasher`` interface and the default implementation."""

from __future__ import annotations

from typing import Protocol

from hasher import PHASH_MODEL_ID, HasherError, phash64
from provenance.errors import InvalidImageError
from provenance.records import PerceptualHash


class Hasher(Protocol):
    alg: str
    model_id: str
    bits: int

    def hash_image(self, data: bytes) -> PerceptualHash: ...


class PHashHasher:
    """64-bit DCT pHash: the interim hash slot until the trained OSCAR-Net weights ship."""

    alg = "phash"
    model_id = PHASH_MODEL_ID
    bits = 64

    def hash_image(self, data: bytes) -> PerceptualHash:
        try:
            value = phash64(data)
        except HasherError as exc:
            raise InvalidImageError(str(exc)) from exc
        return PerceptualHash(alg=self.alg, model_id=self.model_id, bits=self.bits, value=f"{value:016x}")


def default_hashers() -> tuple[Hasher, ...]:
    return (PHashHasher(),)
