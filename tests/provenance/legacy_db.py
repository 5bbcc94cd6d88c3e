"""A database at revision 0001 (the schema of main at 84261ec), with data in it, as that code wrote it.

Built with migration 0001, then the ``alembic_version`` table is dropped: a database made by 84261ec's
``create_all`` had none. The data are real: custodial publisher keys in a keyring, v1 records signed with them and
their images in a local block store, log leaves and subtree nodes, two signed checkpoints (one with an anchor
receipt), local features, index catalog rows, an API key and a chain deployment. Every write goes through a store
method that touches only tables of 0001.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import MetaData, inspect, select, text
from sqlalchemy.engine import Engine

from provenance.anchor.base import AnchorReceipt
from provenance.api.keys import create_api_key
from provenance.blockstore import LocalBlockStore
from provenance.cid import cid_for_bytes
from provenance.db import make_engine
from provenance.index.catalog import IndexCatalog
from provenance.keyring import Keyring
from provenance.migrations import BASELINE_TABLES
from provenance.migrations.runner import alembic_config
from provenance.records import PerceptualHash, ProvenanceRecord, PublisherMetadata
from provenance.records_store import RecordStore, StoredRecord
from provenance.statements import key_id_for, utc_now
from provenance.translog import Checkpoint, SqlTransparencyLog, sign_checkpoint

ORIGIN = "provenance.example/log"  # Settings' defaults: a Ledger opened later on the data dir verifies these
LOG_KEY = "provenance-log"


@dataclass
class LegacyDatabase:
    url: str
    data_dir: Path
    api_key: str
    record_cids: list[str]
    checkpoint_sizes: list[int]


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise((64, 48), 30 + seed).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def build_legacy_database(url: str, data_dir: Path) -> LegacyDatabase:
    from alembic import command

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "0001")
            conn.execute(text("DROP TABLE alembic_version"))
        return _fill(engine, url, data_dir)
    finally:
        engine.dispose()


def _fill(engine: Engine, url: str, data_dir: Path) -> LegacyDatabase:
    keyring = Keyring(data_dir / "keys")
    blocks = LocalBlockStore(data_dir / "blocks")
    store, log, catalog = RecordStore(), SqlTransparencyLog(), IndexCatalog()
    service_key = keyring.service_key(LOG_KEY)
    keys = {name: keyring.create_publisher_key(name) for name in ("acme", "beta")}
    with engine.begin() as conn:
        for name, key in keys.items():
            store.add_publisher(conn, name, key_id_for(key.public_key()), key.public_key())
    cids: list[str] = []
    sizes: list[int] = []
    for i, publisher in enumerate(["acme", "acme", "beta", "acme"]):
        key = keys[publisher]
        image = png(i)
        code = f"{0x0f0f0f0f0f0f0f0f ^ (i * 0x1111):016x}"
        record = ProvenanceRecord(
            image_sha256=hashlib.sha256(image).hexdigest(), image_cid=cid_for_bytes(image),
            media_type="image/png", width=64, height=48, byte_size=len(image),
            hashes=(PerceptualHash("phash", "phash-v1", 64, code),), publisher_id=publisher,
            key_id=key_id_for(key.public_key()), metadata=PublisherMetadata(title=f"photo {i}"),
            ingested_at=utc_now(),
        ).sign(key)
        data = record.to_bytes()
        assert blocks.put(image) == record.record.image_cid and blocks.put(data) == record.cid
        with engine.begin() as conn:
            leaf = log.append(conn, record.cid)
            store.insert_record(conn, StoredRecord(record.cid, publisher, record.record.image_sha256,
                                                   record.record.image_cid, data, leaf.index),
                                datetime.now(timezone.utc))
            store.put_features(conn, record.cid, bytes(range(256)) * 4)
            catalog.insert(conn, "phash", record.cid, publisher, code)
        cids.append(record.cid)
        if i in (1, 3):
            with engine.begin() as conn:
                size = log.size(conn)
                root = log.root(conn, size)
                store.add_checkpoint(conn, size, root, sign_checkpoint(Checkpoint(ORIGIN, size, root), LOG_KEY,
                                                                       service_key))
                if i == 1:
                    store.set_anchor(conn, size, AnchorReceipt(
                        chain_id=1337, contract_address="0x" + "ab" * 20, tx_hash="0x" + "cd" * 32, block_number=7,
                        block_timestamp=1_700_000_000, gas_used=94_000, log_id=b"\0" * 32, tree_size=size,
                        root=root, ephemeral=True))
            sizes.append(size)
    with engine.begin() as conn:
        store.record_deployment(conn, 1337, "0x" + "ab" * 20)
    api_key = create_api_key(engine, "acme")
    blocks.close()
    return LegacyDatabase(url, data_dir, api_key, cids, sizes)


def baseline_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every baseline table, in primary-key order (what an upgrade must keep exactly)."""
    meta = MetaData()
    with engine.connect() as conn:
        meta.reflect(conn, only=sorted(BASELINE_TABLES))
        out = {}
        for name in sorted(BASELINE_TABLES):
            table = meta.tables[name]
            out[name] = [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
        assert set(inspect(conn).get_table_names()) >= BASELINE_TABLES
    return out
