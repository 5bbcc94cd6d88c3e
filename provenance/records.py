"""``ProvenanceRecord`` v1: what a publisher claims about one image, signed, in one canonical byte form.

A signed record serialises to RFC 8785 canonical JSON; its CID is the IPFS CIDv1 of those bytes, so anyone holding
the record can re-derive its identifier with ``ipfs add --cid-version=1`` or :func:`provenance.cid.cid_for_bytes`.
The publisher's Ed25519 signature covers a domain-separated canonical form of every field except the signature.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.canonical import canonical_json, parse_canonical_json
from provenance.cid import cid_for_bytes
from provenance.errors import InvalidRecordError, SignatureError

SCHEMA = "provenance-record/v1"
SCHEMA_VERSION = 1
SIGNING_DOMAIN = b"provenance-record-v1\n"
KNOWN_METADATA = ("title", "author", "source_url", "licence", "capture_time")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def key_id_for(public_key: Ed25519PublicKey) -> str:
    """A short stable name for a public key: ``ed25519:`` + the first 16 bytes of SHA-256(raw key), hex."""
    raw = public_key.public_bytes_raw()
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class PerceptualHash:
    alg: str
    model_id: str
    bits: int
    value: str  # lowercase hex, ``bits / 4`` digits

    def to_obj(self) -> dict[str, Any]:
        return {"alg": self.alg, "model_id": self.model_id, "bits": self.bits, "value": self.value}


@dataclass(frozen=True)
class PublisherMetadata:
    title: str | None = None
    author: str | None = None
    source_url: str | None = None
    licence: str | None = None
    capture_time: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: dict[str, str]) -> PublisherMetadata:
        known = {k: v for k, v in pairs.items() if k in KNOWN_METADATA}
        extra = {k: v for k, v in pairs.items() if k not in KNOWN_METADATA}
        return cls(**known, extra=extra)

    def to_obj(self) -> dict[str, Any]:
        obj: dict[str, Any] = {k: getattr(self, k) for k in KNOWN_METADATA if getattr(self, k) is not None}
        if self.extra:
            obj["extra"] = dict(self.extra)
        return obj


@dataclass(frozen=True)
class ProvenanceRecord:
    image_sha256: str
    image_cid: str
    media_type: str
    width: int
    height: int
    byte_size: int
    hashes: tuple[PerceptualHash, ...]
    publisher_id: str
    key_id: str
    metadata: PublisherMetadata
    ingested_at: str
    c2pa: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def body(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "schema_version": self.schema_version,
            "image": {
                "sha256": self.image_sha256,
                "cid": self.image_cid,
                "media_type": self.media_type,
                "width": self.width,
                "height": self.height,
                "bytes": self.byte_size,
            },
            "hashes": [h.to_obj() for h in self.hashes],
            "publisher": {"id": self.publisher_id, "key_id": self.key_id},
            "metadata": self.metadata.to_obj(),
            "c2pa": self.c2pa,
            "ingested_at": self.ingested_at,
        }

    def signing_payload(self) -> bytes:
        return SIGNING_DOMAIN + canonical_json(self.body())

    def sign(self, private_key: Ed25519PrivateKey) -> SignedRecord:
        if key_id_for(private_key.public_key()) != self.key_id:
            raise SignatureError(f"signing key does not match the record's key id {self.key_id}")
        sig = private_key.sign(self.signing_payload())
        return SignedRecord(self, base64.b64encode(sig).decode("ascii"))


@dataclass(frozen=True)
class SignedRecord:
    record: ProvenanceRecord
    signature: str  # base64 of the 64-byte Ed25519 signature

    def to_obj(self) -> dict[str, Any]:
        obj = self.record.body()
        obj["signature"] = {"alg": "ed25519", "key_id": self.record.key_id, "value": self.signature}
        return obj

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_obj())

    @property
    def cid(self) -> str:
        return cid_for_bytes(self.to_bytes())

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise :class:`SignatureError` unless the signature verifies under ``public_key``."""
        if key_id_for(public_key) != self.record.key_id:
            raise SignatureError(f"record names key {self.record.key_id}, not {key_id_for(public_key)}")
        try:
            sig = base64.b64decode(self.signature, validate=True)
            public_key.verify(sig, self.record.signing_payload())
        except (InvalidSignature, ValueError) as exc:
            raise SignatureError(f"publisher signature does not verify under {self.record.key_id}") from exc

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedRecord:
        """Parse stored record bytes; they must be canonical and match the v1 schema exactly."""
        obj = parse_canonical_json(data)
        signed = cls.from_obj(obj)
        if signed.to_bytes() != data:
            raise InvalidRecordError("record has fields outside the v1 schema")
        return signed

    @classmethod
    def from_obj(cls, obj: Any) -> SignedRecord:
        try:
            if obj["schema"] != SCHEMA or obj["schema_version"] != SCHEMA_VERSION:
                raise InvalidRecordError(f"unsupported schema {obj.get('schema')!r} v{obj.get('schema_version')}")
            img, pub, meta, sig = obj["image"], obj["publisher"], obj["metadata"], obj["signature"]
            if sig["alg"] != "ed25519" or sig["key_id"] != pub["key_id"]:
                raise InvalidRecordError("signature block does not match the publisher key")
            if not _HEX64.match(img["sha256"]):
                raise InvalidRecordError("image.sha256 must be 64 lowercase hex digits")
            record = ProvenanceRecord(
                image_sha256=img["sha256"],
                image_cid=img["cid"],
                media_type=img["media_type"],
                width=int(img["width"]),
                height=int(img["height"]),
                byte_size=int(img["bytes"]),
                hashes=tuple(PerceptualHash(h["alg"], h["model_id"], int(h["bits"]), h["value"]) for h in obj["hashes"]),
                publisher_id=pub["id"],
                key_id=pub["key_id"],
                metadata=PublisherMetadata(
                    **{k: meta[k] for k in KNOWN_METADATA if k in meta}, extra=dict(meta.get("extra", {}))
                ),
                ingested_at=obj["ingested_at"],
                c2pa=obj["c2pa"],
            )
            return cls(record, sig["value"])
        except InvalidRecordError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRecordError(f"record does not match the v1 schema: {exc!r}") from exc
