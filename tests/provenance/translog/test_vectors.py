"""Generation and verification against the published RFC 6962 reference tree (see ``vectors.py`` for sources)."""

from __future__ import annotations

import pytest

from provenance.errors import ProofError
from provenance.translog.hashing import EMPTY_ROOT, leaf_hash, node_hash
from provenance.translog.proofs import root_from_inclusion_proof, verify_consistency, verify_inclusion
from provenance.translog.tree import MemoryMerkleLog, consistency_nodes, inclusion_nodes

from .vectors import (
    CONSISTENCY_PROOFS,
    CONSISTENCY_SHAPES,
    EMPTY_TREE_HASH,
    INCLUSION_PROOFS,
    INCLUSION_SHAPES,
    LEAVES,
    ROOTS,
    SOME_HASH,
)


@pytest.fixture(scope="module")
def ref_log() -> MemoryMerkleLog:
    return MemoryMerkleLog(LEAVES)


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == EMPTY_TREE_HASH
    # Leaf 0 of the reference tree is the empty string: its hash is the root of the 1-leaf tree.
    assert leaf_hash(b"") == ROOTS[0]
    assert node_hash(leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1])) == ROOTS[1]


@pytest.mark.parametrize("size", range(1, 9))
def test_roots(ref_log: MemoryMerkleLog, size: int) -> None:
    assert ref_log.root(size) == ROOTS[size - 1]


def test_empty_root() -> None:
    assert MemoryMerkleLog().root() == EMPTY_TREE_HASH
    assert MemoryMerkleLog(LEAVES).root(0) == EMPTY_TREE_HASH


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS, ids=lambda v: repr(v)[:20])
def test_inclusion_vectors(ref_log: MemoryMerkleLog, index: int, size: int, proof: list[bytes]) -> None:
    assert ref_log.inclusion_proof(index, size) == proof
    lh = leaf_hash(LEAVES[index])
    assert root_from_inclusion_proof(index, size, lh, proof) == ROOTS[size - 1]
    verify_inclusion(index, size, lh, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY_PROOFS, ids=lambda v: repr(v)[:20])
def test_consistency_vectors(ref_log: MemoryMerkleLog, size1: int, size2: int, proof: list[bytes]) -> None:
    assert ref_log.consistency_proof(size1, size2) == proof
    verify_consistency(size1, size2, proof, ROOTS[size1 - 1], ROOTS[size2 - 1])


@pytest.mark.parametrize(("index", "size", "shape"), INCLUSION_SHAPES, ids=str)
def test_inclusion_shapes(index: int, size: int, shape: list[set[tuple[int, int]]]) -> None:
    assert [set(t) for t in inclusion_nodes(index, size)] == shape


@pytest.mark.parametrize(("size1", "size2", "shape"), CONSISTENCY_SHAPES, ids=str)
def test_consistency_shapes(size1: int, size2: int, shape: list[set[tuple[int, int]]]) -> None:
    assert [set(t) for t in consistency_nodes(size1, size2)] == shape


# --- corruption probes around every published proof (the kinds transparency-dev's verifier tests apply) -----------
def _inclusion_probes(index: int, size: int, lh: bytes, proof: list[bytes], root: bytes):  # type: ignore[no-untyped-def]
    yield "index - 1", (index - 1, size, lh, proof, root)
    yield "index + 1", (index + 1, size, lh, proof, root)
    yield "index ^ 2", (index ^ 2, size, lh, proof, root)
    yield "size * 2", (index, size * 2, lh, proof, root)
    yield "size // 2", (index, size // 2, lh, proof, root)
    yield "wrong leaf", (index, size, leaf_hash(b"WrongLeaf"), proof, root)
    yield "empty-tree root", (index, size, lh, proof, EMPTY_TREE_HASH)
    yield "random root", (index, size, lh, proof, SOME_HASH)
    yield "trailing empty", (index, size, lh, [*proof, b""], root)
    yield "trailing root", (index, size, lh, [*proof, root], root)
    yield "preceding empty", (index, size, lh, [b"", *proof], root)
    yield "preceding root", (index, size, lh, [root, *proof], root)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        yield f"proof[{i}] bit 3", (index, size, lh, bad, root)
    if proof:
        yield "removed component", (index, size, lh, proof[:-1], root)
    if len(proof) > 1:
        yield "inserted component", (index, size, lh, [proof[0], SOME_HASH, *proof[1:]], root)


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_PROOFS, ids=lambda v: repr(v)[:20])
def test_inclusion_vectors_reject_corruptions(index: int, size: int, proof: list[bytes]) -> None:
    lh = leaf_hash(LEAVES[index])
    for desc, args in _inclusion_probes(index, size, lh, proof, ROOTS[size - 1]):
        with pytest.raises(ProofError):
            verify_inclusion(*args)
            pytest.fail(f"accepted corrupted inclusion proof: {desc}")


def _consistency_probes(size1: int, size2: int, proof: list[bytes], r1: bytes, r2: bytes):  # type: ignore[no-untyped-def]
    yield "size1 - 1", (size1 - 1, size2, proof, r1, r2)
    yield "size1 + 1", (size1 + 1, size2, proof, r1, r2)
    yield "size1 ^ 2", (size1 ^ 2, size2, proof, r1, r2)
    yield "size2 * 2", (size1, size2 * 2, proof, r1, r2)
    yield "size2 // 2", (size1, size2 // 2, proof, r1, r2)
    yield "wrong root1", (size1, size2, proof, SOME_HASH, r2)
    yield "wrong root2", (size1, size2, proof, r1, SOME_HASH)
    yield "swapped roots", (size1, size2, proof, r2, r1)
    yield "empty proof", (size1, size2, [], r1, r2)
    yield "trailing empty", (size1, size2, [*proof, b""], r1, r2)
    yield "trailing root1", (size1, size2, [*proof, r1], r1, r2)
    yield "trailing root2", (size1, size2, [*proof, r2], r1, r2)
    yield "preceding empty", (size1, size2, [b"", *proof], r1, r2)
    yield "preceding root1", (size1, size2, [r1, *proof], r1, r2)
    yield "preceding root2", (size1, size2, [r2, *proof], r1, r2)
    yield "preceding proof[0]", (size1, size2, [proof[0], *proof], r1, r2)
    yield "truncated", (size1, size2, proof[:-1], r1, r2)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
        yield f"proof[{i}] bit 4", (size1, size2, bad, r1, r2)


@pytest.mark.parametrize(
    ("size1", "size2", "proof"), [v for v in CONSISTENCY_PROOFS if v[2]], ids=lambda v: repr(v)[:20]
)
def test_consistency_vectors_reject_corruptions(size1: int, size2: int, proof: list[bytes]) -> None:
    for desc, args in _consistency_probes(size1, size2, proof, ROOTS[size1 - 1], ROOTS[size2 - 1]):
        with pytest.raises(ProofError):
            verify_consistency(*args)
            pytest.fail(f"accepted corrupted consistency proof: {desc}")
