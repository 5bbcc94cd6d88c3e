"""The one ``Index`` interface of the lookup path: binary codes of a fixed width, searched by Hamming distance.

Lookup depends on this interface only; which faiss structure backs it (exact flat scan, multi-index hashing) is a
size decision made by :func:`provenance.index.factory.create_index`. Contract, for every implementation:

* ids are non-negative int64 (faiss reserves -1); codes are ``uint8`` rows of ``bits // 8`` bytes
  (see :mod:`provenance.index.codes` for the bit order);
* ``search`` returns, per query, at most ``k`` hits sorted by (distance, id), never a removed id, and fewer than
  ``k`` when fewer codes are stored; every stored code within :attr:`Index.recall_radius` of the query is found
  (ties at the k-th distance resolved by smallest id), so an exact index (radius = bits) equals a brute-force scan;
* ``save``/``load`` use faiss's own binary format plus a JSON sidecar with a sha256: never pickle, because loading
  a pickle runs whatever code the file names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from provenance.index.errors import IndexCorruptError
from provenance.index.persist import read_index_files

__all__ = ["Hit", "Index"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the stored code's id and its Hamming distance to the query."""

    id: int
    distance: int


class Index(ABC):
    """Binary codes of ``bits`` bits under int64 ids; thread-safe (searches run in parallel with each other)."""

    #: Name stored in the sidecar; maps a file back to its class on load.
    kind: ClassVar[str] = ""
    _kinds: ClassVar[dict[str, type[Index]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            Index._kinds[cls.kind] = cls

    @property
    @abstractmethod
    def bits(self) -> int:
        """Code width in bits (a multiple of 8)."""

    @property
    def code_size(self) -> int:
        """Bytes per code row."""
        return self.bits // 8

    @property
    @abstractmethod
    def recall_radius(self) -> int:
        """Every stored code within this Hamming distance of a query is guaranteed to be found (``bits``: exact)."""

    @abstractmethod
    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Store ``codes`` (``[n, bits/8]`` uint8) under ``ids`` (``[n]`` int64, none already present)."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (unknown ones are ignored); returns how many were removed."""

    @abstractmethod
    def search(self, codes: np.ndarray, k: int) -> list[list[Hit]]:
        """The ``k`` nearest stored codes of each query row, sorted by (distance, id)."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of live (not removed) codes."""

    @abstractmethod
    def __contains__(self, id_: object) -> bool:
        """Whether ``id_`` is stored and not removed."""

    @abstractmethod
    def ids(self) -> np.ndarray:
        """Every live id, sorted (int64)."""

    @abstractmethod
    def max_id(self) -> int | None:
        """The largest live id, or None when empty."""

    @abstractmethod
    def params(self) -> dict[str, int]:
        """Construction parameters beyond ``bits`` (recorded in the sidecar)."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the index to ``path`` and its sidecar to ``path + '.json'`` (atomically replaced)."""

    @classmethod
    def load(cls, path: Path) -> Index:
        """Read an index written by :meth:`save`; ``Index.load`` picks the class from the sidecar's ``kind``.

        Raises :class:`~provenance.index.errors.IndexFileMissingError` when there is no file, and
        :class:`~provenance.index.errors.IndexCorruptError` when it is truncated, altered or unreadable.
        """
        path = Path(path)
        sidecar, data = read_index_files(path)
        impl = Index._kinds.get(sidecar.kind)
        if impl is None:
            raise IndexCorruptError(f"{path}: unknown index kind {sidecar.kind!r} in its sidecar")
        if not issubclass(impl, cls):
            raise IndexCorruptError(f"{path}: holds a {sidecar.kind!r} index, not a {cls.__name__}")
        return impl._from_file(path, sidecar, data)

    @classmethod
    @abstractmethod
    def _from_file(cls, path: Path, sidecar: object, data: np.ndarray) -> Index:
        """Build an instance from verified file bytes (called by :meth:`load`)."""

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.kind}({self.bits} bits{', ' + params if params else ''}; {len(self)} codes)"
