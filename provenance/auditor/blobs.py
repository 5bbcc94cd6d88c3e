"""The content behind each log entry (``--blocks``): the blob against its CID; key events replayed, in log order,
into the publishers' key history with the log's key as the operator's; records parsed and their signatures checked
under the key their publisher held at their leaf (or a key given on the command line); images against their CID.

The log's own key may have been rotated (docs/key-rotation.md): its rotations are service events in the log,
replayed here into the chain of log keys, and every operator key event and service attestation is checked under
the log key in force at its leaf. The chain starts at the first rotation's old key; when that is not the key the
auditor pinned (an auditor given today's key), the entries are checked again from the start with the right first
key, so a log with rotations costs one more pass over the blobs for such an auditor."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.auditor.model import AuditPolicy, RecordResult, TilesAuditReport
from provenance.auditor.sources import BlockSource
from provenance.canonical import parse_canonical_json
from provenance.cid import canonical_cid, cid_for_bytes
from provenance.errors import (
    IntegrityError,
    InvalidCIDError,
    InvalidRecordError,
    KeyEventError,
    RevokedKeyError,
    ServiceEventError,
    SignatureError,
)
from provenance.keyevents import EVENT_TYPE as KEY_EVENT_TYPE
from provenance.keyevents import KeyEvent, KeyHistory, KeyState
from provenance.records import AnyRecord, AttestedRecord, parse_record
from provenance.service_events import LogKeyChain, LogKeyRotation, is_service_event, parse_service_event

__all__ = ["check_blobs", "cid_text", "is_canonical_cid"]


def cid_text(entry: bytes) -> str | None:
    try:
        return entry.decode("ascii")
    except UnicodeDecodeError:
        return None


# A raw-codec, sha2-256 CIDv1 in base32 (what the log holds): "bafkrei" fixes the header bytes 01 55 12 20, then 51
# free characters, and a last one whose two padding bits are zero. Matching this is the same test as re-encoding
# the parsed CID, ~50 times faster (Python's base32 is pure Python); anything else takes the general path.
_RAW_SHA256_CID = re.compile(r"bafkrei[a-z2-7]{51}[aeimquy4]", re.ASCII)


def is_canonical_cid(text: str) -> bool:
    if _RAW_SHA256_CID.fullmatch(text):
        return True
    try:
        return canonical_cid(text) == text
    except InvalidCIDError:
        return False


class _Regenesis(Exception):
    """The log's first rotation starts from another key than the one assumed: check again from that key."""

    def __init__(self, genesis: Ed25519PublicKey) -> None:
        super().__init__("restart")
        self.genesis = genesis


def check_blobs(blocks: BlockSource, policy: AuditPolicy, report: TilesAuditReport) -> LogKeyChain | None:
    """Per entry, in log order: the blob and its CID; key events replayed into the publishers' key history (with the
    log key in force as the operator's); records checked against the key their publisher held at their leaf.
    Returns the chain of log keys the log's rotations give (None without a log key to start from)."""
    if policy.log_key is None or report.checkpoint is None:
        _check_pass(blocks, policy, report, None)
        return None
    origin, name = report.checkpoint.origin, policy.log_key.name
    marks = (len(report.findings), len(report.unchecked), [(r.kind, r.blob, r.signature, r.image)
                                                            for r in report.records])
    try:
        return _check_pass(blocks, policy, report, LogKeyChain.starting_with(origin, name,
                                                                             policy.log_key.public_key))
    except _Regenesis as restart:
        del report.findings[marks[0]:]
        del report.unchecked[marks[1]:]
        for r, (kind, blob, signature, image) in zip(report.records, marks[2]):
            r.kind, r.blob, r.signature, r.image = kind, blob, signature, image
        return _check_pass(blocks, policy, report, LogKeyChain.starting_with(origin, name, restart.genesis),
                           restarted=True)


def _check_pass(blocks: BlockSource, policy: AuditPolicy, report: TilesAuditReport, chain: LogKeyChain | None, *,
                restarted: bool = False) -> LogKeyChain | None:
    history = None if chain is None else KeyHistory(chain.current.key.public_key, operator_keys=chain.public_key_at)
    owners: dict[str, str] = {}  # record CID -> publisher, for withdrawals
    no_key: set[str] = set()
    unverified_events = 0
    for result in report.records:
        if result.cid is None or not is_canonical_cid(result.cid):
            continue
        subject = f"leaf {result.index} ({result.cid})"
        blob = _blob(blocks, result, report, subject)
        if blob is None:
            continue
        obj = _json_object(blob)
        if obj is not None and is_service_event(obj):
            result.kind = "service-event"
            if chain is None:
                unverified_events += 1
            else:
                _replay_service_event(blob, chain, result, report, subject, restarted)
            continue
        if obj is not None and obj.get("type") == KEY_EVENT_TYPE:
            result.kind = "key-event"
            if history is None:
                unverified_events += 1
            else:
                _replay_event(obj, history, owners, result, report, subject)
            continue
        try:
            record = parse_record(blob)
        except InvalidRecordError as exc:
            report.fail("record.format", subject, str(exc))
            continue
        result.kind = "record"
        view = record.record
        owners[result.cid] = view.publisher_id
        _check_signature(record, history, chain, policy, result, report, subject, no_key)
        _check_image(blocks, view.image_cid, view.image_sha256, result, report, subject)
    if no_key:
        why = ("no --log-key, so the key history in the log was not replayed, and no --publisher-key"
               if history is None else "their publishers' keys are not registered in the log (registered before key "
               "events existed), and no --publisher-key")
        report.skip("record.signature", f"records signed by {', '.join(sorted(no_key))}: {why}; their publisher "
                                        f"signatures were not checked")
    if unverified_events:
        report.skip("key-event.signature", f"{unverified_events} key event(s): their blobs match their CIDs; their "
                                           f"signatures need the operator's key (--log-key)")
    if chain is not None and policy.log_key is not None and chain.find(policy.log_key.public_key) is None:
        report.fail("log-key.trust", policy.log_key.name + "+" + policy.log_key.key_id.hex(),
                    f"the key this audit trusts is not in the log's key history "
                    f"({', '.join(e.key.label for e in chain.epochs)}): the history was forged, or the key is "
                    "another log's")
    return chain


def _replay_service_event(blob: bytes, chain: LogKeyChain, result: RecordResult, report: TilesAuditReport,
                          subject: str, restarted: bool) -> None:
    """A log-key rotation extends the chain of log keys (signed by the key it replaces and the one it brings in);
    an anchorer rotation must be signed by the log key in force at its leaf."""
    try:
        event = parse_service_event(blob)
    except ServiceEventError as exc:
        result.signature = "failed"
        report.fail("service-event.format", subject, str(exc))
        return
    assert result.cid is not None
    try:
        if isinstance(event, LogKeyRotation):
            if chain.rotations == 0 and not restarted and not event.old_key.same(chain.current.key):
                raise _Regenesis(event.old_key.public_key)
            chain.apply(event, result.index, result.cid)
        else:
            event.verify_signature(chain.public_key_at(result.index))
    except (ServiceEventError, SignatureError) as exc:
        result.signature = "failed"
        report.fail("log-key.rotation" if isinstance(event, LogKeyRotation) else "anchorer.rotation", subject,
                    str(exc))
        return
    result.signature = "verified"


def _blob(blocks: BlockSource, result: RecordResult, report: TilesAuditReport, subject: str) -> bytes | None:
    assert result.cid is not None
    try:
        blob = blocks.get(result.cid)
    except IntegrityError as exc:
        result.blob = "mismatch"
        report.fail("record.cid", subject, str(exc))
        return None
    if blob is None:
        result.blob = "missing"
        report.fail("record.missing", subject, f"{blocks.describe()} does not hold the blob")
        return None
    got = cid_for_bytes(blob)
    if got != result.cid:
        result.blob = "mismatch"
        report.fail("record.cid", subject, f"the blob's {len(blob)} bytes hash to {got}, not to the logged CID")
        return None
    result.blob = "ok"
    return blob


def _json_object(blob: bytes) -> dict[str, Any] | None:
    try:
        obj = parse_canonical_json(blob)
    except InvalidRecordError:
        return None
    return obj if isinstance(obj, dict) else None


def _replay_event(obj: dict[str, Any], history: KeyHistory, owners: Mapping[str, str], result: RecordResult,
                  report: TilesAuditReport, subject: str) -> None:
    try:
        event = KeyEvent.from_obj(obj)
        history.apply(event, result.index, record_publisher=owners.get(event.record_cid or ""))
    except (KeyEventError, SignatureError) as exc:
        result.signature = "failed"
        report.fail("key-event.invalid", subject, str(exc))
        return
    result.signature = "verified"


def _check_signature(record: AnyRecord, history: KeyHistory | None, chain: LogKeyChain | None, policy: AuditPolicy,
                     result: RecordResult, report: TilesAuditReport, subject: str, no_key: set[str]) -> None:
    """The publisher's signature, under the key its publisher held at this leaf (from the replayed key history), or
    a key given on the command line; and a v2 record's service attestation under the log key in force at its
    leaf."""
    view = record.record
    key = policy.publisher_keys.get(view.key_id)
    state: KeyState | None = None
    revoked = False
    if key is None and history is not None and history.keys.get(view.publisher_id):
        signed_at = record.statement.statement.issued_at if isinstance(record, AttestedRecord) else None
        try:
            state = history.check_signer(view.publisher_id, view.key_id, result.index, signed_at=signed_at)
        except RevokedKeyError as exc:
            report.fail("record.revoked", subject, str(exc))
            state, revoked = history.key(view.publisher_id, view.key_id), True
        except KeyEventError as exc:
            result.signature = "failed"
            report.fail("record.key", subject, str(exc))
            return
        key = state.public_key if state is not None else None
    if key is None:
        no_key.add(f"{view.publisher_id} ({view.key_id})")
    else:
        try:
            record.verify(key)
            result.signature = "failed" if revoked else "verified"
        except SignatureError as exc:
            result.signature = "failed"
            report.fail("record.signature", subject, str(exc))
        if state is not None and state.authority == "operator" and state.custody == "publisher":
            message = (f"signed with key {state.key_id}, which the operator installed (a rotation on the operator's "
                       "authority, for a lost key): the operator could have signed it")
            if policy.trust_operator_rotations:
                report.skip("record.operator_key", f"{subject}: {message}; accepted (--trust-operator-rotations)")
            else:
                result.signature = "failed"
                report.fail("record.operator_key", subject, message)
    if isinstance(record, AttestedRecord) and chain is not None:
        try:
            record.verify_attestation(chain.public_key_at(result.index))
        except SignatureError as exc:
            result.signature = "failed"
            report.fail("record.attestation", subject, str(exc))


def _check_image(blocks: BlockSource, image_cid: str, image_sha256: str, result: RecordResult,
                 report: TilesAuditReport, subject: str) -> None:
    try:
        image = blocks.get(image_cid)
    except IntegrityError as exc:
        result.image = "mismatch"
        report.fail("blob.image", subject, f"image {image_cid}: {exc}")
        return
    if image is None:
        result.image = "missing"
        report.fail("blob.image", subject, f"{blocks.describe()} does not hold the image {image_cid}")
        return
    if cid_for_bytes(image) != image_cid or hashlib.sha256(image).hexdigest() != image_sha256:
        result.image = "mismatch"
        report.fail("blob.image", subject, f"the image bytes do not match the record's CID {image_cid} and sha256")
        return
    result.image = "ok"
