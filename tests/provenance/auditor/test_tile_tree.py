"""The audit's pure tree rebuilt from tiles (provenance.auditor.tile_tree) against the in-memory log, itself checked
against the RFC 6962 reference vectors: the root at every size up to the tiled one, and the cross-level check."""

from __future__ import annotations

import random

import pytest

from provenance.auditor.tile_tree import TileTree
from provenance.translog.tiles import tiles_for_size
from provenance.translog.tree import MemoryMerkleLog

SIZE = 66_000  # three tile levels


@pytest.fixture(scope="module")
def memory() -> MemoryMerkleLog:
    return MemoryMerkleLog(i.to_bytes(4, "big") for i in range(SIZE))


def _tree(mem: MemoryMerkleLog) -> TileTree:
    tree = TileTree(SIZE)
    for tile in tiles_for_size(SIZE, entries=False):
        hashes = [mem.perfect_hash(tile.merkle_level, tile.first + k) for k in range(tile.width)]
        tree.put(tile, b"".join(hashes))
    return tree


def test_roots_at_every_kind_of_size(memory: MemoryMerkleLog) -> None:
    tree = _tree(memory)
    assert len(tree.levels) == 3 and tree.link_failures() == []
    rng = random.Random(3)
    sizes = {0, 1, 2, 3, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, SIZE} | {rng.randrange(SIZE) for _ in range(40)}
    for m in sorted(sizes):
        assert tree.root(m) == memory.root(m), m
    with pytest.raises(ValueError):
        tree.root(SIZE + 1)


def test_a_changed_hash_is_named_by_the_level_above(memory: MemoryMerkleLog) -> None:
    tree = _tree(memory)
    tree.levels[0][300 * 32] ^= 1  # leaf 300: in level-0 tile 1
    tree.levels[1][5 * 32] ^= 1  # hash 5 of level 1: what level 0's tile 5 must hash to
    failures = tree.link_failures()
    assert [(f.check, f.subject) for f in failures] == [("tile.hash", "tile/0/001"), ("tile.hash", "tile/0/005"),
                                                        ("tile.hash", "tile/1/000")]
    assert tree.root() == memory.root()  # the root comes from the top tiles: only the cross-level check sees these
