"""The one door from ``provenance`` to ``hasher``: a small ``Hasher`` interface and the default implementation."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from hasher import PHASH_MODEL_ID, HasherError, phash64
from provenance.errors import InvalidImageError
from provenance.records import PerceptualHash


@dataclass(frozen=True)
class DetectedObject:
    """An object a hasher's detector found: ``box`` is (x1, y1, x2, y2) in pixels of the image it was given."""

    label: str
    score: float
    box: tuple[float, float, float, float]


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


class OscarNetHasher:
    """OSCAR-Net through ``hasher.load()`` (the shipped trained weights): the tamper-sensitive channel that decides
    *match*. The network loads on first use, so importing this module (or a CLI command that never hashes) does not
    pay for torch. ``threshold`` is the calibrated "same image" Hamming distance shipped with the weights."""

    alg = "oscar-net"
    bits = 64

    def __init__(self, weights: str | None = None, device: str | None = None) -> None:
        self._weights = weights
        self._device = device
        self._impl = None
        self._lock = threading.Lock()

    def _hasher(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._impl is None:
                from hasher import load

                self._impl = load(self._weights, device=self._device)
            return self._impl

    @property
    def model_id(self) -> str:
        return str(self._hasher().model_id)

    @property
    def threshold(self) -> int | None:
        return self._hasher().threshold

    def hash_image(self, data: bytes) -> PerceptualHash:
        impl = self._hasher()
        try:
            code = impl.hash(data)
        except HasherError as exc:
            raise InvalidImageError(str(exc)) from exc
        return PerceptualHash(alg=self.alg, model_id=code.model_id, bits=code.bits, value=code.hex)

    def detect_objects(self, rgb: Any, *, min_score: float = 0.3, max_objects: int = 16) -> list[DetectedObject]:
        """The hash's own object detector on a decoded H x W x 3 uint8 array (boxes in its pixels). Lookup uses it
        to describe an edit at object level; the defaults keep clear objects only."""
        impl = self._hasher()
        try:
            found = impl.detect(rgb, max_objects=max_objects, min_score=min_score)
        except HasherError as exc:
            raise InvalidImageError(str(exc)) from exc
        return [DetectedObject(d.label_name, float(d.score), tuple(float(v) for v in d.box)) for d in found]


def default_hashers() -> tuple[Hasher, ...]:
    """The hashes every record carries: OSCAR-Net (tamper-sensitive) and pHash (the tamper-tolerant identity
    channel lookup uses to find the source of an altered copy; chosen by ``benchmarks/bench_channels.py``)."""
    return (OscarNetHasher(), PHashHasher())
