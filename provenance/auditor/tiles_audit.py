"""An audit of the log from public data only: the C2SP tiles, the record blobs, the chain. No database, no server
of ours (``provenance audit --from-tiles URL|DIR``).

What it checks, each failure a :class:`Finding` naming its check and subject:

1. the checkpoint: it parses (``checkpoint.format``); the log's signature with ``--log-key``
   (``checkpoint.signature``); each configured witness's cosignature (``cosignature.signature``: a line under the
   witness's name and key ID that does not verify) and their number against the quorum (``cosignature.quorum``);
2. the tiles, like Tessera's ``fsck``: every tile the checkpoint's size needs is there (``tile.missing``) and has
   its width (``tile.format``); every full tile hashes to the hash the level above holds for it (``tile.hash``); the
   tree rebuilt from the top tiles has the checkpoint's root (``checkpoint.root``);
3. the entries: every entry bundle is there (``entries.missing``) and well formed (``entries.format``); every
   entry hashes to its leaf in the level-0 tile (``entries.leaf``), is a canonical CID (``entries.cid``) and appears
   once (``entries.duplicate``);
4. with a block source, per entry in log order: the blob is there (``record.missing``) and hashes to its CID
   (``record.cid``). A key event is replayed into the publishers' key history with the log's key as the operator's
   (``key-event.invalid``: not signed by who it must be). A record parses (``record.format``); its publisher
   signature verifies (``record.signature``) under the key its publisher held at that leaf by the replayed history
   (``record.key``, ``record.revoked``, ``record.operator_key``) or under a ``--publisher-key``; a v2 record's service
   attestation verifies under the log's key (``record.attestation``); its image is there and matches its CID and
   sha256 (``blob.image``);
5. with a chain: the anchor at the checkpoint's size exists (``anchor.missing``) and every anchor of the log up to
   that size has the root the tiles give at its size (``anchor.root``).

What could not be checked for lack of a key or a source is listed as *unchecked*, with the reason; it does not
make the audit fail. The tree logic is pure (:class:`TileTree`); sources are the small protocols of
:mod:`.sources` and :mod:`.chain`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.anchor.base import log_id_for
from provenance.auditor.chain import AnchorSource
from provenance.auditor.sources import BlockSource, TileSource
from provenance.canonical import parse_canonical_json
from provenance.cid import canonical_cid, cid_for_bytes
from provenance.errors import (
    CheckpointError,
    IntegrityError,
    InvalidCIDError,
    InvalidRecordError,
    KeyEventError,
    LogError,
    RevokedKeyError,
    SignatureError,
)
from provenance.keyevents import EVENT_TYPE as KEY_EVENT_TYPE
from provenance.keyevents import KeyEvent, KeyHistory, KeyState
from provenance.records import AnyRecord, AttestedRecord, parse_record
from provenance.translog.checkpoint import Checkpoint, VerifierKey, parse_checkpoint_note, verify_checkpoint_note
from provenance.translog.cosignature import WitnessKey, check_cosignatures
from provenance.translog.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from provenance.translog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileId,
    decode_entry_bundle,
    tiles_for_size,
)
from provenance.translog.tree import perfect_nodes_of_range

__all__ = ["AuditPolicy", "Finding", "RecordResult", "TileTree", "TilesAuditReport", "audit_tiles"]



# --- results ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    subject: str
    message: str

    def line(self) -> str:
        return f"FAILURE [{self.check}] {self.subject}: {self.message}"

    def to_obj(self) -> dict[str, str]:
        return {"check": self.check, "subject": self.subject, "message": self.message}


@dataclass(slots=True)
class RecordResult:
    """One log entry: ``leaf`` ok/mismatch/missing/unchecked; ``blob`` ok/missing/mismatch/unchecked; ``kind``
    record/key-event/unknown; ``signature`` verified/failed/unchecked; ``image`` ok/missing/mismatch/unchecked."""

    index: int
    cid: str | None
    leaf: str = "unchecked"
    kind: str = "unknown"
    blob: str = "unchecked"
    signature: str = "unchecked"
    image: str = "unchecked"

    @property
    def ok(self) -> bool:
        return (self.leaf == "ok" and self.blob in ("ok", "unchecked") and self.signature != "failed"
                and self.image in ("ok", "unchecked"))

    def to_obj(self) -> dict[str, Any]:
        return {"index": self.index, "cid": self.cid, "ok": self.ok, "leaf": self.leaf, "kind": self.kind,
                "blob": self.blob, "signature": self.signature, "image": self.image}


@dataclass(frozen=True, slots=True)
class AnchorResult:
    tree_size: int
    root: str
    status: str  # verified | mismatch | beyond-checkpoint | unverifiable
    block_number: int
    timestamp: int

    def to_obj(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root": self.root, "status": self.status,
                "block_number": self.block_number, "timestamp": self.timestamp}


@dataclass
class TilesAuditReport:
    source: str
    checkpoint: Checkpoint | None = None
    log_signature: str = "unchecked"  # verified | failed | unchecked
    cosignatures: list[dict[str, Any]] = field(default_factory=list)
    quorum: int = 0
    tiles_fetched: int = 0
    rebuilt_root: bytes | None = None
    records: list[RecordResult] = field(default_factory=list)
    anchors: list[AnchorResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[dict[str, str]] = field(default_factory=list)
    blocks: str | None = None
    chain: str | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def fail(self, check: str, subject: str, message: str) -> None:
        self.findings.append(Finding(check, subject, message))

    def skip(self, check: str, reason: str) -> None:
        self.unchecked.append({"check": check, "reason": reason})

    @property
    def failed_checks(self) -> list[str]:
        return sorted({f.check for f in self.findings})

    def to_obj(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {
            "ok": self.ok,
            "source": self.source,
            "checkpoint": None if cp is None else {
                "origin": cp.origin, "tree_size": cp.size, "root": cp.root.hex(),
                "log_signature": self.log_signature, "cosignatures": self.cosignatures, "quorum": self.quorum},
            "tiles_fetched": self.tiles_fetched,
            "rebuilt_root": None if self.rebuilt_root is None else self.rebuilt_root.hex(),
            "blocks": self.blocks,
            "chain": self.chain,
            "records": [r.to_obj() for r in self.records],
            "records_ok": sum(r.ok for r in self.records),
            "anchors": [a.to_obj() for a in self.anchors],
            "failures": [f.to_obj() for f in self.findings],
            "failed_checks": self.failed_checks,
            "unchecked": self.unchecked,
            "timings_s": {k: round(v, 3) for k, v in self.timings_s.items()},
        }

    def summary(self, *, max_failures: int = 50) -> str:
        cp = self.checkpoint
        lines = [f"audit from tiles: {'OK' if self.ok else 'FAILED'} ({self.source})"]
        if cp is not None:
            lines.append(f"  checkpoint {cp.origin} size {cp.size} root {cp.root.hex()}; log signature "
                         f"{self.log_signature}; cosignatures {sum(c['status'] == 'valid' for c in self.cosignatures)}"
                         f" valid of {len(self.cosignatures)} (quorum {self.quorum})")
            lines.append(f"  {self.tiles_fetched} tiles fetched; rebuilt root "
                         f"{self.rebuilt_root.hex() if self.rebuilt_root else 'not rebuilt'}")
            lines.append(f"  {len(self.records)} entries, {sum(r.ok for r in self.records)} verified"
                         + (f"; blobs from {self.blocks}" if self.blocks else "; no block source (blobs unchecked)"))
        for a in self.anchors:
            lines.append(f"  anchor at size {a.tree_size}: {a.status} (block {a.block_number}, time {a.timestamp})")
        for f in self.findings[:max_failures]:
            lines.append("  " + f.line())
        if len(self.findings) > max_failures:
            lines.append(f"  ... and {len(self.findings) - max_failures} more failures")
        for u in self.unchecked:
            lines.append(f"  not checked [{u['check']}]: {u['reason']}")
        lines.append("  timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings_s.items()))
        return "\n".join(lines)


@dataclass(frozen=True)
class AuditPolicy:
    """What the auditor trusts: the log's verifier key, the witnesses and how many of them must have cosigned
    (default: all given), and publishers' public keys by key id (records carry only a key id)."""

    log_key: VerifierKey | None = None
    witnesses: tuple[WitnessKey, ...] = ()
    quorum: int | None = None
    publisher_keys: Mapping[str, Ed25519PublicKey] = field(default_factory=dict)

    @property
    def required_cosignatures(self) -> int:
        return len(self.witnesses) if self.quorum is None else self.quorum


# --- the tree, rebuilt from tiles (pure) ---------------------------------------------------------------------------
def perfect_root(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash of a power-of-two run of subtree hashes."""
    level = list(hashes)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


class TileTree:
    """The hashes of every tile level of a tree of ``size`` leaves: ``levels[L]`` holds the ``size >> 8L`` hashes
    at tile level L (32 bytes each, concatenated). Missing tiles leave zero hashes and are listed in ``missing``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.levels: list[bytearray] = []
        self.missing: set[TileId] = set()
        level = 0
        while (count := size >> (TILE_HEIGHT * level)) > 0:
            self.levels.append(bytearray(count * HASH_SIZE))
            level += 1

    def put(self, tile: TileId, data: bytes) -> None:
        start = tile.first * HASH_SIZE
        self.levels[tile.hash_level][start : start + len(data)] = data

    def hash(self, level: int, index: int) -> bytes:
        return bytes(self.levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def run(self, level: int, start: int, end: int) -> list[bytes]:
        buf = self.levels[level]
        return [bytes(buf[i * HASH_SIZE : (i + 1) * HASH_SIZE]) for i in range(start, end)]

    def link_failures(self) -> list[Finding]:
        """Every full tile whose Merkle hash differs from the hash the level above holds for it."""
        out: list[Finding] = []
        missing = {(t.level, t.index) for t in self.missing}
        for level in range(len(self.levels) - 1):
            for n in range(len(self.levels[level + 1]) // HASH_SIZE):
                if (level, n) in missing or (level + 1, n // TILE_WIDTH) in missing:
                    continue
                tile = TileId(level, n)
                got, held = perfect_root(self.run(level, n * TILE_WIDTH, (n + 1) * TILE_WIDTH)), self.hash(level + 1, n)
                if got != held:
                    out.append(Finding("tile.hash", tile.path,
                                       f"its 256 hashes hash to {got.hex()}, but level {level + 1} holds {held.hex()} "
                                       f"for it (hash {n % TILE_WIDTH} of tile {n // TILE_WIDTH})"))
        return out

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree of the first ``size`` leaves (default: all), from the tile hashes."""
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside the tiled tree of {self.size} leaves")
        if size == 0:
            return EMPTY_ROOT
        hashes = []
        for k, i in perfect_nodes_of_range(0, size):
            level, rest = divmod(k, TILE_HEIGHT)
            hashes.append(perfect_root(self.run(level, i << rest, (i + 1) << rest)))
        h = hashes[-1]
        for left in reversed(hashes[:-1]):
            h = node_hash(left, h)
        return h


# --- the audit -----------------------------------------------------------------------------------------------------
def audit_tiles(tiles: TileSource, policy: AuditPolicy | None = None, *, blocks: BlockSource | None = None,
                chain: AnchorSource | None = None, clock: Callable[[], float] = time.perf_counter) -> TilesAuditReport:
    """Audit the log at ``tiles`` (see the module docstring). Raises only when a source cannot be read at all."""
    policy = policy or AuditPolicy()
    report = TilesAuditReport(source=tiles.describe(), quorum=policy.required_cosignatures)
    t0 = clock()
    note = tiles.get("checkpoint")
    if note is None:
        report.fail("checkpoint.missing", "checkpoint", "the source has no checkpoint")
        return report
    cp = _check_checkpoint(note, policy, report)
    if cp is None:
        return report

    tree = _fetch_tree(tiles, cp.size, report)
    report.timings_s["fetch_tiles"] = clock() - t0
    t1 = clock()
    report.findings.extend(tree.link_failures())
    if tree.missing:
        report.skip("checkpoint.root", f"{len(tree.missing)} tile(s) missing or malformed: the root was not rebuilt")
    else:
        report.rebuilt_root = tree.root()
        if report.rebuilt_root != cp.root:
            report.fail("checkpoint.root", f"tree size {cp.size}",
                        f"the tiles rebuild root {report.rebuilt_root.hex()}, the checkpoint says {cp.root.hex()}")
    report.timings_s["rebuild"] = clock() - t1

    t2 = clock()
    _check_entries(tiles, tree, report)
    report.timings_s["entries"] = clock() - t2
    if blocks is not None:
        t3 = clock()
        report.blocks = blocks.describe()
        _check_blobs(blocks, policy, report)
        report.timings_s["blobs"] = clock() - t3
    else:
        report.skip("record.blob", "no block source (--blocks): entries were checked against the tiles, but not "
                                   "against the record blobs")
    if chain is not None:
        t4 = clock()
        report.chain = chain.describe()
        _check_chain(chain, cp, tree, report)
        report.timings_s["chain"] = clock() - t4
    else:
        report.skip("anchor", "no chain (--chain-rpc): anchors were not checked")
    report.timings_s["total"] = clock() - t0
    return report


def _check_checkpoint(note: bytes, policy: AuditPolicy, report: TilesAuditReport) -> Checkpoint | None:
    try:
        cp, _sigs = parse_checkpoint_note(note)
    except CheckpointError as exc:
        report.fail("checkpoint.format", "checkpoint", str(exc))
        return None
    report.checkpoint = cp
    if policy.log_key is not None:
        try:
            verify_checkpoint_note(note, policy.log_key.name, policy.log_key.public_key)
            report.log_signature = "verified"
        except CheckpointError as exc:
            report.log_signature = "failed"
            report.fail("checkpoint.signature", f"{policy.log_key.name}+{policy.log_key.key_id.hex()}", str(exc))
    else:
        report.skip("checkpoint.signature", "no log verifier key (--log-key): the checkpoint's signature was not "
                                            "checked")
    if policy.witnesses:
        checks = check_cosignatures(note, list(policy.witnesses))
        for c in checks:
            report.cosignatures.append({"witness": c.witness.label, "status": c.status, "timestamp": c.timestamp,
                                        "reason": c.reason})
            if c.status == "invalid":
                report.fail("cosignature.signature", c.witness.label, c.reason or "invalid cosignature")
        valid = sum(c.status == "valid" for c in checks)
        if valid < policy.required_cosignatures:
            absent = ", ".join(c.witness.label for c in checks if c.status != "valid")
            report.fail("cosignature.quorum", f"tree size {cp.size}",
                        f"{valid} valid cosignature(s), {policy.required_cosignatures} required (missing or "
                        f"invalid: {absent})")
    elif policy.required_cosignatures:
        report.fail("cosignature.quorum", f"tree size {cp.size}",
                    f"a quorum of {policy.required_cosignatures} needs witness keys (--witness)")
    else:
        report.skip("cosignature", "no witness keys (--witness): cosignatures were not checked")
    return cp


def _fetch_tree(tiles: TileSource, size: int, report: TilesAuditReport) -> TileTree:
    tree = TileTree(size)
    wanted = [t for t in tiles_for_size(size, entries=False)]
    by_path = {t.path: t for t in wanted}
    for path, data in tiles.get_many([t.path for t in wanted]):
        tile = by_path[path]
        report.tiles_fetched += data is not None
        if data is None:
            tree.missing.add(tile)
            report.fail("tile.missing", path, f"tile not found; the checkpoint's size {size} needs it")
        elif len(data) != tile.width * HASH_SIZE:
            tree.missing.add(tile)
            report.fail("tile.format", path, f"{len(data)} bytes; a tile {tile.width} hashes wide is "
                                             f"{tile.width * HASH_SIZE}")
        else:
            tree.put(tile, data)
    return tree


def _check_entries(tiles: TileSource, tree: TileTree, report: TilesAuditReport) -> None:
    size = tree.size
    bundles = [t for t in tiles_for_size(size) if t.is_entries]
    level0_missing = {t.index for t in tree.missing if t.level == 0}
    seen: dict[str, int] = {}
    by_path = {t.path: t for t in bundles}
    for path, data in tiles.get_many(list(by_path)):
        bundle = by_path[path]
        report.tiles_fetched += data is not None
        first = bundle.first
        entries: list[bytes] | None = None
        if data is None:
            report.fail("entries.missing", path, f"entry bundle not found: leaves {first}..{first + bundle.width - 1} "
                                                 f"cannot be recomputed")
        else:
            try:
                entries = decode_entry_bundle(data, bundle.width)
            except LogError as exc:
                report.fail("entries.format", path, str(exc))
        if entries is None:
            report.records.extend(RecordResult(first + k, None, leaf="missing") for k in range(bundle.width))
            continue
        check_leaves = bundle.index not in level0_missing
        expected = tree.levels[0]
        for k, entry in enumerate(entries):
            index = first + k
            text = _cid_text(entry)
            result = RecordResult(index, text)
            if check_leaves:
                got = leaf_hash(entry)
                if got == bytes(expected[index * HASH_SIZE : (index + 1) * HASH_SIZE]):
                    result.leaf = "ok"
                else:
                    result.leaf = "mismatch"
                    report.fail("entries.leaf", f"leaf {index}",
                                f"entry {k} of {path} hashes to {got.hex()}, the level-0 tile holds "
                                f"{tree.hash(0, index).hex()}")
            if text is None or not _is_canonical_cid(text):
                result.cid = text
                report.fail("entries.cid", f"leaf {index}", f"entry {k} of {path} is not a canonical CID: "
                                                            f"{entry[:80]!r}")
            elif text in seen:
                report.fail("entries.duplicate", f"leaf {index}", f"{text} is already logged at leaf {seen[text]}")
            else:
                seen[text] = index
            report.records.append(result)


def _cid_text(entry: bytes) -> str | None:
    try:
        return entry.decode("ascii")
    except UnicodeDecodeError:
        return None


# A raw-codec, sha2-256 CIDv1 in base32 (what the log holds): "bafkrei" fixes the header bytes 01 55 12 20, then 51
# free characters, and a last one whose two padding bits are zero. Matching this is the same test as re-encoding
# the parsed CID, ~50 times faster (Python's base32 is pure Python); anything else takes the general path.
_RAW_SHA256_CID = re.compile(r"bafkrei[a-z2-7]{51}[aeimquy4]", re.ASCII)


def _is_canonical_cid(text: str) -> bool:
    if _RAW_SHA256_CID.fullmatch(text):
        return True
    try:
        return canonical_cid(text) == text
    except InvalidCIDError:
        return False


def _check_blobs(blocks: BlockSource, policy: AuditPolicy, report: TilesAuditReport) -> None:
    """Per entry, in log order: the blob and its CID; key events replayed into the publishers' key history (with the
    log's key as the operator's); records checked against the key their publisher held at their leaf."""
    history = KeyHistory(policy.log_key.public_key) if policy.log_key is not None else None
    owners: dict[str, str] = {}  # record CID -> publisher, for withdrawals
    no_key: set[str] = set()
    unverified_events = 0
    for result in report.records:
        if result.cid is None or not _is_canonical_cid(result.cid):
            continue
        subject = f"leaf {result.index} ({result.cid})"
        blob = _blob(blocks, result, report, subject)
        if blob is None:
            continue
        obj = _json_object(blob)
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
        _check_signature(record, history, policy, result, report, subject, no_key)
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


def _check_signature(record: AnyRecord, history: KeyHistory | None, policy: AuditPolicy, result: RecordResult,
                     report: TilesAuditReport, subject: str, no_key: set[str]) -> None:
    """The publisher's signature, under the key its publisher held at this leaf (from the replayed key history), or
    a key given on the command line; and a v2 record's service attestation under the log's key."""
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
            result.signature = "failed"
            report.fail("record.operator_key", subject, f"signed with key {state.key_id}, which the operator "
                        "installed (a rotation on the operator's authority): the operator could have signed it")
    if isinstance(record, AttestedRecord) and policy.log_key is not None:
        try:
            record.verify_attestation(policy.log_key.public_key)
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


def _check_chain(chain: AnchorSource, cp: Checkpoint, tree: TileTree, report: TilesAuditReport) -> None:
    log_id = log_id_for(cp.origin)
    anchored = {a.tree_size: a for a in chain.anchors(log_id)}
    at_size = chain.read(log_id, cp.size)
    if at_size is not None:
        anchored[cp.size] = at_size
    if cp.size not in anchored:
        report.fail("anchor.missing", f"tree size {cp.size}",
                    f"no anchor of log {log_id.hex()} at the checkpoint's size on {chain.describe()}")
    for size in sorted(anchored):
        a = anchored[size]
        if size > cp.size:
            status = "beyond-checkpoint"
            report.skip("anchor.root", f"the anchor at tree size {size} lies beyond the checkpoint ({cp.size})")
        elif size < cp.size and tree.missing:
            status = "unverifiable"  # tiles are missing (already a failure): no root to compare with
        else:
            expected, what = (cp.root, "checkpoint") if size == cp.size else (tree.root(size), "tiles")
            status = "verified" if a.root == expected else "mismatch"
            if status == "mismatch":
                report.fail("anchor.root", f"tree size {size}",
                            f"the chain holds root {a.root.hex()} (block {a.block_number}), the {what} give "
                            f"{expected.hex()}")
        report.anchors.append(AnchorResult(size, a.root.hex(), status, a.block_number, a.timestamp))
