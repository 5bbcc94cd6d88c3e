"""Tile paths, tile shapes and entry bundles (provenance.translog.tiles), against the C2SP tlog-tiles text's own
examples and an independent path encoder written from the spec (tests/provenance/translog/c2sp_tile_reader.py)."""

from __future__ import annotations

import random

import pytest

from provenance.errors import LogError, TilePathError
from provenance.translog.tiles import (
    TileId,
    decode_entry_bundle,
    encode_entry_bundle,
    encode_tile_index,
    parse_tile_path,
    split_tile,
    tile_available,
    tile_path,
    tiles_for_size,
)
from tests.provenance.translog import c2sp_tile_reader as spec


# --- the spec's examples -----------------------------------------------------------------------------------------
def test_spec_path_example_1234067() -> None:
    # "index 1234067 will be encoded as x001/x234/067"
    assert encode_tile_index(1234067) == "x001/x234/067"
    assert tile_path(TileId(0, 1234067)) == "tile/0/x001/x234/067"
    assert tile_path(TileId(None, 1234067, 5)) == "tile/entries/x001/x234/067.p/5"
    assert parse_tile_path("tile/0/x001/x234/067") == TileId(0, 1234067)
    assert parse_tile_path("/tile/entries/x001/x234/067.p/5") == TileId(None, 1234067, 5)


@pytest.mark.parametrize(("index", "path"), [
    (0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1001, "x001/001"), (999_999, "x999/999"),
    (1_000_000, "x001/x000/000"), (2**64 - 1, "x018/x446/x744/x073/x709/x551/615"),
])
def test_index_encoding(index: int, path: str) -> None:
    assert encode_tile_index(index) == path == spec.index_path(index)


def test_index_encoding_matches_the_independent_encoder_and_round_trips() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        index = rng.choice([rng.randrange(10**k) for k in range(1, 20)])
        level, width = rng.randrange(64), rng.randrange(1, 257)
        tile = TileId(level, index, width)
        assert tile.path == spec.tile_path(level, index, width)
        assert parse_tile_path(tile.path) == tile
        entries = TileId(None, index, width)
        assert entries.path == spec.entries_path(index, width)
        assert parse_tile_path(entries.path) == entries


def _shape(size: int) -> dict[tuple[int | None, str], list[int]]:
    out: dict[tuple[int | None, str], list[int]] = {}
    for t in tiles_for_size(size):
        out.setdefault((t.level, "full" if t.is_full else "partial"), []).append(t.width)
    return out


def test_spec_example_tree_of_70000() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0 tile of width 112,
    # one full level 1 tile, one partial level 1 tile of width 17, and one partial level 2 tile of width 1"
    shape = _shape(70_000)
    assert len(shape[(0, "full")]) == 273 and shape[(0, "partial")] == [112]
    assert len(shape[(1, "full")]) == 1 and shape[(1, "partial")] == [17]
    assert shape[(2, "partial")] == [1] and (2, "full") not in shape and (3, "partial") not in shape
    assert len(shape[(None, "full")]) == 273 and shape[(None, "partial")] == [112]
    assert [t.path for t in tiles_for_size(70_000) if not t.is_full] == [
        "tile/0/273.p/112", "tile/1/001.p/17", "tile/2/000.p/1", "tile/entries/273.p/112"]


def test_spec_example_tree_of_256_and_small_trees() -> None:
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert [t.path for t in tiles_for_size(256, entries=False)] == ["tile/0/000", "tile/1/000.p/1"]
    assert [t.path for t in tiles_for_size(256)][-1] == "tile/entries/000"
    assert list(tiles_for_size(0)) == []  # "Empty tiles MUST NOT be served"
    assert [t.path for t in tiles_for_size(1)] == ["tile/0/000.p/1", "tile/entries/000.p/1"]
    assert [t.path for t in tiles_for_size(255, entries=False)] == ["tile/0/000.p/255"]
    assert [t.path for t in tiles_for_size(257, entries=False)] == ["tile/0/000", "tile/0/001.p/1", "tile/1/000.p/1"]
    assert [t.path for t in tiles_for_size(65_536, entries=False)][-2:] == ["tile/1/000", "tile/2/000.p/1"]


def test_tile_available_follows_the_tree_size() -> None:
    assert tile_available(TileId(0, 0), 256) and not tile_available(TileId(0, 0), 255)
    assert tile_available(TileId(0, 0, 255), 255) and tile_available(TileId(0, 0, 3), 255)  # an earlier partial
    assert not tile_available(TileId(0, 1, 1), 256)
    assert tile_available(TileId(1, 0, 1), 256) and not tile_available(TileId(1, 0, 2), 511)
    assert tile_available(TileId(2, 0, 1), 65_536) and not tile_available(TileId(2, 0, 1), 65_535)
    assert tile_available(TileId(None, 273, 112), 70_000) and not tile_available(TileId(None, 273, 113), 70_000)
    assert not tile_available(TileId(0, 0, 1), 0)


# --- malformed paths are refused, each for its reason -------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "", "tile", "tile/0", "tiles/0/000", "tile/foo/000", "tile/00/000", "tile/64/000", "tile/-1/000",
    "tile/0/1", "tile/0/0000", "tile/0/x000/001", "tile/0/x001", "tile/0/001/002", "tile/0/xx01/002",
    "tile/0/000/", "tile/0/000.p", "tile/0/000.p/", "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/007",
    "tile/0/000.p/5/6", "tile/0/000.q/5", "tile/entries/abc", "tile/entries/000.p/1x", "tile//000",
    "tile/0/x001.p/5/067", "tile/0/00a",
])
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(TilePathError):
        parse_tile_path(path)


def test_tile_ids_are_checked() -> None:
    for bad in [dict(level=64, index=0), dict(level=0, index=-1), dict(level=0, index=0, width=0),
                dict(level=0, index=0, width=257), dict(level=True, index=0)]:
        with pytest.raises(TilePathError):
            TileId(**bad)  # type: ignore[arg-type]


# --- contents -------------------------------------------------------------------------------------------------------
def test_entry_bundles_round_trip_and_match_the_independent_parser() -> None:
    entries = [b"", b"bafkreiabc", bytes(range(256)) * 3, b"x" * 65535]
    data = encode_entry_bundle(entries)
    assert data[:2] == b"\x00\x00" and data[2:4] == b"\x00\x0a"
    assert decode_entry_bundle(data, 4) == entries == spec.parse_entry_bundle(data)
    with pytest.raises(LogError, match="does not fit"):
        encode_entry_bundle([b"x" * 65536])
    with pytest.raises(LogError, match="truncated"):
        decode_entry_bundle(data[:-1])
    with pytest.raises(LogError, match="truncated"):
        decode_entry_bundle(b"\x00")
    with pytest.raises(LogError, match="holds 4 entries, expected 5"):
        decode_entry_bundle(data, 5)


def test_split_tile_checks_the_width() -> None:
    hashes = [bytes([i]) * 32 for i in range(3)]
    assert split_tile(b"".join(hashes), TileId(0, 0, 3)) == hashes
    with pytest.raises(LogError, match="a tile 4 hashes wide is 128"):
        split_tile(b"".join(hashes), TileId(0, 0, 4))
