"""Records: what a publisher claims about one image, signed, in one canonical byte form.

v1 (``SignedRecord``): one signature by the publisher key, which the service held (custodial); still read and
audited. v2 (``AttestedRecord``, everything new): the publisher's signed statement plus the service's signed
attestation (see ``provenance.statements``). ``parse_record`` reads either; ``record.record`` is one view of both.

A signed record serialises to RFC 8785 canonical JSON; its CID is the IPFS CIDv1 of those bytes, so anyone holding
the record can re-derive its identifier with ``ipfs add --cid-version=1`` or :func:`provenance.cid.cid_for_bytes`.
The publisher's Ed25519 signature covers a domain-separated canonical form of every field except the signature.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.canonical import canonical_json, parse_canonical_json
from provenance.cid import cid_for_bytes
from provenance.errors import InvalidRecordError, SignatureError, StatementError
from provenance.metadata import KNOWN_METADATA, PublisherMetadata
from provenance.statements import SignedStatement, key_id_for, sign_domain, utc_now, verify_domain

SCHEMA = "provenance-record/v1"
SCHEMA_VERSION = 1
SIGNING_DOMAIN = b"provenance-record-v1\n"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class PerceptualHash:
    alg: str
    model_id: str
    bits: int
    value: str  # lowercase hex, ``bits / 4`` digits

    def to_obj(self) -> dict[str, Any]:
        return {"alg": self.alg, "model_id": self.model_id, "bits": self.bits, "value": self.value}


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
        return SignedRecord(self, sign_domain(SIGNING_DOMAIN, self.body(), private_key))


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
        verify_domain(SIGNING_DOMAIN, self.record.body(), self.signature, public_key, "publisher signature")

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
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # e.g. metadata not an object (fuzzing)
            raise InvalidRecordError(f"record does not match the v1 schema: {exc!r}") from exc


# --- v2: a publisher statement plus the service's attestation ----------------------------------------------------------
SCHEMA_V2 = "provenance-record/v2"
ATTESTATION_DOMAIN = b"provenance-attestation-v1\n"
CUSTODY = ("publisher", "service")
_V2_KEYS = {"schema", "schema_version", "custody", "statement", "attestation"}
_ATTESTATION_KEYS = {"statement_sha256", "image", "hashes", "c2pa", "ingested_at", "service_key_id", "signature"}


@dataclass(frozen=True)
class Attestation:
    """What the service adds to a publisher's statement: what it measured of the image, signed with its key."""

    statement_sha256: str
    width: int
    height: int
    byte_size: int
    hashes: tuple[PerceptualHash, ...]
    c2pa: dict[str, Any] | None
    ingested_at: str
    service_key_id: str

    def body(self, custody: str) -> dict[str, Any]:
        return {
            "schema": SCHEMA_V2,
            "schema_version": 2,
            "custody": custody,
            "statement_sha256": self.statement_sha256,
            "image": {"width": self.width, "height": self.height, "bytes": self.byte_size},
            "hashes": [h.to_obj() for h in self.hashes],
            "c2pa": self.c2pa,
            "ingested_at": self.ingested_at,
            "service_key_id": self.service_key_id,
        }


@dataclass(frozen=True)
class AttestedRecord:
    """Record v2: the publisher's signed statement (publisher or service custody of its key) and the service's
    signed attestation over the statement's digest and the hashes it computed. Two signatures, two signers: the
    operator cannot change what the publisher stated, and the publisher's statement says nothing about hashes."""

    statement: SignedStatement
    custody: str
    attestation: Attestation
    attestation_signature: str

    @classmethod
    def attest(cls, statement: SignedStatement, *, custody: str, width: int, height: int, byte_size: int,
               hashes: tuple[PerceptualHash, ...], c2pa: dict[str, Any] | None, service_key: Ed25519PrivateKey,
               ingested_at: str | None = None) -> AttestedRecord:
        if custody not in CUSTODY:
            raise InvalidRecordError(f"custody must be one of {CUSTODY}, not {custody!r}")
        att = Attestation(statement.digest, width, height, byte_size, tuple(hashes), c2pa,
                          ingested_at or utc_now(), key_id_for(service_key.public_key()))
        return cls(statement, custody, att, sign_domain(ATTESTATION_DOMAIN, att.body(custody), service_key))

    @property
    def record(self) -> ProvenanceRecord:
        """The v1-shaped view every reader of records uses (hashes, image, publisher, metadata)."""
        s, a = self.statement.statement, self.attestation
        return ProvenanceRecord(
            image_sha256=s.image_sha256, image_cid=s.image_cid, media_type=s.media_type, width=a.width,
            height=a.height, byte_size=a.byte_size, hashes=a.hashes, publisher_id=s.publisher_id, key_id=s.key_id,
            metadata=s.metadata, ingested_at=a.ingested_at, c2pa=a.c2pa, schema_version=2)

    def to_obj(self) -> dict[str, Any]:
        att = self.attestation.body(self.custody)
        for k in ("schema", "schema_version", "custody"):
            del att[k]
        att["signature"] = {"alg": "ed25519", "key_id": self.attestation.service_key_id,
                            "value": self.attestation_signature}
        return {"schema": SCHEMA_V2, "schema_version": 2, "custody": self.custody,
                "statement": self.statement.to_obj(), "attestation": att}

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_obj())

    @property
    def cid(self) -> str:
        return cid_for_bytes(self.to_bytes())

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """The publisher's signature (its statement) under ``public_key``."""
        self.statement.verify(public_key)

    def verify_attestation(self, service_key: Ed25519PublicKey) -> None:
        if key_id_for(service_key) != self.attestation.service_key_id:
            raise SignatureError(f"attestation names service key {self.attestation.service_key_id}, "
                                 f"not {key_id_for(service_key)}")
        if self.attestation.statement_sha256 != self.statement.digest:
            raise SignatureError("attestation covers another statement (statement_sha256 differs)")
        verify_domain(ATTESTATION_DOMAIN, self.attestation.body(self.custody), self.attestation_signature,
                      service_key, "service attestation")

    @classmethod
    def from_obj(cls, obj: Any) -> AttestedRecord:
        try:
            if not isinstance(obj, dict) or set(obj) != _V2_KEYS:
                raise InvalidRecordError(f"record v2 must have exactly the fields {sorted(_V2_KEYS)}")
            if obj["schema"] != SCHEMA_V2 or obj["schema_version"] != 2:
                raise InvalidRecordError(f"unsupported schema {obj.get('schema')!r}")
            if obj["custody"] not in CUSTODY:
                raise InvalidRecordError(f"custody must be one of {CUSTODY}")
            statement = SignedStatement.from_obj(obj["statement"])
            att = obj["attestation"]
            if not isinstance(att, dict) or set(att) != _ATTESTATION_KEYS:
                raise InvalidRecordError(f"attestation must have exactly the fields {sorted(_ATTESTATION_KEYS)}")
            img, sig = att["image"], att["signature"]
            if set(img) != {"width", "height", "bytes"} or set(sig) != {"alg", "key_id", "value"}:
                raise InvalidRecordError("attestation.image / attestation.signature have the wrong fields")
            if sig["alg"] != "ed25519" or sig["key_id"] != att["service_key_id"]:
                raise InvalidRecordError("attestation signature must be ed25519 by the service key it names")
            if not _HEX64.match(att["statement_sha256"]):
                raise InvalidRecordError("attestation.statement_sha256 must be 64 lowercase hex digits")
            if att["c2pa"] is not None and not isinstance(att["c2pa"], dict):
                raise InvalidRecordError("attestation.c2pa must be an object or null")
            for n in (img["width"], img["height"], img["bytes"]):
                if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                    raise InvalidRecordError("attestation.image sizes must be non-negative integers")
            hashes = tuple(PerceptualHash(h["alg"], h["model_id"], int(h["bits"]), h["value"])
                           for h in att["hashes"])
            attestation = Attestation(att["statement_sha256"], img["width"], img["height"], img["bytes"], hashes,
                                      att["c2pa"], att["ingested_at"], att["service_key_id"])
            return cls(statement, obj["custody"], attestation, sig["value"])
        except (InvalidRecordError, StatementError):
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidRecordError(f"record does not match the v2 schema: {exc!r}") from exc


AnyRecord = SignedRecord | AttestedRecord


def parse_record(data: bytes) -> AnyRecord:
    """Stored record bytes of either version; they must be canonical and match their schema exactly."""
    obj = parse_canonical_json(data)
    if isinstance(obj, dict) and obj.get("schema") == SCHEMA_V2:
        try:
            rec: AnyRecord = AttestedRecord.from_obj(obj)
        except StatementError as exc:
            raise InvalidRecordError(f"record statement: {exc}") from exc
    else:
        rec = SignedRecord.from_obj(obj)
    if rec.to_bytes() != data:
        raise InvalidRecordError("record has fields outside its schema")
    return rec


def record_custody(rec: AnyRecord) -> str:
    """'publisher' or 'service'. v1 records were always signed with a key the service held."""
    return rec.custody if isinstance(rec, AttestedRecord) else "service"


def record_view(rec: AnyRecord) -> dict[str, Any]:
    """One JSON shape for both versions, for pages and API answers: the v1 keys (image, hashes, publisher, metadata,
    c2pa, ingested_at) plus ``custody``; a v2 record also keeps its statement and attestation as signed."""
    r = rec.record
    view: dict[str, Any] = r.body()
    view["custody"] = record_custody(rec)
    if isinstance(rec, AttestedRecord):
        obj = rec.to_obj()
        view["schema"], view["schema_version"] = SCHEMA_V2, 2
        view["statement"], view["attestation"] = obj["statement"], obj["attestation"]
    else:
        view["signature"] = rec.to_obj()["signature"]
    return view
