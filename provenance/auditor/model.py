"""What a public audit trusts (:class:`AuditPolicy`) and what it reports (:class:`TilesAuditReport`, one
:class:`RecordResult` per log entry, :class:`AnchorResult` per anchor, :class:`Finding` per failure). Plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from provenance.translog.checkpoint import Checkpoint, VerifierKey
from provenance.translog.cosignature import WitnessKey

__all__ = ["AnchorResult", "AuditPolicy", "Finding", "RecordResult", "TilesAuditReport"]


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
    record/key-event/service-event/unknown; ``signature`` verified/failed/unchecked; ``image``
    ok/missing/mismatch/unchecked."""

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
            lines.append(f"  {self.tiles_fetched} tiles and entry bundles fetched; rebuilt root "
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
    trust_operator_rotations: bool = False  # accept records signed with a key the operator installed for a lost one

    @property
    def required_cosignatures(self) -> int:
        return len(self.witnesses) if self.quorum is None else self.quorum
