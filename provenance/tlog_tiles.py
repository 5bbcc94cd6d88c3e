"""The ledger's log as C2SP ``tlog-tiles`` resources: the published checkpoint, hash tiles and entry bundles.

One reader serves both the HTTP routes (``provenance/api/routes/tlog.py``) and the static export
(``provenance log export-tiles DIR``), so a CDN serving the exported directory and ``provenance serve`` give the
same bytes for the same path. Tile contents come from the log's stored perfect-subtree hashes, one range read per
tile (``SqlTransparencyLog.perfect_hash_run``); paths and shapes from the pure :mod:`provenance.translog.tiles`.

Tiles are served for the log as it stands (every committed leaf), which may run ahead of the published checkpoint:
a tile's bytes never change once it exists, and a client only asks for the partial tiles its checkpoint needs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection

from provenance.ledger import Ledger
from provenance.translog.tiles import (
    TileId,
    TileNotFoundError,
    encode_entry_bundle,
    parse_tile_path,
    tile_available,
    tiles_for_size,
)

__all__ = ["CHECKPOINT_PATH", "NoCheckpointError", "TileExport", "TileReader", "export_tiles"]

CHECKPOINT_PATH = "checkpoint"
_FILE_MODE = 0o644


class NoCheckpointError(TileNotFoundError):
    """No checkpoint has been published yet (an empty log, or one never checkpointed)."""


@dataclass(frozen=True, slots=True)
class TileExport:
    """What :func:`export_tiles` wrote: the checkpoint's tree size, the files and their total bytes."""

    tree_size: int
    files: int
    bytes: int


class TileReader:
    """Reads checkpoint notes and tiles from a ledger's database (its read-only engine)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def checkpoint_note(self) -> str:
        """The latest published checkpoint note, exactly as stored (the log's signature and any cosignatures)."""
        with self._ledger.reader.connect() as conn:
            return self._checkpoint_note(conn)[1]

    def _checkpoint_note(self, conn: Connection) -> tuple[int, str]:
        cp = self._ledger.store.latest_checkpoint(conn, self._ledger.config.log_id)
        if cp is None:
            raise NoCheckpointError("no checkpoint has been published yet")
        return cp.tree_size, cp.note

    def tile(self, tile: TileId) -> bytes:
        """The bytes of ``tile``; :class:`TileNotFoundError` when the log does not (yet) hold all of it."""
        with self._ledger.reader.connect() as conn:
            return self._tile(conn, tile, self._ledger.log.size(conn))

    def path(self, path: str) -> bytes:
        """The bytes at a tile path (``tile/...``); :class:`~provenance.translog.tiles.TilePathError` if malformed."""
        return self.tile(parse_tile_path(path))

    def _tile(self, conn: Connection, tile: TileId, size: int) -> bytes:
        if not tile_available(tile, size):
            raise TileNotFoundError(f"{tile.path} is beyond the log, which has {size} leaves")
        log = self._ledger.log
        if tile.is_entries:
            cids = log.record_cid_run(conn, tile.first, tile.first + tile.width)
            return encode_entry_bundle([c.encode("utf-8") for c in cids])
        return b"".join(log.perfect_hash_run(conn, tile.merkle_level, tile.first, tile.first + tile.width))

    def export(self, out_dir: Path) -> TileExport:
        """See :func:`export_tiles`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        files = total = 0
        with self._ledger.reader.connect() as conn:
            size, note = self._checkpoint_note(conn)
            log_size = self._ledger.log.size(conn)
            for tile in tiles_for_size(size):
                data = self._tile(conn, tile, log_size)
                _write_atomic(out_dir / tile.path, data)
                files += 1
                total += len(data)
        raw = note.encode("utf-8")
        _write_atomic(out_dir / CHECKPOINT_PATH, raw)  # last: a reader never sees a checkpoint without its tiles
        return TileExport(size, files + 1, total + len(raw))


def export_tiles(ledger: Ledger, out_dir: Path) -> TileExport:
    """Write ``out_dir/checkpoint`` (the latest published note) and every tile and entry bundle its tree size needs
    (full tiles and that size's partial tiles), byte for byte what the HTTP routes serve. Each file is written
    atomically, the checkpoint last, so a web server reading the directory meanwhile never serves a checkpoint
    whose tiles are missing. Files of an earlier export stay: full tiles are rewritten with the same bytes, and
    earlier partial tiles remain valid for earlier checkpoints."""
    return TileReader(ledger).export(out_dir)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; a web server serving the directory must read it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

