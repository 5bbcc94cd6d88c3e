"""The lookup receipt: what the service answered about one query image, against which state of the log, and when.

A receipt is plain data (frozen dataclasses, no I/O). Its JSON form is strict: every object has exactly the fields
below, with the types below, and anything else raises :class:`ReceiptError` naming the field::

    {"schema": "provenance-lookup-receipt/v1",
     "id": "<32 hex digits>",
     "issued_at": "2025-01-01T12:00:00.000000Z",
     "service": {"name": "<signed-note key name>", "key_id": "<8 hex digits: signed-note key ID>"},
     "query": {"sha256": "<64 hex>", "codes": [{"alg", "model_id", "bits", "value"}, ...]},
     "verdict": "match" | "altered" | "no_match" | ...,
     "record_cid": "<CID>" | null,
     "candidates": [{"record_cid": "<CID>", "distances": {"<alg>": <Hamming distance>, ...}}, ...],
     "checkpoint": {"origin": "<log origin>", "size": <tree size>, "root": "<base64 root>"},
     "signature": "<base64 Ed25519 signature>"}

``checkpoint`` is a signed checkpoint of the log (or the empty tree, size 0) whose every record the index could
search when this lookup ran, so ``no_match`` reads "not registered as of checkpoint ``size``".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from provenance.canonical import canonical_json
from provenance.cid import canonical_cid
from provenance.errors import CheckpointError, InvalidCIDError, InvalidRecordError, ReceiptError
from provenance.json_bounds import MAX_DOCUMENT_DEPTH, json_depth
from provenance.translog.checkpoint import Checkpoint
from provenance.strict import exact_fields

__all__ = ["MAX_RECEIPT_BYTES", "NO_MATCH", "RECEIPT_SCHEMA", "SIGNING_DOMAIN", "LookupReceipt", "QueryCode",
           "ReceiptCandidate", "ReceiptCheckpoint", "ServiceKeyRef", "SignedReceipt"]

RECEIPT_SCHEMA = "provenance-lookup-receipt/v1"
SIGNING_DOMAIN = b"provenance-receipt-v1\n"
"""Prefix of the signed bytes, so a receipt signature can never pass for a checkpoint or record signature."""
NO_MATCH = "no_match"
MAX_RECEIPT_BYTES = 1 << 20  # a receipt with 1,000 candidates is ~150 KB; anything far larger is not one of ours
MAX_CANDIDATES = 2000
MAX_CODES = 32

_ID = re.compile(r"[0-9a-f]{32}", re.ASCII)
_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)
_HEX = re.compile(r"[0-9a-f]+", re.ASCII)
_HEX8 = re.compile(r"[0-9a-f]{8}", re.ASCII)
_ALG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}", re.ASCII)  # the index's channel names
_VERDICT = re.compile(r"[a-z][a-z_]{0,31}", re.ASCII)  # match, altered, no_match, same_scene, ...
_MODEL = re.compile(r"[\x21-\x7e]{1,128}", re.ASCII)  # printable ASCII, no spaces
_KEY_NAME = re.compile(r"[\x21-\x2a\x2c-\x7e]{1,128}", re.ASCII)  # signed-note key names: no spaces or '+'
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", re.ASCII)


_RECEIPT_FIELDS = ("schema", "id", "issued_at", "service", "query", "verdict", "record_cid", "candidates",
                   "checkpoint")


# --- strict readers -------------------------------------------------------------------------------------------------
def _fail(path: str, message: str) -> ReceiptError:
    return ReceiptError(f"receipt field {path}: {message}", check=f"field:{path}")


def _fields(obj: Any, path: str, names: tuple[str, ...]) -> dict[str, Any]:
    return exact_fields(obj, path, names, _fail, _kind)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _str(value: Any, path: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str:
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, got {_kind(value)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise _fail(path, f"must be {what}, got {value[:80]!r}")
    return value


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"must be an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise _fail(path, f"must be in [{lo}, {hi}], got {value}")
    return value


def _list(value: Any, path: str, most: int) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, f"must be an array, got {_kind(value)}")
    if len(value) > most:
        raise _fail(path, f"holds {len(value)} items; at most {most} are accepted")
    return value


def _cid(value: Any, path: str) -> str:
    text = _str(value, path)
    try:
        canonical = canonical_cid(text)
    except InvalidCIDError as exc:
        raise _fail(path, f"is not a CID: {exc}") from None
    if canonical != text:
        raise _fail(path, f"must be the canonical (base32 CIDv1) form {canonical!r}, got {text!r}")
    return text


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64decode(value: Any, path: str, size: int) -> bytes:
    """Strict, canonical, padded standard base64 of exactly ``size`` bytes."""
    text = _str(value, path)
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise _fail(path, f"is not valid base64: {text[:80]!r}") from None
    if b64encode(raw) != text:
        raise _fail(path, f"is not canonical base64: {text[:80]!r}")
    if len(raw) != size:
        raise _fail(path, f"must decode to {size} bytes, got {len(raw)}")
    return raw


def check_time(value: Any, path: str) -> str:
    text = _str(value, path, _TIME, "an RFC 3339 UTC time like 2025-01-01T12:00:00.000000Z")
    try:
        datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        raise _fail(path, f"is not a valid date and time: {text!r}") from None
    return text


# --- the model ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QueryCode:
    """One channel's code of the query image: ``alg`` (the index channel), the model that made it, its width in
    bits and its value as lowercase hex (first bit most significant)."""

    alg: str
    model_id: str
    bits: int
    value: str

    def to_obj(self) -> dict[str, Any]:
        return {"alg": self.alg, "model_id": self.model_id, "bits": self.bits, "value": self.value}

    @classmethod
    def from_obj(cls, obj: Any, path: str) -> QueryCode:
        o = _fields(obj, path, ("alg", "model_id", "bits", "value"))
        bits = _int(o["bits"], f"{path}.bits", 4, 4096)
        if bits % 4:
            raise _fail(f"{path}.bits", f"must be a multiple of 4, got {bits}")
        value = _str(o["value"], f"{path}.value", _HEX, "lowercase hex")
        if len(value) != bits // 4:
            raise _fail(f"{path}.value", f"must have {bits // 4} hex digits for {bits} bits, got {len(value)}")
        return cls(_str(o["alg"], f"{path}.alg", _ALG, "a channel name (a-z, 0-9, '_', '-')"),
                   _str(o["model_id"], f"{path}.model_id", _MODEL, "printable ASCII without spaces"), bits, value)


@dataclass(frozen=True, slots=True)
class ReceiptCandidate:
    """A record the search returned, with the query's Hamming distance to it on each channel where both have a
    code of the same model."""

    record_cid: str
    distances: Mapping[str, int] = field(default_factory=dict)

    def to_obj(self) -> dict[str, Any]:
        return {"record_cid": self.record_cid, "distances": dict(sorted(self.distances.items()))}

    @classmethod
    def from_obj(cls, obj: Any, path: str, bits: Mapping[str, int]) -> ReceiptCandidate:
        o = _fields(obj, path, ("record_cid", "distances"))
        raw = o["distances"]
        if not isinstance(raw, dict):
            raise _fail(f"{path}.distances", f"must be an object, got {_kind(raw)}")
        distances: dict[str, int] = {}
        for alg, d in raw.items():
            if alg not in bits:
                raise _fail(f"{path}.distances", f"names channel {alg!r}, which has no query code")
            distances[alg] = _int(d, f"{path}.distances.{alg}", 0, bits[alg])
        return cls(_cid(o["record_cid"], f"{path}.record_cid"), distances)


@dataclass(frozen=True, slots=True)
class ReceiptCheckpoint:
    """The tree head the search reflected: origin, size and RFC 6962 root, as in the log's signed checkpoint."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        try:
            Checkpoint(self.origin, self.size, self.root)
        except CheckpointError as exc:
            raise _fail("checkpoint", str(exc)) from None

    def to_obj(self) -> dict[str, Any]:
        return {"origin": self.origin, "size": self.size, "root": b64encode(self.root)}

    @classmethod
    def from_obj(cls, obj: Any) -> ReceiptCheckpoint:
        o = _fields(obj, "checkpoint", ("origin", "size", "root"))
        origin = _str(o["origin"], "checkpoint.origin")
        if not origin or "\n" in origin:
            raise _fail("checkpoint.origin", "must be one non-empty line")
        size = _int(o["size"], "checkpoint.size", 0, 2**64 - 1)
        return cls(origin, size, b64decode(o["root"], "checkpoint.root", 32))


@dataclass(frozen=True, slots=True)
class ServiceKeyRef:
    """Which key signed the receipt: the log's signed-note key name and 4-byte key ID (hex), as in its verifier key
    ``<name>+<key_id>+<public key>``."""

    name: str
    key_id: str

    def to_obj(self) -> dict[str, Any]:
        return {"name": self.name, "key_id": self.key_id}

    @classmethod
    def from_obj(cls, obj: Any) -> ServiceKeyRef:
        o = _fields(obj, "service", ("name", "key_id"))
        return cls(_str(o["name"], "service.name", _KEY_NAME, "a signed-note key name (no spaces or '+')"),
                   _str(o["key_id"], "service.key_id", _HEX8, "8 lowercase hex digits"))


@dataclass(frozen=True, slots=True)
class LookupReceipt:
    """Everything a receipt says, without its signature (what the signature covers)."""

    receipt_id: str
    issued_at: str
    service: ServiceKeyRef
    query_sha256: str
    codes: tuple[QueryCode, ...]
    verdict: str
    record_cid: str | None
    candidates: tuple[ReceiptCandidate, ...]
    checkpoint: ReceiptCheckpoint

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every rule ``from_obj`` applies, so the issuer can never sign what a verifier would refuse."""
        ServiceKeyRef.from_obj(self.service.to_obj())
        for i, code in enumerate(self.codes):
            QueryCode.from_obj(code.to_obj(), f"query.codes[{i}]")
        _str(self.receipt_id, "id", _ID, "32 lowercase hex digits")
        check_time(self.issued_at, "issued_at")
        _str(self.query_sha256, "query.sha256", _SHA256, "64 lowercase hex digits")
        _str(self.verdict, "verdict", _VERDICT, "a verdict name (a-z and '_')")
        bits = {c.alg: c.bits for c in self.codes}
        for i, c in enumerate(self.candidates):
            ReceiptCandidate.from_obj(c.to_obj(), f"candidates[{i}]", bits)
        self._check_relations()

    def _check_relations(self) -> None:
        algs = [c.alg for c in self.codes]
        if len(set(algs)) != len(algs):
            raise _fail("query.codes", f"names a channel twice: {algs}")
        cids = [c.record_cid for c in self.candidates]
        if len(set(cids)) != len(cids):
            raise _fail("candidates", "names a record twice")
        if self.verdict == NO_MATCH and self.record_cid is not None:
            raise _fail("record_cid", "must be null when the verdict is no_match")
        if self.record_cid is not None and self.record_cid not in cids:
            raise _fail("record_cid", f"{self.record_cid} is not among the candidates")

    @property
    def no_match_statement(self) -> str:
        return f"not registered as of checkpoint {self.checkpoint.size}"

    def to_obj(self) -> dict[str, Any]:
        return {
            "schema": RECEIPT_SCHEMA,
            "id": self.receipt_id,
            "issued_at": self.issued_at,
            "service": self.service.to_obj(),
            "query": {"sha256": self.query_sha256, "codes": [c.to_obj() for c in self.codes]},
            "verdict": self.verdict,
            "record_cid": self.record_cid,
            "candidates": [c.to_obj() for c in self.candidates],
            "checkpoint": self.checkpoint.to_obj(),
        }

    def signing_bytes(self) -> bytes:
        """``"provenance-receipt-v1\\n" || JCS(receipt without its signature)``: what the service key signs."""
        try:
            return SIGNING_DOMAIN + canonical_json(self.to_obj())
        except InvalidRecordError as exc:  # unreachable for a validated receipt; kept as one error type
            raise ReceiptError(f"receipt cannot be canonicalised: {exc}", check="json") from None

    @classmethod
    def from_obj(cls, obj: Any) -> LookupReceipt:
        o = _fields(obj, "receipt", _RECEIPT_FIELDS)
        if o["schema"] != RECEIPT_SCHEMA:
            raise _fail("schema", f"must be {RECEIPT_SCHEMA!r}, got {o['schema']!r}")
        q = _fields(o["query"], "query", ("sha256", "codes"))
        codes = tuple(QueryCode.from_obj(c, f"query.codes[{i}]")
                      for i, c in enumerate(_list(q["codes"], "query.codes", MAX_CODES)))
        bits = {c.alg: c.bits for c in codes}
        candidates = tuple(ReceiptCandidate.from_obj(c, f"candidates[{i}]", bits)
                           for i, c in enumerate(_list(o["candidates"], "candidates", MAX_CANDIDATES)))
        record = o["record_cid"]
        # Every field was checked on the way in; only the rules between fields remain (``_check_relations``).
        receipt = object.__new__(cls)
        for name, value in dict(
            receipt_id=_str(o["id"], "id", _ID, "32 lowercase hex digits"),
            issued_at=check_time(o["issued_at"], "issued_at"),
            service=ServiceKeyRef.from_obj(o["service"]),
            query_sha256=_str(q["sha256"], "query.sha256", _SHA256, "64 lowercase hex digits"),
            codes=codes,
            verdict=_str(o["verdict"], "verdict", _VERDICT, "a verdict name (a-z and '_')"),
            record_cid=None if record is None else _cid(record, "record_cid"),
            candidates=candidates,
            checkpoint=ReceiptCheckpoint.from_obj(o["checkpoint"]),
        ).items():
            object.__setattr__(receipt, name, value)
        receipt._check_relations()
        return receipt


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    """A receipt and the service key's Ed25519 signature over its :meth:`LookupReceipt.signing_bytes`."""

    receipt: LookupReceipt
    signature: bytes

    @property
    def receipt_id(self) -> str:
        return self.receipt.receipt_id

    def to_obj(self) -> dict[str, Any]:
        return {**self.receipt.to_obj(), "signature": b64encode(self.signature)}

    def to_bytes(self) -> bytes:
        """The stored and downloaded form: RFC 8785 canonical JSON of the whole receipt."""
        return canonical_json(self.to_obj())

    @classmethod
    def from_obj(cls, obj: Any) -> SignedReceipt:
        _fields(obj, "receipt", (*_RECEIPT_FIELDS, "signature"))
        body = {k: v for k, v in obj.items() if k != "signature"}
        receipt = LookupReceipt.from_obj(body)
        return cls(receipt, b64decode(obj["signature"], "signature", 64))

    @classmethod
    def from_bytes(cls, data: bytes | str) -> SignedReceipt:
        """Parse a receipt file: UTF-8 JSON (any formatting; duplicate keys are refused), then the strict model."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if len(data) > MAX_RECEIPT_BYTES:
            raise ReceiptError(f"receipt is {len(data)} bytes; at most {MAX_RECEIPT_BYTES} are accepted", check="json")
        if (depth := json_depth(data)) > MAX_DOCUMENT_DEPTH:  # before the recursive parser (json_bounds.py)
            raise ReceiptError(f"receipt JSON is nested {depth} levels deep (at most {MAX_DOCUMENT_DEPTH})",
                               check="json")
        try:
            obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                             parse_constant=_no_constant)
        except UnicodeDecodeError as exc:
            raise ReceiptError(f"receipt is not UTF-8: {exc}", check="json") from None
        except json.JSONDecodeError as exc:
            raise ReceiptError(f"receipt is not valid JSON: {exc}", check="json") from None
        except _DuplicateKey as exc:
            raise ReceiptError(f"receipt JSON repeats the key {exc.args[0]!r}", check="json") from None
        return cls.from_obj(obj)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)
