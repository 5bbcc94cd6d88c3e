"""Multi-index hashing: faiss ``IndexBinaryMultiHash``, for collections too large to scan on every lookup.

Each code is cut into ``nhash`` substrings of ``b`` bits; each substring keys one hash table; a query probes, in
every table, the buckets within ``nflip`` bit flips of its own substring and ranks the union of those candidates by
exact Hamming distance. Pigeonhole: a stored code within ``nhash * (nflip + 1) - 1`` bits of the query differs by at
most ``nflip`` bits in at least one substring, so it is always found -- that is :attr:`recall_radius`. Codes farther
away are found only if they share a bucket by chance, which is fine for lookup: a near-duplicate is by definition
close, and lookup thresholds the distance well inside the radius.

Why not IVF: on hash codes (uniform by design) binary k-means finds no structure to exploit. In the benchmark at 1M,
``IndexBinaryIVF`` (nlist 1024, nprobe 16) took 24 s to train and fill and returned the source of only 87.5% of
near-duplicate queries (0-8 bits flipped); multi-hash built in 3-5 s and returned all of them.

faiss cannot remove from this structure, so removal tombstones the id (filtered out of every result) and the
structure is rebuilt without tombstones once they pass 1/64 of the codes, and before every save.
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

import faiss
import numpy as np

from provenance.index.codes import check_bits
from provenance.index.errors import IndexCorruptError, InvalidCodeError
from provenance.index.faiss_base import FaissBinaryIndex

__all__ = ["MultiHashBinaryIndex", "default_multihash_params"]

_MIN_TOMBSTONES = 1024


def default_multihash_params(bits: int) -> dict[str, int]:
    """Parameters measured to keep buckets small and the guaranteed radius useful for lookup.

    64 bits: 3 tables of 21 bits (2M buckets each: ~5 codes a bucket at 10M), 2 flips -> radius 8, 232 probes a
    table. Wider codes (PDQ, 256 bits): 32-bit substrings, 3 flips -> radius 4*nhash - 1 (31 for PDQ, its usual
    match threshold).
    """
    check_bits(bits)
    if bits == 64:
        return {"nhash": 3, "b": 21, "nflip": 2}
    if bits < 64:
        return {"nhash": 2, "b": bits // 2, "nflip": 1}
    return {"nhash": bits // 32, "b": 32, "nflip": 3}


class MultiHashBinaryIndex(FaissBinaryIndex):
    """Hamming k-NN, exact within :attr:`recall_radius` of the query."""

    kind = "multihash"

    def __init__(self, bits: int, *, nhash: int | None = None, b: int | None = None, nflip: int | None = None) -> None:
        defaults = default_multihash_params(bits)
        self._nhash = defaults["nhash"] if nhash is None else nhash
        self._b = defaults["b"] if b is None else b
        self._nflip = defaults["nflip"] if nflip is None else nflip
        for name, value, least in (("nhash", self._nhash, 1), ("b", self._b, 1), ("nflip", self._nflip, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                kind = "non-negative" if least == 0 else "positive"
                raise InvalidCodeError(f"multi-hash {name} must be a {kind} integer, got {value!r}")
        if self._nhash * self._b > bits or self._b > 64 or self._nflip > self._b:
            raise InvalidCodeError(f"multi-hash needs nhash * b <= bits, b <= 64 and nflip <= b; got nhash="
                                   f"{self._nhash}, b={self._b}, nflip={self._nflip} for {bits} bits")
        super().__init__(bits)

    @property
    def recall_radius(self) -> int:
        return min(self.bits, self._nhash * (self._nflip + 1) - 1)

    def params(self) -> dict[str, int]:
        return {"nhash": self._nhash, "b": self._b, "nflip": self._nflip}

    def _new_inner(self) -> faiss.IndexBinary:
        inner = faiss.IndexBinaryMultiHash(self.bits, self._nhash, self._b)
        inner.nflip = self._nflip
        return inner

    def _drop(self, ids: np.ndarray) -> None:
        self._dead.update(ids.tolist())
        if len(self._dead) > max(_MIN_TOMBSTONES, int(self._faiss.ntotal) // 64):
            self._compact()

    def _stored_codes(self) -> np.ndarray:
        inner = faiss.downcast_IndexBinary(self._faiss.index)
        storage = faiss.downcast_IndexBinary(inner.storage)
        return faiss.vector_to_array(storage.xb).reshape(-1, self.code_size)

    def _check_inner(self, path: Path, inner: faiss.IndexBinary) -> None:
        if not isinstance(inner, faiss.IndexBinaryMultiHash):
            raise IndexCorruptError(f"{path}: expected a multi-hash index inside, found {type(inner).__name__}")
        found = {"nhash": inner.nhash, "b": inner.b, "nflip": inner.nflip}
        if found != self.params():
            raise IndexCorruptError(f"{path}: multi-hash parameters {found} do not match its sidecar {self.params()}")
        if faiss.downcast_IndexBinary(inner.storage).ntotal != inner.ntotal:
            raise IndexCorruptError(f"{path}: multi-hash storage and tables disagree on the code count")

    @classmethod
    def _from_params(cls, bits: int, params: dict[str, int]) -> Self:
        unknown = set(params) - {"nhash", "b", "nflip"}
        if unknown:
            raise ValueError(f"unknown multi-hash parameters {sorted(unknown)}")
        return cls(bits, **params)
