"""SQL table of issued lookup receipts, for their permalinks (``GET /v1/receipts/{id}``).

One row per receipt: its id, when it was issued, its verdict (for operators' queries) and its exact canonical bytes
(what was signed and handed out). Bounded by age and count (``PROVENANCE_RECEIPT_RETENTION_DAYS``,
``PROVENANCE_RECEIPT_MAX_COUNT``): a receipt is self-contained and verifies offline, so a pruned permalink loses
nothing a holder of the receipt file needs. SQLAlchemy Core on :data:`provenance.db.metadata`, like the record store.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, LargeBinary, String, Table, select
from sqlalchemy.engine import Connection

from provenance.db import metadata

__all__ = ["ReceiptStore", "lookup_receipts"]

lookup_receipts = Table(
    "lookup_receipts",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("issued_at", DateTime(timezone=True), nullable=False, index=True),
    Column("verdict", String(32), nullable=False),
    Column("body", LargeBinary, nullable=False),
)


class ReceiptStore:
    """Reads and writes of ``lookup_receipts`` (stateless; methods take a ``Connection``, callers own the
    transaction)."""

    def put(self, conn: Connection, receipt_id: str, issued_at: datetime, verdict: str, body: bytes) -> None:
        conn.execute(lookup_receipts.insert().values(id=receipt_id, issued_at=issued_at, verdict=verdict, body=body))

    def get(self, conn: Connection, receipt_id: str) -> bytes | None:
        row = conn.execute(select(lookup_receipts.c.body).where(lookup_receipts.c.id == receipt_id)).first()
        return None if row is None else bytes(row.body)

    def prune(self, conn: Connection, *, older_than: datetime, keep_at_most: int) -> int:
        """Delete receipts issued before ``older_than``, then the oldest beyond ``keep_at_most``; returns how many."""
        deleted = conn.execute(lookup_receipts.delete().where(lookup_receipts.c.issued_at < older_than)).rowcount
        cutoff = conn.execute(select(lookup_receipts.c.issued_at).order_by(lookup_receipts.c.issued_at.desc())
                              .offset(keep_at_most).limit(1)).scalar()
        if cutoff is not None:
            deleted += conn.execute(lookup_receipts.delete().where(lookup_receipts.c.issued_at <= cutoff)).rowcount
        return int(deleted)
