"""Baseline: the schema of main at commit 84261ec, before key events, ingest tasks and receipts.

Frozen: this file describes a past schema and never changes. A database created by that code has these tables and
no ``alembic_version``; ``provenance.db.create_schema`` recognises it and stamps it 0001 before upgrading.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "publishers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", _UTC, nullable=False),
    )
    op.create_table(
        "checkpoints",
        sa.Column("tree_size", sa.BigInteger, primary_key=True),
        sa.Column("root", sa.LargeBinary(32), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("anchor_chain_id", sa.BigInteger),
        sa.Column("anchor_contract", sa.String(42)),
        sa.Column("anchor_tx", sa.String(66)),
        sa.Column("anchor_block", sa.BigInteger),
        sa.Column("anchor_block_time", sa.BigInteger),
        sa.Column("anchor_gas", sa.Integer),
        sa.Column("anchor_ephemeral", sa.Boolean),
    )
    op.create_table(
        "local_features",
        sa.Column("record_cid", sa.String(100), primary_key=True),
        sa.Column("blob", sa.LargeBinary, nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
    )
    op.create_table(
        "chain_deployments",
        sa.Column("chain_id", sa.BigInteger, primary_key=True),
        sa.Column("contract_address", sa.String(42), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
    )
    op.create_table(
        "index_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("record_cid", sa.String(128), nullable=False),
        sa.Column("publisher_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(256), nullable=False),
        sa.Column("added_at", _UTC, nullable=False),
        sa.Column("withdrawn_at", _UTC, nullable=True),
        sa.UniqueConstraint("record_cid", "channel", name="uq_index_entries_cid_channel"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_index_entries_channel_id", "index_entries", ["channel", "id"])
    op.create_table(
        "log_leaves",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("leaf_hash", sa.LargeBinary(32), nullable=False),
        sa.Column("record_cid", sa.Text, nullable=False, unique=True),
    )
    op.create_table(
        "log_nodes",
        sa.Column("level", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.CheckConstraint("level >= 1", name="log_nodes_level_above_leaves"),
    )
    log_state = op.create_table(
        "log_state",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name="log_state_single_row"),
        sa.CheckConstraint("size >= 0", name="log_state_size_nonnegative"),
    )
    # The model inserts this row from an ``after_create`` event; a migration must do it itself.
    op.bulk_insert(log_state, [{"id": 1, "size": 0}])
    op.create_table(
        "publisher_keys",
        sa.Column("key_id", sa.String(80), primary_key=True),
        sa.Column("publisher_id", sa.String(64), sa.ForeignKey("publishers.id"), nullable=False),
        sa.Column("public_key", sa.LargeBinary(32), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
    )
    op.create_index("ix_publisher_keys_publisher_id", "publisher_keys", ["publisher_id"])
    op.create_table(
        "records",
        sa.Column("cid", sa.String(128), primary_key=True),
        sa.Column("publisher_id", sa.String(64), sa.ForeignKey("publishers.id"), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("image_cid", sa.String(128), nullable=False),
        sa.Column("record_bytes", sa.LargeBinary, nullable=False),
        sa.Column("leaf_index", sa.BigInteger, nullable=False, unique=True),
        sa.Column("ingested_at", _UTC, nullable=False),
        sa.UniqueConstraint("publisher_id", "image_sha256", name="uq_records_publisher_image"),
    )
    op.create_index("ix_records_image_cid", "records", ["image_cid"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("publisher_id", sa.String(64), sa.ForeignKey("publishers.id"), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("revoked_at", _UTC),
    )
    op.create_index("ix_api_keys_publisher_id", "api_keys", ["publisher_id"])


def downgrade() -> None:
    for table in ("api_keys", "records", "publisher_keys", "log_state", "log_nodes", "log_leaves", "index_entries",
                  "chain_deployments", "local_features", "checkpoints", "publishers"):
        op.drop_table(table)
