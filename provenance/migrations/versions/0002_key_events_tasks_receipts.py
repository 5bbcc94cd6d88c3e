"""Publisher-held keys, witnesses, the durable in-process queue and lookup receipts.

New tables: ``key_events``, ``used_statements``, ``staged_statements`` (publisher keys and their log events),
``witness_sizes`` (the tree size each witness last cosigned), ``ingest_tasks`` (the in-process queue's tasks) and
``lookup_receipts``; a new index ``ix_records_image_sha256`` (ingest precedence looks records up by sha256 alone).
No existing column changes, so no data moves.

Each object is created only when missing: databases made by the development code between 0001 and this revision
(``create_all`` without Alembic) already have some of them, and upgrade the same way.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def _tables() -> set[str]:
    if context.is_offline_mode():  # --sql: the script is for a database at 0001, where none of these exist
        return set()
    return set(sa.inspect(op.get_bind()).get_table_names())


def _create_index(name: str, table: str, columns: list[str]) -> None:
    if context.is_offline_mode() or name not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns)


def upgrade() -> None:
    existing = _tables()
    if "witness_sizes" not in existing:
        op.create_table(
            "witness_sizes",
            sa.Column("witness", sa.String(300), primary_key=True),
            sa.Column("tree_size", sa.BigInteger, nullable=False),
            sa.Column("updated_at", _UTC, nullable=False),
        )
    if "key_events" not in existing:
        op.create_table(
            "key_events",
            sa.Column("cid", sa.String(128), primary_key=True),
            sa.Column("leaf_index", sa.BigInteger, nullable=False, unique=True),
            sa.Column("publisher_id", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("key_id", sa.String(80)),
            sa.Column("record_cid", sa.String(128)),
            sa.Column("event_bytes", sa.LargeBinary, nullable=False),
            sa.Column("created_at", _UTC, nullable=False),
        )
    _create_index("ix_key_events_publisher_id", "key_events", ["publisher_id"])
    _create_index("ix_key_events_record_cid", "key_events", ["record_cid"])
    if "used_statements" not in existing:
        op.create_table(
            "used_statements",
            sa.Column("statement_sha256", sa.String(64), primary_key=True),
            sa.Column("record_cid", sa.String(128), nullable=False),
            sa.Column("created_at", _UTC, nullable=False),
        )
    if "staged_statements" not in existing:
        op.create_table(
            "staged_statements",
            sa.Column("publisher_id", sa.String(64), primary_key=True),
            sa.Column("image_sha256", sa.String(64), primary_key=True),
            sa.Column("statement_bytes", sa.LargeBinary, nullable=False),
            sa.Column("created_at", _UTC, nullable=False),
        )
    if "lookup_receipts" not in existing:
        op.create_table(
            "lookup_receipts",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("issued_at", _UTC, nullable=False),
            sa.Column("verdict", sa.String(32), nullable=False),
            sa.Column("body", sa.LargeBinary, nullable=False),
        )
    _create_index("ix_lookup_receipts_issued_at", "lookup_receipts", ["issued_at"])
    if "ingest_tasks" not in existing:
        op.create_table(
            "ingest_tasks",
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("publisher_id", sa.String(64), nullable=False),
            sa.Column("image_cid", sa.String(128), nullable=False),
            sa.Column("source", sa.String(256), nullable=False),
            sa.Column("metadata", sa.Text, nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("step", sa.String(32)),
            sa.Column("record_cid", sa.String(128)),
            sa.Column("duplicate", sa.Boolean, nullable=False),
            sa.Column("error", sa.Text),
            sa.Column("details", sa.Text),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("created_at", _UTC, nullable=False),
            sa.Column("updated_at", _UTC, nullable=False),
        )
    _create_index("ix_ingest_tasks_state", "ingest_tasks", ["state", "created_at"])
    _create_index("ix_records_image_sha256", "records", ["image_sha256"])


def downgrade() -> None:
    op.drop_index("ix_records_image_sha256", table_name="records")
    for table in ("ingest_tasks", "lookup_receipts", "staged_statements", "used_statements", "key_events",
                  "witness_sizes"):
        op.drop_table(table)  # their indexes go with them
