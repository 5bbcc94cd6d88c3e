"""Issuing receipts over a real ledger, catalog and hash index (SQLite and PostgreSQL): which checkpoint a receipt
may name (every record of it searchable), signing, storage and retention."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine

import provenance.lookup_receipts as lookup_receipts
from provenance.blockstore import LocalBlockStore
from provenance.hashing import PHashHasher
from provenance.index import HashIndex
from provenance.index.catalog import index_entries
from provenance.keyring import Keyring
from provenance.ledger import Ledger, LedgerConfig
from provenance.lookup.service import Lookup
from provenance.lookup_receipts import ReceiptIssuer
from provenance.receipts import SignedReceipt, verify_receipt
from provenance.receipts_store import ReceiptStore, lookup_receipts as receipts_table
from provenance.records import PublisherMetadata
from provenance.translog import EMPTY_ROOT, encode_verifier_key


def photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)).resize((160, 120),
                                                                                      Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


@dataclass
class World:
    ledger: Ledger
    index: HashIndex  # this process's index (the API's)
    worker_index: HashIndex  # another process's (an ingest worker's), same catalog
    tmp: Path

    def ingest(self, seed: int) -> tuple[str, int]:
        res = self.ledger.ingest(photo(seed), publisher="acme", metadata=PublisherMetadata(title=f"p{seed}"))
        return res.cid, res.leaf_index

    def register(self, cid: str, seed: int, index: HashIndex | None = None) -> None:
        Lookup(self.ledger, index or self.worker_index).register(cid, "acme", self.ledger.hash_image(photo(seed)),
                                                                 b"features")

    def issuer(self, **kwargs) -> ReceiptIssuer:  # type: ignore[no-untyped-def]
        return ReceiptIssuer(self.ledger, self.index, **kwargs)


@pytest.fixture
def world(sql_engine: Engine, tmp_path: Path) -> Iterator[World]:
    ledger = Ledger(engine=sql_engine, blockstore=LocalBlockStore(tmp_path / "blocks"),
                    keyring=Keyring(tmp_path / "keys"),
                    hashers=(PHashHasher(),),
                    config=LedgerConfig(origin="test.example/log", log_key_name="test-log", max_image_bytes=2_000_000,
                                        max_image_pixels=10_000_000),
                    anchor_factory=lambda _ledger: None)  # type: ignore[arg-type,return-value]
    ledger.add_publisher("acme")
    yield World(ledger, HashIndex(tmp_path / "api", sql_engine), HashIndex(tmp_path / "worker", sql_engine), tmp_path)


def test_no_checkpoint_yet_names_the_empty_tree(world: World) -> None:
    cp = world.issuer().searchable_checkpoint()
    assert (cp.origin, cp.size, cp.root) == ("test.example/log", 0, EMPTY_ROOT)


def test_the_latest_checkpoint_when_everything_is_registered(world: World) -> None:
    for seed in (1, 2):
        cid, _ = world.ingest(seed)
        world.register(cid, seed)
    stored = world.ledger.checkpoint()
    cp = world.issuer().searchable_checkpoint()
    assert (cp.size, cp.root) == (stored.tree_size, stored.root) and cp.size >= 2


def test_a_record_not_yet_registered_holds_receipts_at_the_earlier_checkpoint(world: World) -> None:
    cid1, _ = world.ingest(1)
    world.register(cid1, 1)
    first = world.ledger.checkpoint()
    cid2, leaf2 = world.ingest(2)  # appended to the log, not yet searchable
    second = world.ledger.checkpoint()
    assert second.tree_size > leaf2 >= first.tree_size
    issuer = world.issuer()
    assert issuer.searchable_checkpoint().size == first.tree_size
    world.register(cid2, 2)
    assert issuer.searchable_checkpoint().size == second.tree_size


def test_a_catalog_row_committed_out_of_order_is_not_claimed(world: World) -> None:
    """PostgreSQL hands out ids at insert and rows become visible at commit: a worker's row with a lower id can
    commit after this process's index refreshed past it. Its record is registered (catalog + features) but this
    process cannot find it until it reopens its index, so no receipt may name a checkpoint that covers it."""
    cid1, _ = world.ingest(1)
    world.register(cid1, 1)
    first = world.ledger.checkpoint()
    cid2, _ = world.ingest(2)
    cid3, _ = world.ingest(3)
    world.register(cid2, 2)
    world.register(cid3, 3)
    with world.ledger.engine.begin() as conn:  # cid2's row "not committed yet" while this process refreshes
        late = conn.execute(select(index_entries).where(index_entries.c.record_cid == cid2)).mappings().all()
        conn.execute(index_entries.delete().where(index_entries.c.record_cid == cid2))
    world.index.refresh("phash")
    with world.ledger.engine.begin() as conn:  # ... then it commits, with its lower id
        conn.execute(insert(index_entries), [dict(r) for r in late])
    second = world.ledger.checkpoint()
    assert world.issuer().searchable_checkpoint().size == first.tree_size
    # Reopened (as after a restart), the index holds every catalog row again and the receipt moves on.
    fresh = ReceiptIssuer(world.ledger, HashIndex(world.tmp / "api", world.ledger.engine))
    assert fresh.searchable_checkpoint().size == second.tree_size


def test_another_processs_registrations_are_picked_up(world: World) -> None:
    issuer = world.issuer()
    cid, _ = world.ingest(1)
    world.ledger.checkpoint()
    assert issuer.searchable_checkpoint().size == 0  # nothing searchable yet: not even the first checkpoint
    world.register(cid, 1)  # by the worker's index: reaches ours through the catalog
    assert issuer.searchable_checkpoint().size == world.ledger.checkpoint().tree_size


def test_a_withdrawn_record_does_not_hold_receipts_back(world: World) -> None:
    cid, _ = world.ingest(1)
    world.register(cid, 1, world.index)
    world.index.withdraw(cid, "acme")
    stored = world.ledger.checkpoint()
    assert world.issuer().searchable_checkpoint().size == stored.tree_size


def test_issue_signs_stores_and_serves_the_receipt(world: World) -> None:
    cid, _ = world.ingest(1)
    world.register(cid, 1, world.index)
    world.ledger.checkpoint()
    issuer = world.issuer()
    query = photo(1)
    code = world.ledger.hash_image(query)[0]
    answer = {"verdict": "match", "record_cid": cid, "hash": code.value, "model": code.model_id,
              "hashes": {"phash": code.value},
              "candidates": [{"record_cid": cid, "distance": 0, "tolerant_distances": {}, "passed": True}]}
    checkpoint = issuer.searchable_checkpoint()
    signed = issuer.issue(query, answer, checkpoint)
    vkey = encode_verifier_key("test-log", world.ledger.log_public_key())
    assert issuer.verifier_key == vkey
    receipt = verify_receipt(signed.to_bytes(), vkey)
    assert receipt.verdict == "match" and receipt.record_cid == cid and receipt.checkpoint == checkpoint
    assert [c.to_obj() for c in receipt.codes] == [code.to_obj()]
    assert receipt.candidates[0].to_obj() == {"record_cid": cid, "distances": {"phash": 0}}
    stored = issuer.get(signed.receipt_id)
    assert stored == signed.to_bytes() and SignedReceipt.from_bytes(stored) == signed
    assert issuer.get("f" * 32) is None and issuer.get("../etc/passwd") is None


def test_retention_keeps_the_newest_receipts(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup_receipts, "PRUNE_EVERY_S", 0.0)
    issuer = world.issuer(max_count=2)
    answer = {"verdict": "no_match", "record_cid": None, "candidates": []}
    cp = issuer.searchable_checkpoint()
    ids = [issuer.issue(photo(i), answer, cp).receipt_id for i in range(4)]
    assert [issuer.get(i) is not None for i in ids] == [False, False, True, True]


def test_store_prunes_by_age_then_count(world: World) -> None:
    store = ReceiptStore()
    now = datetime.now(timezone.utc)
    with world.ledger.engine.begin() as conn:
        for n, age_days in enumerate([400, 100, 3, 2, 1]):
            store.put(conn, f"{n:032x}", now - timedelta(days=age_days), "no_match", b"{}")
        assert store.prune(conn, older_than=now - timedelta(days=365), keep_at_most=10) == 1
        assert store.prune(conn, older_than=now - timedelta(days=365), keep_at_most=2) == 2
        left = conn.execute(select(receipts_table.c.id).order_by(receipts_table.c.id)).scalars().all()
    assert left == [f"{3:032x}", f"{4:032x}"]
