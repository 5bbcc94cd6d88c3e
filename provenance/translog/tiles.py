"""The log as C2SP ``tlog-tiles``: tile paths, which tiles a tree has, and what a tile holds. Pure; no I/O.

A *tile* at level ``L``, index ``N`` is up to 256 consecutive Merkle tree hashes: hash ``i`` is the root of the
perfect subtree over leaves ``[(N*256 + i) * 256**L, (N*256 + i + 1) * 256**L)``, i.e. the perfect node at Merkle
level ``8*L``, index ``N*256 + i`` (the node numbering of :mod:`.tree`). A full tile holds 256 hashes (8,192 bytes);
the rightmost tile of each level is *partial* (1..255 hashes) and is named with a ``.p/<W>`` suffix. An *entry
bundle* holds the entries whose leaf hashes make up the level-0 tile of the same index: each entry is a big-endian
uint16 length followed by the entry's bytes. This log's entry is the record CID string (UTF-8), exactly the leaf
data its RFC 6962 leaf hash commits to (``SHA-256(0x00 || CID)``); see ``docs/tiles.md``.

Paths (https://c2sp.org/tlog-tiles): ``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``, where ``<N>`` is
written in zero-padded 3-digit elements, all but the last prefixed with ``x``: index 1234067 is ``x001/x234/067``.
:func:`tile_path` writes them and :func:`parse_tile_path` reads them (strictly: only the one canonical spelling of
each tile is accepted), so the HTTP routes and the static exporter share one definition.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from provenance.errors import LogError, TileNotFoundError, TilePathError
from provenance.translog.hashing import HASH_SIZE

__all__ = [
    "ENTRIES",
    "MAX_ENTRY_BYTES",
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "TileId",
    "TileNotFoundError",
    "TilePathError",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "encode_tile_index",
    "parse_tile_path",
    "split_tile",
    "tile_available",
    "tile_path",
    "tiles_for_size",
]

TILE_HEIGHT: Final = 8
"""Merkle levels spanned by one tile: a tile's hashes are the leaves of a subtree of height 8."""

TILE_WIDTH: Final = 1 << TILE_HEIGHT
"""Hashes in a full tile (256)."""

MAX_LEVEL: Final = 63
"""Highest tile level a path may name (the spec's bound)."""

ENTRIES: Final = "entries"
"""The path element that names entry bundles instead of a hash level."""

MAX_ENTRY_BYTES: Final = 0xFFFF
"""An entry's length is a big-endian uint16."""

_LEVEL_RE = re.compile(r"0|[1-9][0-9]?", re.ASCII)
_WIDTH_RE = re.compile(r"[1-9][0-9]{0,2}", re.ASCII)
_INDEX_ELEMENT_RE = re.compile(r"x?[0-9]{3}", re.ASCII)


@dataclass(frozen=True, slots=True)
class TileId:
    """One tile: its ``level`` (``None`` for an entry bundle), ``index`` within the level, and ``width`` in hashes
    (or entries): 256 for a full tile, 1..255 for a partial one."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level is not None and (
            isinstance(self.level, bool) or not isinstance(self.level, int) or not 0 <= self.level <= MAX_LEVEL
        ):
            raise TilePathError(f"tile level must be an integer in [0, {MAX_LEVEL}], got {self.level!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise TilePathError(f"tile index must be a non-negative integer, got {self.index!r}")
        if isinstance(self.width, bool) or not isinstance(self.width, int) or not 1 <= self.width <= TILE_WIDTH:
            raise TilePathError(f"tile width must be an integer in [1, {TILE_WIDTH}], got {self.width!r}")

    @property
    def is_entries(self) -> bool:
        return self.level is None

    @property
    def is_full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def hash_level(self) -> int:
        """The tile level whose hashes this tile holds or hashes to (0 for entry bundles)."""
        return 0 if self.level is None else self.level

    @property
    def merkle_level(self) -> int:
        """Merkle level of the perfect nodes this tile's hashes are (``8 * level``)."""
        return TILE_HEIGHT * self.hash_level

    @property
    def first(self) -> int:
        """Index, among the perfect nodes at :attr:`merkle_level`, of the tile's first hash."""
        return self.index * TILE_WIDTH

    @property
    def path(self) -> str:
        return tile_path(self)


def encode_tile_index(index: int) -> str:
    """``<N>`` of a tile path: 3-digit elements, all but the last prefixed with ``x`` (1234067 -> x001/x234/067)."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise TilePathError(f"tile index must be a non-negative integer, got {index!r}")
    elements = [f"{index % 1000:03d}"]
    index //= 1000
    while index:
        elements.append(f"x{index % 1000:03d}")
        index //= 1000
    return "/".join(reversed(elements))


def tile_path(tile: TileId) -> str:
    """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` (no leading slash)."""
    kind = ENTRIES if tile.level is None else str(tile.level)
    suffix = "" if tile.is_full else f".p/{tile.width}"
    return f"tile/{kind}/{encode_tile_index(tile.index)}{suffix}"


def parse_tile_path(path: str) -> TileId:
    """The tile named by ``path`` (``tile/...``, with or without a leading slash). Raises :class:`TilePathError`
    for anything but the canonical spelling (no leading zeros in levels or widths, no superfluous ``x000``
    elements, 3-digit index elements, widths 1..255 after ``.p/``)."""
    if not isinstance(path, str):
        raise TilePathError(f"tile path must be a string, got {type(path).__name__}")
    parts = path.removeprefix("/").split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TilePathError(f"{path!r} is not a tile path (tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>])")
    kind, rest = parts[1], parts[2:]
    if kind == ENTRIES:
        level: int | None = None
    elif _LEVEL_RE.fullmatch(kind) and int(kind) <= MAX_LEVEL:
        level = int(kind)
    else:
        raise TilePathError(f"{path!r}: tile level must be 'entries' or a decimal 0..{MAX_LEVEL} without leading "
                            f"zeros, got {kind!r}")
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        w = rest[-1]
        if not _WIDTH_RE.fullmatch(w) or not 1 <= int(w) < TILE_WIDTH:
            raise TilePathError(f"{path!r}: partial width must be a decimal 1..{TILE_WIDTH - 1} without leading "
                                f"zeros, got {w!r}")
        width = int(w)
        rest = [*rest[:-2], rest[-2].removesuffix(".p")]
    index = _parse_index(rest, path)
    return TileId(level, index, width)


def _parse_index(elements: list[str], path: str) -> int:
    if not elements or any(not _INDEX_ELEMENT_RE.fullmatch(e) for e in elements):
        raise TilePathError(f"{path!r}: tile index must be 3-digit elements, e.g. x001/x234/067")
    *upper, last = elements
    if last.startswith("x") or any(not e.startswith("x") for e in upper):
        raise TilePathError(f"{path!r}: every index element but the last must start with 'x', the last must not")
    index = 0
    for e in elements:
        index = index * 1000 + int(e.removeprefix("x"))
    if encode_tile_index(index) != "/".join(elements):
        raise TilePathError(f"{path!r}: tile index is not in canonical form (expected {encode_tile_index(index)})")
    return index


# --- which tiles a tree has ------------------------------------------------------------------------------------------
def _hashes_at_level(size: int, level: int) -> int:
    """Perfect nodes complete at tile level ``level`` in a tree of ``size`` leaves: ``floor(size / 256**level)``."""
    return size >> (TILE_HEIGHT * level)


def tile_available(tile: TileId, size: int) -> bool:
    """Whether a tree of ``size`` leaves holds every hash (or entry) of ``tile``.

    Every partial tile of an earlier size stays available (a ``.p/<W>`` path always means the same bytes), so this
    is true of the partial tiles of every checkpoint ever published, as the spec requires.
    """
    if size < 0:
        raise ValueError(f"tree size must not be negative, got {size}")
    return tile.first + tile.width <= _hashes_at_level(size, tile.hash_level)


def tiles_for_size(size: int, *, entries: bool = True) -> Iterator[TileId]:
    """Every tile a client may need for the tree of ``size`` leaves: at each level the full tiles and the one partial
    tile (``floor(size / 256**L) mod 256`` wide, when not zero), level 0 first; then the entry bundles, which match
    the level-0 tiles. Empty tiles are never listed, so a tree of 0 leaves has none."""
    if size < 0:
        raise ValueError(f"tree size must not be negative, got {size}")
    level = 0
    while (count := _hashes_at_level(size, level)) > 0:
        full, partial = divmod(count, TILE_WIDTH)
        yield from (TileId(level, n) for n in range(full))
        if partial:
            yield TileId(level, full, partial)
        level += 1
    if entries:
        full, partial = divmod(size, TILE_WIDTH)
        yield from (TileId(None, n) for n in range(full))
        if partial:
            yield TileId(None, full, partial)


# --- tile contents ---------------------------------------------------------------------------------------------------
def split_tile(data: bytes, tile: TileId) -> list[bytes]:
    """The hashes of a level tile's bytes; raises :class:`LogError` unless it is exactly ``width`` hashes."""
    if len(data) != tile.width * HASH_SIZE:
        raise LogError(f"{tile.path} is {len(data)} bytes; a tile {tile.width} hashes wide is "
                       f"{tile.width * HASH_SIZE}")
    return [bytes(data[i : i + HASH_SIZE]) for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length, then its bytes."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise LogError(f"log entry of {len(entry)} bytes does not fit an entry bundle (at most {MAX_ENTRY_BYTES})")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_entry_bundle(data: bytes, count: int | None = None) -> list[bytes]:
    """The entries of a bundle; raises :class:`LogError` on a truncated bundle, or when ``count`` is given and the
    bundle holds another number of entries."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise LogError(f"entry bundle is truncated: a length prefix starts at byte {pos} of {len(data)}")
        n = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + n > len(data):
            raise LogError(f"entry bundle is truncated: entry {len(entries)} needs {n} bytes, "
                           f"{len(data) - pos} remain")
        entries.append(bytes(data[pos : pos + n]))
        pos += n
    if count is not None and len(entries) != count:
        raise LogError(f"entry bundle holds {len(entries)} entries, expected {count}")
    return entries
