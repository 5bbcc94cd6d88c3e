"""``verify_bundle``: every check of a proof bundle that needs no database, no server and no network.

One call, an explicit policy of whom to trust, one error type. The checks run in this order and the first that
fails raises :class:`~provenance.errors.BundleError` whose ``check`` names it (docs/bundles.md says what each one
proves):

``log.key`` · ``log_key.history`` · ``checkpoint.signature`` · ``cosignature.quorum`` · ``record.cid`` · ``record.parse`` ·
``record.inclusion`` · ``event.cid`` · ``event.parse`` · ``event.checkpoint`` · ``event.order`` ·
``event.inclusion`` · ``key_history`` · ``key.unregistered`` · ``key.revoked`` · ``record.custody`` ·
``statement.signature`` · ``attestation.signature`` · ``image.digest`` · ``anchor.log_id`` · ``anchor.tree_size``
· ``anchor.root``

Trust: the log's verifier key comes from the policy (``--log-key``); without one, the bundle's own key is used and
the report says "trusted on first use". That key signs checkpoints, service attestations and the operator's key
events (registrations, operator rotations). When the log's key was rotated, the bundle carries the log-key rotations
below its checkpoint (docs/key-rotation.md): each is signed by the key it replaces and the key it brings in, the
trusted key must be one of the chain's, and each signature is checked under the key in force at its size or leaf.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance.bundle.model import LogEntry, ProofBundle, iso_time
from provenance.canonical import parse_canonical_json
from provenance.cid import cid_for_bytes
from provenance.errors import (
    BundleError,
    CheckpointError,
    CosignatureError,
    InvalidInputError,
    KeyEventError,
    ProofError,
    RevokedKeyError,
    ServiceEventError,
    SignatureError,
)
from provenance.keyevents import KeyEvent, KeyHistory
from provenance.records import AnyRecord, AttestedRecord, parse_record, record_custody
from provenance.translog import leaf_hash, record_leaf_data, verify_inclusion
from provenance.service_events import LogKeyChain, LogKeyRotation, is_service_event, parse_service_event
from provenance.translog.checkpoint import Checkpoint, VerifierKey, parse_checkpoint_note, parse_verifier_key
from provenance.translog.cosignature import check_cosignatures

__all__ = ["BundleReport", "CheckResult", "VerifyPolicy", "verify_bundle"]

TOFU = "trusted on first use"
GIVEN = "given"


@dataclass(frozen=True)
class VerifyPolicy:
    """Whom to trust. ``log_key``: the log's verifier key (``provenance log key`` prints it); None trusts the key
    the bundle carries, on first use. ``witness_keys`` (C2SP cosignature vkeys) with ``witness_quorum`` valid
    cosignatures required (None: all of them)."""

    log_key: str | None = None
    witness_keys: tuple[str, ...] = ()
    witness_quorum: int | None = None


@dataclass(frozen=True)
class CheckResult:
    check: str
    detail: str

    def to_obj(self) -> dict[str, Any]:
        return {"check": self.check, "ok": True, "detail": self.detail}


@dataclass(frozen=True)
class BundleReport:
    """What a bundle proved: which record, by whom, in which checkpoint, under which keys."""

    record_cid: str
    publisher: str
    key_id: str
    custody: str
    image_sha256: str
    image_cid: str
    leaf_index: int
    origin: str
    tree_size: int
    root: bytes
    log_key: str
    log_key_trust: str  # "given" or "trusted on first use"
    witnesses: tuple[str, ...]  # the witnesses whose cosignatures verified
    key_events: int
    withdrawn_at: str | None
    image_checked: bool
    anchor: dict[str, Any] | None
    checks: tuple[CheckResult, ...] = field(default=())
    log_key_rotations: int = 0  # rotations of the log's key replayed from the bundle

    def to_obj(self) -> dict[str, Any]:
        return {"ok": True, "record_cid": self.record_cid, "publisher": self.publisher, "key_id": self.key_id,
                "custody": self.custody, "image": {"sha256": self.image_sha256, "cid": self.image_cid,
                                                   "checked": self.image_checked},
                "leaf_index": self.leaf_index,
                "checkpoint": {"origin": self.origin, "tree_size": self.tree_size, "root": self.root.hex()},
                "log_key": self.log_key, "log_key_trust": self.log_key_trust, "witnesses": list(self.witnesses),
                "key_events": self.key_events, "log_key_rotations": self.log_key_rotations,
                "withdrawn_at": self.withdrawn_at, "anchor": self.anchor,
                "checks": [c.to_obj() for c in self.checks]}


class _Checks:
    def __init__(self) -> None:
        self.done: list[CheckResult] = []

    def ok(self, check: str, detail: str) -> None:
        self.done.append(CheckResult(check, detail))


def _fail(check: str, message: str) -> BundleError:
    return BundleError(message, check=check)


def verify_bundle(bundle: ProofBundle, *, image: bytes | None = None,
                  policy: VerifyPolicy = VerifyPolicy()) -> BundleReport:
    """Check ``bundle`` offline under ``policy`` (and ``image`` against the record, when given); BundleError naming
    the first check that fails, else the report."""
    checks = _Checks()
    key, trust = _log_key(bundle, policy, checks)
    chain = _log_key_history(bundle, key, checks)
    cp = _checkpoint(bundle.checkpoint, chain, key, checks)
    witnesses = _cosignatures(bundle.checkpoint, policy, checks)
    record = _record(bundle.record, cp, checks)
    events = _events(bundle, cp, checks)
    history = _replay(chain, bundle.record, record, events, checks)
    rec = record.record
    signed_at = record.statement.statement.issued_at if isinstance(record, AttestedRecord) else None
    try:
        state = history.check_signer(rec.publisher_id, rec.key_id, bundle.record.index, signed_at=signed_at)
    except RevokedKeyError as exc:
        raise _fail("key.revoked", f"record {bundle.record.cid}: {exc}") from None
    except KeyEventError as exc:
        raise _fail("key.unregistered", f"record {bundle.record.cid}: {exc}") from None
    checks.ok("key.valid", f"{rec.key_id} of {rec.publisher_id!r} ({state.authority}) may sign at leaf "
                           f"{bundle.record.index}")
    custody = record_custody(record)
    if custody != state.custody:
        raise _fail("record.custody", f"record says custody {custody!r}, but key {state.key_id} was registered "
                                      f"with custody {state.custody!r}")
    try:
        record.verify(state.public_key)
    except SignatureError as exc:
        name = "statement.signature" if isinstance(record, AttestedRecord) else "record.signature"
        raise _fail(name, f"publisher signature of record {bundle.record.cid}: {exc}") from None
    checks.ok("statement.signature" if isinstance(record, AttestedRecord) else "record.signature",
              f"signed by the publisher key {state.key_id}")
    if isinstance(record, AttestedRecord):
        signer = chain.key_at(bundle.record.index).key
        try:
            record.verify_attestation(signer.public_key)
        except SignatureError as exc:
            raise _fail("attestation.signature", f"service attestation of record {bundle.record.cid}: {exc}") \
                from None
        checks.ok("attestation.signature", f"attested by the log's key {signer.label}")
    if image is not None:
        _image(image, rec.image_sha256, rec.image_cid, checks)
    anchor = _anchor(bundle, cp, checks)
    withdrawal = history.withdrawals.get(bundle.record.cid)
    return BundleReport(
        record_cid=bundle.record.cid, publisher=rec.publisher_id, key_id=rec.key_id, custody=custody,
        image_sha256=rec.image_sha256, image_cid=rec.image_cid, leaf_index=bundle.record.index, origin=cp.origin,
        tree_size=cp.size, root=cp.root, log_key=key.encode(), log_key_trust=trust, witnesses=witnesses,
        key_events=len(events), withdrawn_at=None if withdrawal is None else withdrawal.withdrawn_at,
        image_checked=image is not None, anchor=anchor, checks=tuple(checks.done), log_key_rotations=chain.rotations)


# --- the steps ------------------------------------------------------------------------------------------------------
def _log_key(bundle: ProofBundle, policy: VerifyPolicy, checks: _Checks) -> tuple[VerifierKey, str]:
    text, trust = (policy.log_key, GIVEN) if policy.log_key is not None else (bundle.log_key, TOFU)
    try:
        key = parse_verifier_key(text.strip())
    except CheckpointError as exc:
        where = "the given log key" if trust == GIVEN else "the bundle's log_key"
        raise _fail("log.key", f"{where} is not a signed-note verifier key: {exc}") from None
    checks.ok("log.key", f"{key.name}+{key.key_id.hex()} ({trust})")
    return key, trust


def _log_key_history(bundle: ProofBundle, key: VerifierKey, checks: _Checks) -> LogKeyChain:
    """The chain of log keys from the log-key rotations the bundle carries (none: the trusted key alone). Each
    rotation must be signed by the key it replaces and the key it brings in, and the trusted key must be in the
    chain: then every key of it is as trusted as that one. (That the rotations are in the log is checked with the
    other entries, once the checkpoint's signature is.)"""
    rotations: list[tuple[LogEntry, LogKeyRotation]] = []
    for entry in bundle.key_events:
        try:
            obj = parse_canonical_json(entry.data)
        except InvalidInputError:
            continue  # not canonical JSON: reported as event.parse with the other entries
        if not is_service_event(obj):
            continue
        _entry_bytes(entry, "log-key rotation", "event.cid")
        try:
            event = parse_service_event(entry.data)
        except ServiceEventError as exc:
            raise _fail("event.parse", f"service event {entry.cid} is malformed: {exc}") from None
        if not isinstance(event, LogKeyRotation):
            raise _fail("event.parse", f"service event {entry.cid} is a {event.kind}: only log-key rotations "
                                       "belong in a bundle")
        rotations.append((entry, event))
    try:
        origin = parse_checkpoint_note(bundle.checkpoint)[0].origin
    except CheckpointError as exc:
        raise _fail("checkpoint.signature", f"the checkpoint note is malformed: {exc}") from None
    if not rotations:
        return LogKeyChain.starting_with(origin, key.name, key.public_key)
    chain = LogKeyChain.starting_with(origin, key.name, rotations[0][1].old_key.public_key)
    for entry, rotation in rotations:
        try:
            chain.apply(rotation, entry.index, entry.cid)
        except (ServiceEventError, SignatureError) as exc:
            raise _fail("log_key.history", f"log-key rotation {entry.cid} at leaf {entry.index}: {exc}") from None
    if chain.find(key.public_key) is None:
        raise _fail("log_key.history", f"the trusted log key {key.name}+{key.key_id.hex()} is not one of the log's "
                                       f"keys in this bundle ({', '.join(e.key.label for e in chain.epochs)})")
    checks.ok("log_key.history", f"{chain.rotations} rotation(s) of the log key: "
                                 + " -> ".join(e.key.label for e in chain.epochs))
    return chain


def _checkpoint(note: str, chain: LogKeyChain, key: VerifierKey, checks: _Checks) -> Checkpoint:
    try:
        cp = chain.verify_checkpoint(note, check_origin=False)
    except CheckpointError as exc:
        hint = "" if chain.rotations else (" (a foreign checkpoint? or one signed by the log's key of another time: "
                                           "the log key in force at the bundle's checkpoint verifies it)")
        raise _fail("checkpoint.signature", f"the checkpoint is not signed by the trusted log key "
                                            f"{key.name}+{key.key_id.hex()}{hint}: {exc}") from None
    signer = chain.key_at(cp.size).key
    checks.ok("checkpoint.signature", f"{cp.origin} size {cp.size} signed by {signer.label}")
    return cp


def _cosignatures(note: str, policy: VerifyPolicy, checks: _Checks) -> tuple[str, ...]:
    if not policy.witness_keys:
        return ()
    quorum = len(policy.witness_keys) if policy.witness_quorum is None else policy.witness_quorum
    try:
        results = check_cosignatures(note, list(policy.witness_keys))
    except CosignatureError as exc:
        raise _fail("cosignature.quorum", f"cannot check witness cosignatures: {exc}") from None
    valid = tuple(r.witness.label for r in results if r.status == "valid")
    if len(valid) < quorum:
        missing = "; ".join(r.reason or r.status for r in results if r.status != "valid")
        raise _fail("cosignature.quorum", f"{len(valid)} of {len(results)} witnesses cosigned the checkpoint, "
                                          f"{quorum} required: {missing}")
    checks.ok("cosignature.quorum", f"{len(valid)} of {len(results)} witnesses cosigned ({quorum} required)")
    return valid


def _entry_bytes(entry: LogEntry, what: str, check: str) -> None:
    got = cid_for_bytes(entry.data)
    if got != entry.cid:
        raise _fail(check, f"{what} bytes hash to CID {got}, not the {entry.cid} the bundle names (altered?)")


def _inclusion(entry: LogEntry, cp: Checkpoint, what: str, check: str) -> None:
    try:
        verify_inclusion(entry.index, cp.size, leaf_hash(record_leaf_data(entry.cid)), entry.proof.hashes, cp.root)
    except ProofError as exc:
        raise _fail(check, f"{what} {entry.cid} at leaf {entry.index} is not in checkpoint {cp.size}: {exc}") \
            from None


def _record(entry: LogEntry, cp: Checkpoint, checks: _Checks) -> AnyRecord:
    _entry_bytes(entry, "record", "record.cid")
    checks.ok("record.cid", f"record bytes hash to {entry.cid}")
    try:
        record = parse_record(entry.data)
    except InvalidInputError as exc:
        raise _fail("record.parse", f"record {entry.cid} is not a record: {exc}") from None
    checks.ok("record.parse", f"record {type(record).__name__}")
    _inclusion(entry, cp, "record", "record.inclusion")
    checks.ok("record.inclusion", f"leaf {entry.index} of {cp.size}")
    return record


def _events(bundle: ProofBundle, cp: Checkpoint, checks: _Checks) -> list[tuple[LogEntry, KeyEvent]]:
    out: list[tuple[LogEntry, KeyEvent]] = []
    previous = -1
    rotations = 0
    for entry in bundle.key_events:
        _entry_bytes(entry, "key event", "event.cid")
        try:
            obj = parse_canonical_json(entry.data)
            event = None if is_service_event(obj) else KeyEvent.from_obj(obj)
        except InvalidInputError as exc:
            raise _fail("event.parse", f"key event {entry.cid} is not a key event: {exc}") from None
        if event is not None and event.to_bytes() != entry.data:
            raise _fail("event.parse", f"key event {entry.cid} has fields outside its schema")
        if entry.proof.checkpoint != bundle.checkpoint:
            raise _fail("event.checkpoint", f"key event {entry.cid}'s proof leads to another checkpoint than the "
                                            "record's")
        if entry.index <= previous or entry.index == bundle.record.index:
            raise _fail("event.order", f"key event {entry.cid} at leaf {entry.index} is out of log order")
        previous = entry.index
        _inclusion(entry, cp, "key event", "event.inclusion")
        if event is None:
            rotations += 1  # a log-key rotation, replayed by _log_key_history
        else:
            out.append((entry, event))
    checks.ok("event.inclusion", f"{len(out)} key event(s)" + (f" and {rotations} log-key rotation(s)"
                                                               if rotations else "") + f" in checkpoint {cp.size}")
    return out


def _replay(chain: LogKeyChain, record_entry: LogEntry, record: AnyRecord,
            events: Sequence[tuple[LogEntry, KeyEvent]], checks: _Checks) -> KeyHistory:
    """Replay the publisher's key events in log order, the operator's key being the log key in force at each event's
    leaf; a withdrawal is only understood for this bundle's record (the log holds no other record here)."""
    history = KeyHistory(chain.current.key.public_key, operator_keys=chain.public_key_at)
    publisher = record.record.publisher_id
    for entry, event in events:
        if event.publisher != publisher:
            raise _fail("key_history", f"key event {entry.cid} is about publisher {event.publisher!r}, not the "
                                       f"record's {publisher!r}")
        owner = publisher if event.record_cid == record_entry.cid and record_entry.index < entry.index else None
        try:
            history.apply(event, entry.index, record_publisher=owner)
        except (KeyEventError, SignatureError) as exc:
            raise _fail("key_history", f"{event.kind} {entry.cid} at leaf {entry.index}: {exc}") from None
    checks.ok("key_history", f"{len(events)} key event(s) of {publisher!r} replayed")
    return history


def _image(image: bytes, sha256: str, cid: str, checks: _Checks) -> None:
    got = hashlib.sha256(image).hexdigest()
    if got != sha256:
        raise _fail("image.digest", f"the image's sha256 is {got}, but the record names {sha256}: it is not the "
                                    "record's image")
    got_cid = cid_for_bytes(image)
    if got_cid != cid:
        raise _fail("image.digest", f"the image's CID is {got_cid}, but the record names {cid}")
    checks.ok("image.digest", f"sha256 {sha256}, CID {cid}")


def _anchor(bundle: ProofBundle, cp: Checkpoint, checks: _Checks) -> dict[str, Any] | None:
    a = bundle.anchor
    if a is None:
        return None
    log_id = hashlib.sha256(cp.origin.encode("utf-8")).digest()
    if a.log_id != log_id:
        raise _fail("anchor.log_id", f"the anchor names log id {a.log_id.hex()}, not SHA-256 of origin "
                                     f"{cp.origin!r} ({log_id.hex()})")
    if a.tree_size != cp.size:
        raise _fail("anchor.tree_size", f"the anchor is of tree size {a.tree_size}, the checkpoint of {cp.size}")
    if a.root != cp.root:
        raise _fail("anchor.root", f"the anchor names root {a.root.hex()}, but the checkpoint's root is "
                                   f"{cp.root.hex()}")
    where = f"chain {a.chain_id} contract {a.contract} block {a.block} ({iso_time(a.block_timestamp)})"
    checks.ok("anchor.receipt", where + (": ephemeral in-process chain, no durable timestamp" if a.ephemeral else
                                         ": not read from the chain (use --chain-rpc)"))
    return a.to_obj()
