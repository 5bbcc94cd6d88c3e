"""SQL storage of key events (log entries beside records) and of the publisher statements already used.

A key event is stored like a record: canonical bytes in the block store under their CID, one row here, one log leaf
(``SHA-256(0x00 || CID)``), written in the same transaction as the leaf. The service's own events (log-key and
anchorer rotations, ``provenance/service_events.py``) share the table under ``publisher_id = "@log"``, a name no
publisher can have; the publisher queries leave them out. ``used_statements`` makes a signed
statement good for one record only (a replayed statement is refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import BigInteger, Column, DateTime, LargeBinary, String, Table, select
from sqlalchemy.engine import Connection

from provenance.db import metadata
from provenance.keyevents import KeyEvent
from provenance.service_events import SERVICE_SUBJECT, LogKeyRotation, ServiceEvent, parse_service_event

key_events = Table(
    "key_events",
    metadata,
    Column("cid", String(128), primary_key=True),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("publisher_id", String(64), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("key_id", String(80)),  # the key the event is about (new or revoked)
    Column("record_cid", String(128), index=True),  # withdrawals
    Column("event_bytes", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

used_statements = Table(
    "used_statements",
    metadata,
    Column("statement_sha256", String(64), primary_key=True),
    Column("record_cid", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


staged_statements = Table(
    # A statement verified when its upload was accepted, waiting for the queue to reach the image's append step
    # (the queue carries the image by CID; the statement waits here, durable across a crash).
    "staged_statements",
    metadata,
    Column("publisher_id", String(64), primary_key=True),
    Column("image_sha256", String(64), primary_key=True),
    Column("statement_bytes", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class StoredServiceEvent:
    cid: str
    leaf_index: int
    kind: str
    event_bytes: bytes

    def parse(self) -> ServiceEvent:
        return parse_service_event(self.event_bytes)


@dataclass(frozen=True)
class StoredKeyEvent:
    cid: str
    leaf_index: int
    event: KeyEvent
    event_bytes: bytes


class KeyEventStore:
    def insert(self, conn: Connection, cid: str, leaf_index: int, event: KeyEvent, event_bytes: bytes) -> None:
        conn.execute(key_events.insert().values(
            cid=cid, leaf_index=leaf_index, publisher_id=event.publisher, kind=event.kind,
            key_id=event.subject_key_id, record_cid=event.record_cid, event_bytes=event_bytes,
            created_at=datetime.now(timezone.utc)))

    def iter_events(self, conn: Connection, *, publisher: str | None = None,
                    below_leaf: int | None = None) -> Iterator[StoredKeyEvent]:
        """Events in log order (optionally one publisher's, optionally only leaves < ``below_leaf``)."""
        q = select(key_events).order_by(key_events.c.leaf_index)
        if publisher is not None:
            q = q.where(key_events.c.publisher_id == publisher)
        else:
            q = q.where(key_events.c.publisher_id != SERVICE_SUBJECT)
        if below_leaf is not None:
            q = q.where(key_events.c.leaf_index < below_leaf)
        for row in conn.execute(q):
            yield _stored(row)

    def get(self, conn: Connection, cid: str) -> StoredKeyEvent | None:
        row = conn.execute(select(key_events).where(key_events.c.cid == cid,
                                                    key_events.c.publisher_id != SERVICE_SUBJECT)).first()
        return None if row is None else _stored(row)

    def has_cid(self, conn: Connection, cid: str) -> bool:
        """Whether any event (a publisher's or the service's) is stored under ``cid``."""
        return conn.execute(select(key_events.c.cid).where(key_events.c.cid == cid)).first() is not None

    # --- service events (log-key and anchorer rotations: provenance/service_events.py) --------------------------
    def insert_service_event(self, conn: Connection, cid: str, leaf_index: int, event: ServiceEvent,
                             event_bytes: bytes) -> None:
        subject = event.new_key.key_id if isinstance(event, LogKeyRotation) else event.new_anchorer
        conn.execute(key_events.insert().values(
            cid=cid, leaf_index=leaf_index, publisher_id=SERVICE_SUBJECT, kind=event.kind, key_id=subject,
            record_cid=None, event_bytes=event_bytes, created_at=datetime.now(timezone.utc)))

    def iter_service_events(self, conn: Connection, *, kind: str | None = None,
                            below_leaf: int | None = None) -> Iterator[StoredServiceEvent]:
        """Service events in log order, as stored: parsing is the caller's (an audit reports a bad one)."""
        q = select(key_events).where(key_events.c.publisher_id == SERVICE_SUBJECT).order_by(key_events.c.leaf_index)
        if kind is not None:
            q = q.where(key_events.c.kind == kind)
        if below_leaf is not None:
            q = q.where(key_events.c.leaf_index < below_leaf)
        for row in conn.execute(q):
            yield StoredServiceEvent(row.cid, int(row.leaf_index), row.kind, bytes(row.event_bytes))

    def withdrawal(self, conn: Connection, record_cid: str) -> StoredKeyEvent | None:
        row = conn.execute(select(key_events).where(key_events.c.record_cid == record_cid,
                                                    key_events.c.kind == "record-withdrawal")).first()
        return None if row is None else _stored(row)

    def key_subjects(self, conn: Connection, publisher: str | None = None) -> list[tuple[str, str, str | None]]:
        """``(publisher, kind, subject key id)`` of every event (of one publisher): what ``keyevents.legacy_keys``
        needs."""
        q = select(key_events.c.publisher_id, key_events.c.kind, key_events.c.key_id)
        if publisher is not None:
            q = q.where(key_events.c.publisher_id == publisher)
        else:
            q = q.where(key_events.c.publisher_id != SERVICE_SUBJECT)
        return [(r.publisher_id, r.kind, r.key_id) for r in conn.execute(q)]

    def has_events(self, conn: Connection, publisher: str) -> bool:
        return conn.execute(select(key_events.c.cid).where(key_events.c.publisher_id == publisher).limit(1)
                            ).first() is not None

    def count(self, conn: Connection) -> int:
        from sqlalchemy import func

        return int(conn.execute(select(func.count()).select_from(key_events)).scalar_one())

    # --- statements -------------------------------------------------------------------------------------------
    def statement_use(self, conn: Connection, digest: str) -> str | None:
        """The record CID a statement was already used for, or None."""
        row = conn.execute(select(used_statements.c.record_cid)
                           .where(used_statements.c.statement_sha256 == digest)).first()
        return None if row is None else str(row.record_cid)

    def stage_statement(self, conn: Connection, publisher: str, image_sha256: str, data: bytes) -> None:
        conn.execute(staged_statements.delete().where(staged_statements.c.publisher_id == publisher,
                                                      staged_statements.c.image_sha256 == image_sha256))
        conn.execute(staged_statements.insert().values(publisher_id=publisher, image_sha256=image_sha256,
                                                       statement_bytes=data, created_at=datetime.now(timezone.utc)))

    def staged_statement(self, conn: Connection, publisher: str, image_sha256: str) -> bytes | None:
        row = conn.execute(select(staged_statements.c.statement_bytes).where(
            staged_statements.c.publisher_id == publisher, staged_statements.c.image_sha256 == image_sha256)).first()
        return None if row is None else bytes(row.statement_bytes)

    def unstage_statement(self, conn: Connection, publisher: str, image_sha256: str) -> None:
        conn.execute(staged_statements.delete().where(staged_statements.c.publisher_id == publisher,
                                                      staged_statements.c.image_sha256 == image_sha256))

    def use_statement(self, conn: Connection, digest: str, record_cid: str) -> None:
        conn.execute(used_statements.insert().values(statement_sha256=digest, record_cid=record_cid,
                                                     created_at=datetime.now(timezone.utc)))


def _stored(row) -> StoredKeyEvent:  # type: ignore[no-untyped-def]
    import json

    data = bytes(row.event_bytes)
    return StoredKeyEvent(row.cid, int(row.leaf_index), KeyEvent.from_obj(json.loads(data)), data)
