"""The ledger service: publishers, ingest, checkpoints and anchoring, over narrow interfaces.

Write order at ingest is chosen so that nothing is ever half-written:
1. everything that can refuse the input (image decoding, limits, publisher, signature) runs before any write;
2. the image and the signed record go to the content-addressed block store (a crash here leaves only unreferenced,
   self-verifying blobs, never a record without its content);
3. the record row and its log leaf are written in ONE database transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from provenance.anchor.base import Anchor
from provenance.blockstore import BlockStore
from provenance.cid import cid_for_bytes
from provenance.db import reader
from provenance.errors import IntegrityError, InvalidImageError, LogError, ProvenanceError, UnknownPublisherError
from provenance.hashing import Hasher
from provenance.images import IMAGE_SUFFIXES, inspect_image
from provenance.keyring import Keyring, validate_name
from provenance.logging import get_logger
from provenance.records import (
    PerceptualHash,
    ProvenanceRecord,
    PublisherMetadata,
    SignedRecord,
    key_id_for,
    utc_now,
)
from provenance.records_store import RecordStore, StoredCheckpoint, StoredRecord
from provenance.translog import Checkpoint, SqlTransparencyLog, sign_checkpoint

log = get_logger(__name__)


@dataclass(frozen=True)
class LedgerConfig:
    origin: str
    log_key_name: str
    max_image_bytes: int
    max_image_pixels: int

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(self.origin.encode("utf-8")).digest()


@dataclass(frozen=True)
class IngestResult:
    cid: str
    leaf_index: int
    image_cid: str
    duplicate: bool


@dataclass(frozen=True)
class IngestFailure:
    source: str
    error: ProvenanceError


class Ledger:
    def __init__(
        self,
        *,
        engine: Engine,
        blockstore: BlockStore,
        keyring: Keyring,
        hashers: tuple[Hasher, ...],
        config: LedgerConfig,
        anchor_factory: Callable[[Ledger], Anchor],
    ) -> None:
        self.engine = engine  # writes: on SQLite each transaction takes the write lock at BEGIN
        self.reader = reader(engine)  # reads: never hold or wait for the write lock
        self.blockstore = blockstore
        self.keyring = keyring
        self.hashers = hashers
        self.config = config
        self.store = RecordStore()
        self.log = SqlTransparencyLog()
        self._anchor_factory = anchor_factory
        self._anchor: Anchor | None = None

    # --- publishers --------------------------------------------------------------------------------------------
    def add_publisher(self, name: str) -> str:
        """Create an Ed25519 key for ``name`` in the keyring and register its public half. Returns the key id."""
        validate_name(name)
        with self.engine.begin() as conn:
            if self.store.has_publisher(conn, name):
                raise ProvenanceError(f"publisher {name!r} is already registered")
            key = self.keyring.create_publisher_key(name)
            key_id = key_id_for(key.public_key())
            self.store.add_publisher(conn, name, key_id, key.public_key())
        log.info("publisher.added", publisher=name, key_id=key_id)
        return key_id

    # --- ingest ---------------------------------------------------------------------------------------------------
    def ingest(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "image",
               hashes: tuple[PerceptualHash, ...] | None = None, c2pa: dict[str, Any] | None = None) -> IngestResult:
        """Hash (unless ``hashes`` were computed already, e.g. by a GPU worker), sign with the publisher's local key
        and append one image. ``c2pa`` is the summary of the image's C2PA manifest, if read."""
        info = inspect_image(
            data, max_bytes=self.config.max_image_bytes, max_pixels=self.config.max_image_pixels, name=source
        )
        sha = hashlib.sha256(data).hexdigest()
        with self.reader.connect() as conn:
            if not self.store.has_publisher(conn, publisher):
                raise UnknownPublisherError(f"publisher {publisher!r} is not registered (provenance publishers add)")
            existing = self.store.find_by_image(conn, publisher, sha)
        if existing is not None:
            return _result(existing, duplicate=True)
        key = self.keyring.publisher_key(publisher)
        record = ProvenanceRecord(
            image_sha256=sha,
            image_cid=cid_for_bytes(data),
            media_type=info.media_type,
            width=info.width,
            height=info.height,
            byte_size=len(data),
            hashes=hashes if hashes is not None else self.hash_image(data),
            publisher_id=publisher,
            key_id=key_id_for(key.public_key()),
            metadata=metadata,
            c2pa=c2pa,
            ingested_at=utc_now(),
        )
        return self._append(record.sign(key), data, source=source)

    def hash_image(self, data: bytes) -> tuple[PerceptualHash, ...]:
        return tuple(h.hash_image(data) for h in self.hashers)

    def find_existing(self, data: bytes, publisher: str) -> IngestResult | None:
        """The record this publisher already has for these exact bytes, if any (idempotent ingest)."""
        with self.reader.connect() as conn:
            existing = self.store.find_by_image(conn, publisher, hashlib.sha256(data).hexdigest())
        return None if existing is None else _result(existing, duplicate=True)

    def ingest_signed(self, signed: SignedRecord, image: bytes, *, source: str = "image") -> IngestResult:
        """Append a record the publisher signed. Refused (nothing written) unless it verifies and matches the image."""
        rec = signed.record
        if hashlib.sha256(image).hexdigest() != rec.image_sha256 or cid_for_bytes(image) != rec.image_cid:
            raise InvalidImageError(f"{source}: image bytes do not match the record's sha256/CID")
        inspect_image(image, max_bytes=self.config.max_image_bytes, max_pixels=self.config.max_image_pixels, name=source)
        with self.reader.connect() as conn:
            if not self.store.has_publisher(conn, rec.publisher_id):
                raise UnknownPublisherError(f"publisher {rec.publisher_id!r} is not registered")
        return self._append(signed, image, source=source)

    def _append(self, signed: SignedRecord, image: bytes, *, source: str) -> IngestResult:
        """Verify the signature under the registered key, then write: blobs first, then row + leaf in one transaction.
        Callers have already checked the image and that the publisher exists."""
        rec = signed.record
        with self.reader.connect() as conn:
            public_key = self.store.public_key(conn, rec.publisher_id, rec.key_id)
        signed.verify(public_key)
        record_bytes = signed.to_bytes()
        cid = cid_for_bytes(record_bytes)
        for blob, expected in ((image, rec.image_cid), (record_bytes, cid)):
            got = self.blockstore.put(blob)
            if got != expected:
                raise IntegrityError(f"block store returned CID {got}, expected {expected}")
        with self.engine.begin() as conn:
            existing = self.store.find_by_image(conn, rec.publisher_id, rec.image_sha256)
            if existing is not None:  # a concurrent ingest of the same bytes won the race
                return _result(existing, duplicate=True)
            leaf = self.log.append(conn, cid)
            stored = StoredRecord(cid, rec.publisher_id, rec.image_sha256, rec.image_cid, record_bytes, leaf.index)
            self.store.insert_record(conn, stored, datetime.now(timezone.utc))
        log.info("record.appended", cid=cid, leaf_index=leaf.index, publisher=rec.publisher_id, source=source)
        return _result(stored, duplicate=False)

    def ingest_paths(
        self, paths: Iterable[Path], *, publisher: str, metadata: PublisherMetadata
    ) -> Iterator[IngestResult | IngestFailure]:
        """Ingest files (directories mean every image in them, sorted); a bad file is reported, not fatal."""
        for path in expand_image_paths(paths):
            try:
                data = path.read_bytes()
                yield self.ingest(data, publisher=publisher, metadata=metadata, source=str(path))
            except (InvalidImageError, OSError) as exc:
                err = exc if isinstance(exc, ProvenanceError) else InvalidImageError(f"{path}: {exc}")
                yield IngestFailure(str(path), err)

    # --- checkpoints and anchoring ----------------------------------------------------------------------------
    def checkpoint(self) -> StoredCheckpoint:
        """Sign a checkpoint of the current tree (or return the latest if the tree has not grown)."""
        with self.engine.begin() as conn:
            size = self.log.size(conn)
            latest = self.store.latest_checkpoint(conn, self.config.log_id)
            if latest is not None and latest.tree_size == size:
                return latest
            if size == 0:
                raise LogError("the log is empty: ingest something before checkpointing")
            root = self.log.root(conn, size)
            note = sign_checkpoint(
                Checkpoint(self.config.origin, size, root),
                self.config.log_key_name,
                self.keyring.service_key(self.config.log_key_name),
            )
            self.store.add_checkpoint(conn, size, root, note)
        log.info("checkpoint.signed", tree_size=size, root=root.hex())
        with self.reader.connect() as conn:
            cp = self.store.latest_checkpoint(conn, self.config.log_id)
        assert cp is not None
        return cp

    @property
    def anchor_backend(self) -> Anchor:
        if self._anchor is None:
            self._anchor = self._anchor_factory(self)
        return self._anchor

    def anchor(self) -> StoredCheckpoint:
        """Checkpoint, then timestamp that checkpoint on chain with one transaction (unless already there)."""
        cp = self.checkpoint()
        backend = self.anchor_backend
        if cp.anchor is not None and (cp.anchor.chain_id, cp.anchor.contract_address.lower()) == (
            backend.chain_id,
            backend.contract_address.lower(),
        ):
            return cp
        receipt = backend.anchor(self.config.log_id, cp.tree_size, cp.root)
        with self.engine.begin() as conn:
            self.store.set_anchor(conn, cp.tree_size, receipt)
        log.info("checkpoint.anchored", tree_size=cp.tree_size, chain=backend.describe(), tx=receipt.tx_hash,
                 gas=receipt.gas_used)
        return StoredCheckpoint(cp.tree_size, cp.root, cp.note, receipt)

    def log_public_key(self):  # type: ignore[no-untyped-def]
        return self.keyring.service_key(self.config.log_key_name).public_key()

    def close(self) -> None:
        self.blockstore.close()
        self.engine.dispose()


def expand_image_paths(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            yield path


def _result(rec: StoredRecord, *, duplicate: bool) -> IngestResult:
    return IngestResult(cid=rec.cid, leaf_index=rec.leaf_index, image_cid=rec.image_cid, duplicate=duplicate)
