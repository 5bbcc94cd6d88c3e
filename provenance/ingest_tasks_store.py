"""The in-process queue's ingest tasks, kept in the record store's database: table ``ingest_tasks``.

On the embedded default the ingest queue is a thread pool inside ``provenance serve``. An upload answered 202 must
survive that process dying (kill -9, out of memory, power): the image is in the block store before the 202, and this
row holds everything else its ingest needs to run again (publisher, image CID, metadata, source) and everything a
caller asks of it (state, step, record, error, precedence flags). ``provenance serve`` resumes the pending and running
rows when it starts, and ``GET /v1/tasks/{id}`` reads them after a restart.

SQLAlchemy Core on :data:`provenance.db.metadata` (created by ``provenance.db.create_schema``), SQLite or
PostgreSQL. The store owns short transactions of its own: a task row is never part of a record's transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, Integer, String, Table, Text, delete, func, select, update
from sqlalchemy import Index as SqlIndex
from sqlalchemy.engine import Engine, Row

from provenance.db import metadata, reader

__all__ = ["IngestTaskStore", "StoredTask", "UNFINISHED", "ingest_tasks"]

UNFINISHED = ("pending", "running")

ingest_tasks = Table(
    "ingest_tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("publisher_id", String(64), nullable=False),
    Column("image_cid", String(128), nullable=False),
    Column("source", String(256), nullable=False),
    Column("metadata", Text, nullable=False),  # JSON: PublisherMetadata.to_obj()
    Column("state", String(16), nullable=False),  # pending / running / succeeded / failed
    Column("step", String(32)),
    Column("record_cid", String(128)),
    Column("duplicate", Boolean, nullable=False),
    Column("error", Text),
    Column("details", Text),  # JSON: what the result adds (earlier registration, metadata conflict)
    Column("attempts", Integer, nullable=False),  # runs started; a task that keeps killing the process stops
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    SqlIndex("ix_ingest_tasks_state", "state", "created_at"),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value  # SQLite hands back naive UTC


@dataclass(frozen=True)
class StoredTask:
    id: str
    publisher_id: str
    image_cid: str
    source: str
    metadata: dict[str, Any]
    state: str
    step: str | None
    record_cid: str | None
    duplicate: bool
    error: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Row) -> StoredTask:
        return cls(row.id, row.publisher_id, row.image_cid, row.source, json.loads(row.metadata), row.state,
                   row.step, row.record_cid, bool(row.duplicate), row.error, int(row.attempts),
                   _utc(row.created_at), _utc(row.updated_at), json.loads(row.details) if row.details else {})


class IngestTaskStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = reader(engine)

    def add(self, task_id: str, *, publisher_id: str, image_cid: str, source: str,
            metadata_obj: dict[str, Any]) -> None:
        """A new pending task, committed before the caller answers 202."""
        now = _now()
        with self.engine.begin() as conn:
            conn.execute(ingest_tasks.insert().values(
                id=task_id, publisher_id=publisher_id, image_cid=image_cid, source=source[:256],
                metadata=json.dumps(metadata_obj, ensure_ascii=False, sort_keys=True), state="pending", step=None,
                duplicate=False, attempts=0, created_at=now, updated_at=now))

    def start(self, task_id: str, step: str) -> int:
        """Mark the task running (one more attempt); returns the attempts so far, this one included."""
        with self.engine.begin() as conn:
            conn.execute(update(ingest_tasks).where(ingest_tasks.c.id == task_id).values(
                state="running", step=step, attempts=ingest_tasks.c.attempts + 1, updated_at=_now()))
            return int(conn.execute(select(ingest_tasks.c.attempts).where(ingest_tasks.c.id == task_id))
                       .scalar_one_or_none() or 0)

    def finish(self, task_id: str, *, state: str, step: str | None, record_cid: str | None = None,
               duplicate: bool = False, error: str | None = None, details: dict[str, Any] | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(ingest_tasks).where(ingest_tasks.c.id == task_id).values(
                state=state, step=step, record_cid=record_cid, duplicate=duplicate, error=error,
                details=json.dumps(details, sort_keys=True) if details else None, updated_at=_now()))

    def get(self, task_id: str) -> StoredTask | None:
        with self.reader.connect() as conn:
            row = conn.execute(select(ingest_tasks).where(ingest_tasks.c.id == task_id)).first()
        return None if row is None else StoredTask.from_row(row)

    def unfinished(self) -> list[StoredTask]:
        """Pending and running tasks, oldest first: what a restarted server must run again."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(ingest_tasks).where(ingest_tasks.c.state.in_(UNFINISHED))
                                .order_by(ingest_tasks.c.created_at, ingest_tasks.c.id)).all()
        return [StoredTask.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Unfinished tasks by state (for the queue-depth metric)."""
        with self.reader.connect() as conn:
            rows = conn.execute(select(ingest_tasks.c.state, func.count()).where(
                ingest_tasks.c.state.in_(UNFINISHED)).group_by(ingest_tasks.c.state)).all()
        found = {str(state): int(n) for state, n in rows}
        return {state: found.get(state, 0) for state in UNFINISHED}

    def prune(self, finished_before: datetime) -> int:
        """Forget finished tasks last updated before ``finished_before``; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(ingest_tasks).where(ingest_tasks.c.state.not_in(UNFINISHED),
                                                             ingest_tasks.c.updated_at < finished_before))
        return int(result.rowcount or 0)
