"""``HashIndex``: one faiss index per hash channel, kept in step with the SQL catalog, safe to share between threads.

Write order: the catalog row is committed first, then the in-memory index changes, so the catalog is never behind
the index; a crash loses at most in-memory changes, which the next open recovers by rebuilding (a saved file whose
count or largest id differs from the catalog is stale). Each channel has a mutation lock that serialises its adds,
withdrawals and rebuilds (so a rebuild never misses or doubles a concurrent add); searches take no service lock and
run in parallel under the index's own readers-writer lock, against the old index while a rebuild is under way.

One ``HashIndex`` per process and data directory. Other processes sharing the catalog (ingest workers, API
replicas): their adds are picked up by :meth:`HashIndex.refresh` before each search (a primary-key range query);
their withdrawals are hidden because every hit is mapped to its record through the catalog's live rows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from provenance.db import reader
from provenance.errors import InvalidInputError
from provenance.index.base import Index
from provenance.index.catalog import CatalogEntry, IndexCatalog
from provenance.index.codes import code_from_hex, code_to_hex
from provenance.index.errors import (
    EmptyIndexError,
    HashIndexError,
    IndexConflictError,
    IndexCorruptError,
    IndexEntryNotFoundError,
    IndexFileMissingError,
    IndexPermissionError,
    InvalidCodeError,
)
from provenance.index.factory import create_index
from provenance.index.persist import read_index_files
from provenance.logging import get_logger

__all__ = ["ChannelStatus", "HashIndex", "IndexLag", "IndexMatch", "channel_path", "check_channel", "index_dir",
           "inspect_channels"]

log = get_logger(__name__)

_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # also a file name: no dots, slashes or upper case
FILE_SUFFIX = ".faissbin"


@dataclass(frozen=True)
class IndexLag:
    """How far one channel of this process's index is behind the catalog (:meth:`HashIndex.staleness`)."""

    loaded: bool
    behind: int  # live catalog entries not in the index yet
    seconds: float  # age of the oldest of them; 0 when none


class IndexMatch(NamedTuple):
    """A search result: the record whose code is ``distance`` bits from the query."""

    record_cid: str
    distance: int


def index_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "index"


def channel_path(data_dir: Path, channel: str) -> Path:
    return index_dir(data_dir) / f"{check_channel(channel)}{FILE_SUFFIX}"


def check_channel(channel: str) -> str:
    if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
        raise InvalidInputError(f"hash channel must match {_CHANNEL.pattern} (e.g. 'oscar', 'pdq'), got {channel!r}")
    return channel


class HashIndex:
    """Add, withdraw and search perceptual-hash codes by channel; files under ``<data_dir>/index/``."""

    def __init__(self, data_dir: Path, engine: Engine, *, preload: bool = True,
                 catalog: IndexCatalog | None = None) -> None:
        """Open every channel in the catalog: load its file if consistent, else rebuild it (with a warning).

        ``preload=False`` defers that to each channel's first use (``provenance index rebuild`` uses it, so it
        does not first load or rebuild what it is about to rebuild anyway).
        """
        self._data_dir = Path(data_dir)
        self._engine = engine
        self._reader = reader(engine)
        self._catalog = catalog or IndexCatalog()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._indexes: dict[str, Index] = {}
        self._opened: set[str] = set()  # channels whose file was loaded or rebuilt (or found to have no rows)
        self._seen: dict[str, int] = {}  # highest catalog id refresh() has read per channel
        if preload:
            with self._reader.connect() as conn:
                channels = self._catalog.channels(conn)
            for channel in channels:
                self._index(channel)

    # --- reads --------------------------------------------------------------------------------------------------
    def channels(self) -> list[str]:
        """Channels opened so far that have an index (possibly empty when every entry was withdrawn)."""
        return sorted(self._indexes)

    def index_for(self, channel: str) -> Index | None:
        """The channel's index (opened if need be), or None when the catalog has no row for it."""
        return self._index(check_channel(channel))

    def path_for(self, channel: str) -> Path:
        return channel_path(self._data_dir, channel)

    def search(self, channel: str, code_hex: str, k: int = 10, max_distance: int | None = None) -> list[IndexMatch]:
        """The ``k`` nearest live records to ``code_hex`` in ``channel``, by (distance, catalog id)."""
        index = self.refresh(check_channel(channel))
        if index is None or not len(index):
            raise EmptyIndexError(f"hash channel {channel!r} has no live entries: nothing to search")
        code = code_from_hex(code_hex, index.bits)
        hits = index.search(code[None, :], k)[0]
        if max_distance is not None:
            hits = [h for h in hits if h.distance <= max_distance]
        if not hits:
            return []
        with self._reader.connect() as conn:
            cids = self._catalog.live_cids(conn, (h.id for h in hits))
        return [IndexMatch(cids[h.id], h.distance) for h in hits if h.id in cids]

    def refresh(self, channel: str) -> Index | None:
        """Pick up what other processes (ingest workers, another API replica) added to the catalog since this
        index was loaded: one range query on the catalog's primary key, so every search can afford it. Their
        withdrawals need no refresh: search results are filtered through the catalog's live rows.

        The query runs without the channel lock, so searches never queue behind an add or a rebuild; the lock is
        taken only when there is something new to add. Limitation: on PostgreSQL a row whose transaction commits
        after a row with a higher id (concurrent writers) is not seen until the next open or rebuild.
        """
        index = self._index(channel)
        if index is None:
            with self._channel_lock(channel):
                index = self._indexes.get(channel)
                if index is None:  # another process created the channel after we opened it
                    index = self._build(channel)
                    if index is not None:
                        self._indexes[channel] = index
                return index
        after = max(self._seen.get(channel, -1), index.max_id() or -1)
        with self._reader.connect() as conn:
            rows = self._catalog.live_after(conn, channel, after)
        if not rows:
            return index
        with self._channel_lock(channel):
            index = self._indexes.get(channel)  # a rebuild may have swapped it meanwhile
            if index is None:
                return None
            fresh = [(i, c) for i, c in rows if i not in index and len(c) == index.bits // 4]
            if fresh:
                codes = np.frombuffer(bytes.fromhex("".join(c for _, c in fresh)), dtype=np.uint8)
                index.add(np.array([i for i, _ in fresh], dtype=np.int64), codes.reshape(len(fresh), -1))
            self._seen[channel] = max(self._seen.get(channel, -1), rows[-1][0])
            return index

    def entry(self, channel: str, record_cid: str) -> CatalogEntry | None:
        """The record's catalog entry in ``channel`` (live or withdrawn), or None."""
        with self._reader.connect() as conn:
            return self._catalog.get(conn, check_channel(channel), record_cid)

    def code_of(self, channel: str, record_cid: str) -> str | None:
        """The record's live code in ``channel`` (hex), or None: lookup reads a re-hashed record's code of a new
        model here, since the signed record keeps the code of the model it was made with."""
        entry = self.entry(channel, record_cid)
        return entry.code if entry is not None and entry.live else None

    def live_records(self, channel: str, after_id: int = -1, limit: int = 1000) -> list[tuple[int, str, str]]:
        """Live ``(id, record_cid, publisher_id)`` of ``channel`` above ``after_id`` in id order (one page)."""
        with self._reader.connect() as conn:
            return self._catalog.live_records_after(conn, check_channel(channel), after_id, limit)

    def catalog_channels(self) -> list[str]:
        """Every channel with a row in the catalog (whether or not this process has opened it)."""
        with self._reader.connect() as conn:
            return self._catalog.channels(conn)

    def withdrawn_at(self, record_cid: str) -> datetime | None:
        """When the record's entries were withdrawn (None: live, or never indexed)."""
        with self._reader.connect() as conn:
            return self._catalog.withdrawn_at(conn, record_cid)

    def refresh_all(self) -> None:
        """:meth:`refresh` every channel of the catalog (the API's background catch-up, so that its index stays
        within ``PROVENANCE_INDEX_MAX_STALENESS_S`` of the catalog even when no lookup comes)."""
        with self._reader.connect() as conn:
            channels = self._catalog.channels(conn)
        for channel in channels:
            self.refresh(channel)

    def staleness(self) -> dict[str, IndexLag]:
        """Per catalog channel: whether this process has loaded it, and how far its index lags the catalog (live
        entries other processes added that it has not picked up yet, and the age of the oldest). Reads only: cheap
        enough for a readiness probe."""
        now = datetime.now(timezone.utc)
        out: dict[str, IndexLag] = {}
        with self._reader.connect() as conn:
            for channel in self._catalog.channels(conn):
                index = self._indexes.get(channel)
                after = -1 if index is None else max(self._seen.get(channel, -1), index.max_id() or -1)
                behind, oldest = self._catalog.pending_after(conn, channel, after)
                lag = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
                out[channel] = IndexLag(channel in self._opened, behind, lag)
        return out

    def close(self) -> None:
        """Persist every channel (the next open then loads the files instead of rebuilding). A file that cannot be
        written (disk full, read-only) is only a rebuild at the next open: logged, not raised."""
        try:
            self.save()
        except OSError as exc:
            log.warning("hash index files not saved at close; the next open rebuilds them from the catalog",
                        error=str(exc))

    # --- writes -------------------------------------------------------------------------------------------------
    def add(self, channel: str, record_cid: str, publisher_id: str, code_hex: str) -> CatalogEntry:
        """Index a record's code in a channel. Idempotent: a known channel + CID returns its stored entry unchanged
        (a withdrawn entry stays withdrawn); the same CID with another code or publisher is an
        :class:`IndexConflictError`."""
        check_channel(channel)
        for name, value in (("record_cid", record_cid), ("publisher_id", publisher_id)):
            if not isinstance(value, str) or not value:
                raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")
        code = code_from_hex(code_hex)
        with self._channel_lock(channel):
            self._ensure_open(channel)
            entry = self._insert_or_get(channel, record_cid, publisher_id, code_to_hex(code))
            index = self._indexes.get(channel)
            if index is None:
                self._indexes[channel] = self._build(channel)  # a new channel: the catalog now holds this entry
            elif entry.live and entry.id not in index:
                index.add(np.array([entry.id], dtype=np.int64), code[None, :])
            return entry

    def withdraw(self, record_cid: str, publisher_id: str) -> list[str]:
        """Tombstone every entry of a record (all channels) and drop it from the indexes; returns the channels
        withdrawn now (empty if already withdrawn). Only the publisher that indexed the record may withdraw it."""
        for _ in range(10):  # retried only if a channel for this CID appears between the read and the locks
            with self._reader.connect() as conn:
                seen = self._catalog.entries_for_record(conn, record_cid)
            if not seen:
                raise IndexEntryNotFoundError(f"no index entry for record {record_cid}")
            _check_owner(seen, record_cid, publisher_id)
            channels = sorted({e.channel for e in seen})
            with ExitStack() as stack:
                for channel in channels:  # sorted: every thread takes channel locks in the same order
                    stack.enter_context(self._channel_lock(channel))
                    self._ensure_open(channel)
                with self._engine.begin() as conn:
                    entries = self._catalog.entries_for_record(conn, record_cid)
                    if not {e.channel for e in entries} <= set(channels):
                        continue
                    _check_owner(entries, record_cid, publisher_id)
                    live = [e for e in entries if e.live]
                    self._catalog.mark_withdrawn(conn, (e.id for e in live), datetime.now(timezone.utc))
                for e in live:
                    index = self._indexes.get(e.channel)
                    if index is not None:
                        index.remove(np.array([e.id], dtype=np.int64))
                return [e.channel for e in live]
        raise HashIndexError(f"withdraw of {record_cid} kept racing with adds in new channels; try again")

    def rebuild(self, channel: str | None = None) -> dict[str, int]:
        """Rebuild one channel (or all) from the catalog and save it; returns the live count per channel."""
        if channel is not None:
            channels = [check_channel(channel)]
        else:
            with self._reader.connect() as conn:
                channels = sorted(set(self._catalog.channels(conn)) | set(self._indexes))
        counts: dict[str, int] = {}
        for ch in channels:
            with self._channel_lock(ch):
                index = self._build(ch)
                self._opened.add(ch)
                if index is None:
                    self._indexes.pop(ch, None)
                    counts[ch] = 0
                    continue
                index.save(self.path_for(ch))
                self._indexes[ch] = index
                counts[ch] = len(index)
        return counts

    def save(self) -> list[Path]:
        """Write every channel's index and sidecar to ``<data_dir>/index/<channel>.faissbin(.json)``."""
        written = []
        for ch in self.channels():
            with self._channel_lock(ch):
                index = self._indexes.get(ch)
                if index is not None:
                    path = self.path_for(ch)
                    index.save(path)
                    written.append(path)
        return written

    # --- internals -------------------------------------------------------------------------------------------
    def _index(self, channel: str) -> Index | None:
        if channel not in self._opened:
            with self._channel_lock(channel):
                self._ensure_open(channel)
        return self._indexes.get(channel)

    def _ensure_open(self, channel: str) -> None:
        """Load or rebuild the channel once (the caller holds its lock)."""
        if channel not in self._opened:
            self._open_channel(channel)
            self._opened.add(channel)

    @contextmanager
    def _channel_lock(self, channel: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(channel, threading.Lock())
        with lock:
            yield

    def _insert_or_get(self, channel: str, record_cid: str, publisher_id: str, code: str) -> CatalogEntry:
        try:
            with self._engine.begin() as conn:
                existing = self._catalog.get(conn, channel, record_cid)
                if existing is None:
                    self._check_width(conn, channel, record_cid, code)
                    return self._catalog.insert(conn, channel, record_cid, publisher_id, code)
        except IntegrityError:  # another process inserted the same channel + CID between our read and insert
            with self._reader.connect() as conn:
                existing = self._catalog.get(conn, channel, record_cid)
            if existing is None:
                raise
        if existing.publisher_id != publisher_id or existing.code != code:
            raise IndexConflictError(
                f"record {record_cid} is already indexed in channel {channel!r} with "
                f"{'another publisher' if existing.publisher_id != publisher_id else 'another code'}")
        return existing

    def _check_width(self, conn: Connection, channel: str, record_cid: str, code: str) -> None:
        index = self._indexes.get(channel)
        if index is not None:
            digits = index.bits // 4
        else:
            other = self._catalog.any_code(conn, channel)
            if other is None:
                return  # the first code of a new channel sets its width
            digits = len(other)
        if digits != len(code):
            raise InvalidCodeError(f"channel {channel!r} holds {digits * 4}-bit codes, "
                                   f"got a {len(code) * 4}-bit code for {record_cid}")

    def _open_channel(self, channel: str) -> None:
        path = self.path_for(channel)
        with self._reader.connect() as conn:
            summary = self._catalog.summary(conn, channel)
            width = len(self._catalog.any_code(conn, channel) or "") * 4
        try:
            index = Index.load(path)
        except IndexFileMissingError:
            reason = "missing"
        except IndexCorruptError as exc:
            reason = f"corrupt: {exc}"
        else:
            if len(index) == summary.live and index.max_id() == summary.max_id and index.bits == width:
                self._indexes[channel] = index
                return
            reason = (f"stale: the file holds {len(index)} {index.bits}-bit codes up to id {index.max_id()}, "
                      f"the catalog {summary.live} live {width}-bit codes up to id {summary.max_id}")
        built = self._build(channel)
        if built is None:
            return
        if summary.live or reason != "missing":  # an all-withdrawn channel without a file is not news
            log.warning("hash index rebuilt from the catalog", channel=channel, path=str(path), reason=reason,
                        entries=len(built))
        self._indexes[channel] = built
        try:
            built.save(path)
        except OSError as exc:  # the file only spares the next open this rebuild: never fail the open for it
            log.warning("hash index file not saved; the next open rebuilds it again", channel=channel,
                        path=str(path), error=str(exc))

    def _build(self, channel: str) -> Index | None:
        """A fresh index of the channel's live catalog rows; None when the channel has no rows at all."""
        with self._reader.connect() as conn:
            first = self._catalog.any_code(conn, channel)
            if first is None:
                return None
            digits = len(first)
            ids_parts: list[np.ndarray] = []
            code_parts: list[np.ndarray] = []
            for batch in self._catalog.iter_live(conn, channel):
                bad = [i for i, c in batch if len(c) != digits]
                if bad:
                    raise HashIndexError(f"catalog entries {bad[:10]} of channel {channel!r} are not "
                                         f"{digits * 4}-bit codes like the rest of the channel")
                ids_parts.append(np.fromiter((i for i, _ in batch), np.int64, len(batch)))
                raw = bytes.fromhex("".join(c for _, c in batch))
                code_parts.append(np.frombuffer(raw, dtype=np.uint8).reshape(len(batch), digits // 2))
        ids = np.concatenate(ids_parts) if ids_parts else np.empty(0, dtype=np.int64)
        codes = np.concatenate(code_parts) if code_parts else np.empty((0, digits // 2), dtype=np.uint8)
        index = create_index(digits * 4, expected_size=len(ids))
        index.add(ids, codes)
        return index


def _check_owner(entries: list[CatalogEntry], record_cid: str, publisher_id: str) -> None:
    owners = {e.publisher_id for e in entries}
    if owners != {publisher_id}:
        raise IndexPermissionError(f"record {record_cid} was indexed by {', '.join(sorted(owners))}; "
                                   f"publisher {publisher_id!r} may not withdraw it")


@dataclass(frozen=True)
class ChannelStatus:
    """One channel as the catalog and its file on disk see it (``inspect_channels``; loads no faiss index)."""

    channel: str
    live: int
    withdrawn: int
    max_id: int | None
    file: str  # "ok", "missing", "stale" or "corrupt"
    detail: str
    kind: str | None
    bits: int | None
    file_bytes: int | None


def inspect_channels(data_dir: Path, engine: Engine, catalog: IndexCatalog | None = None) -> list[ChannelStatus]:
    """Catalog counts per channel and whether each saved file is present, intact and consistent (sha256 checked)."""
    catalog = catalog or IndexCatalog()
    with reader(engine).connect() as conn:
        summaries = [catalog.summary(conn, ch) for ch in catalog.channels(conn)]
    out = []
    for s in summaries:
        path = channel_path(data_dir, s.channel)
        kind = bits = size = None
        try:
            sidecar, _ = read_index_files(path)
        except IndexFileMissingError:
            state, detail = "missing", f"no file at {path}"
        except IndexCorruptError as exc:
            state, detail = "corrupt", str(exc)
        else:
            kind, bits, size = sidecar.kind, sidecar.bits, sidecar.size
            if sidecar.count == s.live and sidecar.max_id == s.max_id:
                state, detail = "ok", str(path)
            else:
                state, detail = "stale", (f"file holds {sidecar.count} codes up to id {sidecar.max_id}; "
                                          f"catalog {s.live} up to id {s.max_id}")
        out.append(ChannelStatus(s.channel, s.live, s.withdrawn, s.max_id, state, detail, kind, bits, size))
    return out

