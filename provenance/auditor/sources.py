"""Where a public audit reads from: tiles (an HTTP server or a directory) and record blobs (a CAR file or an IPFS
RPC API). The thin I/O layer under :mod:`provenance.auditor.tiles_audit`; nothing here decides what is valid.

* A tile source answers ``get(path) -> bytes | None``: ``None`` is "not there" (404, no such file), which the audit
  reports as a named failure; a server that cannot be reached, or answers anything but 200/404, raises
  :class:`~provenance.errors.TileSourceError` (the audit cannot run).
* A block source answers ``get(cid) -> bytes | None`` with the whole content under a CID (a UnixFS file is put
  back together from its blocks). It does not check the bytes against the CID: the audit does, and names it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import httpx

from provenance.blockstore.car import read_car
from provenance.cid import CODEC_DAG_PB, CODEC_RAW, cid_from_bytes, decode_dag_pb, parse_cid
from provenance.errors import (
    BlockNotFoundError,
    BlockStoreError,
    IntegrityError,
    InvalidCIDError,
    InvalidInputError,
    TileSourceError,
)

__all__ = [
    "BlockSource",
    "CarBlockSource",
    "DirectoryTileSource",
    "HttpTileSource",
    "IpfsBlockSource",
    "TileSource",
    "open_block_source",
    "open_tile_source",
]


@runtime_checkable
class TileSource(Protocol):
    def describe(self) -> str: ...

    def get(self, path: str) -> bytes | None:
        """The resource at ``path`` (``checkpoint``, ``tile/...``), or None when it is not there."""
        ...

    def get_many(self, paths: Sequence[str]) -> Iterator[tuple[str, bytes | None]]:
        """``(path, get(path))`` for each path, in order (a server source fetches several at once)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BlockSource(Protocol):
    def describe(self) -> str: ...

    def get(self, cid: str) -> bytes | None:
        """The content under ``cid``, or None when the source does not hold it (all of it)."""
        ...

    def close(self) -> None: ...


class _Closing:
    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- tiles ------------------------------------------------------------------------------------------------------------
def _safe_relative(path: str) -> str:
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInputError(f"not a relative resource path: {path!r}")
    return path


class DirectoryTileSource(_Closing):
    """A directory written by ``provenance log export-tiles`` (or any copy of a tiled log)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise TileSourceError("no such directory of tiles", where=str(root))
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    def get(self, path: str) -> bytes | None:
        try:
            return (self.root / _safe_relative(path)).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except OSError as exc:
            raise TileSourceError(f"cannot read {path}: {exc}", where=str(self.root)) from exc

    def get_many(self, paths: Sequence[str]) -> Iterator[tuple[str, bytes | None]]:
        for path in paths:
            yield path, self.get(path)


class HttpTileSource(_Closing):
    """A log served over HTTP(S) at a URL prefix (``provenance serve``, a CDN, any static web server)."""

    def __init__(self, prefix: str, *, timeout_s: float = 30.0, parallel: int = 8,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.prefix = prefix.rstrip("/")
        self.parallel = max(1, parallel)
        self._client = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=True,
                                    headers={"Accept-Encoding": "gzip, identity"},
                                    limits=httpx.Limits(max_connections=self.parallel,
                                                        max_keepalive_connections=self.parallel))

    def describe(self) -> str:
        return self.prefix

    def get(self, path: str) -> bytes | None:
        url = f"{self.prefix}/{_safe_relative(path)}"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise TileSourceError(f"cannot fetch {url}: {type(exc).__name__}: {exc}", where=self.prefix) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise TileSourceError(f"GET {url} answered {response.status_code}", where=self.prefix)
        return response.content

    def get_many(self, paths: Sequence[str]) -> Iterator[tuple[str, bytes | None]]:
        if len(paths) <= 1 or self.parallel == 1:
            for path in paths:
                yield path, self.get(path)
            return
        with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="tile-fetch") as pool:
            yield from zip(paths, pool.map(self.get, paths))

    def close(self) -> None:
        self._client.close()


def open_tile_source(location: str, *, parallel: int = 8) -> TileSource:
    """An ``http(s)://`` URL prefix, or a directory."""
    if location.startswith(("http://", "https://")):
        return HttpTileSource(location, parallel=parallel)
    return DirectoryTileSource(Path(location))


# --- blocks -----------------------------------------------------------------------------------------------------------
class CarBlockSource(_Closing):
    """The blocks of a CARv1 (``provenance export-car``), held in memory, keyed by binary CID."""

    def __init__(self, path: Path) -> None:
        try:
            buf = path.read_bytes()
        except OSError as exc:
            raise BlockStoreError(f"cannot read CAR {path}: {exc}") from exc
        try:
            _roots, sections = read_car(buf)
            self._blocks = {cid: block for cid, block in sections}
        except (ValueError, IndexError, InvalidCIDError) as exc:
            raise BlockStoreError(f"{path} is not a readable CARv1: {exc}") from exc
        self.path = path

    def describe(self) -> str:
        return f"car:{self.path}"

    def get(self, cid: str) -> bytes | None:
        try:
            return self._content(parse_cid(cid).to_bytes(), depth=0)
        except InvalidCIDError:
            return None

    def _content(self, binary_cid: bytes, depth: int) -> bytes | None:
        """The file under a block: a raw block is itself; a dag-pb node is its children's content, in order."""
        block = self._blocks.get(binary_cid)
        if block is None:
            return None
        codec = parse_cid(cid_from_bytes(binary_cid)).codec
        if codec == CODEC_RAW:
            return block
        if codec != CODEC_DAG_PB or depth > 32:
            raise IntegrityError("unsupported block in the CAR: only raw leaves under dag-pb files are read")
        links, _data = decode_dag_pb(block)
        parts: list[bytes] = []
        for link in links:
            child = self._content(link.hash, depth + 1)
            if child is None:
                return None
            parts.append(child)
        return b"".join(parts)

    def close(self) -> None:
        self._blocks = {}


class IpfsBlockSource(_Closing):
    """Content by CID from an IPFS daemon's RPC API (Kubo or js-ipfs), through the project's thin client."""

    def __init__(self, api_url: str, *, timeout_s: float = 30.0) -> None:
        from provenance.blockstore.ipfs_rpc import IpfsRpcBlockStore

        self._store = IpfsRpcBlockStore(api_url, timeout_s)

    def describe(self) -> str:
        return self._store.describe()

    def get(self, cid: str) -> bytes | None:
        try:
            return self._store.get(cid)
        except (BlockNotFoundError, InvalidCIDError):
            return None

    def close(self) -> None:
        self._store.close()


def open_block_source(location: str) -> BlockSource:
    """An ``http(s)://`` IPFS RPC API URL, or a CAR file."""
    if location.startswith(("http://", "https://")):
        return IpfsBlockSource(location)
    return CarBlockSource(Path(location))
