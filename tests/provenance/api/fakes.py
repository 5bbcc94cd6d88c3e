"""Small test doubles for the API's unit tests: a real ledger (SQLite, local block store, pHash only, a fake
anchor) with a fake lookup and a synchronous queue, so every route runs without the network or a model."""

from __future__ import annotations

import io
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from provenance.anchor.base import AnchorReceipt, OnChainAnchor
from provenance.blockstore import LocalBlockStore
from provenance.db import create_schema, make_engine
from provenance.hashing import PHashHasher
from provenance.index.errors import EmptyIndexError
from provenance.keyring import Keyring
from provenance.ledger import Ledger, LedgerConfig
from provenance.records import PublisherMetadata, parse_record, record_view


def textured_image(seed: int, size: tuple[int, int] = (160, 120), fmt: str = "PNG") -> bytes:
    """A random but smooth image: distinct seeds give pHashes far apart."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


class FakeAnchor:
    chain_id = 1337
    contract_address = "0x" + "ab" * 20
    ephemeral = True

    def __init__(self) -> None:
        self.block = 0

    def anchor(self, log_id: bytes, tree_size: int, root: bytes) -> AnchorReceipt:
        self.block += 1
        return AnchorReceipt(chain_id=self.chain_id, contract_address=self.contract_address,
                             tx_hash="0x" + f"{self.block:064x}", block_number=self.block,
                             block_timestamp=1_700_000_000 + self.block, gas_used=77_165, log_id=log_id,
                             tree_size=tree_size, root=root, ephemeral=True)

    def read(self, log_id: bytes, tree_size: int) -> OnChainAnchor | None:
        return None

    def latest(self, log_id: bytes) -> OnChainAnchor | None:
        return None

    def describe(self) -> str:
        return "fake anchor"


def make_ledger(data_dir: Path) -> Ledger:
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{data_dir / 'ledger.sqlite3'}")
    create_schema(engine)
    anchor = FakeAnchor()
    return Ledger(engine=engine, blockstore=LocalBlockStore(data_dir / "blocks"), keyring=Keyring(data_dir / "keys"),
                  hashers=(PHashHasher(),),
                  config=LedgerConfig(origin="test.example/log", log_key_name="test-log",
                                      max_image_bytes=2_000_000, max_image_pixels=10_000_000),
                  anchor_factory=lambda _ledger: anchor)


def _hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


@dataclass
class FakeVerdict:
    obj: dict[str, Any]

    def to_obj(self) -> dict[str, Any]:
        return dict(self.obj)


class FakeLookup:
    """Nearest pHash within 10 bits is a match; ``altered`` marks query sha256s to report as altered (with a
    change map written where the lookup was told to); ``error`` makes every call raise it."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.codes: dict[str, tuple[str, str]] = {}  # record cid -> (publisher, phash hex)
        self.withdrawn: set[str] = set()
        self.altered: set[bytes] = set()
        self.error: Exception | None = None
        self.calls = 0

    def register(self, cid: str, publisher: str, hashes: Any, features: bytes) -> None:
        for h in hashes:
            if h.alg == "phash":
                self.codes[cid] = (publisher, h.value)
        with self.ledger.engine.begin() as conn:  # the "registered" mark, as the real lookup writes it last
            self.ledger.store.put_features(conn, cid, features)

    def withdraw(self, cid: str, publisher: str) -> None:
        self.withdrawn.add(cid)

    def withdrawn_at(self, cid: str) -> datetime | None:
        return datetime(2024, 5, 1, tzinfo=timezone.utc) if cid in self.withdrawn else None

    def search(self, alg: str, value_hex: str, k: int | None = None, *,
               model_id: str | None = None) -> list[tuple[str, int]]:
        if alg != "phash" or not self.codes:
            raise EmptyIndexError(f"hash channel {alg!r} has no live entries")
        hits = sorted((_hamming(v, value_hex), cid) for cid, (_, v) in self.codes.items() if cid not in self.withdrawn)
        return [(cid, d) for d, cid in hits[: k or 10]]

    def lookup(self, data: bytes, *, change_map_dir: Path | None = None) -> FakeVerdict:
        self.calls += 1
        if self.error is not None:
            raise self.error
        code = self.ledger.hash_image(data)[0]
        hits = self.search("phash", code.value, 5) if self.codes else []
        candidates = [{"record_cid": cid, "distance": d, "inliers": 40 if d <= 10 else 0, "passed": d <= 10}
                      for cid, d in hits]
        best = next((c for c in candidates if c["passed"]), None)
        verdict, change_map = ("no_match", None) if best is None else ("match", None)
        import hashlib

        if best is not None and hashlib.sha256(data).digest() in self.altered:
            verdict = "altered"
            if change_map_dir is not None:
                path = Path(change_map_dir) / "map.png"
                Image.new("RGBA", (16, 12), (255, 0, 0, 128)).save(path)
                change_map = str(path)
        return FakeVerdict({"verdict": verdict, "record_cid": best["record_cid"] if best else None,
                            "hash": code.value, "model": code.model_id, "hashes": {code.alg: code.value},
                            "candidates": candidates,
                            "change_map": change_map, "thresholds": {"hash_threshold": 10}})


@dataclass
class FakeTaskStatus:
    id: str
    state: str
    step: str | None = None
    record_cid: str | None = None
    duplicate: bool = False
    error: str | None = None


@dataclass
class FakeQueue:
    """Runs each ingest synchronously at submit (the in-process queue's outcome, without its threads)."""

    ledger: Ledger
    lookup: FakeLookup
    tasks: dict[str, FakeTaskStatus] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str) -> str:
        from provenance.images import inspect_image

        cfg = self.ledger.config
        inspect_image(data, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels, name=source)
        task_id = uuid.uuid4().hex
        try:
            result = self.ledger.ingest(data, publisher=publisher, metadata=metadata, source=source)
            self.lookup.register(result.cid, publisher, self.ledger.hash_image(data), b"")
            status = FakeTaskStatus(task_id, "succeeded", "ingest", result.cid, result.duplicate)
        except Exception as exc:  # noqa: BLE001 - reported through the task status, as the real queue does
            status = FakeTaskStatus(task_id, "failed", "ingest", error=str(exc))
        with self.lock:
            self.tasks[task_id] = status
        return task_id

    def status(self, task_id: str) -> FakeTaskStatus | None:
        return self.tasks.get(task_id)


class FakePipeline:
    c2pa_trust_anchors = None

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def check(self, data: bytes, *, source: str = "image") -> None:
        from provenance.images import inspect_image

        cfg = self.ledger.config
        inspect_image(data, max_bytes=cfg.max_image_bytes, max_pixels=cfg.max_image_pixels, name=source)


@dataclass
class FakeService:
    ledger: Ledger
    lookup: FakeLookup
    pipeline: FakePipeline
    queue: FakeQueue
    closed: bool = False

    @classmethod
    def open(cls, data_dir: Path) -> FakeService:
        ledger = make_ledger(data_dir)
        lookup = FakeLookup(ledger)
        return cls(ledger, lookup, FakePipeline(ledger), FakeQueue(ledger, lookup))

    def record(self, cid: str) -> dict[str, Any]:
        with self.ledger.reader.connect() as conn:
            stored = self.ledger.store.get(conn, cid)
        assert stored is not None
        return record_view(parse_record(stored.record_bytes))

    def close(self) -> None:
        self.closed = True
        self.ledger.close()
