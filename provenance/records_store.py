"""SQL record store: publishers and their public keys, signed records, checkpoints and their chain anchors.

SQLAlchemy Core over :data:`provenance.db.metadata`; the same code runs on SQLite (embedded) and PostgreSQL.
Methods take a ``Connection`` so callers can put a record row and its log leaf in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy import Index as SqlIndex
from sqlalchemy.engine import Connection

from provenance.anchor.base import AnchorReceipt
from provenance.db import metadata
from provenance.errors import UnknownPublisherError

publishers = Table(
    "publishers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

publisher_keys = Table(
    "publisher_keys",
    metadata,
    Column("key_id", String(80), primary_key=True),
    Column("publisher_id", String(64), ForeignKey("publishers.id"), nullable=False, index=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

records = Table(
    "records",
    metadata,
    Column("cid", String(128), primary_key=True),
    Column("publisher_id", String(64), ForeignKey("publishers.id"), nullable=False),
    Column("image_sha256", String(64), nullable=False),
    Column("image_cid", String(128), nullable=False, index=True),
    Column("record_bytes", LargeBinary, nullable=False),
    Column("leaf_index", BigInteger, nullable=False, unique=True),
    Column("ingested_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("publisher_id", "image_sha256", name="uq_records_publisher_image"),
    # Who registered these bytes first, whatever the publisher (ingest precedence): by sha256 alone.
    SqlIndex("ix_records_image_sha256", "image_sha256"),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("anchor_chain_id", BigInteger),
    Column("anchor_contract", String(42)),
    Column("anchor_tx", String(66)),
    Column("anchor_block", BigInteger),
    Column("anchor_block_time", BigInteger),
    Column("anchor_gas", Integer),
    Column("anchor_ephemeral", Boolean),
)

witness_sizes = Table(
    # Per witness (``name+keyid`` of its verifier key), the tree size it last cosigned for this log, as last learned
    # (from its cosignature or from its 409 answer): the ``old`` size of the next add-checkpoint request.
    "witness_sizes",
    metadata,
    Column("witness", String(300), primary_key=True),
    Column("tree_size", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

local_features = Table(
    # Local features (RootSIFT) of each record's image for geometric verification at lookup: beside the record,
    # not in it (they are large, and derived from the image anyone can fetch by its CID).
    "local_features",
    metadata,
    Column("record_cid", String(100), primary_key=True),
    Column("blob", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

chain_deployments = Table(
    "chain_deployments",
    metadata,
    Column("chain_id", BigInteger, primary_key=True),
    Column("contract_address", String(42), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class StoredRecord:
    cid: str
    publisher_id: str
    image_sha256: str
    image_cid: str
    record_bytes: bytes
    leaf_index: int


@dataclass(frozen=True)
class CheckpointSummary:
    tree_size: int
    created_at: datetime
    anchored: bool
    ephemeral: bool
    anchored_tree_size: int  # of the latest anchored checkpoint (0: none)


@dataclass(frozen=True)
class StoredCheckpoint:
    tree_size: int
    root: bytes
    note: str
    anchor: AnchorReceipt | None


class RecordStore:
    # --- publishers --------------------------------------------------------------------------------------------
    def add_publisher(self, conn: Connection, publisher_id: str, key_id: str, public_key: Ed25519PublicKey) -> None:
        now = _now()
        conn.execute(publishers.insert().values(id=publisher_id, created_at=now))
        conn.execute(
            publisher_keys.insert().values(
                key_id=key_id, publisher_id=publisher_id, public_key=public_key.public_bytes_raw(), created_at=now
            )
        )

    def add_publisher_key(self, conn: Connection, publisher_id: str, key_id: str,
                          public_key: Ed25519PublicKey) -> None:
        """Another key of a registered publisher (a rotation's new key)."""
        conn.execute(publisher_keys.insert().values(key_id=key_id, publisher_id=publisher_id,
                                                    public_key=public_key.public_bytes_raw(), created_at=_now()))

    def has_publisher(self, conn: Connection, publisher_id: str) -> bool:
        return conn.execute(select(publishers.c.id).where(publishers.c.id == publisher_id)).first() is not None

    def list_publishers(self, conn: Connection) -> list[tuple[str, str]]:
        rows = conn.execute(
            select(publisher_keys.c.publisher_id, publisher_keys.c.key_id).order_by(publisher_keys.c.publisher_id)
        )
        return [(r.publisher_id, r.key_id) for r in rows]

    def public_key(self, conn: Connection, publisher_id: str, key_id: str) -> Ed25519PublicKey:
        row = conn.execute(
            select(publisher_keys.c.public_key).where(
                publisher_keys.c.key_id == key_id, publisher_keys.c.publisher_id == publisher_id
            )
        ).first()
        if row is None:
            raise UnknownPublisherError(f"key {key_id} is not registered to publisher {publisher_id!r}")
        return Ed25519PublicKey.from_public_bytes(bytes(row.public_key))

    # --- records -------------------------------------------------------------------------------------------------
    def insert_record(self, conn: Connection, rec: StoredRecord, ingested_at: datetime) -> None:
        conn.execute(
            records.insert().values(
                cid=rec.cid,
                publisher_id=rec.publisher_id,
                image_sha256=rec.image_sha256,
                image_cid=rec.image_cid,
                record_bytes=rec.record_bytes,
                leaf_index=rec.leaf_index,
                ingested_at=ingested_at,
            )
        )

    def find_by_image(self, conn: Connection, publisher_id: str, image_sha256: str) -> StoredRecord | None:
        row = conn.execute(
            select(records).where(records.c.publisher_id == publisher_id, records.c.image_sha256 == image_sha256)
        ).first()
        return _stored(row) if row else None

    def earliest_by_image(self, conn: Connection, image_sha256: str, *,
                          other_than: str | None = None) -> StoredRecord | None:
        """The record of these bytes first appended to the log (lowest leaf index), of any publisher but
        ``other_than``."""
        stmt = select(records).where(records.c.image_sha256 == image_sha256)
        if other_than is not None:
            stmt = stmt.where(records.c.publisher_id != other_than)
        row = conn.execute(stmt.order_by(records.c.leaf_index).limit(1)).first()
        return _stored(row) if row else None

    def find_by_image_cid(self, conn: Connection, image_cid: str) -> list[StoredRecord]:
        """Every publisher's record of these exact image bytes, oldest first."""
        rows = conn.execute(select(records).where(records.c.image_cid == image_cid).order_by(records.c.leaf_index))
        return [_stored(r) for r in rows]

    def get(self, conn: Connection, cid: str) -> StoredRecord | None:
        row = conn.execute(select(records).where(records.c.cid == cid)).first()
        return _stored(row) if row else None

    def get_many(self, conn: Connection, cids: Iterable[str], batch: int = 500) -> dict[str, StoredRecord]:
        """The stored records of ``cids`` that exist, by CID, in as few queries as ``batch`` allows (a lookup's
        candidates in one round trip, not one each)."""
        wanted = sorted(set(cids))
        out: dict[str, StoredRecord] = {}
        for i in range(0, len(wanted), batch):
            for row in conn.execute(select(records).where(records.c.cid.in_(wanted[i:i + batch]))):
                out[row.cid] = _stored(row)
        return out

    def iter_records(self, conn: Connection, batch: int = 1000):
        """All records in log order, streamed in batches."""
        last = -1
        while True:
            rows = conn.execute(
                select(records).where(records.c.leaf_index > last).order_by(records.c.leaf_index).limit(batch)
            ).all()
            if not rows:
                return
            for row in rows:
                yield _stored(row)
            last = rows[-1].leaf_index

    def records_in_leaf_range(self, conn: Connection, start: int, end: int) -> list[StoredRecord]:
        """Records whose log leaf is in ``[start, end)``, in log order (what one checkpoint's batch added)."""
        rows = conn.execute(select(records).where(records.c.leaf_index >= start, records.c.leaf_index < end)
                            .order_by(records.c.leaf_index)).all()
        return [_stored(r) for r in rows]

    def find_by_cid_prefix(self, conn: Connection, prefix: str, limit: int = 2) -> list[StoredRecord]:
        """Records whose CID starts with ``prefix`` (lowercase base32 text; a C2PA manifest label gives one). The
        range bounds let the primary-key index serve it; LIKE makes it exact."""
        if not prefix or not prefix.isalnum() or not prefix.islower():
            return []
        stmt = select(records).where(records.c.cid >= prefix, records.c.cid <= prefix + "z" * 128,
                                     records.c.cid.startswith(prefix, autoescape=True))
        return [_stored(r) for r in conn.execute(stmt.order_by(records.c.cid).limit(limit)).all()]

    def count(self, conn: Connection) -> int:
        from sqlalchemy import func

        return int(conn.execute(select(func.count()).select_from(records)).scalar_one())

    # --- checkpoints ---------------------------------------------------------------------------------------------
    def put_features(self, conn: Connection, record_cid: str, blob: bytes) -> None:
        """Store (or replace) the local-feature blob of a record."""
        conn.execute(local_features.delete().where(local_features.c.record_cid == record_cid))
        conn.execute(local_features.insert().values(record_cid=record_cid, blob=blob, created_at=_now()))

    def get_features(self, conn: Connection, record_cid: str) -> bytes | None:
        row = conn.execute(select(local_features.c.blob).where(local_features.c.record_cid == record_cid)).first()
        return None if row is None else bytes(row.blob)

    def add_checkpoint(self, conn: Connection, tree_size: int, root: bytes, note: str) -> None:
        conn.execute(checkpoints.insert().values(tree_size=tree_size, root=root, note=note, created_at=_now()))

    def set_anchor(self, conn: Connection, tree_size: int, receipt: AnchorReceipt) -> None:
        conn.execute(
            checkpoints.update()
            .where(checkpoints.c.tree_size == tree_size)
            .values(
                anchor_chain_id=receipt.chain_id,
                anchor_contract=receipt.contract_address,
                anchor_tx=receipt.tx_hash,
                anchor_block=receipt.block_number,
                anchor_block_time=receipt.block_timestamp,
                anchor_gas=receipt.gas_used,
                anchor_ephemeral=receipt.ephemeral,
            )
        )

    def replace_checkpoint_note(self, conn: Connection, tree_size: int, note: str) -> None:
        """Replace a checkpoint's note by the same signed note with more (cosignature) lines."""
        conn.execute(checkpoints.update().where(checkpoints.c.tree_size == tree_size).values(note=note))

    def witness_sizes(self, conn: Connection) -> dict[str, int]:
        return {r.witness: int(r.tree_size) for r in conn.execute(select(witness_sizes))}

    def set_witness_size(self, conn: Connection, witness: str, tree_size: int) -> None:
        conn.execute(witness_sizes.delete().where(witness_sizes.c.witness == witness))
        conn.execute(witness_sizes.insert().values(witness=witness, tree_size=tree_size, updated_at=_now()))

    def checkpoints(self, conn: Connection, log_id: bytes) -> list[StoredCheckpoint]:
        rows = conn.execute(select(checkpoints).order_by(checkpoints.c.tree_size)).all()
        return [_checkpoint(r, log_id) for r in rows]

    def latest_checkpoint(self, conn: Connection, log_id: bytes) -> StoredCheckpoint | None:
        row = conn.execute(select(checkpoints).order_by(checkpoints.c.tree_size.desc()).limit(1)).first()
        return _checkpoint(row, log_id) if row else None

    def checkpoint_at(self, conn: Connection, log_id: bytes, tree_size: int) -> StoredCheckpoint | None:
        """The checkpoint signed at exactly ``tree_size``, or None."""
        row = conn.execute(select(checkpoints).where(checkpoints.c.tree_size == tree_size)).first()
        return _checkpoint(row, log_id) if row else None

    def checkpoint_summary(self, conn: Connection) -> CheckpointSummary | None:
        """The latest checkpoint's size, time and anchor, and the size the latest anchored one covers (metrics)."""
        row = conn.execute(select(checkpoints.c.tree_size, checkpoints.c.created_at, checkpoints.c.anchor_tx,
                                  checkpoints.c.anchor_ephemeral)
                           .order_by(checkpoints.c.tree_size.desc()).limit(1)).first()
        if row is None:
            return None
        anchored = conn.execute(select(checkpoints.c.tree_size).where(checkpoints.c.anchor_tx.is_not(None))
                                .order_by(checkpoints.c.tree_size.desc()).limit(1)).scalar()
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
        return CheckpointSummary(int(row.tree_size), created, row.anchor_tx is not None, bool(row.anchor_ephemeral),
                                 int(anchored or 0))

    # --- chain deployments ---------------------------------------------------------------------------------------
    def deployed_contract(self, conn: Connection, chain_id: int) -> str | None:
        row = conn.execute(
            select(chain_deployments.c.contract_address).where(chain_deployments.c.chain_id == chain_id)
        ).first()
        return row.contract_address if row else None

    def record_deployment(self, conn: Connection, chain_id: int, address: str) -> None:
        conn.execute(chain_deployments.delete().where(chain_deployments.c.chain_id == chain_id))
        conn.execute(chain_deployments.insert().values(chain_id=chain_id, contract_address=address, created_at=_now()))


def _stored(row) -> StoredRecord:  # type: ignore[no-untyped-def]
    return StoredRecord(
        cid=row.cid,
        publisher_id=row.publisher_id,
        image_sha256=row.image_sha256,
        image_cid=row.image_cid,
        record_bytes=bytes(row.record_bytes),
        leaf_index=int(row.leaf_index),
    )


def _checkpoint(row, log_id: bytes) -> StoredCheckpoint:  # type: ignore[no-untyped-def]
    anchor = None
    if row.anchor_tx is not None:
        anchor = AnchorReceipt(
            chain_id=int(row.anchor_chain_id),
            contract_address=row.anchor_contract,
            tx_hash=row.anchor_tx,
            block_number=int(row.anchor_block),
            block_timestamp=int(row.anchor_block_time),
            gas_used=int(row.anchor_gas),
            log_id=log_id,
            tree_size=int(row.tree_size),
            root=bytes(row.root),
            ephemeral=bool(row.anchor_ephemeral),
        )
    return StoredCheckpoint(tree_size=int(row.tree_size), root=bytes(row.root), note=row.note, anchor=anchor)
