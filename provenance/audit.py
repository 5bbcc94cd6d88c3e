"""Audit the whole ledger, layer by layer, trusting none of them.

For every record: (1) re-derive its CID from the stored bytes and re-check the block store copies, (2) verify the
publisher's signature under a key the log's key events say the publisher held at that leaf (not revoked, not
rotated away), and the service attestation of v2 records, (3) verify inclusion in the latest signed checkpoint.
Key events (registrations, rotations, revocations, withdrawals) are log entries too: each is replayed in log order
and must be signed by who it must be. So are the service's own events (docs/key-rotation.md): the log-key rotations
are replayed first into the chain of log keys, each signed by the key it replaces and the key it brings in, and the
key the audit trusts must be one of them; every checkpoint, attestation and operator key event must then be signed
by the log key in force at its size or leaf. Across checkpoints: (4) verify each
signature and each consecutive consistency proof. Against the chain: (5) read each checkpoint's anchor back and
compare roots, reporting the block timestamp. Every failure is a :class:`Finding` naming the layer and the subject.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.anchor.base import Anchor
from provenance.cid import cid_for_bytes
from provenance.errors import (
    AnchorError,
    BlockStoreError,
    CheckpointError,
    InvalidRecordError,
    KeyEventError,
    ProofError,
    RevokedKeyError,
    ServiceEventError,
    SignatureError,
)
from provenance.ledger import Ledger
from provenance.keyevents import KeyHistory, legacy_keys
from provenance.records import AttestedRecord, parse_record
from provenance.records_store import StoredCheckpoint
from provenance.service_events import (
    AnchorerRotation,
    LogKeyChain,
    LogKeyRotation,
    anchorer_in_force,
    parse_service_event,
)
from provenance.statements import key_id_for
from provenance.translog import leaf_hash, verify_consistency, verify_inclusion
from provenance.translog.cosignature import WitnessKey
from provenance.witness.audit import audit_cosignatures

Severity = Literal["failure", "warning"]


@dataclass(frozen=True)
class Finding:
    severity: Severity
    check: str
    subject: str
    message: str

    def line(self) -> str:
        return f"{self.severity.upper()} [{self.check}] {self.subject}: {self.message}"


@dataclass(frozen=True)
class AnchorStatus:
    tree_size: int
    status: Literal["verified", "mismatch", "missing", "ephemeral", "not-anchored", "wrong-chain", "unreachable"]
    chain_id: int | None = None
    contract_address: str | None = None
    block_number: int | None = None
    block_timestamp: int | None = None
    tx_hash: str | None = None
    anchorer: str | None = None

    @property
    def timestamp_iso(self) -> str | None:
        if self.block_timestamp is None:
            return None
        return datetime.fromtimestamp(self.block_timestamp, timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class AuditReport:
    chain: str
    chain_ephemeral: bool
    log_size: int = 0
    records: int = 0
    records_verified: int = 0
    pending: int = 0
    checkpoints: int = 0
    latest_checkpoint_size: int | None = None
    key_events: int = 0
    service_events: int = 0
    log_keys: list[dict[str, Any]] = field(default_factory=list)
    withdrawn: int = 0
    publishers: dict[str, dict[str, Any]] = field(default_factory=dict)
    anchors: list[AnchorStatus] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "failure"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, check: str, subject: str, message: str) -> None:
        self.findings.append(Finding("failure", check, subject, message))

    def warn(self, check: str, subject: str, message: str) -> None:
        self.findings.append(Finding("warning", check, subject, message))

    def to_obj(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain": {"describe": self.chain, "ephemeral": self.chain_ephemeral},
            "log_size": self.log_size,
            "records": self.records,
            "records_verified": self.records_verified,
            "pending": self.pending,
            "checkpoints": self.checkpoints,
            "latest_checkpoint_size": self.latest_checkpoint_size,
            "key_events": self.key_events,
            "service_events": self.service_events,
            "log_keys": self.log_keys,
            "withdrawn": self.withdrawn,
            "publishers": self.publishers,
            "anchors": [asdict(a) | {"timestamp": a.timestamp_iso} for a in self.anchors],
            "failures": [asdict(f) for f in self.failures],
            "warnings": [asdict(f) for f in self.warnings],
        }

    def summary(self) -> str:
        lines = [
            f"audit: {'OK' if self.ok else 'FAILED'}",
            f"  log size {self.log_size}; {self.records} records, {self.records_verified} fully verified, "
            f"{self.pending} pending (after the latest checkpoint)",
            f"  {self.key_events} key events; {self.withdrawn} records withdrawn",
            f"  {self.service_events} service events; log key {self.log_keys[-1]['vkey'] if self.log_keys else '?'} "
            f"({len(self.log_keys) - 1 if self.log_keys else 0} rotation(s))",
            f"  {self.checkpoints} checkpoints; latest covers {self.latest_checkpoint_size or 0} leaves",
        ]
        lines += [f"  publisher {pub}: {info['custody']} custody, {info['keys']} key(s)"
                  for pub, info in sorted(self.publishers.items())]
        lines += [
            f"  chain: {self.chain}",
        ]
        if self.chain_ephemeral:
            lines.append(
                "  NOTE: this chain is an in-process EVM whose state ends with this process: its anchors are NOT a"
                " durable timestamp. Set PROVENANCE_CHAIN_RPC_URL to anchor on a real chain."
            )
        for a in self.anchors:
            when = f" at block {a.block_number}, {a.timestamp_iso}" if a.block_timestamp is not None else ""
            lines.append(f"  anchor for tree size {a.tree_size}: {a.status}{when}")
        lines.extend("  " + f.line() for f in self.findings)
        return "\n".join(lines)


def audit_ledger(ledger: Ledger, *, log_public_key: Ed25519PublicKey, anchor: Anchor | None,
                 witnesses: Sequence[WitnessKey | str] = (), witness_quorum: int = 0,
                 trust_operator_rotations: bool = False) -> AuditReport:
    """``witnesses`` (verifier keys) and ``witness_quorum``: each checkpoint's cosignatures must verify and reach the
    quorum (:func:`provenance.witness.audit.audit_cosignatures`).

    ``trust_operator_rotations``: a publisher-custody record signed with a key the *operator* installed (a
    rotation for a lost key) is a failure by default, because the operator could have signed it; with this flag it
    is a warning (the auditor accepts the operator's word for that key)."""
    cfg = ledger.config
    report = AuditReport(
        chain=anchor.describe() if anchor else "none configured", chain_ephemeral=bool(anchor and anchor.ephemeral)
    )
    with ledger.reader.connect() as conn:
        chain, service, anchorers = _audit_log_keys(report, ledger, conn, log_public_key)
        stored_cps = ledger.store.checkpoints(conn, cfg.log_id)
        report.checkpoints = len(stored_cps)
        good_cps = _verify_checkpoints(report, stored_cps, chain)
        report.log_size = ledger.log.size(conn)
        for older, newer in zip(good_cps, good_cps[1:]):
            try:
                proof = ledger.log.consistency_proof(conn, older.tree_size, newer.tree_size)
                verify_consistency(older.tree_size, newer.tree_size, proof, older.root, newer.root)
            except (ProofError, ValueError) as exc:
                report.fail("log.consistency", f"checkpoints {older.tree_size}->{newer.tree_size}", str(exc))
        latest = good_cps[-1] if good_cps else None
        if latest is not None:
            report.latest_checkpoint_size = latest.tree_size
            if report.log_size < latest.tree_size:
                report.fail("log.size", "log", f"log has {report.log_size} leaves, fewer than checkpoint "
                                                f"{latest.tree_size}: it was truncated")
        history = _audit_key_events(report, ledger, conn, latest, chain)
        for ev in service:
            _audit_entry(report, ledger, conn, ev.cid, ev.event_bytes, ev.leaf_index, latest,
                         f"service event {ev.cid} ({ev.kind}, leaf {ev.leaf_index})", "service_event")
        for rec in ledger.store.iter_records(conn):
            report.records += 1
            if _audit_record(report, ledger, conn, rec, latest, history, chain, trust_operator_rotations):
                report.records_verified += 1
        report.publishers = {pub: {"custody": history.custody(pub) or "service",
                                   "keys": len(history.keys.get(pub, {}))} for pub in history.keys}
        report.withdrawn = len(history.withdrawals)
        if report.records + report.key_events + report.service_events != report.log_size:
            report.fail("log.size", "log", f"log has {report.log_size} leaves but the store has {report.records} "
                                           f"records, {report.key_events} key events and {report.service_events} "
                                           "service events: leaves and entries must correspond one to one")
    if report.pending:
        report.warn("log.pending", "log", f"{report.pending} log entries are not yet in a checkpoint (run provenance anchor)")
    audit_cosignatures(report, good_cps, witnesses, witness_quorum)
    _audit_anchors(report, good_cps, anchor, cfg.log_id, anchorers)
    return report


def _audit_log_keys(report: AuditReport, ledger: Ledger, conn, trusted: Ed25519PublicKey):  # type: ignore[no-untyped-def]
    """Replay the log-key rotations into the chain of log keys (each must be signed by the key it replaces and by
    the key it brings in); the trusted key must be one of the chain's. Check each anchorer rotation's signature
    under the log key in force at its leaf. Returns the chain, the stored service events and the valid anchorer
    rotations."""
    cfg = ledger.config
    service = list(ledger.events.iter_service_events(conn))
    report.service_events = len(service)
    rotations: list[tuple[Any, LogKeyRotation]] = []
    anchorer_events: list[tuple[Any, AnchorerRotation]] = []
    for ev in service:
        try:
            event = parse_service_event(ev.event_bytes)
        except ServiceEventError as exc:
            report.fail("service_event.format", f"service event {ev.cid} (leaf {ev.leaf_index})", str(exc))
            continue
        if isinstance(event, LogKeyRotation):
            rotations.append((ev, event))
        else:
            anchorer_events.append((ev, event))
    genesis = rotations[0][1].old_key.public_key if rotations else trusted
    chain = LogKeyChain.starting_with(cfg.origin, cfg.log_key_name, genesis)
    for ev, rotation in rotations:
        try:
            chain.apply(rotation, ev.leaf_index, ev.cid)
        except (ServiceEventError, SignatureError) as exc:
            report.fail("logkey.rotation", f"log-key rotation {ev.cid} (leaf {ev.leaf_index})", str(exc))
    report.log_keys = chain.to_obj()
    if chain.find(trusted) is None:
        report.fail("logkey.trust", "log key", f"the key this audit trusts ({key_id_for(trusted)}) is not in the "
                                               f"log's key history ({', '.join(e.key.label for e in chain.epochs)}): "
                                               "the history was forged, or the key is another log's")
    anchorers: list[tuple[int, AnchorerRotation]] = []
    for ev, rotation in anchorer_events:
        try:
            rotation.verify_signature(chain.public_key_at(ev.leaf_index))
        except SignatureError as exc:
            report.fail("anchorer.rotation", f"anchorer rotation {ev.cid} (leaf {ev.leaf_index})", str(exc))
            continue
        anchorers.append((ev.leaf_index, rotation))
    return chain, service, anchorers


def _verify_checkpoints(report, stored_cps, chain: LogKeyChain) -> list[StoredCheckpoint]:  # type: ignore[no-untyped-def]
    good: list[StoredCheckpoint] = []
    origin = chain.origin
    for cp in stored_cps:
        subject = f"checkpoint {cp.tree_size}"
        try:  # by the log key in force at its size
            signed = chain.verify_checkpoint(cp.note, check_origin=False)
        except CheckpointError as exc:
            report.fail("checkpoint.signature", subject, str(exc))
            continue
        if signed.origin != origin:
            report.fail("checkpoint.origin", subject, f"note is for log {signed.origin!r}, not {origin!r}")
            continue
        if signed.size != cp.tree_size or signed.root != cp.root:
            report.fail("checkpoint.row", subject, f"stored size/root ({cp.tree_size}, {cp.root.hex()}) differ from the "
                                                   f"signed note ({signed.size}, {signed.root.hex()})")
            continue
        good.append(cp)
    return good


def _audit_key_events(report: AuditReport, ledger: Ledger, conn, latest, chain: LogKeyChain):  # type: ignore[no-untyped-def]
    """Replay every key event in log order: each must be signed by who it must be (keyevents.KeyHistory; the
    operator's signature by the log key in force at its leaf), and be a well-formed log entry like a record.
    Publishers registered before key events existed get their table keys as custodial keys (reported as a
    warning)."""
    history = KeyHistory(chain.current.key.public_key, operator_keys=chain.public_key_at)
    legacy = legacy_keys(ledger.store.list_publishers(conn), ledger.events.key_subjects(conn),
                         lambda p, k: ledger.store.public_key(conn, p, k))
    for pub, keys in legacy.items():  # seeded first: a legacy publisher's own later events check against them
        report.warn("keyevent.legacy", f"publisher {pub}", "registered before key events were logged: its key "
                                                          "is taken from the record store, custody service")
        history.keys[pub] = keys
    for ev in ledger.events.iter_events(conn):
        report.key_events += 1
        subject = f"key event {ev.cid} ({ev.event.kind} of {ev.event.publisher}, leaf {ev.leaf_index})"
        _audit_entry(report, ledger, conn, ev.cid, ev.event_bytes, ev.leaf_index, latest, subject, "keyevent")
        owner = None
        if ev.event.record_cid is not None:
            rec = ledger.store.get(conn, ev.event.record_cid)
            owner = rec.publisher_id if rec is not None and rec.leaf_index < ev.leaf_index else None
        try:
            history.apply(ev.event, ev.leaf_index, record_publisher=owner)
        except (KeyEventError, SignatureError) as exc:
            report.fail("keyevent.invalid", subject, str(exc))
    return history


def _audit_entry(report: AuditReport, ledger: Ledger, conn, cid: str, data: bytes, leaf_index: int, latest,  # type: ignore[no-untyped-def]
                 subject: str, kind: str) -> None:
    """The checks every log entry gets: CID, block store copy, leaf hash, inclusion in the latest checkpoint."""
    derived = cid_for_bytes(data)
    if derived != cid:
        report.fail(f"{kind}.cid", subject, f"stored bytes hash to {derived}: the {kind} row was altered")
    try:
        if ledger.blockstore.get(cid) != data:
            report.fail(f"blob.{kind}", subject, "block store copy differs from the database copy")
    except BlockStoreError as exc:
        report.fail(f"blob.{kind}", subject, f"block store: {exc}")
    expected_leaf = leaf_hash(cid.encode("utf-8"))
    try:
        stored_leaf = ledger.log.leaf(conn, leaf_index)
    except Exception as exc:  # noqa: BLE001 - any failure to read the leaf is an audit finding
        report.fail("log.leaf", subject, f"cannot read log leaf: {exc}")
        stored_leaf = None
    if stored_leaf is not None and stored_leaf != expected_leaf:
        report.fail("log.leaf", subject, f"log leaf {leaf_index} is {stored_leaf.hex()}, but the entry's "
                                         f"leaf hash is {expected_leaf.hex()}")
    if latest is None or leaf_index >= latest.tree_size:
        report.pending += 1
        return
    try:
        proof = ledger.log.inclusion_proof(conn, leaf_index, latest.tree_size)
        verify_inclusion(leaf_index, latest.tree_size, expected_leaf, proof, latest.root)
    except (ProofError, ValueError) as exc:
        report.fail("log.inclusion", subject, f"not included in checkpoint {latest.tree_size}: {exc}")


def _audit_record(report: AuditReport, ledger: Ledger, conn, rec, latest, history: KeyHistory,  # type: ignore[no-untyped-def]
                  chain: LogKeyChain, trust_operator_rotations: bool = False) -> bool:
    failures_before = len(report.failures)
    pending_before = report.pending
    subject = f"record {rec.cid} (leaf {rec.leaf_index})"
    _audit_entry(report, ledger, conn, rec.cid, rec.record_bytes, rec.leaf_index, latest, subject, "record")
    try:
        signed = parse_record(rec.record_bytes)
    except InvalidRecordError as exc:
        report.fail("record.schema", subject, str(exc))
        return False
    r = signed.record
    if (r.publisher_id, r.image_sha256, r.image_cid) != (rec.publisher_id, rec.image_sha256, rec.image_cid):
        report.fail("record.row", subject, "indexed columns (publisher, image sha256/CID) differ from the record")
    try:
        image = ledger.blockstore.get(r.image_cid)
        if hashlib.sha256(image).hexdigest() != r.image_sha256:
            report.fail("blob.image", subject, "image bytes do not match the record's sha256")
    except BlockStoreError as exc:
        report.fail("blob.image", subject, f"image {r.image_cid}: {exc}")
    signed_at = signed.statement.statement.issued_at if isinstance(signed, AttestedRecord) else None
    state = None
    try:
        state = history.check_signer(r.publisher_id, r.key_id, rec.leaf_index, signed_at=signed_at)
    except RevokedKeyError as exc:
        report.fail("record.revoked", subject, str(exc))
        state = history.key(r.publisher_id, r.key_id)
    except KeyEventError as exc:
        report.fail("record.key", subject, str(exc))
    if state is not None:
        try:
            signed.verify(state.public_key)
        except SignatureError as exc:
            report.fail("record.signature", subject, str(exc))
        if state.authority == "operator" and state.custody == "publisher":
            message = (f"signed with key {state.key_id}, which the operator installed (a rotation on the operator's "
                       "authority, for a lost key): the operator could have signed this record")
            if trust_operator_rotations:
                report.warn("record.operator_key", subject, message)
            else:
                report.fail("record.operator_key", subject, message + " (audit --trust-operator-rotations accepts)")
    if isinstance(signed, AttestedRecord):
        try:  # by the log key in force at the record's leaf
            signed.verify_attestation(chain.public_key_at(rec.leaf_index))
        except SignatureError as exc:
            report.fail("record.attestation", subject, str(exc))
        if state is not None and state.authority != "legacy" and signed.custody != state.custody:
            report.fail("record.custody", subject, f"record claims {signed.custody} custody, but the key was "
                                                   f"registered in {state.custody} custody")
    return len(report.failures) == failures_before and report.pending == pending_before


def _audit_anchors(report: AuditReport, cps: list[StoredCheckpoint], anchor: Anchor | None, log_id: bytes,
                   anchorers: Sequence[tuple[int, AnchorerRotation]] = ()) -> None:
    for i, cp in enumerate(cps):
        subject = f"checkpoint {cp.tree_size}"
        receipt = cp.anchor
        is_latest = i == len(cps) - 1
        if receipt is None:
            report.anchors.append(AnchorStatus(cp.tree_size, "not-anchored"))
            if is_latest:
                report.warn("anchor.none", subject, "latest checkpoint is not anchored on chain (run provenance anchor)")
            continue
        base = dict(chain_id=receipt.chain_id, contract_address=receipt.contract_address, tx_hash=receipt.tx_hash)
        same_chain = anchor is not None and (receipt.chain_id, receipt.contract_address.lower()) == (
            anchor.chain_id, anchor.contract_address.lower())
        if receipt.ephemeral:
            # In-process chains all share one chain id and contract address, so only the anchor itself tells
            # whether the chain it was made on is still this one.
            onchain = _read_quietly(anchor, log_id, cp.tree_size) if same_chain and anchor else None
            if onchain is None:
                report.anchors.append(AnchorStatus(cp.tree_size, "ephemeral", **base))
                report.warn("anchor.ephemeral", subject,
                            f"was anchored at block {receipt.block_number} of an in-process EVM that ended with its "
                            "process: there is no durable timestamp to verify")
                continue
        if anchor is None:
            report.anchors.append(AnchorStatus(cp.tree_size, "unreachable", **base))
            report.fail("anchor.chain", subject, "anchored on chain but no chain is configured to verify it")
            continue
        if not same_chain:
            report.anchors.append(AnchorStatus(cp.tree_size, "wrong-chain", **base))
            report.fail("anchor.chain", subject,
                        f"was anchored on chain {receipt.chain_id} at {receipt.contract_address}, but the configured "
                        f"chain is {anchor.chain_id} at {anchor.contract_address}")
            continue
        try:
            onchain = anchor.read(log_id, cp.tree_size)
        except AnchorError as exc:
            report.anchors.append(AnchorStatus(cp.tree_size, "unreachable", **base))
            report.fail("anchor.unreachable", subject, str(exc))
            continue
        if onchain is None:
            report.anchors.append(AnchorStatus(cp.tree_size, "missing", **base))
            report.fail("anchor.missing", subject, f"no anchor for tree size {cp.tree_size} on {anchor.describe()} "
                                                   f"(receipt claims tx {receipt.tx_hash})")
            continue
        if onchain.root != cp.root:
            report.anchors.append(AnchorStatus(cp.tree_size, "mismatch", **base))
            report.fail("anchor.root", subject, f"on-chain root {onchain.root.hex()} differs from the checkpoint "
                                                f"root {cp.root.hex()}")
            continue
        expected = anchorer_in_force(anchorers, anchor.chain_id, anchor.contract_address, cp.tree_size)
        if expected is not None and onchain.anchorer.lower() != expected.lower():
            report.fail("anchor.anchorer", subject, f"anchored by {onchain.anchorer}, but the anchorer in force at "
                                                    f"tree size {cp.tree_size} by the log's anchorer rotations is "
                                                    f"{expected}")
        report.anchors.append(AnchorStatus(cp.tree_size, "verified", block_number=onchain.block_number,
                                           block_timestamp=onchain.timestamp, anchorer=onchain.anchorer, **base))
    _audit_retired_anchorer(report, anchor, anchorers)


def _audit_retired_anchorer(report: AuditReport, anchor: Anchor | None,
                            anchorers: Sequence[tuple[int, AnchorerRotation]]) -> None:
    """After the log's latest anchorer rotation on this contract, the retired account must no longer be able to
    anchor (its removeAnchorer transaction took effect), and the new one must."""
    is_anchorer = getattr(anchor, "is_anchorer", None)
    if anchor is None or is_anchorer is None:
        return
    mine = [r for _leaf, r in anchorers if r.chain_id == anchor.chain_id
            and r.contract.lower() == anchor.contract_address.lower()]
    if not mine:
        return
    last = mine[-1]
    try:
        if is_anchorer(last.old_anchorer):
            report.fail("anchorer.retired", f"anchorer {last.old_anchorer}", "retired by the log's anchorer "
                        f"rotation, but the contract still lets it anchor (removeAnchorer {last.body['remove_tx']} "
                        "did not take effect)")
        if not is_anchorer(last.new_anchorer):
            report.fail("anchorer.current", f"anchorer {last.new_anchorer}", "named by the log's latest anchorer "
                                                                            "rotation, but the contract does not "
                                                                            "let it anchor")
    except AnchorError as exc:
        report.fail("anchor.unreachable", "anchorers", str(exc))


def _read_quietly(anchor: Anchor, log_id: bytes, tree_size: int):  # type: ignore[no-untyped-def]
    try:
        return anchor.read(log_id, tree_size)
    except AnchorError:
        return None
