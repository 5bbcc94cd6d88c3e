"""Proof generation (RFC 6962 §2.1.1 PATH, §2.1.2 SUBPROOF) over any store of perfect-subtree hashes.

A *perfect node* ``(level, index)`` is the root of the complete subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``; once its last leaf is appended it never changes. Every hash a proof
needs is either such a node or the hash of a right-edge range that is not a power of two wide, which is composed here
from the O(log n) perfect nodes that tile it.

Each operation first *plans* the perfect nodes it needs (pure arithmetic; at most ``2 * size.bit_length()`` nodes,
since only the first right-border sibling can be a composed range), then fetches them in one batch when the source
offers :meth:`BatchNodeSource.perfect_hashes` (the SQL log does: one round trip per proof) or one at a time otherwise,
then composes. No I/O here; :class:`MemoryMerkleLog` is the in-memory source used by tests and benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from provenance.errors import IndexOutOfRangeError, LogError
from provenance.translog.hashing import EMPTY_ROOT, leaf_hash, node_hash

__all__ = [
    "BatchNodeSource",
    "MemoryMerkleLog",
    "Node",
    "NodeSource",
    "consistency_nodes",
    "consistency_proof",
    "inclusion_nodes",
    "inclusion_proof",
    "perfect_nodes_of_range",
    "root_hash",
]

Node = tuple[int, int]
"""``(level, index)`` of a perfect subtree."""


@runtime_checkable
class NodeSource(Protocol):
    """Read access to a log's perfect-subtree hashes."""

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        ...

    def perfect_hash(self, level: int, index: int) -> bytes:
        """Hash of the perfect subtree over leaves ``[index * 2**level, (index + 1) * 2**level)``."""
        ...


@runtime_checkable
class BatchNodeSource(NodeSource, Protocol):
    """A node source that can fetch many nodes at once (e.g. in one SQL query)."""

    def perfect_hashes(self, nodes: Sequence[Node]) -> Mapping[Node, bytes]:
        """Hashes of all ``nodes`` (each must be complete at the current size)."""
        ...


# --- planning ---------------------------------------------------------------------------------------------------------
def perfect_nodes_of_range(start: int, end: int) -> list[Node]:
    """The perfect nodes tiling leaves ``[start, end)``, left to right, largest first.

    ``start`` must be a multiple of the largest power of two not above ``end - start`` (true of every range in RFC
    6962's recursion, whose subtrees start on a ``2**k`` boundary and are at most ``2**k`` wide). The range's Merkle
    hash is the right fold of these nodes: ``h0 ⊕ (h1 ⊕ (h2 ⊕ ...))``.
    """
    if end <= start:
        raise ValueError(f"empty range [{start}, {end})")
    nodes: list[Node] = []
    pos, width = start, end - start
    while width:
        level = width.bit_length() - 1
        if pos & ((1 << level) - 1):
            raise ValueError(f"range [{start}, {end}) is not aligned for RFC 6962 decomposition")
        nodes.append((level, pos >> level))
        pos += 1 << level
        width -= 1 << level
    return nodes


def _split(width: int) -> int:
    """Largest power of two strictly below ``width`` (``width >= 2``): RFC 6962's ``k``."""
    return 1 << ((width - 1).bit_length() - 1)


def inclusion_nodes(index: int, size: int) -> list[list[Node]]:
    """The audit path of leaf ``index`` in a tree of ``size`` as perfect-node tilings, one per hash, leaf-side first.

    Each tiling is one range of :func:`perfect_nodes_of_range`; a hash of a tiling of more than one node is composed.
    Arguments are assumed valid (``0 <= index < size``).
    """
    plan: list[list[Node]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            plan.append(perfect_nodes_of_range(lo + k, hi))
            hi = lo + k
        else:
            plan.append(perfect_nodes_of_range(lo, lo + k))
            lo += k
    plan.reverse()
    return plan


def consistency_nodes(size1: int, size2: int) -> list[list[Node]]:
    """SUBPROOF(size1, D[0:size2], true) as perfect-node tilings, one per hash, in proof order.

    Arguments are assumed valid (``0 < size1 < size2``).
    """
    plan: list[list[Node]] = []
    lo, hi, m, complete = 0, size2, size1, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            plan.append(perfect_nodes_of_range(lo + k, hi))
            hi = lo + k
        else:
            plan.append(perfect_nodes_of_range(lo, lo + k))
            lo += k
            m -= k
            complete = False
    if not complete:
        plan.append(perfect_nodes_of_range(lo, hi))
    plan.reverse()
    return plan


# --- fetching and composing -------------------------------------------------------------------------------------------
def _fetch(src: NodeSource, nodes: Iterable[Node]) -> Mapping[Node, bytes]:
    wanted = list(dict.fromkeys(nodes))
    if isinstance(src, BatchNodeSource):
        got = src.perfect_hashes(wanted)
        missing = [n for n in wanted if n not in got]
        if missing:
            raise LogError(f"node source is missing perfect nodes {missing[:5]} (of {len(missing)})")
        return got
    return {n: src.perfect_hash(*n) for n in wanted}


def _compose(tiling: Sequence[Node], hashes: Mapping[Node, bytes]) -> bytes:
    h = hashes[tiling[-1]]
    for node in reversed(tiling[:-1]):
        h = node_hash(hashes[node], h)
    return h


def _evaluate(src: NodeSource, plan: list[list[Node]]) -> list[bytes]:
    hashes = _fetch(src, (n for tiling in plan for n in tiling))
    return [_compose(tiling, hashes) for tiling in plan]


def _check_size(src: NodeSource, size: int) -> None:
    if size < 0:
        raise IndexOutOfRangeError(f"tree size must not be negative, got {size}")
    if size > src.size:
        raise IndexOutOfRangeError(f"tree size {size} is larger than the log, which has {src.size} leaves")


# --- public generation API --------------------------------------------------------------------------------------------
def root_hash(src: NodeSource, size: int) -> bytes:
    """Merkle tree hash of the first ``size`` leaves (``EMPTY_ROOT`` for 0)."""
    _check_size(src, size)
    if size == 0:
        return EMPTY_ROOT
    return _evaluate(src, [perfect_nodes_of_range(0, size)])[0]


def inclusion_proof(src: NodeSource, index: int, size: int) -> list[bytes]:
    """Audit path of leaf ``index`` in the tree of the first ``size`` leaves, leaf-side first."""
    _check_size(src, size)
    if not 0 <= index < size:
        raise IndexOutOfRangeError(f"leaf index {index} is out of range for a tree of size {size}")
    return _evaluate(src, inclusion_nodes(index, size))


def consistency_proof(src: NodeSource, size1: int, size2: int) -> list[bytes]:
    """Proof that the tree of ``size1`` leaves is a prefix of the tree of ``size2`` leaves.

    Empty when ``size1`` is 0 or equal to ``size2`` (nothing to prove beyond comparing roots).
    """
    _check_size(src, size2)
    if size1 < 0:
        raise IndexOutOfRangeError(f"tree size must not be negative, got {size1}")
    if size1 > size2:
        raise IndexOutOfRangeError(f"size1 {size1} is larger than size2 {size2}")
    if size1 == 0 or size1 == size2:
        return []
    return _evaluate(src, consistency_nodes(size1, size2))


# --- in-memory log ----------------------------------------------------------------------------------------------------
class MemoryMerkleLog:
    """An append-only Merkle log held in memory, storing every perfect node as it completes.

    ``levels[l][i]`` is perfect node ``(l, i)``; appending leaf ``i`` adds ``(0, i)`` and each parent it completes,
    so the log holds about ``2n`` hashes.
    """

    def __init__(self, leaf_data: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for data in leaf_data:
            self.append(data)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf_data: bytes) -> int:
        """Append a leaf holding ``leaf_data``; return its index."""
        return self.append_hash(leaf_hash(leaf_data))

    def append_hash(self, hash_: bytes) -> int:
        """Append a leaf by its (already computed) leaf hash; return its index."""
        levels = self._levels
        index = len(levels[0])
        levels[0].append(hash_)
        level, i, h = 0, index, hash_
        while i & 1:
            h = node_hash(levels[level][i - 1], h)
            level += 1
            i >>= 1
            if level == len(levels):
                levels.append([])
            levels[level].append(h)
        return index

    def perfect_hash(self, level: int, index: int) -> bytes:
        try:
            if level < 0 or index < 0:
                raise IndexError
            return self._levels[level][index]
        except IndexError:
            raise IndexOutOfRangeError(
                f"perfect node (level {level}, index {index}) is not complete in a log of {self.size} leaves"
            ) from None

    def perfect_hashes(self, nodes: Sequence[Node]) -> dict[Node, bytes]:
        return {n: self.perfect_hash(*n) for n in nodes}

    def leaf_hash(self, index: int) -> bytes:
        return self.perfect_hash(0, index)

    def root(self, size: int | None = None) -> bytes:
        return root_hash(self, self.size if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(self, index, self.size if size is None else size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        return consistency_proof(self, size1, self.size if size2 is None else size2)
