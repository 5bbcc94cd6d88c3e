"""Exact search: faiss ``IndexBinaryFlat`` (a popcount scan of every code) behind our id map.

The right choice up to ~10M codes: exact, no training, no parameters, 8 bytes per 64-bit code plus 8 per id, and
removal is native (faiss compacts its arrays, O(n) once per ``remove`` call; withdrawals are rare).
Latency grows linearly with the count; see ``benchmarks/bench_index.py`` for the measured crossover.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import faiss
import numpy as np

from provenance.index.errors import IndexCorruptError
from provenance.index.faiss_base import FaissBinaryIndex

__all__ = ["FlatBinaryIndex"]


class FlatBinaryIndex(FaissBinaryIndex):
    """Exact Hamming k-NN over every stored code."""

    kind = "flat"

    @property
    def recall_radius(self) -> int:
        return self.bits  # exact: every code is scanned

    def params(self) -> dict[str, int]:
        return {}

    def _new_inner(self) -> faiss.IndexBinary:
        return faiss.IndexBinaryFlat(self.bits)

    def _drop(self, ids: np.ndarray) -> None:
        self._faiss.remove_ids(faiss.IDSelectorBatch(ids))

    def _check_inner(self, path: Path, inner: faiss.IndexBinary) -> None:
        if not isinstance(inner, faiss.IndexBinaryFlat):
            raise IndexCorruptError(f"{path}: expected a flat index inside, found {type(inner).__name__}")

    @classmethod
    def _from_params(cls, bits: int, params: dict[str, int]) -> Self:
        if params:
            raise ValueError(f"a flat index takes no parameters, got {sorted(params)}")
        return cls(bits)
