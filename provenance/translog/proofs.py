"""Pure verifiers for RFC 9162 §2.1.3 inclusion proofs and §2.1.4 consistency proofs.

Inputs are plain values (sizes, hashes, a sequence of proof hashes), so an auditor needs nothing but this module and
:mod:`hashing`. Checks run in this order, each with its own error:

1. sizes and indices (:class:`IndexOutOfRangeError`),
2. hash lengths and the number of proof hashes (:class:`ProofShapeError`),
3. the recomputed root against the claimed one (:class:`RootMismatchError`).
"""

from __future__ import annotations

from collections.abc import Sequence

from provenance.errors import IndexOutOfRangeError, ProofShapeError, RootMismatchError
from provenance.translog.hashing import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = [
    "consistency_proof_length",
    "inclusion_proof_length",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]


# --- expected proof shapes --------------------------------------------------------------------------------------------
def _inclusion_shape(index: int, size: int) -> tuple[int, int]:
    """(inner, border) for the audit path of ``index`` in a tree of ``size`` leaves (``index < size``).

    ``inner`` levels lie below the point where the paths to ``index`` and to the last leaf ``size - 1`` split; there
    every level contributes a sibling. Above it, the path climbs the tree's right border, and only the levels where
    ``index`` is a right child (a set bit of ``index >> inner``) contribute a left sibling.
    """
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner, border


def inclusion_proof_length(index: int, size: int) -> int:
    """Number of hashes in the inclusion proof of leaf ``index`` in a tree of ``size`` leaves."""
    _check_index(index, size)
    inner, border = _inclusion_shape(index, size)
    return inner + border


def consistency_proof_length(size1: int, size2: int) -> int:
    """Number of hashes in the consistency proof from ``size1`` to ``size2`` leaves."""
    _check_sizes(size1, size2)
    if size1 == 0 or size1 == size2:
        return 0
    # Below the largest perfect subtree ending at size1 the old tree's right edge is implicit; the rest is the
    # inclusion path of that subtree in the new tree, plus the subtree's own hash unless it is the whole old tree.
    shift = (size1 & -size1).bit_length() - 1
    inner, border = _inclusion_shape((size1 - 1) >> shift, ((size2 - 1) >> shift) + 1)
    seed = 0 if size1 == 1 << shift else 1
    return seed + inner + border


# --- argument checks --------------------------------------------------------------------------------------------------
def _check_index(index: int, size: int) -> None:
    if size < 0:
        raise IndexOutOfRangeError(f"tree size must not be negative, got {size}")
    if index < 0:
        raise IndexOutOfRangeError(f"leaf index must not be negative, got {index}")
    if index >= size:
        raise IndexOutOfRangeError(f"leaf index {index} is out of range for a tree of size {size}")


def _check_sizes(size1: int, size2: int) -> None:
    if size1 < 0 or size2 < 0:
        raise IndexOutOfRangeError(f"tree sizes must not be negative, got size1={size1}, size2={size2}")
    if size1 > size2:
        raise IndexOutOfRangeError(
            f"size1 {size1} is larger than size2 {size2}: "
            "a consistency proof only runs from an older tree to a newer one"
        )


def _hash_arg(value: bytes, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProofShapeError(f"{what} must be bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofShapeError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _proof_arg(proof: Sequence[bytes], expected: int, what: str) -> list[bytes]:
    if isinstance(proof, (bytes, bytearray, memoryview, str)):
        raise ProofShapeError(f"{what} must be a sequence of hashes, not a single {type(proof).__name__}")
    if len(proof) != expected:
        raise ProofShapeError(f"{what} must have {expected} hashes, got {len(proof)}")
    return [_hash_arg(h, f"{what} hash [{i}]") for i, h in enumerate(proof)]


# --- inclusion --------------------------------------------------------------------------------------------------------
def root_from_inclusion_proof(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bytes:
    """Root of the tree of ``size`` leaves implied by ``leaf_hash`` at ``index`` and its audit path ``proof``.

    Raises :class:`IndexOutOfRangeError` when ``index`` is not below ``size`` and :class:`ProofShapeError` when a
    hash has the wrong length or ``proof`` has the wrong number of hashes for that index and size.
    """
    _check_index(index, size)
    leaf = _hash_arg(leaf_hash, "leaf hash")
    inner, border = _inclusion_shape(index, size)
    what = f"inclusion proof for index {index} in tree of size {size}"
    path = _proof_arg(proof, inner + border, what)

    h = leaf
    for level, sibling in enumerate(path[:inner]):
        h = node_hash(sibling, h) if (index >> level) & 1 else node_hash(h, sibling)
    # On the right border the running hash is always the right child.
    for sibling in path[inner:]:
        h = node_hash(sibling, h)
    return h


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves whose root is ``root``.

    Returns ``None`` on success; raises a :class:`~provenance.errors.ProofError` subclass otherwise.
    """
    _check_index(index, size)
    expected_root = _hash_arg(root, "root hash")
    got = root_from_inclusion_proof(index, size, leaf_hash, proof)
    if got != expected_root:
        raise RootMismatchError(
            f"inclusion proof for index {index} in tree of size {size} recomputes root {got.hex()}, "
            f"but the claimed root is {expected_root.hex()}"
        )


# --- consistency ------------------------------------------------------------------------------------------------------
def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size1`` leaves with root ``root1`` is a prefix of the one of ``size2`` with ``root2``.

    Edge cases: ``size1 == size2`` needs an empty proof and equal roots; ``size1 == 0`` needs an empty proof and
    ``root1`` equal to the empty-tree hash (every tree extends the empty one). Returns ``None`` on success; raises a
    :class:`~provenance.errors.ProofError` subclass otherwise.
    """
    _check_sizes(size1, size2)
    old_root = _hash_arg(root1, "root1")
    new_root = _hash_arg(root2, "root2")
    what = f"consistency proof from size {size1} to size {size2}"
    path = _proof_arg(proof, consistency_proof_length(size1, size2), what)

    if size1 == 0:
        if old_root != EMPTY_ROOT:
            raise RootMismatchError(
                f"root1 of the empty tree must be {EMPTY_ROOT.hex()} (SHA-256 of nothing), got {old_root.hex()}"
            )
        return
    if size1 == size2:
        if old_root != new_root:
            raise RootMismatchError(
                f"trees of equal size {size1} must have equal roots, got {old_root.hex()} and {new_root.hex()}"
            )
        return

    # Work in units of the largest perfect subtree ending at size1: its hash seeds both running roots.
    shift = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> shift
    inner, _border = _inclusion_shape(index, ((size2 - 1) >> shift) + 1)
    if size1 == 1 << shift:
        seed, rest = old_root, path
    else:
        seed, rest = path[0], path[1:]

    old_h = new_h = seed
    for level, sibling in enumerate(rest[:inner]):
        if (index >> level) & 1:
            # A left sibling lies inside the old tree too.
            old_h = node_hash(sibling, old_h)
            new_h = node_hash(sibling, new_h)
        else:
            # A right sibling only exists in the new tree.
            new_h = node_hash(new_h, sibling)
    for sibling in rest[inner:]:
        old_h = node_hash(sibling, old_h)
        new_h = node_hash(sibling, new_h)

    if old_h != old_root:
        raise RootMismatchError(f"{what} recomputes root1 {old_h.hex()}, but the claimed root1 is {old_root.hex()}")
    if new_h != new_root:
        raise RootMismatchError(f"{what} recomputes root2 {new_h.hex()}, but the claimed root2 is {new_root.hex()}")
