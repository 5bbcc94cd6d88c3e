"""Compact multi-index hashing: the multi-hash search of :mod:`provenance.index.multihash` in flat numpy arrays.

Why not faiss ``IndexBinaryMultiHash`` above 10M codes: it keeps one ``std::unordered_map<int64, vector<idx_t>>``
per table, ~100 bytes a code in all (1 GB at 10M, ~24 GB projected at 100M) and builds at ~250 s per 100M. This
index stores the same tables as a CSR layout, 28 bytes a 64-bit code (measured: 2.7 GB at 100M, against 2.5 GB for
a flat scan), builds with one numpy sort per table (37-41 s at 100M) and answers one query in ~1.3 ms at 100M on one
core (flat: ~100 ms). See ``benchmarks/bench_index.py`` and :mod:`provenance.index.factory` for the figures.

Layout of the main ("base") segment, immutable once built:

* ``ids``: int64, sorted ascending (so a row number orders like its id, and membership is a binary search);
* ``codes``: the codes in the same row order (``[n, bits/8]`` uint8);
* per table ``t`` (substring ``t`` of ``b`` bits, most significant bits first): ``perm[t]``, the rows (uint32) sorted
  by their substring key, and either ``offsets[t]`` (``2**b + 1`` positions: bucket ``key`` is
  ``perm[t][offsets[t][key]:offsets[t][key + 1]]``) or, when ``2**b`` would dwarf the codes, the sorted keys
  themselves (buckets found by binary search).

A query probes, in every table, the ``sum(C(b, i), i <= nflip)`` buckets within ``nflip`` flips of its substring
(precomputed masks), gathers all those bucket ranges with a handful of vectorised numpy calls, ranks the candidates by
exact Hamming distance (``np.bitwise_count``) and keeps the k best by (distance, id). Pigeonhole, as for the faiss
index: a code within ``nhash * (nflip + 1) - 1`` bits of the query differs by at most ``nflip`` bits in one of the
``nhash`` disjoint substrings, so it is always a candidate -- :attr:`recall_radius`. Farther codes are returned only
when they are candidates too; the exact-scan segments below apply the same rule, so an answer is a function of the
stored codes alone, whichever segment holds them (a merge or a save/load never changes it).

Changes (LSM style), so the index keeps answering while it grows:

* ``add`` appends to a small in-memory *delta* (searched by an exact scan). When the delta passes
  ``max(min_delta, live / delta_fraction)`` codes it is frozen into a read-only *flat part* (still scanned exactly)
  and merged with the base into a new base; the merge runs in the adding thread *outside* the index lock (searches,
  adds and removals go on meanwhile; a batch added during a merge lands in the new delta), and only the final swap
  takes the write lock. A batch at least that large becomes a flat part of its own and is merged the same way (the
  bulk load of a rebuild). Measured at 100M: a full delta (1.56M codes) raises the p50 from 1.3 to ~6.5 ms, and its
  merge (a rebuild of the tables) takes 36-39 s.
* ``remove`` deletes from the delta directly and tombstones base and flat-part rows (a bitmap: filtered out of every
  result); tombstones are purged by the next merge, which is forced once they pass ``max(1024, live / 64)``.
* ``save`` writes only the live ids and codes, sorted by id (no tombstones, no tables: 16 bytes a 64-bit code);
  ``load`` checks them and rebuilds the tables (~32 s at 100M, sha256 included). File layout (little-endian): a
  40-byte header (magic, format version, bits, nhash, b, nflip, count), the ids (int64), then the codes. Never
  pickle.
"""

from __future__ import annotations

import itertools
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

from provenance.index.base import Hit, Index
from provenance.index.codes import MAX_ID, check_batch, check_bits, check_codes, check_ids
from provenance.index.errors import DuplicateIdError, IndexCorruptError, InvalidCodeError
from provenance.index.idset import IdSet
from provenance.index.multihash import default_multihash_params
from provenance.index.persist import Sidecar, write_index_files
from provenance.index.rwlock import ReadWriteLock
from provenance.logging import get_logger

__all__ = ["CompactMultiHashIndex"]

log = get_logger(__name__)

MAGIC = b"PVCMIH\x00\x00"
FILE_VERSION = 1
_HEADER = struct.Struct("<8sIIIIIIQ")  # magic, version, bits, nhash, b, nflip, reserved, count: 40 bytes
_MAX_B = 32  # substring keys are uint32 (and packed with a uint32 row into one uint64 to sort)
_MAX_ROWS = 2**32 - 1  # rows are uint32
_DENSE_MAX_B = 24  # offsets tables up to 2**24 + 1 entries (64 MiB a table at most)
_MIN_TOMBSTONES = 1024
_KEY_CHUNK = 1 << 22  # rows per chunk when extracting substring keys (bounds the temporary uint64 array)


# --- pure helpers ------------------------------------------------------------------------------------------------
def _flip_masks(b: int, nflip: int) -> np.ndarray:
    """Every b-bit mask with at most ``nflip`` bits set (the buckets a query probes around its own key)."""
    masks = [0]
    for r in range(1, nflip + 1):
        masks.extend(sum(1 << i for i in combo) for combo in itertools.combinations(range(b), r))
    return np.asarray(masks, dtype=np.uint32)


def _word_view(codes: np.ndarray) -> np.ndarray:
    """``codes`` ([n, w] uint8) viewed as the widest unsigned words dividing w: ``[n]`` when one word a row."""
    w = codes.shape[1]
    for dtype in (np.uint64, np.uint32, np.uint16, np.uint8):
        size = np.dtype(dtype).itemsize
        if w % size == 0:
            words = np.ascontiguousarray(codes).view(dtype).reshape(len(codes), w // size)
            return words[:, 0] if w == size else words
    raise AssertionError("unreachable: uint8 divides every width")


def _distances(words: np.ndarray, query_words: np.ndarray) -> np.ndarray:
    """Hamming distances of word rows to one query (same word view): uint8 for one word a row, else uint16."""
    counts = np.bitwise_count(np.bitwise_xor(words, query_words))
    if counts.ndim == 1:
        return counts
    return counts.sum(axis=1, dtype=np.uint16)


def _substring_keys(codes: np.ndarray, table: int, b: int) -> np.ndarray:
    """Key (uint32) of substring ``table`` -- bits ``[table*b, (table+1)*b)``, most significant first -- per row."""
    start, stop = table * b, (table + 1) * b
    first, last = start // 8, (stop - 1) // 8
    shift = np.uint64(8 * (last + 1) - stop)
    mask = np.uint64((1 << b) - 1)
    out = np.empty(len(codes), dtype=np.uint32)
    if codes.shape[1] == 8:  # one big-endian word a row: one shift and one mask
        words = np.ascontiguousarray(codes).view(">u8")[:, 0]
        for lo in range(0, len(codes), _KEY_CHUNK):
            out[lo : lo + _KEY_CHUNK] = (words[lo : lo + _KEY_CHUNK] >> np.uint64(64 - stop)) & mask
        return out
    for lo in range(0, len(codes), _KEY_CHUNK):
        chunk = codes[lo : lo + _KEY_CHUNK]
        acc = np.zeros(len(chunk), dtype=np.uint64)
        for byte in range(first, last + 1):
            acc <<= np.uint64(8)
            acc |= chunk[:, byte]
        acc >>= shift
        acc &= mask
        out[lo : lo + _KEY_CHUNK] = acc
    return out


def _top_k(d: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (distance, id) pairs, sorted; ``ids`` unique."""
    if len(d) > k:
        kth = np.partition(d, k - 1)[k - 1]
        close = np.flatnonzero(d <= kth)
        d, ids = d[close], ids[close]
    order = np.lexsort((ids, d))[:k]
    return d[order], ids[order]


def _merge_sorted(ids_a: np.ndarray, codes_a: np.ndarray, ids_b: np.ndarray,
                  codes_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two id-sorted (disjoint) row sets merged into one, in O(n + m log n) without re-sorting."""
    if not len(ids_b):
        return ids_a, codes_a
    if not len(ids_a):
        return ids_b, codes_b
    n, m = len(ids_a), len(ids_b)
    at_b = np.searchsorted(ids_a, ids_b) + np.arange(m)
    from_a = np.ones(n + m, dtype=bool)
    from_a[at_b] = False
    ids = np.empty(n + m, dtype=np.int64)
    codes = np.empty((n + m, codes_a.shape[1]), dtype=np.uint8)
    ids[at_b], codes[at_b] = ids_b, codes_b
    ids[from_a], codes[from_a] = ids_a, codes_a
    return ids, codes


def _sorted_by_id(ids: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return ids, codes
    order = np.argsort(ids, kind="stable")
    return ids[order], codes[order]


def _bit_is_set(bitmap: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return ((bitmap[rows >> 3] >> (rows & 7).astype(np.uint8)) & 1).astype(bool)


# --- segments ----------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class _Base:
    """The CSR-indexed main segment. Arrays are never written after the build; only the tombstone bitmap changes
    (under the index's write lock)."""

    ids: np.ndarray  # [n] int64, strictly increasing
    codes: np.ndarray  # [n, w] uint8
    words: np.ndarray  # codes as words (see _word_view)
    perm: np.ndarray  # [nhash, n] uint32: rows by substring key, per table
    offsets: np.ndarray | None  # [nhash, 2**b + 1] bucket starts (dense tables) ...
    keys: np.ndarray | None  # ... or [nhash, n] uint32 sorted keys (sparse tables)
    dead: np.ndarray | None = None  # tombstone bitmap, (n + 7) // 8 bytes, allocated at the first removal
    n_dead: int = 0

    @property
    def n(self) -> int:
        return len(self.ids)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where absent or tombstoned."""
        if not self.n:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ids, ids), self.n - 1)
        found = self.ids[pos] == ids
        if self.dead is not None and self.n_dead:
            found &= ~_bit_is_set(self.dead, pos)
        return np.where(found, pos, -1)

    def kill(self, rows: np.ndarray) -> None:
        if self.dead is None:
            self.dead = np.zeros((self.n + 7) // 8, dtype=np.uint8)
        np.bitwise_or.at(self.dead, rows >> 3, (1 << (rows & 7)).astype(np.uint8))
        self.n_dead += len(rows)

    def live_mask(self) -> np.ndarray | None:
        """Boolean mask of live rows, or None when every row is live."""
        if self.dead is None or not self.n_dead:
            return None
        return ~np.unpackbits(self.dead, count=self.n, bitorder="little").astype(bool)

    def max_live_id(self) -> int | None:
        tail = self.ids[max(0, self.n - self.n_dead - 1):]  # at most n_dead dead rows: one of these is live
        rows = np.arange(self.n - len(tail), self.n)
        if self.dead is not None and self.n_dead:
            tail = tail[~_bit_is_set(self.dead, rows)]
        return int(tail[-1]) if len(tail) else None


@dataclass(eq=False)
class _FlatPart:
    """A read-only segment searched by an exact scan: a frozen delta or a large batch, waiting to be merged."""

    ids: np.ndarray
    codes: np.ndarray
    words: np.ndarray
    sorted_ids: np.ndarray
    order: np.ndarray | None  # sorted_ids = ids[order]; None when ids are already sorted
    dead: np.ndarray | None = None  # boolean per row
    n_dead: int = 0

    @classmethod
    def of(cls, ids: np.ndarray, codes: np.ndarray) -> _FlatPart:
        order = None if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])) else np.argsort(ids, kind="stable")
        sorted_ids = ids if order is None else ids[order]
        return cls(ids, codes, _word_view(codes), sorted_ids, order)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        if not len(self.ids):
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.sorted_ids, ids), len(self.ids) - 1)
        found = self.sorted_ids[pos] == ids
        rows = pos if self.order is None else self.order[pos]
        if self.dead is not None:
            found &= ~self.dead[rows]
        return np.where(found, rows, -1)

    def kill(self, rows: np.ndarray) -> None:
        if self.dead is None:
            self.dead = np.zeros(len(self.ids), dtype=bool)
        self.dead[rows] = True
        self.n_dead += len(rows)

    def live(self) -> tuple[np.ndarray, np.ndarray]:
        if self.dead is None or not self.n_dead:
            return self.ids, self.codes
        keep = ~self.dead
        return self.ids[keep], self.codes[keep]


class _Delta:
    """Recent adds: growable arrays (amortised O(1) append) plus an id set for membership."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.clear()

    def append(self, ids: np.ndarray, codes: np.ndarray) -> None:
        need = self.n + len(ids)
        if need > len(self.ids):
            cap = max(need, 2 * len(self.ids), 64)
            grown_ids = np.empty(cap, dtype=np.int64)
            grown_codes = np.empty((cap, self.width), dtype=np.uint8)
            grown_ids[: self.n], grown_codes[: self.n] = self.ids[: self.n], self.codes[: self.n]
            self.ids, self.codes = grown_ids, grown_codes
        self.ids[self.n : need], self.codes[self.n : need] = ids, codes
        self.n = need
        self.members.add(ids)

    def remove(self, ids: np.ndarray) -> None:
        """Drop present ids (checked by the caller)."""
        keep = ~np.isin(self.ids[: self.n], ids)
        left = int(keep.sum())
        self.ids[:left] = self.ids[: self.n][keep]
        self.codes[:left] = self.codes[: self.n][keep]
        self.n = left
        self.members.remove(ids)

    def take(self) -> _FlatPart | None:
        """The contents as a flat part (copied to exact size); the delta is left empty."""
        if not self.n:
            return None
        part = _FlatPart.of(self.ids[: self.n].copy(), self.codes[: self.n].copy())
        self.clear()
        return part

    def clear(self) -> None:
        self.n = 0
        self.ids = np.empty(0, dtype=np.int64)
        self.codes = np.empty((0, self.width), dtype=np.uint8)
        self.members = IdSet()


# --- the index ---------------------------------------------------------------------------------------------------
class CompactMultiHashIndex(Index):
    """Hamming k-NN, exact within :attr:`recall_radius` of the query; multi-index hashing in numpy CSR tables."""

    kind = "compact-multihash"

    def __init__(self, bits: int, *, nhash: int | None = None, b: int | None = None, nflip: int | None = None,
                 min_delta: int = 16384, delta_fraction: int = 64) -> None:
        self._bits = check_bits(bits)
        defaults = default_multihash_params(bits)
        self._nhash = defaults["nhash"] if nhash is None else nhash
        self._b = defaults["b"] if b is None else b
        self._nflip = defaults["nflip"] if nflip is None else nflip
        checks = (("nhash", self._nhash, 1), ("b", self._b, 1), ("nflip", self._nflip, 0),
                  ("min_delta", min_delta, 1), ("delta_fraction", delta_fraction, 1))
        for name, value, least in checks:
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                kind = "non-negative" if least == 0 else "positive"
                raise InvalidCodeError(f"compact multi-hash {name} must be a {kind} integer, got {value!r}")
        if self._nhash * self._b > bits or self._b > _MAX_B or self._nflip > self._b:
            raise InvalidCodeError(f"compact multi-hash needs nhash * b <= bits, b <= {_MAX_B} and nflip <= b; got "
                                   f"nhash={self._nhash}, b={self._b}, nflip={self._nflip} for {bits} bits")
        self._min_delta = min_delta
        self._delta_fraction = delta_fraction
        self._masks = _flip_masks(self._b, self._nflip)
        self._lock = ReadWriteLock()
        self._merge_lock = threading.Lock()  # one merge at a time; taken without the readers-writer lock held
        self._merging = False
        self._removed_while_merging: list[np.ndarray] = []
        self._base = self._build(np.empty(0, dtype=np.int64), np.empty((0, self.code_size), dtype=np.uint8))
        self._parts: list[_FlatPart] = []
        self._delta = _Delta(self.code_size)

    # --- the Index interface ----------------------------------------------------------------------------------
    @property
    def bits(self) -> int:
        return self._bits

    @property
    def recall_radius(self) -> int:
        return min(self._bits, self._nhash * (self._nflip + 1) - 1)

    def params(self) -> dict[str, int]:
        return {"nhash": self._nhash, "b": self._b, "nflip": self._nflip}

    def __len__(self) -> int:
        with self._lock.read():
            return self._live_count()

    def __contains__(self, id_: object) -> bool:
        if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)) or not 0 <= int(id_) <= MAX_ID:
            return False
        with self._lock.read():
            return bool(self._present(np.array([int(id_)], dtype=np.int64))[0])

    def ids(self) -> np.ndarray:
        with self._lock.read():
            chunks = []
            live = self._base.live_mask()
            chunks.append(self._base.ids if live is None else self._base.ids[live])
            chunks.extend(part.live()[0] for part in self._parts)
            chunks.append(self._delta.ids[: self._delta.n])
        if len(chunks) == 2 and not len(chunks[1]):
            return chunks[0].copy()
        return np.sort(np.concatenate(chunks))

    def max_id(self) -> int | None:
        with self._lock.read():
            found = [self._base.max_live_id(), self._delta.members.max()]
            for part in self._parts:
                ids = part.live()[0]
                found.append(int(ids.max()) if len(ids) else None)
        return max((x for x in found if x is not None), default=None)

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        ids, codes = check_batch(ids, codes, self._bits)
        if not len(ids):
            return
        with self._lock.write():
            present = self._present(ids)
            if present.any():
                raise DuplicateIdError(f"ids already in the index: {ids[present][:10].tolist()}")
            if len(ids) >= self._merge_threshold():
                self._parts.append(_FlatPart.of(ids.copy(), codes.copy()))  # a bulk load: merged right away
            else:
                self._delta.append(ids, codes)
            due = self._merge_due()
        if due:
            self._merge_after_change()

    def remove(self, ids: np.ndarray) -> int:
        ids = np.unique(check_ids(ids))
        if not len(ids):
            return 0
        with self._lock.write():
            removed = 0
            rows = self._base.rows_of(ids)
            hit = rows >= 0
            if hit.any():
                self._base.kill(rows[hit])
                removed += int(hit.sum())
            for part in self._parts:
                rows = part.rows_of(ids)
                found = rows >= 0
                if found.any():
                    part.kill(rows[found])
                    removed += int(found.sum())
                    hit |= found
            if self._merging and hit.any():
                self._removed_while_merging.append(ids[hit])
            in_delta = ids[self._delta.members.contains(ids)]
            if len(in_delta):
                self._delta.remove(in_delta)
                removed += len(in_delta)
            due = self._merge_due()
        if due:
            self._merge_after_change()
        return removed

    def search(self, codes: np.ndarray, k: int) -> list[list[Hit]]:
        codes = check_codes(codes, self._bits)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidCodeError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        if not len(codes):
            return []
        query_words = _word_view(codes)
        query_keys = np.stack([_substring_keys(codes, t, self._b) for t in range(self._nhash)], axis=1)
        results = []
        with self._lock.read():
            for q in range(len(codes)):
                results.append(self._search_one(query_words[q], query_keys[q], k))
        return results

    # --- search ----------------------------------------------------------------------------------------------
    def _search_one(self, query_words: np.ndarray, query_keys: np.ndarray, k: int) -> list[Hit]:
        found_d, found_ids = [], []
        d, ids = self._search_base(query_words, query_keys, k)
        found_d.append(d)
        found_ids.append(ids)
        scans = [(p.ids, p.codes, p.words, p.dead if p.n_dead else None) for p in self._parts]
        if self._delta.n:
            delta_codes = self._delta.codes[: self._delta.n]
            scans.append((self._delta.ids[: self._delta.n], delta_codes, _word_view(delta_codes), None))
        for seg_ids, seg_codes, words, dead in scans:
            if len(seg_ids):
                d, ids = self._scan(seg_ids, seg_codes, words, dead, query_words, query_keys, k)
                found_d.append(d)
                found_ids.append(ids)
        if len(found_d) > 1:
            d, ids = _top_k(np.concatenate(found_d), np.concatenate(found_ids), k)
        else:
            d, ids = found_d[0], found_ids[0]
        return [Hit(int(i), int(x)) for i, x in zip(ids.tolist(), d.tolist(), strict=True)]

    def _scan(self, ids: np.ndarray, codes: np.ndarray, words: np.ndarray, dead: np.ndarray | None,
              query_words: np.ndarray, query_keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best (distance, id) among a flat segment's rows that the tables would make candidates.

        A stored code is a candidate of the tables when one of its substrings is within ``nflip`` bits of the
        query's; every code within the radius is one. Applying the same rule here makes results independent of
        where a code sits (delta, flat part or base), so a merge or a save/load never changes an answer.
        Rows are examined nearest first, in growing distance bands, until k candidates are settled.
        """
        bits, radius = self._bits, self.recall_radius
        d = _distances(words, query_words)  # a fresh array (uint8, or uint16 past 255 bits): bits + 1 fits
        if dead is not None:
            d[dead] = bits + 1  # beyond any real distance: never selected
        cum = np.cumsum(np.bincount(d, minlength=bits + 2)[: bits + 1])
        live = int(cum[-1])
        if not live:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        want = max(32 * k, 512)  # rows at the top of the distance order; ~5-10% are candidates beyond the radius
        chosen: list[np.ndarray] = []
        found = 0
        examined = -1  # rows up to this distance are done
        while True:
            limit = max(radius, int(np.searchsorted(cum, min(want, live))))
            band = np.flatnonzero(d <= limit) if examined < 0 else np.flatnonzero((d > examined) & (d <= limit))
            far = d[band] > radius
            if far.any():
                keep = ~far
                keep[far] = self._candidates(codes[band[far]], query_keys)
                band = band[keep]
            chosen.append(band)
            found += len(band)
            examined = limit
            if found >= k or int(cum[limit]) >= live:  # enough, or every live row examined
                rows = np.concatenate(chosen) if len(chosen) > 1 else band
                return _top_k(d[rows], ids[rows], k)
            want *= 4

    def _candidates(self, codes: np.ndarray, query_keys: np.ndarray) -> np.ndarray:
        """Whether each code shares a table bucket within ``nflip`` flips with the query."""
        found = np.zeros(len(codes), dtype=bool)
        for t in range(self._nhash):
            found |= np.bitwise_count(_substring_keys(codes, t, self._b) ^ query_keys[t]) <= self._nflip
        return found

    def _search_base(self, query_words: np.ndarray, query_keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        base = self._base
        n = base.n
        empty = np.empty(0, dtype=np.int64)
        if not n or base.n_dead == n:
            return empty, empty
        probes = query_keys[:, None] ^ self._masks[None, :]  # [nhash, nprobe] uint32
        if base.offsets is not None:
            tables = np.arange(self._nhash)[:, None]
            starts = base.offsets[tables, probes].astype(np.int64)
            lens = base.offsets[tables, probes + 1].astype(np.int64) - starts
        else:
            assert base.keys is not None
            starts = np.stack([np.searchsorted(base.keys[t], probes[t], "left") for t in range(self._nhash)])
            ends = np.stack([np.searchsorted(base.keys[t], probes[t], "right") for t in range(self._nhash)])
            starts = starts.astype(np.int64)
            lens = ends.astype(np.int64) - starts
        starts += (np.arange(self._nhash, dtype=np.int64) * n)[:, None]  # into the flattened [nhash * n] perm
        filled = lens.ravel() > 0
        starts, lens = starts.ravel()[filled], lens.ravel()[filled]
        if not len(lens):
            return empty, empty
        ends = np.cumsum(lens)
        positions = np.repeat(starts - (ends - lens), lens) + np.arange(int(ends[-1]), dtype=np.int64)
        rows = base.perm.reshape(-1)[positions]
        if base.dead is not None and base.n_dead:
            rows = rows[~_bit_is_set(base.dead, rows)]
        d = _distances(base.words[rows], query_words)
        # Rows order like ids (ids are sorted), so (distance << 32 | row) orders like (distance, id); a row is a
        # candidate in up to nhash tables, so the k * nhash smallest keys hold the k best distinct rows.
        packed = (d.astype(np.uint64) << np.uint64(32)) | rows.astype(np.uint64)
        keep = k * self._nhash
        if len(packed) > keep:
            packed = np.partition(packed, keep - 1)[:keep]
        best = np.unique(packed)[:k]
        return (best >> np.uint64(32)).astype(np.int64), base.ids[(best & np.uint64(0xFFFFFFFF)).astype(np.int64)]

    # --- bookkeeping (under the lock) -----------------------------------------------------------------------
    def _live_count(self) -> int:
        return (self._base.n - self._base.n_dead + sum(len(p.ids) - p.n_dead for p in self._parts)
                + self._delta.n)

    def _present(self, ids: np.ndarray) -> np.ndarray:
        mask = self._base.rows_of(ids) >= 0
        for part in self._parts:
            mask |= part.rows_of(ids) >= 0
        return mask | self._delta.members.contains(ids)

    def _merge_threshold(self) -> int:
        return max(self._min_delta, self._live_count() // self._delta_fraction)

    def _tombstones(self) -> int:
        return self._base.n_dead + sum(p.n_dead for p in self._parts)

    def _merge_due(self) -> bool:
        if self._delta.n > self._merge_threshold():
            return True
        if self._parts and not self._merging:
            return True
        return self._tombstones() > max(_MIN_TOMBSTONES, self._live_count() // 64)

    # --- merging ---------------------------------------------------------------------------------------------
    def _merge_after_change(self) -> None:
        """The merge an add or remove made due. The change itself is already in (delta, flat part or tombstone,
        all searched), so a merge that runs out of memory is logged, not raised: the next change retries it."""
        try:
            self.merge(wait=False)
        except MemoryError:
            log.warning("compact multi-hash merge ran out of memory; the delta stays unmerged",
                        live=len(self), delta=self._delta.n)

    def merge(self, *, wait: bool = True) -> bool:
        """Fold the delta and flat parts into the base and purge tombstones; returns whether a merge ran.

        Runs in the calling thread; the heavy part (sorting the tables) holds no lock that searches need. With
        ``wait=False`` it returns at once when another thread is merging (that thread will pick up what is due).
        """
        if not self._merge_lock.acquire(blocking=wait):
            return False
        try:
            ran = False
            while True:
                with self._lock.write():
                    part = self._delta.take()
                    if part is not None:
                        self._parts.append(part)
                    parts = list(self._parts)
                    if not parts and not self._tombstones():
                        return ran
                    base = self._base
                    base_live = base.live_mask()
                    part_rows = [p.live() for p in parts]
                    self._merging = True
                    self._removed_while_merging = []
                fresh = None
                try:
                    fresh = self._merged(base, base_live, part_rows)
                finally:
                    with self._lock.write():
                        self._merging = False
                        removed, self._removed_while_merging = self._removed_while_merging, []
                        if fresh is not None:
                            self._swap(fresh, parts, removed)
                ran = True
                with self._lock.read():
                    if not self._merge_due():
                        return ran
        finally:
            self._merge_lock.release()

    def _merged(self, base: _Base, base_live: np.ndarray | None,
                part_rows: list[tuple[np.ndarray, np.ndarray]]) -> _Base:
        """A new base of the live base rows and the given flat parts' live rows (no lock held)."""
        ids, codes = base.ids, base.codes
        if base_live is not None:
            ids, codes = ids[base_live], codes[base_live]
        if part_rows:
            if len(part_rows) == 1:
                extra_ids, extra_codes = part_rows[0]
            else:
                extra_ids = np.concatenate([p[0] for p in part_rows])
                extra_codes = np.concatenate([p[1] for p in part_rows])
            extra_ids, extra_codes = _sorted_by_id(extra_ids, extra_codes)
            ids, codes = _merge_sorted(ids, codes, extra_ids, extra_codes)
        return self._build(ids, codes)

    def _swap(self, fresh: _Base, merged_parts: list[_FlatPart], removed: list[np.ndarray]) -> None:
        """Install a merged base (under the write lock); ids removed during the merge become its tombstones."""
        if removed:
            rows = fresh.rows_of(np.unique(np.concatenate(removed)))
            rows = rows[rows >= 0]
            if len(rows):
                fresh.kill(rows)
        self._base = fresh
        self._parts = [p for p in self._parts if not any(p is q for q in merged_parts)]

    def _build(self, ids: np.ndarray, codes: np.ndarray) -> _Base:
        """CSR tables over id-sorted rows."""
        n = len(ids)
        if n > _MAX_ROWS:
            raise InvalidCodeError(f"a compact multi-hash index holds at most {_MAX_ROWS} codes, got {n}")
        dense = self._b <= _DENSE_MAX_B and (1 << self._b) <= max(4 * n, 1 << 16)
        perm = np.empty((self._nhash, n), dtype=np.uint32)
        offsets = np.empty((self._nhash, (1 << self._b) + 1), dtype=np.uint32) if dense else None
        keys = None if dense else np.empty((self._nhash, n), dtype=np.uint32)
        rows = np.arange(n, dtype=np.uint64)
        for t in range(self._nhash):
            packed = _substring_keys(codes, t, self._b).astype(np.uint64)
            packed <<= np.uint64(32)
            packed |= rows
            packed.sort()  # by key, then row: buckets list rows (hence ids) in increasing order
            perm[t] = packed  # the low 32 bits: the row
            packed >>= np.uint64(32)
            if offsets is not None:
                offsets[t, 0] = 0
                offsets[t, 1:] = np.cumsum(np.bincount(packed.view(np.int64), minlength=1 << self._b))
            else:
                assert keys is not None
                keys[t] = packed
            del packed
        return _Base(ids, codes, _word_view(codes), perm, offsets, keys)

    # --- persistence -----------------------------------------------------------------------------------------
    def _live_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every live id (sorted) and its code (under the read lock; the arrays are not written afterwards)."""
        ids, codes = self._base.ids, self._base.codes
        live = self._base.live_mask()
        if live is not None:
            ids, codes = ids[live], codes[live]
        extra = [p.live() for p in self._parts]
        if self._delta.n:
            extra.append((self._delta.ids[: self._delta.n].copy(), self._delta.codes[: self._delta.n].copy()))
        if extra:
            extra_ids, extra_codes = _sorted_by_id(np.concatenate([e[0] for e in extra]),
                                                   np.concatenate([e[1] for e in extra]))
            ids, codes = _merge_sorted(ids, codes, extra_ids, extra_codes)
        return ids, codes

    def save(self, path: Path) -> None:
        path = Path(path)
        with self._lock.read():
            ids, codes = self._live_rows()
        header = _HEADER.pack(MAGIC, FILE_VERSION, self._bits, self._nhash, self._b, self._nflip, 0, len(ids))
        parts = [np.frombuffer(header, dtype=np.uint8), ids.astype("<i8", copy=False), codes]
        write_index_files(path, parts, kind=self.kind, bits=self._bits, count=len(ids),
                          max_id=int(ids[-1]) if len(ids) else None, params=self.params(), faiss_version="")

    @classmethod
    def _from_file(cls, path: Path, sidecar: object, data: np.ndarray) -> Self:
        assert isinstance(sidecar, Sidecar)
        params = dict(sidecar.params)
        try:
            unknown = set(params) - {"nhash", "b", "nflip"}
            if unknown:
                raise ValueError(f"unknown compact multi-hash parameters {sorted(unknown)}")
            obj = cls(sidecar.bits, **params)
        except (InvalidCodeError, TypeError, ValueError) as exc:
            raise IndexCorruptError(f"{path}: sidecar parameters are not valid: {exc}") from exc
        if len(data) < _HEADER.size:
            raise IndexCorruptError(f"{path}: cannot read the index: {len(data)} bytes is shorter than its header")
        magic, version, bits, nhash, b, nflip, _, count = _HEADER.unpack(data[: _HEADER.size].tobytes())
        if magic != MAGIC:
            raise IndexCorruptError(f"{path}: cannot read the index: not a compact multi-hash file (bad magic)")
        if version != FILE_VERSION:
            raise IndexCorruptError(f"{path}: cannot read the index: file version {version} is not supported")
        if (bits, nhash, b, nflip) != (sidecar.bits, obj._nhash, obj._b, obj._nflip):
            raise IndexCorruptError(f"{path}: header (bits={bits}, nhash={nhash}, b={b}, nflip={nflip}) does not "
                                    f"match its sidecar (bits={sidecar.bits}, {obj.params()})")
        width = bits // 8
        if len(data) != _HEADER.size + count * (8 + width):
            raise IndexCorruptError(f"{path}: cannot read the index: {len(data)} bytes do not hold the {count} codes "
                                    f"its header announces")
        if count != sidecar.count:
            raise IndexCorruptError(f"{path}: holds {count} codes, but its sidecar says {sidecar.count}")
        body = data[_HEADER.size :]
        ids = body[: 8 * count].view("<i8").astype(np.int64, copy=False)
        codes = body[8 * count :].reshape(count, width)
        if count and (int(ids[0]) < 0 or not bool(np.all(ids[1:] > ids[:-1]))):
            raise IndexCorruptError(f"{path}: ids are negative, repeated or out of order")
        if (int(ids[-1]) if count else None) != sidecar.max_id:
            raise IndexCorruptError(f"{path}: largest id does not match its sidecar ({sidecar.max_id})")
        obj._base = obj._build(ids, codes)
        return obj
