"""A set of int64 ids at about 8 bytes an id, for the index's own membership checks.

A Python ``set`` of 10M ints costs ~600 MB, more than the codes themselves (80 MB for 64-bit codes), and faiss has no
cheap "is this id present" for every index type. So: a sorted numpy array (binary search) plus two small Python sets
of recent changes, folded into the array when they grow past a fraction of it; an add or remove costs O(log n)
amortised. Bulk loads of already-sorted ids (a rebuild from the catalog) take a linear fast path.
Not thread-safe by itself: the index calls it under its readers-writer lock.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IdSet"]

_MIN_DELTA = 4096  # fold the change sets into the array once they exceed this and 1/32 of its size


class IdSet:
    def __init__(self) -> None:
        self._base = np.empty(0, dtype=np.int64)  # sorted, unique
        self._added: set[int] = set()  # not in _base
        self._removed: set[int] = set()  # in _base, but gone

    def __len__(self) -> int:
        return len(self._base) - len(self._removed) + len(self._added)

    def __contains__(self, id_: int) -> bool:
        i = int(id_)
        if i in self._added:
            return True
        if i in self._removed:
            return False
        pos = int(np.searchsorted(self._base, i))
        return pos < len(self._base) and int(self._base[pos]) == i

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` (int64, 1-D) are in the set."""
        if len(self._base):
            pos = np.minimum(np.searchsorted(self._base, ids), len(self._base) - 1)
            mask = self._base[pos] == ids
        else:
            mask = np.zeros(len(ids), dtype=bool)
        if self._removed:
            mask &= ~np.isin(ids, np.fromiter(self._removed, np.int64, len(self._removed)))
        if self._added:
            mask |= np.isin(ids, np.fromiter(self._added, np.int64, len(self._added)))
        return mask

    def add(self, ids: np.ndarray) -> None:
        """Add ids that are not present (the caller has checked with :meth:`contains`)."""
        if not len(self) and _strictly_increasing(ids):
            self._base, self._added, self._removed = ids.copy(), set(), set()
            return
        if len(ids) > _MIN_DELTA:  # merge into the sorted array: O(n + m log m), no sort of the whole
            fresh = np.sort(ids)
            base = self.to_array()
            self._base = np.insert(base, np.searchsorted(base, fresh), fresh)
            self._added, self._removed = set(), set()
            return
        for i in ids.tolist():
            if i in self._removed:
                self._removed.discard(i)
            else:
                self._added.add(i)
        self._maybe_fold()

    def remove(self, ids: np.ndarray) -> None:
        """Remove ids that are present (the caller has checked with :meth:`contains`)."""
        if len(ids) > _MIN_DELTA:
            base = self.to_array()
            self._base = np.delete(base, np.searchsorted(base, np.sort(ids)))
            self._added, self._removed = set(), set()
            return
        for i in ids.tolist():
            if i in self._added:
                self._added.discard(i)
            else:
                self._removed.add(i)
        self._maybe_fold()

    def to_array(self) -> np.ndarray:
        """Every id, sorted."""
        base = self._base
        if self._removed:
            base = np.setdiff1d(base, np.fromiter(self._removed, np.int64, len(self._removed)), assume_unique=True)
        if self._added:
            base = np.union1d(base, np.fromiter(self._added, np.int64, len(self._added)))
        return base

    def max(self) -> int | None:
        if not len(self):
            return None
        top = -1
        for j in range(len(self._base) - 1, -1, -1):  # read-only: skips at most len(_removed) removed ids
            if int(self._base[j]) not in self._removed:
                top = int(self._base[j])
                break
        return max(top, max(self._added, default=-1))

    def _maybe_fold(self) -> None:
        if len(self._added) + len(self._removed) > max(_MIN_DELTA, len(self._base) // 32):
            self._fold()

    def _fold(self) -> None:
        self._base = self.to_array()
        self._added, self._removed = set(), set()


def _strictly_increasing(ids: np.ndarray) -> bool:
    return len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1]))
