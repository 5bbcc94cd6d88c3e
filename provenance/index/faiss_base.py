"""What the faiss-backed indexes share: id bookkeeping, locking, exact tie handling, tombstones and persistence.

Each implementation wraps its faiss structure in ``IndexBinaryIDMap`` (faiss translates its internal positions to
our int64 ids) and says how it removes ids: natively (flat) or by tombstone (multi-hash, which faiss cannot remove
from; tombstoned ids are filtered out of results and dropped by rebuilding the structure, see ``_compact``).

Exactness at the k-th distance: Hamming distances are small integers, so ties are the rule. faiss keeps an arbitrary
subset of the codes tied at the k-th distance; we fetch more than k and, when the fetched list is full and its last
distance still equals the k-th hit's, ask faiss for every code within that distance (``range_search``): one more
scan, however many ties. Results therefore equal a brute-force scan sorted by (distance, id). Removed ids never use
up a slot: when tombstones leave fewer than k live hits in a full list, the fetch is doubled.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Literal, Self

import faiss
import numpy as np

from provenance.index.base import Hit, Index
from provenance.index.codes import check_batch, check_bits, check_codes, check_ids
from provenance.index.errors import DuplicateIdError, IndexCorruptError, InvalidCodeError
from provenance.index.idset import IdSet
from provenance.index.persist import Sidecar, write_index_files
from provenance.index.rwlock import ReadWriteLock

__all__ = ["FaissBinaryIndex"]

_EXTRA_FETCH = 16  # fetched beyond 2k on the first try: usually enough to settle ties at the k-th distance


class FaissBinaryIndex(Index):
    def __init__(self, bits: int) -> None:
        self._bits = check_bits(bits)
        self._lock = ReadWriteLock()
        self._ids = IdSet()
        self._dead: set[int] = set()  # removed ids still inside the faiss structure (tombstones)
        self._faiss: faiss.IndexBinaryIDMap = faiss.IndexBinaryIDMap(self._new_inner())

    # --- what an implementation provides ----------------------------------------------------------------------
    @abstractmethod
    def _new_inner(self) -> faiss.IndexBinary:
        """A new, empty faiss structure for ``self.bits`` with this instance's parameters."""

    @abstractmethod
    def _drop(self, ids: np.ndarray) -> None:
        """Remove present ids from ``self._faiss`` or tombstone them (called under the write lock)."""

    @abstractmethod
    def _check_inner(self, path: Path, inner: faiss.IndexBinary) -> None:
        """Raise :class:`IndexCorruptError` unless a deserialised inner structure matches this instance."""

    @classmethod
    @abstractmethod
    def _from_params(cls, bits: int, params: dict[str, int]) -> Self:
        """An empty instance with the parameters recorded in a sidecar."""

    # --- the Index interface ----------------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return self._bits

    def __len__(self) -> int:
        with self._lock.read():
            return len(self._ids)

    def __contains__(self, id_: object) -> bool:
        if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)):
            return False
        with self._lock.read():
            return int(id_) in self._ids

    def ids(self) -> np.ndarray:
        with self._lock.read():
            return self._ids.to_array()

    def max_id(self) -> int | None:
        with self._lock.read():
            return self._ids.max()

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        ids, codes = check_batch(ids, codes, self._bits)
        if not len(ids):
            return
        with self._lock.write():
            present = self._ids.contains(ids)
            if present.any():
                raise DuplicateIdError(f"ids already in the index: {ids[present][:10].tolist()}")
            if self._dead and np.isin(ids, self._dead_array()).any():
                self._compact()  # a tombstoned id still sits in faiss: drop it before it comes back
            self._faiss.add_with_ids(codes, ids)
            self._ids.add(ids)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.unique(check_ids(ids))
        with self._lock.write():
            gone = ids[self._ids.contains(ids)]
            if len(gone):
                self._drop(gone)
                self._ids.remove(gone)
            return len(gone)

    def search(self, codes: np.ndarray, k: int) -> list[list[Hit]]:
        codes = check_codes(codes, self._bits)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidCodeError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        results: list[list[Hit]] = [[] for _ in range(len(codes))]
        with self._lock.read():
            total = int(self._faiss.ntotal)
            if not total or not len(codes) or not len(self._ids):
                return results
            fetch = min(total, 2 * k + _EXTRA_FETCH)
            pending = np.arange(len(codes))
            while len(pending):
                dist, labels = self._faiss.search(codes[pending], fetch)
                unsettled = []
                for row, q in enumerate(pending.tolist()):
                    hits, state = self._settle(dist[row], labels[row], k, fetch, total)
                    if state == "ties":
                        hits = self._within(codes[q : q + 1], hits[-1].distance, k)
                    if state == "more":
                        unsettled.append(q)
                    else:
                        results[q] = hits
                pending = np.asarray(unsettled, dtype=np.int64)
                fetch = min(total, fetch * 2)
        return results

    def _settle(self, dist: np.ndarray, labels: np.ndarray, k: int, fetch: int,
                total: int) -> tuple[list[Hit], Literal["done", "ties", "more"]]:
        """The k best live hits of one fetched row, and whether they are final ("done"), may miss codes tied
        at the k-th distance ("ties"), or may miss closer live codes because tombstones took slots ("more")."""
        found = labels >= 0
        hits = self._best_live(dist[found], labels[found], k)
        if int(found.sum()) < fetch or fetch >= total:
            return hits, "done"  # faiss returned every candidate it has
        if len(hits) < k:
            return hits, "more"
        return hits, "done" if int(dist[fetch - 1]) > hits[-1].distance else "ties"

    def _within(self, code: np.ndarray, distance: int, k: int) -> list[Hit]:
        """The k best live hits among every candidate at most ``distance`` away (faiss: strictly below radius)."""
        _, dist, labels = self._faiss.range_search(code, distance + 1)
        return self._best_live(dist, labels, k)

    def _best_live(self, dist: np.ndarray, ids: np.ndarray, k: int) -> list[Hit]:
        d = dist.astype(np.int64)
        if self._dead:
            live = ~np.isin(ids, self._dead_array())
            d, ids = d[live], ids[live]
        order = np.lexsort((ids, d))[:k]
        return [Hit(int(i), int(x)) for i, x in zip(ids[order].tolist(), d[order].tolist(), strict=True)]

    # --- tombstones --------------------------------------------------------------------------------------------
    def _dead_array(self) -> np.ndarray:
        return np.fromiter(self._dead, np.int64, len(self._dead))

    def _compact(self) -> None:
        """Rebuild the faiss structure without tombstoned ids (under the write lock)."""
        if not self._dead:
            return
        ids = faiss.vector_to_array(self._faiss.id_map)
        codes = self._stored_codes()
        keep = ~np.isin(ids, self._dead_array())
        fresh = faiss.IndexBinaryIDMap(self._new_inner())
        if keep.any():
            fresh.add_with_ids(np.ascontiguousarray(codes[keep]), np.ascontiguousarray(ids[keep]))
        self._faiss = fresh
        self._dead.clear()

    def _stored_codes(self) -> np.ndarray:
        """Every code in faiss order (needed by ``_compact`` for structures without native removal)."""
        raise NotImplementedError(f"{type(self).__name__} removes natively and never compacts")

    # --- persistence -----------------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path = Path(path)
        while True:
            with self._lock.read():
                if not self._dead:  # the file must not carry tombstones: the sidecar has no place for them
                    data = faiss.serialize_index_binary(self._faiss)
                    count, max_id = len(self._ids), self._ids.max()
                    break
            with self._lock.write():
                self._compact()
        write_index_files(path, data, kind=self.kind, bits=self._bits, count=count, max_id=max_id,
                          params=self.params(), faiss_version=faiss.__version__)

    @classmethod
    def _from_file(cls, path: Path, sidecar: object, data: np.ndarray) -> Self:
        assert isinstance(sidecar, Sidecar)
        try:
            obj = cls._from_params(sidecar.bits, dict(sidecar.params))
        except (InvalidCodeError, TypeError, ValueError, RuntimeError) as exc:
            raise IndexCorruptError(f"{path}: sidecar parameters are not valid: {exc}") from exc
        try:
            loaded = faiss.deserialize_index_binary(data)  # read-only is fine: faiss copies what it keeps
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IndexCorruptError(f"{path}: faiss cannot read the index: {first}") from exc
        if not isinstance(loaded, faiss.IndexBinaryIDMap) or loaded.d != sidecar.bits:
            raise IndexCorruptError(f"{path}: expected a {sidecar.bits}-bit id-mapped index, "
                                    f"found {type(loaded).__name__} of {getattr(loaded, 'd', '?')} bits")
        obj._check_inner(path, faiss.downcast_IndexBinary(loaded.index))
        ids = faiss.vector_to_array(loaded.id_map).astype(np.int64, copy=False)
        if len(ids) != loaded.ntotal or len(ids) != sidecar.count:
            raise IndexCorruptError(f"{path}: holds {len(ids)} codes, but its sidecar says {sidecar.count}")
        ids_sorted = np.sort(ids)
        if len(ids) and (int(ids_sorted[0]) < 0 or np.any(ids_sorted[1:] == ids_sorted[:-1])):
            raise IndexCorruptError(f"{path}: ids are negative or repeated")
        if (int(ids_sorted[-1]) if len(ids) else None) != sidecar.max_id:
            raise IndexCorruptError(f"{path}: largest id does not match its sidecar ({sidecar.max_id})")
        obj._faiss = loaded
        obj._ids.add(ids_sorted)
        return obj
