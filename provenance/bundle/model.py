"""The proof bundle: one self-contained file that lets anyone check one record offline (see docs/bundles.md).

Its JSON form is strict: every object has exactly these fields, with these types; anything else raises
:class:`~provenance.errors.BundleError` whose ``check`` is ``json`` or ``field:<path>``::

    {"type": "provenance-proof-bundle/v1",
     "log_key": "<signed-note verifier key of the log: name+hex8+base64>",
     "record": {"cid": "<CIDv1 of data>", "data": "<base64 of the signed record's canonical bytes>",
                "tlog_proof": "<C2SP tlog-proof@v1 text: index, audit path, the checkpoint note>"},
     "key_events": [{"cid", "data", "tlog_proof"}, ...],       # the publisher's key events and the log's key
                                                               # rotations, in log order
     "anchor": {"chain_id", "contract", "tx", "block", "block_timestamp", "block_time", "log_id", "tree_size",
                "root", "ephemeral"} | null}

Every ``tlog_proof`` ends in the same checkpoint note (with any witness cosignature lines). The stored form is the
RFC 8785 canonical JSON, so one bundle has one byte form and one sha256 (what a C2PA copy points at). Pure, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from provenance.bundle.tlog_proof import TlogProof, parse_tlog_proof
from provenance.canonical import canonical_json
from provenance.errors import BundleError
from provenance.json_bounds import MAX_DOCUMENT_DEPTH, json_depth
from provenance.strict import exact_fields

__all__ = ["BUNDLE_TYPE", "MAX_BUNDLE_BYTES", "AnchorInfo", "LogEntry", "ProofBundle"]

BUNDLE_TYPE = "provenance-proof-bundle/v1"
MAX_BUNDLE_BYTES = 16 << 20  # a bundle at 1M leaves with a few events is ~10 KB; far larger is not one of ours
MAX_EVENTS = 10_000
MAX_ENTRY_BYTES = 1 << 20

_TOP = ("type", "log_key", "record", "key_events", "anchor")
_ENTRY = ("cid", "data", "tlog_proof")
_ANCHOR = ("chain_id", "contract", "tx", "block", "block_timestamp", "block_time", "log_id", "tree_size", "root",
           "ephemeral")
_CID = re.compile(r"[a-z2-7]{8,120}", re.ASCII)  # CIDv1, base32 (what the log's leaves name)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}", re.ASCII)
_TX = re.compile(r"0x[0-9a-fA-F]{64}", re.ASCII)
_HEX32 = re.compile(r"[0-9a-f]{64}", re.ASCII)


def _fail(path: str, message: str) -> BundleError:
    return BundleError(f"bundle field {path}: {message}", check=f"field:{path}")


def _kind(value: Any) -> str:
    return "null" if value is None else {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number")


def _fields(obj: Any, path: str, names: tuple[str, ...]) -> dict[str, Any]:
    return exact_fields(obj, path, names, _fail, _kind)


def _str(value: Any, path: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, got {_kind(value)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise _fail(path, f"must be {what}, got {value[:80]!r}")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {_kind(value)}")
    if not 0 <= value < 2**64:
        raise _fail(path, f"must be in [0, 2**64), got {value}")
    return value


def _b64(value: Any, path: str) -> bytes:
    text = _str(value, path)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise _fail(path, "is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise _fail(path, "is not canonical base64 (standard alphabet, padded)")
    if len(raw) > MAX_ENTRY_BYTES:
        raise _fail(path, f"holds {len(raw)} bytes; at most {MAX_ENTRY_BYTES} are accepted")
    return raw


def iso_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LogEntry:
    """One log entry (a record or a key event): its bytes, their CID (the leaf commits to the CID string) and its
    tlog-proof in the bundle's checkpoint."""

    cid: str
    data: bytes
    proof: TlogProof

    @property
    def index(self) -> int:
        return self.proof.index

    def to_obj(self) -> dict[str, Any]:
        return {"cid": self.cid, "data": base64.b64encode(self.data).decode("ascii"),
                "tlog_proof": self.proof.encode()}

    @classmethod
    def from_obj(cls, obj: Any, path: str) -> LogEntry:
        o = _fields(obj, path, _ENTRY)
        cid = _str(o["cid"], f"{path}.cid", _CID, "a base32 CIDv1")
        data = _b64(o["data"], f"{path}.data")
        text = _str(o["tlog_proof"], f"{path}.tlog_proof")
        return cls(cid, data, parse_tlog_proof(text, where=f"{path}.tlog_proof"))


@dataclass(frozen=True)
class AnchorInfo:
    """The chain anchor receipt of the bundle's checkpoint, as the log recorded it. Unauthenticated by itself: the
    verifier compares it with the checkpoint, and ``--chain-rpc`` reads the anchor back from the contract."""

    chain_id: int
    contract: str
    tx: str
    block: int
    block_timestamp: int
    log_id: bytes
    tree_size: int
    root: bytes
    ephemeral: bool

    @property
    def block_time(self) -> str:
        return iso_time(self.block_timestamp)

    def to_obj(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "contract": self.contract, "tx": self.tx, "block": self.block,
                "block_timestamp": self.block_timestamp, "block_time": self.block_time,
                "log_id": self.log_id.hex(), "tree_size": self.tree_size, "root": self.root.hex(),
                "ephemeral": self.ephemeral}

    @classmethod
    def from_obj(cls, obj: Any) -> AnchorInfo:
        o = _fields(obj, "anchor", _ANCHOR)
        if not isinstance(o["ephemeral"], bool):
            raise _fail("anchor.ephemeral", f"must be a boolean, got {_kind(o['ephemeral'])}")
        info = cls(
            chain_id=_int(o["chain_id"], "anchor.chain_id"),
            contract=_str(o["contract"], "anchor.contract", _ADDRESS, "a 0x-prefixed 20-byte address"),
            tx=_str(o["tx"], "anchor.tx", _TX, "a 0x-prefixed 32-byte transaction hash"),
            block=_int(o["block"], "anchor.block"),
            block_timestamp=_int(o["block_timestamp"], "anchor.block_timestamp"),
            log_id=bytes.fromhex(_str(o["log_id"], "anchor.log_id", _HEX32, "64 lowercase hex digits")),
            tree_size=_int(o["tree_size"], "anchor.tree_size"),
            root=bytes.fromhex(_str(o["root"], "anchor.root", _HEX32, "64 lowercase hex digits")),
            ephemeral=o["ephemeral"],
        )
        try:
            expected = info.block_time
        except (OverflowError, OSError, ValueError):
            raise _fail("anchor.block_timestamp", "is not a representable time") from None
        if _str(o["block_time"], "anchor.block_time") != expected:
            raise _fail("anchor.block_time", f"must be {expected} (the block_timestamp in UTC)")
        return info


@dataclass(frozen=True)
class ProofBundle:
    log_key: str
    record: LogEntry
    key_events: tuple[LogEntry, ...]
    anchor: AnchorInfo | None

    @property
    def checkpoint(self) -> str:
        """The signed checkpoint note the record's proof leads to (every event's proof must lead to the same)."""
        return self.record.proof.checkpoint

    def to_obj(self) -> dict[str, Any]:
        return {"type": BUNDLE_TYPE, "log_key": self.log_key, "record": self.record.to_obj(),
                "key_events": [e.to_obj() for e in self.key_events],
                "anchor": None if self.anchor is None else self.anchor.to_obj()}

    def to_json(self) -> bytes:
        """RFC 8785 canonical bytes: one bundle, one byte form."""
        return canonical_json(self.to_obj())

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()

    @classmethod
    def from_obj(cls, obj: Any) -> ProofBundle:
        o = _fields(obj, "(bundle)", _TOP)
        if o["type"] != BUNDLE_TYPE:
            raise _fail("type", f"must be {BUNDLE_TYPE!r}, got {str(o['type'])[:80]!r}")
        log_key = _str(o["log_key"], "log_key")
        record = LogEntry.from_obj(o["record"], "record")
        events = o["key_events"]
        if not isinstance(events, list):
            raise _fail("key_events", f"must be an array, got {_kind(events)}")
        if len(events) > MAX_EVENTS:
            raise _fail("key_events", f"holds {len(events)} events; at most {MAX_EVENTS} are accepted")
        key_events = tuple(LogEntry.from_obj(e, f"key_events[{i}]") for i, e in enumerate(events))
        anchor = None if o["anchor"] is None else AnchorInfo.from_obj(o["anchor"])
        return cls(log_key, record, key_events, anchor)

    @classmethod
    def from_json(cls, data: bytes) -> ProofBundle:
        """Parse a bundle file (any JSON layout; duplicate keys, NaN and non-UTF-8 refused)."""
        if not isinstance(data, (bytes, bytearray)):
            raise BundleError("a bundle is read from bytes", check="json")
        if len(data) > MAX_BUNDLE_BYTES:
            raise BundleError(f"bundle is {len(data)} bytes; at most {MAX_BUNDLE_BYTES} are accepted", check="json")
        if (depth := json_depth(bytes(data))) > MAX_DOCUMENT_DEPTH:  # before the recursive parser (json_bounds.py)
            raise BundleError(f"bundle JSON is nested {depth} levels deep (at most {MAX_DOCUMENT_DEPTH})",
                              check="json")
        try:
            obj = json.loads(bytes(data).decode("utf-8"), object_pairs_hook=_no_duplicates,
                             parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise BundleError(f"bundle is not valid UTF-8 JSON (truncated or malformed?): {exc}",
                              check="json") from None
        return cls.from_obj(obj)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def make_entry(cid: str, data: bytes, index: int, hashes: Sequence[bytes], checkpoint: str) -> LogEntry:
    """A log entry with its tlog-proof (what the builder, and anyone assembling a bundle, uses)."""
    return LogEntry(cid, bytes(data), TlogProof(index, tuple(bytes(h) for h in hashes), checkpoint))

