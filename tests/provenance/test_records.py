"""ProvenanceRecord v1: canonical bytes, CID re-derivation, signatures."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.canonical import canonical_json, parse_canonical_json
from provenance.cid import cid_for_bytes
from provenance.errors import InvalidRecordError, SignatureError
from provenance.records import (
    SIGNING_DOMAIN,
    PerceptualHash,
    ProvenanceRecord,
    PublisherMetadata,
    SignedRecord,
    key_id_for,
)


def make_record(key: Ed25519PrivateKey, **overrides) -> ProvenanceRecord:
    fields = dict(
        image_sha256="ab" * 32,
        image_cid="bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",
        media_type="image/png",
        width=640,
        height=480,
        byte_size=1234,
        hashes=(PerceptualHash("phash", "phash-dct64-v1", 64, "0123456789abcdef"),),
        publisher_id="acme",
        key_id=key_id_for(key.public_key()),
        metadata=PublisherMetadata(title="Bridge at dawn", author="A. Photographer", licence="CC-BY-4.0",
                                   extra={"desk": "city", "émoji": "📷"}),
        ingested_at="2026-11-25T10:00:00.000000Z",
    )
    fields.update(overrides)
    return ProvenanceRecord(**fields)


def test_signed_record_round_trips_through_canonical_bytes() -> None:
    key = Ed25519PrivateKey.generate()
    signed = make_record(key).sign(key)
    data = signed.to_bytes()
    again = SignedRecord.from_bytes(data)
    assert again == signed
    assert again.cid == cid_for_bytes(data)
    assert again.cid.startswith("bafkrei")  # small record: one raw block
    again.verify(key.public_key())


def test_cid_can_be_rederived_by_anyone_from_the_json() -> None:
    """An auditor with only the record JSON (any key order, any whitespace) re-derives the same CID."""
    key = Ed25519PrivateKey.generate()
    signed = make_record(key).sign(key)
    pretty = json.dumps(json.loads(signed.to_bytes()), indent=4, ensure_ascii=True)
    assert cid_for_bytes(canonical_json(json.loads(pretty))) == signed.cid


def test_signature_covers_every_field() -> None:
    key = Ed25519PrivateKey.generate()
    signed = make_record(key).sign(key)
    obj = signed.to_obj()
    obj["metadata"]["title"] = "Bridge at dusk"
    tampered = SignedRecord.from_obj(obj)
    with pytest.raises(SignatureError, match="does not verify"):
        tampered.verify(key.public_key())


def test_signature_is_domain_separated() -> None:
    key = Ed25519PrivateKey.generate()
    rec = make_record(key)
    assert rec.signing_payload().startswith(SIGNING_DOMAIN)
    raw = key.sign(canonical_json(rec.body()))  # a signature over the bare body must not verify
    with pytest.raises(SignatureError):
        SignedRecord(rec, base64.b64encode(raw).decode()).verify(key.public_key())


def test_wrong_key_is_rejected_by_key_id() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = make_record(key).sign(key)
    with pytest.raises(SignatureError, match="names key"):
        signed.verify(other.public_key())
    with pytest.raises(SignatureError, match="does not match"):
        make_record(key).sign(other)


def test_non_canonical_bytes_are_refused() -> None:
    key = Ed25519PrivateKey.generate()
    data = make_record(key).sign(key).to_bytes()
    with pytest.raises(InvalidRecordError, match="canonical"):
        SignedRecord.from_bytes(json.dumps(json.loads(data), indent=1).encode())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.update(schema="other/v9"), "unsupported schema"),
        (lambda o: o.pop("hashes"), "schema"),
        (lambda o: o["image"].update(sha256="XYZ"), "sha256"),
        (lambda o: o["signature"].update(key_id="ed25519:00"), "signature block"),
        (lambda o: o.update(surprise=1), "outside the v1 schema"),
    ],
)
def test_malformed_records_are_refused(mutate, message) -> None:  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()
    obj = make_record(key).sign(key).to_obj()
    mutate(obj)
    with pytest.raises(InvalidRecordError, match=message):
        SignedRecord.from_bytes(canonical_json(obj))


def test_parse_canonical_rejects_garbage() -> None:
    with pytest.raises(InvalidRecordError, match="UTF-8 JSON"):
        parse_canonical_json(b"\xff\xfe not json")


def test_metadata_pairs_split_known_and_free_form() -> None:
    meta = PublisherMetadata.from_pairs({"title": "T", "source_url": "https://x", "desk": "sport"})
    assert meta.title == "T" and meta.source_url == "https://x" and meta.extra == {"desk": "sport"}
    assert meta.to_obj() == {"title": "T", "source_url": "https://x", "extra": {"desk": "sport"}}
