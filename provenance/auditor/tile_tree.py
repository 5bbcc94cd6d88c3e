"""The Merkle tree of a tiled log, rebuilt from its tiles: cross-checks between tile levels and the root at any size
up to the tiled one. Pure: the caller fetches the tiles."""

from __future__ import annotations

from collections.abc import Sequence

from provenance.auditor.model import Finding
from provenance.translog.hashing import EMPTY_ROOT, HASH_SIZE, node_hash
from provenance.translog.tiles import TILE_HEIGHT, TILE_WIDTH, TileId
from provenance.translog.tree import perfect_nodes_of_range

__all__ = ["TileTree", "perfect_root"]


def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of a power-of-two run of subtree hashes."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class TileTree:
    """The hashes of every tile level of a tree of ``size`` leaves: ``levels[L]`` holds the ``size >> 8L`` hashes
    at tile level L (32 bytes each, concatenated). Missing tiles leave zero hashes and are listed in ``missing``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.levels: list[bytearray] = []
        self.missing: set[TileId] = set()
        level = 0
        while (count := size >> (TILE_HEIGHT * level)) > 0:
            self.levels.append(bytearray(count * HASH_SIZE))
            level += 1

    def put(self, tile: TileId, data: bytes) -> None:
        start = tile.first * HASH_SIZE
        self.levels[tile.hash_level][start : start + len(data)] = data

    def hash(self, level: int, index: int) -> bytes:
        return bytes(self.levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def run(self, level: int, start: int, end: int) -> list[bytes]:
        buf = self.levels[level]
        return [bytes(buf[i * HASH_SIZE : (i + 1) * HASH_SIZE]) for i in range(start, end)]

    def link_failures(self) -> list[Finding]:
        """Every full tile whose Merkle hash differs from the hash the level above holds for it."""
        out: list[Finding] = []
        missing = {(t.level, t.index) for t in self.missing}
        for level in range(len(self.levels) - 1):
            for n in range(len(self.levels[level + 1]) // HASH_SIZE):
                if (level, n) in missing or (level + 1, n // TILE_WIDTH) in missing:
                    continue
                tile = TileId(level, n)
                got, held = perfect_root(self.run(level, n * TILE_WIDTH, (n + 1) * TILE_WIDTH)), self.hash(level + 1, n)
                if got != held:
                    out.append(Finding("tile.hash", tile.path,
                                       f"its 256 hashes hash to {got.hex()}, but level {level + 1} holds {held.hex()} "
                                       f"for it (hash {n % TILE_WIDTH} of tile {n // TILE_WIDTH})"))
        return out

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree of the first ``size`` leaves (default: all), from the tile hashes."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside the tiled tree of {self.size} leaves")
        if size == 0:
            return EMPTY_ROOT
        hashes = []
        for k, i in perfect_nodes_of_range(0, size):
            level, rest = divmod(k, TILE_HEIGHT)
            hashes.append(perfect_root(self.run(level, i << rest, (i + 1) << rest)))
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = node_hash(left, h)
        return h
