"""The publisher statement: what a publisher signs, on its own machine, about one image before it is uploaded.

A statement names the image by its sha256 and CID, gives its media type and the publisher's metadata, the publisher
and its key id, and the time it was issued. It is signed with the publisher's Ed25519 key over domain-separated
canonical bytes: ``b"provenance-statement-v1\\n" || JCS(statement without its signature)`` (RFC 8785). The service
never needs the private key: it verifies the statement against the registered public key, computes the perceptual
hashes, and adds its own attestation (``provenance.records.AttestedRecord``).

Pure: no I/O, and light to import (the newsroom client uses it without torch or the model weights).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.canonical import canonical_json
from provenance.errors import InvalidRecordError, SignatureError, StatementError
from provenance.metadata import PublisherMetadata

STATEMENT_TYPE = "provenance-statement/v1"
STATEMENT_DOMAIN = b"provenance-statement-v1\n"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_ID = re.compile(r"^ed25519:[0-9a-f]{32}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_STATEMENT_KEYS = {"type", "image", "metadata", "publisher", "issued_at", "signature"}


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """A short stable name for a public key: ``ed25519:`` + the first 16 bytes of SHA-256(raw key), hex."""
    return "ed25519:" + hashlib.sha256(public_key.public_bytes_raw()).hexdigest()[:32]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    """An RFC 3339 UTC time of the form this package writes (``...Z``); StatementError otherwise."""
    if not isinstance(text, str) or not _TIME.match(text):
        raise StatementError(f"time {text!r} is not an RFC 3339 UTC time like 2026-01-31T12:00:00Z")
    base, _, frac = text[:-1].partition(".")
    try:
        when = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
        return when.replace(microsecond=int(frac.ljust(6, "0")) if frac else 0)
    except ValueError as exc:
        raise StatementError(f"time {text!r}: {exc}") from None


def sign_domain(domain: bytes, body: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """base64 Ed25519 signature over ``domain || JCS(body)``."""
    return base64.b64encode(key.sign(domain + canonical_json(body))).decode("ascii")


def verify_domain(domain: bytes, body: dict[str, Any], signature_b64: str, key: Ed25519PublicKey, what: str) -> None:
    try:
        sig = base64.b64decode(signature_b64.encode("ascii"), validate=True)
        key.verify(sig, domain + canonical_json(body))
    except (InvalidSignature, ValueError, binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise SignatureError(f"{what}: signature does not verify under {key_id_for(key)}") from exc


@dataclass(frozen=True)
class PublisherStatement:
    image_sha256: str
    image_cid: str
    media_type: str
    metadata: PublisherMetadata
    publisher_id: str
    key_id: str
    issued_at: str

    def body(self) -> dict[str, Any]:
        return {
            "type": STATEMENT_TYPE,
            "image": {"sha256": self.image_sha256, "cid": self.image_cid, "media_type": self.media_type},
            "metadata": self.metadata.to_obj(),
            "publisher": {"id": self.publisher_id, "key_id": self.key_id},
            "issued_at": self.issued_at,
        }

    def sign(self, key: Ed25519PrivateKey) -> SignedStatement:
        if key_id_for(key.public_key()) != self.key_id:
            raise SignatureError(f"signing key {key_id_for(key.public_key())} is not the statement's key {self.key_id}")
        return SignedStatement(self, sign_domain(STATEMENT_DOMAIN, self.body(), key))


@dataclass(frozen=True)
class SignedStatement:
    statement: PublisherStatement
    signature: str  # base64 of the 64-byte Ed25519 signature

    def to_obj(self) -> dict[str, Any]:
        obj = self.statement.body()
        obj["signature"] = {"alg": "ed25519", "key_id": self.statement.key_id, "value": self.signature}
        return obj

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_obj())

    @property
    def digest(self) -> str:
        """sha256 (hex) of the canonical signed statement: what the service attestation covers, and what makes a
        statement usable once only."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def verify(self, public_key: Ed25519PublicKey) -> None:
        if key_id_for(public_key) != self.statement.key_id:
            raise SignatureError(f"statement names key {self.statement.key_id}, not {key_id_for(public_key)}")
        verify_domain(STATEMENT_DOMAIN, self.statement.body(), self.signature, public_key,
                      f"statement of publisher {self.statement.publisher_id!r}")

    @classmethod
    def from_obj(cls, obj: Any) -> SignedStatement:
        """Strict parse: exactly the v1 fields, right types; StatementError naming what is wrong otherwise."""
        if not isinstance(obj, dict):
            raise StatementError("statement must be a JSON object")
        if set(obj) != _STATEMENT_KEYS:
            missing, extra = _STATEMENT_KEYS - set(obj), set(obj) - _STATEMENT_KEYS
            raise StatementError(f"statement fields: missing {sorted(missing)}, unexpected {sorted(extra)}")
        if obj["type"] != STATEMENT_TYPE:
            raise StatementError(f"statement type {obj['type']!r} is not {STATEMENT_TYPE!r}")
        img, pub, sig = obj["image"], obj["publisher"], obj["signature"]
        _exact(img, {"sha256", "cid", "media_type"}, "statement.image")
        _exact(pub, {"id", "key_id"}, "statement.publisher")
        _exact(sig, {"alg", "key_id", "value"}, "statement.signature")
        for where, value in (("image.sha256", img["sha256"]), ("image.cid", img["cid"]),
                             ("image.media_type", img["media_type"]), ("publisher.id", pub["id"]),
                             ("publisher.key_id", pub["key_id"]), ("signature.value", sig["value"])):
            if not isinstance(value, str) or not value:
                raise StatementError(f"statement.{where} must be a non-empty string")
        if not _HEX64.match(img["sha256"]):
            raise StatementError("statement.image.sha256 must be 64 lowercase hex digits")
        if not _KEY_ID.match(pub["key_id"]):
            raise StatementError("statement.publisher.key_id must look like ed25519:<32 hex digits>")
        if sig["alg"] != "ed25519" or sig["key_id"] != pub["key_id"]:
            raise StatementError("statement.signature must be ed25519 by the publisher key")
        parse_utc(obj["issued_at"])
        try:
            metadata = PublisherMetadata.from_obj(obj["metadata"])
        except InvalidRecordError as exc:
            raise StatementError(f"statement.metadata: {exc}") from None
        statement = PublisherStatement(img["sha256"], img["cid"], img["media_type"], metadata, pub["id"],
                                       pub["key_id"], obj["issued_at"])
        signed = cls(statement, sig["value"])
        if signed.to_obj() != obj:
            raise StatementError("statement is not in its canonical v1 form (e.g. empty metadata fields)")
        return signed


def _exact(obj: Any, keys: set[str], where: str) -> None:
    if not isinstance(obj, dict) or set(obj) != keys:
        raise StatementError(f"{where} must be an object with exactly {sorted(keys)}")
