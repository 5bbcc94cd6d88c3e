"""Property tests: every generated proof verifies, matches RFC 6962's own definitions, and breaks on any bit flip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance.errors import ProofError, RootMismatchError
from provenance.translog.proofs import (
    consistency_proof_length,
    inclusion_proof_length,
    verify_consistency,
    verify_inclusion,
)
from provenance.translog.tree import MemoryMerkleLog, consistency_nodes, inclusion_nodes

from . import rfc6962_reference as ref

MAX = 300
DATA = [f"leaf-{i}".encode() for i in range(MAX)]
LOG = MemoryMerkleLog(DATA)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    size2 = draw(st.integers(0, MAX))
    return draw(st.integers(0, size2)), size2


def _flip(proof: list[bytes], which: int, bit: int) -> list[bytes]:
    bad = list(proof)
    h = bytearray(bad[which])
    h[bit // 8] ^= 1 << (bit % 8)
    bad[which] = bytes(h)
    return bad


def test_against_rfc_definitions_exhaustively_to_40() -> None:
    for size in range(0, 41):
        assert LOG.root(size) == ref.mth(DATA[:size])
        for index in range(size):
            assert LOG.inclusion_proof(index, size) == ref.path(index, DATA[:size])
        for size1 in range(1, size):
            assert LOG.consistency_proof(size1, size) == ref.proof(size1, DATA[:size])


@settings(max_examples=300, deadline=None)
@given(index_and_size(), st.data())
def test_inclusion_verifies_and_any_bit_flip_fails(args: tuple[int, int], data: st.DataObject) -> None:
    index, size = args
    proof = LOG.inclusion_proof(index, size)
    root = LOG.root(size)
    assert len(proof) == inclusion_proof_length(index, size)
    assert proof == ref.path(index, DATA[:size])
    verify_inclusion(index, size, LOG.leaf_hash(index), proof, root)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(RootMismatchError):
            verify_inclusion(index, size, LOG.leaf_hash(index), _flip(proof, which, bit), root)
    # A flipped leaf or root fails too.
    bit = data.draw(st.integers(0, 255), label="leaf/root bit")
    with pytest.raises(RootMismatchError):
        verify_inclusion(index, size, _flip([LOG.leaf_hash(index)], 0, bit)[0], proof, root)
    with pytest.raises(RootMismatchError):
        verify_inclusion(index, size, LOG.leaf_hash(index), proof, _flip([root], 0, bit)[0])


@settings(max_examples=300, deadline=None)
@given(two_sizes(), st.data())
def test_consistency_verifies_and_any_bit_flip_fails(sizes: tuple[int, int], data: st.DataObject) -> None:
    size1, size2 = sizes
    proof = LOG.consistency_proof(size1, size2)
    root1, root2 = LOG.root(size1), LOG.root(size2)
    assert len(proof) == consistency_proof_length(size1, size2)
    if 0 < size1 < size2:
        assert proof == ref.proof(size1, DATA[:size2])
    verify_consistency(size1, size2, proof, root1, root2)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="which")
        bit = data.draw(st.integers(0, 255), label="bit")
        with pytest.raises(RootMismatchError):
            verify_consistency(size1, size2, _flip(proof, which, bit), root1, root2)
    if size1 < size2:
        bit = data.draw(st.integers(0, 255), label="root bit")
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, proof, _flip([root1], 0, bit)[0], root2)
        if size1 > 0:  # every tree extends the empty one: from size 0 nothing constrains root2
            with pytest.raises(ProofError):
                verify_consistency(size1, size2, proof, root1, _flip([root2], 0, bit)[0])


@settings(max_examples=25, deadline=None)
@given(index_and_size(), two_sizes())
def test_every_bit_of_every_hash_matters(incl: tuple[int, int], cons: tuple[int, int]) -> None:
    index, size = incl
    proof = LOG.inclusion_proof(index, size)
    root = LOG.root(size)
    for which in range(len(proof)):
        for bit in range(256):
            with pytest.raises(RootMismatchError):
                verify_inclusion(index, size, LOG.leaf_hash(index), _flip(proof, which, bit), root)
    size1, size2 = cons
    cproof = LOG.consistency_proof(size1, size2)
    r1, r2 = LOG.root(size1), LOG.root(size2)
    for which in range(len(cproof)):
        for bit in range(256):
            with pytest.raises(RootMismatchError):
                verify_consistency(size1, size2, _flip(cproof, which, bit), r1, r2)


@settings(max_examples=200, deadline=None)
@given(index_and_size(), st.integers(1, MAX))
def test_proof_for_other_size_is_rejected(args: tuple[int, int], other: int) -> None:
    index, size = args
    if other == size or index >= other:
        return
    proof = LOG.inclusion_proof(index, size)
    with pytest.raises(ProofError):
        verify_inclusion(index, other, LOG.leaf_hash(index), proof, LOG.root(other))


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 2**48), st.data())
def test_proofs_touch_at_most_2_log_n_perfect_nodes(size: int, data: st.DataObject) -> None:
    """Only the first right-border sibling can be a composed (non-perfect) range, so a proof needs O(log n) lookups."""
    index = data.draw(st.integers(0, size - 1), label="index")
    size1 = data.draw(st.integers(1, size - 1), label="size1")
    bound = 2 * size.bit_length()
    assert sum(len(t) for t in inclusion_nodes(index, size)) <= bound
    assert sum(len(t) for t in consistency_nodes(size1, size)) <= bound
    assert len(inclusion_nodes(index, size)) == inclusion_proof_length(index, size)
    assert len(consistency_nodes(size1, size)) == consistency_proof_length(size1, size)
