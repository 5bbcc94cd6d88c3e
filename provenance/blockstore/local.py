"""The embedded block store: one file per content, named by its CID, under a directory.

Why whole files rather than IPFS blocks: the service reads and writes whole images, so a file per CID keeps
``get`` a single read; the UnixFS blocks are recomputed (cheaply) only when exporting a CAR. Writes go to a
temp file in the target directory, are fsynced, then ``os.replace``d in, so a crash never leaves a partial file
under a valid name. Directories are sharded like Kubo's flatfs (``next-to-last/2``) to keep them small.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from provenance.blockstore.car import write_car
from provenance.cid import cid_for_bytes, iter_unixfs_blocks, parse_cid
from provenance.errors import BlockNotFoundError, BlockStoreError, IntegrityError


class LocalBlockStore:
    """Content-addressed files under ``root``; everything stored counts as pinned (nothing is collected)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    # --- paths ---------------------------------------------------------------------------------------------------
    def _path(self, cid: str) -> Path:
        canonical = str(parse_cid(cid))  # raises InvalidCIDError; folds z…/B… spellings onto one name
        return self.root / canonical[-3:-1] / canonical

    # --- BlockStore -------------------------------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        cid = cid_for_bytes(data)
        path = self._path(cid)
        if path.exists():
            return cid
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BlockStoreError(f"cannot write {path}: {exc}") from exc
        return cid

    def get(self, cid: str) -> bytes:
        path = self._path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlockNotFoundError(f"no content stored under {cid}") from None
        except OSError as exc:
            raise BlockStoreError(f"cannot read {path}: {exc}") from exc
        if cid_for_bytes(data) != path.name:
            raise IntegrityError(f"{path} does not hash to {cid}: the file was altered on disk")
        return data

    def has(self, cid: str) -> bool:
        return self._path(cid).is_file()

    def is_pinned(self, cid: str) -> bool:
        return self.has(cid)

    def describe(self) -> str:
        return f"local:{self.root}"

    def ping(self) -> str:
        """Health check (``/readyz``): the directory exists, or can be made, and this process may write to it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BlockStoreError(f"cannot create {self.root}: {exc}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise BlockStoreError(f"{self.root} is not writable by this process")
        return "writable"

    def close(self) -> None:
        """Nothing held open."""

    def __enter__(self) -> LocalBlockStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- export -------------------------------------------------------------------------------------------------------
    def export_car(self, cids: Iterable[str], out: BinaryIO | Path) -> int:
        """Write a CARv1 with every UnixFS block of each stored content (roots = ``cids``); returns bytes written.

        Each content is read and verified first, so a CAR never carries altered bytes.
        """
        roots = list(dict.fromkeys(str(parse_cid(c)) for c in cids))
        if isinstance(out, Path):
            with out.open("wb") as fh:
                return self.export_car(roots, fh)
        return write_car(roots, self._iter_blocks(roots), out)

    def _iter_blocks(self, roots: list[str]) -> Iterator[tuple[bytes, bytes]]:
        for cid in roots:
            yield from iter_unixfs_blocks(self.get(cid))


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
