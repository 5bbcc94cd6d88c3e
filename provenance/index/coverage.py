"""Which signed checkpoint the lookup index reflects: the largest one whose every record could be searched.

Ingest appends a record to the log first and registers it for lookup afterwards (``provenance/ingest.py``: the
catalog rows of its codes, then its local features, written last as the "registered" mark). So at any moment the
log may hold records the index cannot find yet, and the latest checkpoint may cover some of them. A receipt that
says "not registered as of checkpoint N" must name a checkpoint N all of whose records were searchable.

:class:`SearchableCheckpoint` finds it, incrementally. It keeps ``searchable_below``: every record at a leaf index
below it is registered and, when it is given this process's ``HashIndex``, its live codes are in that index (not
only in the catalog: another process's catalog rows reach this index through ``HashIndex.refresh``). Records are
never unregistered, so the mark only grows; each call checks only the records between it and the latest checkpoint:

1. the first record at or above the mark without local features (one range query on the leaf index);
2. the live catalog rows of the records below that one: each must be in this process's index (after a refresh);
3. the answer is the largest signed checkpoint no larger than the first record that failed (or the latest).

Withdrawn records are left out of step 2 on purpose: a withdrawal hides a record from lookup; it does not make the
checkpoint stale. Log leaves that are not records (key events) are not searched and are not checked.
"""

from __future__ import annotations

import threading
from typing import Protocol

from sqlalchemy import and_, exists, func, select
from sqlalchemy.engine import Connection, Engine

from provenance.db import reader
from provenance.index.catalog import index_entries
from provenance.records_store import StoredCheckpoint, checkpoints, local_features, records

__all__ = ["SearchableCheckpoint"]

_BATCH = 50_000


class _Index(Protocol):  # what is needed of provenance.index.HashIndex
    def refresh(self, channel: str): ...  # type: ignore[no-untyped-def]

    def index_for(self, channel: str): ...  # type: ignore[no-untyped-def]


class SearchableCheckpoint:
    """The newest signed checkpoint whose every (non-withdrawn) record the index can search. Thread-safe; one per
    process and index."""

    def __init__(self, engine: Engine, index: _Index | None = None) -> None:
        self._reader = reader(engine)
        self._index = index  # None: trust the catalog (an index kept elsewhere, e.g. a test double)
        self._lock = threading.Lock()
        self.searchable_below = 0  # every record at a leaf index below this is searchable
        self._best: StoredCheckpoint | None = None

    def current(self) -> StoredCheckpoint | None:
        """The checkpoint, or None when no signed checkpoint has only searchable records (or none exists)."""
        with self._lock, self._reader.connect() as conn:
            latest = conn.execute(select(func.max(checkpoints.c.tree_size))).scalar()
            if latest is None:
                return None
            latest = int(latest)
            if self._best is not None and self._best.tree_size == latest:
                return self._best
            if latest > self.searchable_below:
                limit = self._first_unregistered(conn, self.searchable_below, latest)
                limit = self._first_unindexed(conn, self.searchable_below, limit)
                self.searchable_below = max(self.searchable_below, limit)
            best = self._largest_checkpoint(conn, min(latest, self.searchable_below))
            if best is not None and (self._best is None or best.tree_size > self._best.tree_size):
                self._best = best
            return self._best

    # --- steps ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _first_unregistered(conn: Connection, lo: int, hi: int) -> int:
        """The smallest leaf index in [lo, hi) of a record without local features, else ``hi``."""
        registered = exists().where(local_features.c.record_cid == records.c.cid)
        first = conn.execute(select(func.min(records.c.leaf_index))
                             .where(records.c.leaf_index >= lo, records.c.leaf_index < hi, ~registered)).scalar()
        return hi if first is None else int(first)

    def _first_unindexed(self, conn: Connection, lo: int, hi: int) -> int:
        """The smallest leaf index in [lo, hi) of a record with a live catalog row missing from this process's
        index, else ``hi``. Batched by leaf index so a first call on a large log streams."""
        if self._index is None or hi <= lo:
            return hi
        refreshed: dict[str, object] = {}
        start = lo
        while start < hi:
            end = min(hi, start + _BATCH)
            rows = conn.execute(
                select(records.c.leaf_index, index_entries.c.channel, index_entries.c.id)
                .join(index_entries, and_(index_entries.c.record_cid == records.c.cid,
                                          index_entries.c.withdrawn_at.is_(None)))
                .where(records.c.leaf_index >= start, records.c.leaf_index < end)
                .order_by(records.c.leaf_index)).all()
            for leaf, channel, entry_id in rows:
                if channel not in refreshed:  # catalog rows committed before this call are now picked up
                    refreshed[channel] = self._index.refresh(channel)
                idx = refreshed[channel]
                if idx is None or int(entry_id) not in idx:  # type: ignore[operator]
                    return int(leaf)
            start = end
        return hi

    @staticmethod
    def _largest_checkpoint(conn: Connection, at_most: int) -> StoredCheckpoint | None:
        row = conn.execute(select(checkpoints.c.tree_size, checkpoints.c.root, checkpoints.c.note)
                           .where(checkpoints.c.tree_size <= at_most)
                           .order_by(checkpoints.c.tree_size.desc()).limit(1)).first()
        if row is None:
            return None
        return StoredCheckpoint(int(row.tree_size), bytes(row.root), row.note, None)
