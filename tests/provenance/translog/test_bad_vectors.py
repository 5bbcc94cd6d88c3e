"""Named bad inputs: each must fail with the specific error class and a message that says what was wrong."""

from __future__ import annotations

import pytest

from provenance.errors import IndexOutOfRangeError, ProofShapeError, RootMismatchError
from provenance.translog.hashing import EMPTY_ROOT, leaf_hash
from provenance.translog.proofs import (
    consistency_proof_length,
    inclusion_proof_length,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from provenance.translog.tree import MemoryMerkleLog, consistency_proof, inclusion_proof, root_hash

from .vectors import LEAVES, ROOTS, SOME_HASH


@pytest.fixture(scope="module")
def log8() -> MemoryMerkleLog:
    return MemoryMerkleLog(LEAVES)


@pytest.fixture(scope="module")
def other8() -> MemoryMerkleLog:
    """A different tree of the same size: the leaves in reverse order."""
    return MemoryMerkleLog(reversed(LEAVES))


# --- inclusion -------------------------------------------------------------------------------------------------------
def test_wrong_length_inclusion_proof(log8: MemoryMerkleLog) -> None:
    proof = log8.inclusion_proof(5, 8)
    msg = r"inclusion proof for index 5 in tree of size 8 must have 3 hashes, got 2"
    with pytest.raises(ProofShapeError, match=msg):
        verify_inclusion(5, 8, log8.leaf_hash(5), proof[:2], ROOTS[7])
    with pytest.raises(ProofShapeError, match=r"must have 3 hashes, got 4"):
        verify_inclusion(5, 8, log8.leaf_hash(5), [*proof, SOME_HASH], ROOTS[7])


def test_index_not_below_size(log8: MemoryMerkleLog) -> None:
    with pytest.raises(IndexOutOfRangeError, match=r"leaf index 8 is out of range for a tree of size 8"):
        verify_inclusion(8, 8, log8.leaf_hash(7), log8.inclusion_proof(7, 8), ROOTS[7])
    with pytest.raises(IndexOutOfRangeError, match=r"leaf index must not be negative, got -1"):
        verify_inclusion(-1, 8, log8.leaf_hash(7), log8.inclusion_proof(7, 8), ROOTS[7])
    with pytest.raises(IndexOutOfRangeError, match=r"leaf index 8 is out of range for a tree of size 8"):
        log8.inclusion_proof(8, 8)


def test_tampered_leaf(log8: MemoryMerkleLog) -> None:
    tampered = leaf_hash(LEAVES[3] + b"!")
    msg = r"index 3 in tree of size 8 recomputes root [0-9a-f]{64}, but the claimed"
    with pytest.raises(RootMismatchError, match=msg):
        verify_inclusion(3, 8, tampered, log8.inclusion_proof(3, 8), ROOTS[7])


def test_forged_root(log8: MemoryMerkleLog) -> None:
    with pytest.raises(RootMismatchError, match=SOME_HASH.hex()):
        verify_inclusion(3, 8, log8.leaf_hash(3), log8.inclusion_proof(3, 8), SOME_HASH)


def test_bad_hash_lengths(log8: MemoryMerkleLog) -> None:
    proof = log8.inclusion_proof(2, 8)
    with pytest.raises(ProofShapeError, match=r"leaf hash must be 32 bytes, got 31"):
        verify_inclusion(2, 8, log8.leaf_hash(2)[:31], proof, ROOTS[7])
    with pytest.raises(ProofShapeError, match=r"root hash must be 32 bytes, got 0"):
        verify_inclusion(2, 8, log8.leaf_hash(2), proof, b"")
    with pytest.raises(ProofShapeError, match=r"hash \[1\] must be 32 bytes, got 33"):
        verify_inclusion(2, 8, log8.leaf_hash(2), [proof[0], proof[1] + b"\x00", proof[2]], ROOTS[7])
    with pytest.raises(ProofShapeError, match=r"must be bytes, got str"):
        verify_inclusion(2, 8, log8.leaf_hash(2), [h.hex() for h in proof], ROOTS[7])  # type: ignore[misc]
    with pytest.raises(ProofShapeError, match=r"sequence of hashes"):
        verify_inclusion(2, 8, log8.leaf_hash(2), b"".join(proof), ROOTS[7])  # type: ignore[arg-type]


def test_bounds_checked_before_shape() -> None:
    # Index out of range wins over a malformed proof and malformed hashes.
    with pytest.raises(IndexOutOfRangeError):
        verify_inclusion(9, 8, b"x", [b"y"], b"z")
    with pytest.raises(IndexOutOfRangeError):
        verify_consistency(9, 8, [b"y"], b"x", b"z")


def test_inclusion_in_empty_tree() -> None:
    with pytest.raises(IndexOutOfRangeError, match=r"leaf index 0 is out of range for a tree of size 0"):
        verify_inclusion(0, 0, leaf_hash(b""), [], EMPTY_ROOT)
    with pytest.raises(IndexOutOfRangeError):
        root_from_inclusion_proof(0, 0, leaf_hash(b""), [])
    with pytest.raises(IndexOutOfRangeError):
        MemoryMerkleLog().inclusion_proof(0, 0)


def test_single_leaf_tree() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(0, 1, h, [], h)
    with pytest.raises(ProofShapeError, match=r"must have 0 hashes, got 1"):
        verify_inclusion(0, 1, h, [h], h)
    with pytest.raises(RootMismatchError):
        verify_inclusion(0, 1, h, [], leaf_hash(b"other"))


# --- consistency ---------------------------------------------------------------------------------------------------
def test_inconsistent_checkpoints(log8: MemoryMerkleLog, other8: MemoryMerkleLog) -> None:
    """A proof between roots of two different trees fails, whichever tree made the proof."""
    for maker in (log8, other8):
        proof = maker.consistency_proof(3, 8)
        with pytest.raises(RootMismatchError, match=r"consistency proof from size 3 to size 8 recomputes root"):
            verify_consistency(3, 8, proof, log8.root(3), other8.root(8))
    # Same sizes, different roots: "equal size, different root" is a fork.
    with pytest.raises(RootMismatchError, match=r"trees of equal size 8 must have equal roots"):
        verify_consistency(8, 8, [], log8.root(8), other8.root(8))


def test_size1_greater_than_size2(log8: MemoryMerkleLog) -> None:
    with pytest.raises(IndexOutOfRangeError, match=r"size1 5 is larger than size2 4"):
        verify_consistency(5, 4, [], ROOTS[4], ROOTS[3])
    with pytest.raises(IndexOutOfRangeError, match=r"size1 5 is larger than size2 4"):
        log8.consistency_proof(5, 4)


def test_wrong_length_consistency_proof(log8: MemoryMerkleLog) -> None:
    proof = log8.consistency_proof(6, 8)
    with pytest.raises(ProofShapeError, match=r"consistency proof from size 6 to size 8 must have 3 hashes, got 2"):
        verify_consistency(6, 8, proof[1:], ROOTS[5], ROOTS[7])
    with pytest.raises(ProofShapeError, match=r"consistency proof from size 1 to size 2 must have 1 hashes, got 0"):
        verify_consistency(1, 2, [], ROOTS[0], ROOTS[1])


def test_consistency_from_empty_tree() -> None:
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 8, [], EMPTY_ROOT, ROOTS[7])
    assert MemoryMerkleLog(LEAVES).consistency_proof(0, 8) == []
    with pytest.raises(ProofShapeError, match=r"from size 0 to size 8 must have 0 hashes, got 1"):
        verify_consistency(0, 8, [SOME_HASH], EMPTY_ROOT, ROOTS[7])
    with pytest.raises(RootMismatchError, match=r"root1 of the empty tree must be"):
        verify_consistency(0, 8, [], SOME_HASH, ROOTS[7])


def test_consistency_same_size() -> None:
    verify_consistency(8, 8, [], ROOTS[7], ROOTS[7])
    with pytest.raises(ProofShapeError, match=r"from size 8 to size 8 must have 0 hashes, got 1"):
        verify_consistency(8, 8, [ROOTS[7]], ROOTS[7], ROOTS[7])


def test_consistency_bad_root_lengths() -> None:
    with pytest.raises(ProofShapeError, match=r"root1 must be 32 bytes, got 12"):
        verify_consistency(1, 1, [], b"don't care 1", b"don't care 2")
    with pytest.raises(ProofShapeError, match=r"root2 must be 32 bytes, got 9"):
        verify_consistency(1, 2, [ROOTS[0]], ROOTS[0], b"WrongRoot")


def test_negative_sizes() -> None:
    with pytest.raises(IndexOutOfRangeError, match="must not be negative"):
        verify_consistency(-1, 2, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(IndexOutOfRangeError, match="must not be negative"):
        inclusion_proof_length(0, -1)


# --- generation bounds ---------------------------------------------------------------------------------------------
def test_generation_beyond_log_size(log8: MemoryMerkleLog) -> None:
    with pytest.raises(IndexOutOfRangeError, match=r"tree size 9 is larger than the log, which has 8 leaves"):
        root_hash(log8, 9)
    with pytest.raises(IndexOutOfRangeError, match=r"tree size 9 is larger"):
        inclusion_proof(log8, 0, 9)
    with pytest.raises(IndexOutOfRangeError, match=r"tree size 9 is larger"):
        consistency_proof(log8, 1, 9)
    with pytest.raises(IndexOutOfRangeError, match=r"not complete"):
        log8.perfect_hash(3, 1)


def test_expected_lengths() -> None:
    assert inclusion_proof_length(5, 8) == 3
    assert inclusion_proof_length(0, 1) == 0
    assert inclusion_proof_length(6, 7) == 2
    assert consistency_proof_length(6, 8) == 3
    assert consistency_proof_length(4, 8) == 1
    assert consistency_proof_length(0, 8) == 0
    assert consistency_proof_length(8, 8) == 0
