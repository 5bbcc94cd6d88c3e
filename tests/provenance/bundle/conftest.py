"""Bundle fixtures: one real ledger (SQLite, local block store, in-process EVM) holding the publisher stories the
bundle tests need, built once per session; and a forging operator (a real in-memory Merkle log signed with its own
key) for the cases an honest ledger refuses to write."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from provenance import keyevents
from provenance.bundle import ProofBundle, make_entry
from provenance.bundle.build import build_bundle
from provenance.cid import cid_for_bytes
from provenance.config import Settings
from provenance.keyevents import KeyEvent
from provenance.ledger import Ledger
from provenance.metadata import PublisherMetadata
from provenance.records import PerceptualHash
from provenance.services import open_ledger
from provenance.statements import PublisherStatement, SignedStatement, key_id_for, utc_now
from provenance.translog import Checkpoint, MemoryMerkleLog, encode_verifier_key, record_leaf_data, sign_checkpoint

HASHES = (PerceptualHash("phash", "phash-v1", 64, "0f1e2d3c4b5a6978"),)


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(out, "PNG")
    return out.getvalue()


def statement(data: bytes, publisher: str, key: Ed25519PrivateKey, *, title: str = "Harbour",
              issued_at: str | None = None) -> SignedStatement:
    import hashlib

    return PublisherStatement(hashlib.sha256(data).hexdigest(), cid_for_bytes(data), "image/png",
                              PublisherMetadata(title=title), publisher, key_id_for(key.public_key()),
                              issued_at or utc_now()).sign(key)


def seconds_ago(text: str, seconds: int) -> str:
    t = datetime.strptime(text.split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return (t - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class World:
    data_dir: Path
    ledger: Ledger
    images: dict[str, bytes]
    cids: dict[str, str]  # custodial, rotated, revoked -> record CID
    bundles: dict[str, ProofBundle]
    log_key: str


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """acme (custodial) registers one image; newsroom (its own key) registers one, rotates its key, registers
    another; leaky registers one, then revokes its key as of before that statement (compromised). Anchored once."""
    data_dir = tmp_path_factory.mktemp("bundle-world") / "data"
    ledger = open_ledger(Settings(data_dir=data_dir))
    images = {name: png(seed) for seed, name in enumerate(("custodial", "first", "rotated", "revoked"), 1)}
    cids: dict[str, str] = {}
    ledger.add_publisher("acme")
    cids["custodial"] = ledger.ingest(images["custodial"], publisher="acme", metadata=PublisherMetadata(title="A"),
                                      hashes=HASHES).cid

    key1, key2 = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    ledger.add_publisher("newsroom", key1.public_key())
    cids["first"] = ledger.ingest(images["first"], publisher="newsroom", metadata=PublisherMetadata(),
                                  statement=statement(images["first"], "newsroom", key1), hashes=HASHES).cid
    ledger.append_key_event(keyevents.rotation("newsroom", key_id_for(key1.public_key()), key2.public_key(),
                                               "publisher", key1))
    cids["rotated"] = ledger.ingest(images["rotated"], publisher="newsroom", metadata=PublisherMetadata(),
                                    statement=statement(images["rotated"], "newsroom", key2), hashes=HASHES).cid

    leaky = Ed25519PrivateKey.generate()
    ledger.add_publisher("leaky", leaky.public_key())
    st = statement(images["revoked"], "leaky", leaky)
    cids["revoked"] = ledger.ingest(images["revoked"], publisher="leaky", metadata=PublisherMetadata(),
                                    statement=st, hashes=HASHES).cid
    ledger.append_key_event(keyevents.revocation("leaky", key_id_for(leaky.public_key()), leaky,
                                                 revoked_at=seconds_ago(st.statement.issued_at, 2),
                                                 reason="key compromised"))
    ledger.anchor()
    bundles = {name: b for name, cid in cids.items() if (b := build_bundle(ledger, cid)) is not None}
    log_key = encode_verifier_key(ledger.config.log_key_name, ledger.log_public_key())
    yield World(data_dir, ledger, images, cids, bundles, log_key)
    ledger.close()


# --- a forging operator ---------------------------------------------------------------------------------------------
@dataclass
class Operator:
    """A log operator with its own key and an in-memory RFC 6962 log: it can sign whatever it appends."""

    key: Ed25519PrivateKey = dataclasses.field(default_factory=Ed25519PrivateKey.generate)
    name: str = "forged-log"
    origin: str = "forged.example/log"

    @property
    def vkey(self) -> str:
        return encode_verifier_key(self.name, self.key.public_key())

    def bundle(self, entries: Sequence[bytes | KeyEvent], record_at: int) -> ProofBundle:
        """Log ``entries`` (record bytes or key events) in order, sign a checkpoint, bundle entry ``record_at``
        with every key event."""
        blobs = [e.to_bytes() if isinstance(e, KeyEvent) else e for e in entries]
        cids = [cid_for_bytes(b) for b in blobs]
        log = MemoryMerkleLog(record_leaf_data(c) for c in cids)
        note = sign_checkpoint(Checkpoint(self.origin, log.size, log.root()), self.name, self.key)
        made = [make_entry(c, b, i, log.inclusion_proof(i), note) for i, (c, b) in enumerate(zip(cids, blobs))]
        events = tuple(m for m, e in zip(made, entries) if isinstance(e, KeyEvent))
        return ProofBundle(self.vkey, made[record_at], events, None)


@pytest.fixture
def operator() -> Operator:
    return Operator()
