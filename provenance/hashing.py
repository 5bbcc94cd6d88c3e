"""The one door from ``provenance`` to ``hasher``: a small ``Hasher`` interface and the default implementation."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hasher import PHASH_MODEL_ID, HasherError, phash64
from hasher.borders import uniform_borders  # also lookup's: one definition of "padding" for hashing and comparing
from provenance.errors import ConfigError, InvalidImageError
from provenance.records import PerceptualHash

__all__ = ["DetectedObject", "GlobalIdHasher", "Hasher", "OscarNetHasher", "PHashHasher", "default_hashers",
           "uniform_borders"]


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


class _NetworkHasher(ABC):
    """A hasher backed by a network from ``hasher``: loaded on first use (so importing this module, or a CLI command
    that never hashes, does not pay for torch), once, under a lock; its decode errors become ``InvalidImageError``."""

    alg: str
    bits: int

    def __init__(self) -> None:
        self._impl: Any = None
        self._lock = threading.Lock()

    @abstractmethod
    def _load(self) -> Any:
        """Build the network (called once, on first use)."""

    @abstractmethod
    def _encode(self, impl: Any, data: bytes) -> Any:
        """The code of one image: an object with ``.model_id``, ``.bits`` and ``.hex``."""

    def _model(self) -> Any:
        with self._lock:
            if self._impl is None:
                self._impl = self._load()
            return self._impl

    @property
    def model_id(self) -> str:
        return str(self._model().model_id)

    @property
    def loaded_model_id(self) -> str | None:
        """The model id if the network is loaded already, else None (never loads it: for cheap answers such as
        ``GET /services/supportedAlgorithms``)."""
        impl = self._impl
        return None if impl is None else str(impl.model_id)

    def hash_image(self, data: bytes) -> PerceptualHash:
        impl = self._model()
        try:
            code = self._encode(impl, data)
        except HasherError as exc:
            raise InvalidImageError(str(exc)) from exc
        return PerceptualHash(alg=self.alg, model_id=code.model_id, bits=code.bits, value=code.hex)


def _check_weights(weights: str) -> None:
    """Configured OSCAR-Net weights (``PROVENANCE_OSCAR_WEIGHTS`` / ``_MIGRATION_WEIGHTS``) are read when the service
    is wired, not at the first image: a missing or corrupt file is a configuration error that stops start-up with its
    name, instead of an internal error on every lookup."""
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"OSCAR-Net weights {path}: no such file")
    if path.suffix == ".safetensors":
        from hasher.api import read_head_weights

        try:
            read_head_weights(path)
        except HasherError as exc:
            raise ConfigError(f"OSCAR-Net weights {path} cannot be used: {exc}") from exc


class OscarNetHasher(_NetworkHasher):
    """OSCAR-Net through ``hasher.load()`` (the shipped trained weights): the tamper-sensitive channel that decides
    *match*. ``threshold`` is the calibrated "same image" Hamming distance shipped with the weights."""

    alg = "oscar-net"
    bits = 64

    def __init__(self, weights: str | None = None, device: str | None = None) -> None:
        super().__init__()
        if weights is not None and weights != "untrained":
            _check_weights(weights)
        self._weights = weights
        self._device = device

    def _load(self) -> Any:
        from hasher import load

        return load(self._weights, device=self._device)

    def _encode(self, impl: Any, data: bytes) -> Any:
        return impl.hash(data)

    @property
    def threshold(self) -> int | None:
        return self._model().threshold

    def detect_objects(self, rgb: Any, *, min_score: float = 0.3, max_objects: int = 16) -> list[DetectedObject]:
        """The hash's own object detector on a decoded H x W x 3 uint8 array (boxes in its pixels). Lookup uses it
        to describe an edit at object level; the defaults keep clear objects only."""
        impl = self._model()
        try:
            found = impl.detect(rgb, max_objects=max_objects, min_score=min_score)
        except HasherError as exc:
            raise InvalidImageError(str(exc)) from exc
        return [DetectedObject(d.label_name, float(d.score), tuple(float(v) for v in d.box)) for d in found]


class GlobalIdHasher(_NetworkHasher):
    """The 256-bit global identity code (``hasher.global_id``): learned-whitened, binarised GeM descriptor of the
    ImageNet backbone. A second tamper-tolerant channel beside pHash that still finds rotated, padded and edited
    copies in a large index."""

    alg = "global-id"
    bits = 256

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        self._weights = weights

    def _load(self) -> Any:
        from hasher.global_id import load_global_id

        return load_global_id(self._weights)

    def _encode(self, impl: Any, data: bytes) -> Any:
        return impl.code(data)

    @property
    def identity_gate(self) -> int | None:
        """Distance beyond which a record is another photo (shipped with the weights; lookup skips verifying it)."""
        return self._model().identity_gate


def default_hashers(oscar_weights: str | Path | None = None) -> tuple[Hasher, ...]:
    """The hashes every record carries: OSCAR-Net (tamper-sensitive; decides *match*; ``oscar_weights``, default
    the shipped model), and two tamper-tolerant identity channels lookup uses to find the source of an altered or
    heavily transformed copy: pHash and the global identity code (chosen by ``benchmarks/bench_channels.py`` and the
    system benchmark)."""
    return (OscarNetHasher(None if oscar_weights is None else str(oscar_weights)), PHashHasher(), GlobalIdHasher())
