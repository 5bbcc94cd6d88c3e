"""The ledger service: publishers, ingest, checkpoints and anchoring, over narrow interfaces.

Write order at ingest is chosen so that nothing is ever half-written:
1. everything that can refuse the input (image decoding, limits, publisher, signature) runs before any write;
2. the image and the signed record go to the content-addressed block store (a crash here leaves only unreferenced,
   self-verifying blobs, never a record without its content);
3. the record row and its log leaf are written in ONE database transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sqlalchemy.engine import Engine

from provenance.anchor.base import Anchor, SoftBindingEntry
from provenance.blockstore import BlockStore
from provenance.cid import cid_for_bytes
from provenance.db import reader
from provenance.errors import (
    ConfigError,
    IntegrityError,
    InvalidImageError,
    InvalidInputError,
    KeyEventError,
    LogError,
    LogKeyChangedError,
    ProvenanceError,
    ReplayError,
    SignatureError,
    StatementError,
    UnknownPublisherError,
)
from provenance.hashing import Hasher
from provenance.images import IMAGE_SUFFIXES, inspect_image
from provenance.keyring import Keyring, validate_name
from provenance.logging import get_logger
from provenance import keyevents
from provenance.keyevents import KeyEvent
from provenance.keyevents_store import KeyEventStore, StoredKeyEvent
from provenance.records import AnyRecord, AttestedRecord, PerceptualHash, PublisherMetadata, parse_record
from provenance.statements import PublisherStatement, SignedStatement, key_id_for, parse_utc, utc_now
from provenance.records_store import RecordStore, StoredCheckpoint, StoredRecord
from provenance.service_events import LOG_KEY_ROTATION, LogKeyChain, LogKeyRotation
from provenance.translog import Checkpoint, SqlTransparencyLog, sign_checkpoint
from provenance.witness.cosigning import CheckpointWitnesses

log = get_logger(__name__)


@dataclass(frozen=True)
class LedgerConfig:
    origin: str
    log_key_name: str
    max_image_bytes: int
    max_image_pixels: int
    statement_max_age_s: float = 600.0  # a publisher statement older (or further in the future) than this is stale
    # C2PA federated lookup: our Soft Binding Resolution API URL(s), published on chain with every record's soft
    # bindings in the anchor's transaction (docs/c2pa-softbinding.md). Empty: anchors carry no bindings.
    softbinding_endpoints: tuple[str, ...] = ()

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
        witnesses: CheckpointWitnesses | None = None,
    ) -> None:
        self.engine = engine  # writes: on SQLite each transaction takes the write lock at BEGIN
        self.reader = reader(engine)  # reads: never hold or wait for the write lock
        self.blockstore = blockstore
        self.keyring = keyring
        self.hashers = hashers
        self.config = config
        self.store = RecordStore()
        self.events = KeyEventStore()
        self.log = SqlTransparencyLog()
        self._anchor_factory = anchor_factory
        self._anchor: Anchor | None = None
        self.witnesses = witnesses  # with a quorum, checkpoints are published only once witnesses cosigned them

    # --- publishers and their keys ------------------------------------------------------------------------------
    def add_publisher(self, name: str, public_key: Ed25519PublicKey | None = None) -> str:
        """Register ``name``. With ``public_key`` the publisher holds its own key (custody ``publisher``: the service
        never sees the private half); without, a custodial key is created in the keyring (custody ``service``).
        The registration is a key event in the log, signed by the operator. Returns the key id."""
        validate_name(name)
        with self.reader.connect() as conn:
            if self.store.has_publisher(conn, name):
                raise InvalidInputError(f"publisher {name!r} is already registered")
        custody = "publisher" if public_key is not None else "service"
        if public_key is None:
            public_key = self.keyring.create_publisher_key(name).public_key()
        event = keyevents.registration(name, public_key, custody, self._service_key())
        key_id = key_id_for(public_key)
        self._append_event(event, add_key=(name, key_id, public_key), new_publisher=True)
        log.info("publisher.added", publisher=name, key_id=key_id, custody=custody)
        return key_id

    def custody(self, publisher: str) -> str:
        with self.reader.connect() as conn:
            if not self.store.has_publisher(conn, publisher):
                raise UnknownPublisherError(f"publisher {publisher!r} is not registered")
            history = self._history(conn, publisher)
        return history.custody(publisher) or "service"  # registered before key events existed: custodial

    def append_key_event(self, event: KeyEvent) -> str:
        """Append a key event a publisher (or the operator) signed: rotation, revocation or withdrawal. It is checked
        against the publisher's history first; nothing is written when it does not hold. Returns its CID."""
        add_key = None
        if event.kind in ("key-rotation",):
            new = event.new_key
            assert new is not None
            add_key = (event.publisher, key_id_for(new), new)
        return self._append_event(event, add_key=add_key)

    def rotate_custodial_key(self, publisher: str) -> str:
        """A service-custody publisher's key, replaced by a new custodial key (signed by the old one)."""
        if self.custody(publisher) != "service":
            raise InvalidInputError(f"publisher {publisher!r} holds its own key: it signs its own rotation "
                                    "(provenance client rotate)")
        old = self.keyring.publisher_key(publisher)
        new = self.keyring.replace_publisher_key(publisher)
        event = keyevents.rotation(publisher, key_id_for(old.public_key()), new.public_key(), "service", old)
        self.append_key_event(event)
        return key_id_for(new.public_key())

    def withdraw(self, record_cid: str, publisher: str, event: KeyEvent | None = None) -> str:
        """Log the withdrawal of ``record_cid``: ``event`` as the publisher signed it, or (service custody only)
        signed here with the custodial key. Returns the event's CID."""
        if event is None:
            if self.custody(publisher) != "service":
                raise SignatureError(f"publisher {publisher!r} holds its own key: a withdrawal must carry its "
                                     "signed record-withdrawal event")
            event = keyevents.withdrawal(publisher, record_cid, self.keyring.publisher_key(publisher))
        if event.kind != "record-withdrawal" or event.record_cid != record_cid or event.publisher != publisher:
            raise KeyEventError(f"the event must be {publisher!r}'s record-withdrawal of {record_cid}")
        return self._append_event(event)

    def withdrawal(self, record_cid: str) -> StoredKeyEvent | None:
        with self.reader.connect() as conn:
            return self.events.withdrawal(conn, record_cid)

    def withdrawn_records_of(self, data: bytes) -> list[dict[str, Any]]:
        """Records of exactly these image bytes that their publishers withdrew: lookups say so (and when) instead
        of pretending the record never existed. (A withdrawn record's codes leave the index, so an edited or
        re-encoded copy of it is not found; its exact bytes are.)"""
        out = []
        with self.reader.connect() as conn:
            for rec in self.store.find_by_image_cid(conn, cid_for_bytes(data)):
                ev = self.events.withdrawal(conn, rec.cid)
                if ev is not None:
                    out.append({"record_cid": rec.cid, "publisher": rec.publisher_id,
                                "withdrawn_at": ev.event.issued_at, "event_cid": ev.cid,
                                "event_leaf_index": ev.leaf_index, "reason": ev.event.body.get("reason", "")})
        return out

    def key_history(self, *, below_leaf: int | None = None) -> keyevents.KeyHistory:
        with self.reader.connect() as conn:
            return self._history(conn, None, below_leaf=below_leaf)

    def _history(self, conn, publisher: str | None, *, below_leaf: int | None = None) -> keyevents.KeyHistory:  # type: ignore[no-untyped-def]
        def rows():  # type: ignore[no-untyped-def]
            for ev in self.events.iter_events(conn, publisher=publisher, below_leaf=below_leaf):
                owner = None
                if ev.event.record_cid is not None:
                    rec = self.store.get(conn, ev.event.record_cid)
                    owner = rec.publisher_id if rec is not None and rec.leaf_index < ev.leaf_index else None
                yield ev.leaf_index, ev.event, owner
        chain = self.log_key_chain(conn)
        return keyevents.replay(chain.current.key.public_key, rows(), legacy=self._legacy_keys(conn, publisher),
                                operator_keys=chain.public_key_at)

    def _legacy_keys(self, conn, publisher: str | None):  # type: ignore[no-untyped-def]
        """Keys of publishers registered before key events existed (a database of schema 0001): custodial keys
        from leaf -1, seeded before the replay so that their own later events check like anyone's
        (keyevents.legacy_keys)."""
        subjects = self.events.key_subjects(conn, publisher)
        if publisher is not None and any(kind == "key-registration" for _p, kind, _k in subjects):
            return {}  # the common case: registered through the log, nothing to read
        table = [(p, k) for p, k in self.store.list_publishers(conn) if publisher is None or p == publisher]
        return keyevents.legacy_keys(table, subjects, lambda p, k: self.store.public_key(conn, p, k))

    def _append_event(self, event: KeyEvent, *, add_key: tuple[str, str, Ed25519PublicKey] | None = None,
                      new_publisher: bool = False) -> str:
        data = event.to_bytes()
        cid = cid_for_bytes(data)
        got = self.blockstore.put(data)
        if got != cid:
            raise IntegrityError(f"block store returned CID {got}, expected {cid}")
        with self.engine.begin() as conn:
            if new_publisher:
                if self.store.has_publisher(conn, event.publisher):
                    raise InvalidInputError(f"publisher {event.publisher!r} is already registered")
            elif not self.store.has_publisher(conn, event.publisher):
                raise UnknownPublisherError(f"publisher {event.publisher!r} is not registered")
            if self.events.get(conn, cid) is not None:
                raise ReplayError(f"key event {cid} is already in the log (a replay)")
            history = self._history(conn, event.publisher)
            leaf = self.log.size(conn)
            owner = None
            if event.record_cid is not None:
                rec = self.store.get(conn, event.record_cid)
                owner = rec.publisher_id if rec is not None else None
            history.apply(event, leaf, record_publisher=owner)  # raises: nothing written
            if new_publisher:
                assert add_key is not None
                self.store.add_publisher(conn, event.publisher, add_key[1], add_key[2])
            elif add_key is not None:
                self.store.add_publisher_key(conn, *add_key)
            appended = self.log.append(conn, cid)
            self.events.insert(conn, cid, appended.index, event, data)
        log.info("key_event.appended", kind=event.kind, publisher=event.publisher, cid=cid, leaf_index=appended.index,
                 signer=event.signer_role)
        return cid

    def _service_key(self) -> Ed25519PrivateKey:
        return self.log_signing_key()

    # --- the log's own key (docs/key-rotation.md) -----------------------------------------------------------------
    def log_key_chain(self, conn=None) -> LogKeyChain:  # type: ignore[no-untyped-def]
        """Every key the log has had, from its log-key rotation events read on ``conn`` (default: a new read
        connection); ServiceEventError or SignatureError when one is invalid."""
        if conn is None:
            with self.reader.connect() as c:
                return self.log_key_chain(c)
        rotations = []
        for ev in self.events.iter_service_events(conn, kind=LOG_KEY_ROTATION):
            event = ev.parse()
            assert isinstance(event, LogKeyRotation)
            rotations.append((ev.leaf_index, event, ev.cid))
        current = None if rotations else self.keyring.service_key(self.config.log_key_name).public_key()
        return LogKeyChain.replay(self.config.origin, self.config.log_key_name, rotations, current=current)

    def log_signing_key(self) -> Ed25519PrivateKey:
        """The private half of the log key in force now."""
        with self.reader.connect() as conn:
            return self._signing_key(conn)

    def _signing_key(self, conn, size: int | None = None) -> Ed25519PrivateKey:  # type: ignore[no-untyped-def]
        """The keyring's log key, checked against the key the log says is in force (at ``size``, default now).
        Finishes a rotation that was logged but whose key file was not yet moved into place (a crash between)."""
        name = self.config.log_key_name
        chain = self.log_key_chain(conn)
        want = chain.current if size is None else chain.key_at(size)
        key = self.keyring.service_key(name)
        if want.key.same(key.public_key()):
            return key
        pending = self.keyring.pending_service_key(name)
        if pending is not None and want is chain.current and want.key.same(pending.public_key()):
            self.keyring.commit_service_key(name)
            log.warning("log_key.rotation_finished", key=want.key.label)
            return pending
        raise ConfigError(f"the keyring's log key {key_id_for(key.public_key())} is not the key in force in the log "
                          f"({want.key.label}, {want.key.key_id}): restore the key file the last rotation installed")

    # --- ingest ---------------------------------------------------------------------------------------------------
    def ingest(self, data: bytes, *, publisher: str, metadata: PublisherMetadata, source: str = "image",
               hashes: tuple[PerceptualHash, ...] | None = None, c2pa: dict[str, Any] | None = None,
               statement: SignedStatement | None = None) -> IngestResult:
        """Hash (unless ``hashes`` were computed already, e.g. by a GPU worker), attest and append one image.

        ``statement`` is the publisher's signed statement (required for a publisher-custody publisher; its metadata
        is what the record carries). Without it, a service-custody publisher's statement is signed here with its
        custodial key. ``c2pa`` is the summary of the image's C2PA manifest, if read."""
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
        custody = self.custody(publisher)
        if statement is None and custody == "publisher":
            statement = self.staged_statement(publisher, sha)  # verified when the upload was accepted
            if statement is not None:
                self.check_statement(statement, data, publisher=publisher, fresh=False)
        elif statement is not None:
            self.check_statement(statement, data, publisher=publisher)
        if statement is None:
            if custody != "service":
                raise StatementError(f"publisher {publisher!r} holds its own key: an upload must carry its signed "
                                     "statement (provenance client submit)")
            key = self.keyring.publisher_key(publisher)
            statement = PublisherStatement(sha, cid_for_bytes(data), info.media_type, metadata, publisher,
                                           key_id_for(key.public_key()), utc_now()).sign(key)
        if statement.statement.media_type != info.media_type:
            raise StatementError(f"statement says {statement.statement.media_type}, the image is {info.media_type}")
        hashes = hashes if hashes is not None else self.hash_image(data)
        for attempt in (1, 2):
            record = AttestedRecord.attest(
                statement, custody=custody, width=info.width, height=info.height, byte_size=len(data),
                hashes=hashes, c2pa=c2pa, service_key=self._service_key())
            try:
                return self._append(record, data, source=source)
            except LogKeyChangedError:
                if attempt == 2:
                    raise
                log.info("ingest.reattest", reason="the log key was rotated during this ingest")
        raise AssertionError("unreachable")

    def stage_statement(self, signed: SignedStatement, data: bytes, *, publisher: str) -> None:
        """Check a statement when its upload is accepted, and keep it for the queue's append step."""
        self.check_statement(signed, data, publisher=publisher)
        with self.engine.begin() as conn:
            self.events.stage_statement(conn, publisher, signed.statement.image_sha256, signed.to_bytes())

    def staged_statement(self, publisher: str, image_sha256: str) -> SignedStatement | None:
        with self.reader.connect() as conn:
            data = self.events.staged_statement(conn, publisher, image_sha256)
        return None if data is None else SignedStatement.from_obj(json.loads(data))

    def check_statement(self, signed: SignedStatement, data: bytes | None = None, *, publisher: str,
                        now: datetime | None = None, fresh: bool = True) -> None:
        """Everything that can refuse a publisher's statement, before any work is queued: it names this publisher
        and (when given) these bytes, it is fresh and unused, and it verifies under a key the publisher holds now.
        StatementError / SignatureError / RevokedKeyError naming what failed; nothing is written."""
        st = signed.statement
        if st.publisher_id != publisher:
            raise StatementError(f"statement is by publisher {st.publisher_id!r}, but the upload is {publisher!r}'s")
        if data is not None:
            if hashlib.sha256(data).hexdigest() != st.image_sha256:
                raise StatementError("statement names another image: its sha256 differs from the uploaded bytes")
            if cid_for_bytes(data) != st.image_cid:
                raise StatementError("statement names another image: its CID differs from the uploaded bytes")
        now = now or datetime.now(timezone.utc)
        age = (now - parse_utc(st.issued_at)).total_seconds()
        if fresh and abs(age) > self.config.statement_max_age_s:
            raise StatementError(f"statement was issued at {st.issued_at}, {age:.0f} s from now: more than the "
                                 f"{self.config.statement_max_age_s:.0f} s allowed (sign it again)")
        with self.reader.connect() as conn:
            used = self.events.statement_use(conn, signed.digest)
            if used is not None:
                raise ReplayError(f"statement was already used for record {used} (a replay)")
            history = self._history(conn, publisher)
            state = history.check_signer(publisher, st.key_id, self.log.size(conn), signed_at=st.issued_at)
        signed.verify(state.public_key)

    def hash_image(self, data: bytes) -> tuple[PerceptualHash, ...]:
        return tuple(h.hash_image(data) for h in self.hashers)

    def find_existing(self, data: bytes, publisher: str) -> IngestResult | None:
        """The record this publisher already has for these exact bytes, if any (idempotent ingest)."""
        with self.reader.connect() as conn:
            existing = self.store.find_by_image(conn, publisher, hashlib.sha256(data).hexdigest())
        return None if existing is None else _result(existing, duplicate=True)

    def ingest_signed(self, signed: AnyRecord, image: bytes, *, source: str = "image") -> IngestResult:
        """Append a record the publisher signed. Refused (nothing written) unless it verifies and matches the image."""
        rec = signed.record
        if hashlib.sha256(image).hexdigest() != rec.image_sha256 or cid_for_bytes(image) != rec.image_cid:
            raise InvalidImageError(f"{source}: image bytes do not match the record's sha256/CID")
        inspect_image(image, max_bytes=self.config.max_image_bytes, max_pixels=self.config.max_image_pixels, name=source)
        with self.reader.connect() as conn:
            if not self.store.has_publisher(conn, rec.publisher_id):
                raise UnknownPublisherError(f"publisher {rec.publisher_id!r} is not registered")
        return self._append(signed, image, source=source)

    def _append(self, signed: AnyRecord, image: bytes, *, source: str) -> IngestResult:
        """Verify the signatures under the registered keys, then write: blobs first, then row + leaf (+ the
        statement's one use) in one transaction, where the signing key is checked once more against the log's key
        events (a revocation that raced this ingest wins). Callers have checked the image and the publisher."""
        rec = signed.record
        with self.reader.connect() as conn:
            public_key = self.store.public_key(conn, rec.publisher_id, rec.key_id)
            chain = self.log_key_chain(conn)
        signed.verify(public_key)
        if isinstance(signed, AttestedRecord):
            epoch = chain.find(signed.attestation.service_key_id)
            if epoch is None:
                raise SignatureError(f"attestation names service key {signed.attestation.service_key_id}, which "
                                     "was never this log's key")
            signed.verify_attestation(epoch.key.public_key)
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
            history = self._history(conn, rec.publisher_id)
            signed_at = signed.statement.statement.issued_at if isinstance(signed, AttestedRecord) else None
            history.check_signer(rec.publisher_id, rec.key_id, self.log.size(conn), signed_at=signed_at)
            if isinstance(signed, AttestedRecord):
                in_force = self.log_key_chain(conn).key_at(self.log.size(conn))
                if in_force.key.key_id != signed.attestation.service_key_id:
                    raise LogKeyChangedError(f"attested with {signed.attestation.service_key_id}, but the log key "
                                             f"in force is now {in_force.key.key_id}")
                used = self.events.statement_use(conn, signed.statement.digest)
                if used is not None:
                    raise ReplayError(f"statement was already used for record {used} (a replay)")
                self.events.use_statement(conn, signed.statement.digest, cid)
                self.events.unstage_statement(conn, rec.publisher_id, rec.image_sha256)
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
        """Sign a checkpoint of the current tree (or return the latest if the tree has not grown). With witnesses
        configured, it is stored (published) only with a quorum of cosignatures, else WitnessQuorumError."""
        if self.witnesses is not None:
            return self.witnesses.publish(self)
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
                self._signing_key(conn, size),
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

    def reset_anchor_backend(self) -> None:
        """Forget the chain connection: the next anchor reconnects (with the anchorer key a rotation installed)."""
        self._anchor = None

    def anchor(self) -> StoredCheckpoint:
        """Checkpoint, then timestamp that checkpoint on chain with one transaction (unless already there)."""
        cp = self.checkpoint()
        backend = self.anchor_backend
        if cp.anchor is not None and (cp.anchor.chain_id, cp.anchor.contract_address.lower()) == (
            backend.chain_id,
            backend.contract_address.lower(),
        ):
            return cp
        bindings = self._batch_bindings(backend, cp.tree_size)
        if bindings:  # the batch's soft bindings go in the anchor's own transaction (C2PA federated lookup)
            receipt = backend.anchor(self.config.log_id, cp.tree_size, cp.root, bindings)
        else:
            receipt = backend.anchor(self.config.log_id, cp.tree_size, cp.root)
        with self.engine.begin() as conn:
            self.store.set_anchor(conn, cp.tree_size, receipt)
        log.info("checkpoint.anchored", tree_size=cp.tree_size, chain=backend.describe(), tx=receipt.tx_hash,
                 gas=receipt.gas_used, bindings=len(bindings))
        return StoredCheckpoint(cp.tree_size, cp.root, cp.note, receipt)

    def _batch_bindings(self, backend: Anchor, tree_size: int) -> list[SoftBindingEntry]:
        """The soft bindings of the records appended since the last checkpoint anchored on ``backend`` (none when
        no endpoint is configured)."""
        if not self.config.softbinding_endpoints:
            return []
        from provenance.softbinding.publish import bindings_for

        key = (backend.chain_id, backend.contract_address.lower())
        with self.reader.connect() as conn:
            start = max((c.tree_size for c in self.store.checkpoints(conn, self.config.log_id) if c.anchor is not None
                         and (c.anchor.chain_id, c.anchor.contract_address.lower()) == key), default=0)
            batch = self.store.records_in_leaf_range(conn, start, tree_size)
        return bindings_for(((r.cid, parse_record(r.record_bytes)) for r in batch),
                            self.config.softbinding_endpoints)

    def log_public_key(self) -> Ed25519PublicKey:
        """The public half of the keyring's log key: what the operator's own audit trusts. (A log-key history the
        keyring disagrees with is left for that audit to report, not raised here.)"""
        try:
            return self.log_signing_key().public_key()
        except ProvenanceError:
            return self.keyring.service_key(self.config.log_key_name).public_key()

    def close(self) -> None:
        if self.witnesses is not None:
            self.witnesses.close()
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
