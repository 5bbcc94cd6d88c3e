"""Lookup receipts, pure: the strict model, the domain-separated signature, and named bad vectors.

Every bad vector must fail verification with :class:`ReceiptError` whose ``check`` names what failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.canonical import canonical_json
from provenance.errors import InvalidInputError, ReceiptError
from provenance.receipts import (
    SIGNING_DOMAIN,
    LookupReceipt,
    QueryCode,
    ReceiptCandidate,
    ReceiptCheckpoint,
    SignedReceipt,
    service_key_ref,
    sign_receipt,
    verify_receipt,
)
from provenance.translog.checkpoint import encode_verifier_key

KEY_NAME = "provenance-log"
SEED = bytes(range(32))
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
VKEY = encode_verifier_key(KEY_NAME, KEY.public_key())
CID_A = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"  # CIDv1 raw of b"hello world\n"
CID_B = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # CIDv1 raw of b""
ROOT = hashlib.sha256(b"a root").digest()


def make_receipt(**changes: Any) -> LookupReceipt:
    fields: dict[str, Any] = dict(
        receipt_id="0123456789abcdef0123456789abcdef",
        issued_at="2026-01-02T03:04:05.123456Z",
        service=service_key_ref(KEY_NAME, KEY),
        query_sha256=hashlib.sha256(b"query image").hexdigest(),
        codes=(QueryCode("global-id", "global-id-v1-1b294740", 256, "ab" * 32),
               QueryCode("oscar-net", "oscar-v1-e1b6df66", 64, "9f3c00ff12345678"),
               QueryCode("phash", "phash-v1", 64, "00ff00ff00ff00ff")),
        verdict="match",
        record_cid=CID_A,
        candidates=(ReceiptCandidate(CID_A, {"oscar-net": 3, "phash": 2, "global-id": 31}),
                    ReceiptCandidate(CID_B, {"phash": 29})),
        checkpoint=ReceiptCheckpoint("provenance.example/log", 42, ROOT),
    )
    fields.update(changes)
    return LookupReceipt(**fields)


@pytest.fixture
def signed_bytes() -> bytes:
    return sign_receipt(make_receipt(), KEY).to_bytes()


def _edit(data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    obj = json.loads(data)
    change(obj)
    return json.dumps(obj).encode()


def _fail(data: bytes | str, key: str = VKEY) -> ReceiptError:
    with pytest.raises(ReceiptError) as info:
        verify_receipt(data, key)
    return info.value


# --- the good path ------------------------------------------------------------------------------------------------
def test_sign_then_verify_returns_what_the_receipt_says(signed_bytes: bytes) -> None:
    receipt = verify_receipt(signed_bytes, VKEY)
    assert receipt == make_receipt()
    assert receipt.verdict == "match" and receipt.record_cid == CID_A and receipt.checkpoint.size == 42
    assert SignedReceipt.from_bytes(signed_bytes).to_bytes() == signed_bytes  # stored form is canonical


def test_signature_covers_the_domain_separated_canonical_bytes(signed_bytes: bytes) -> None:
    obj = json.loads(signed_bytes)
    sig = base64.b64decode(obj.pop("signature"))
    assert canonical_json(obj) == make_receipt().signing_bytes()[len(SIGNING_DOMAIN):]
    KEY.public_key().verify(sig, b"provenance-receipt-v1\n" + canonical_json(obj))  # raises if not


def test_verification_ignores_formatting(signed_bytes: bytes) -> None:
    pretty = json.dumps(json.loads(signed_bytes), indent=2, sort_keys=False).encode()
    assert verify_receipt(pretty, VKEY) == make_receipt()


def test_json_form_names_the_checkpoint_like_the_signed_note(signed_bytes: bytes) -> None:
    obj = json.loads(signed_bytes)
    assert obj["schema"] == "provenance-lookup-receipt/v1"
    assert obj["checkpoint"] == {"origin": "provenance.example/log", "size": 42,
                                 "root": base64.b64encode(ROOT).decode()}
    assert obj["service"] == {"name": KEY_NAME, "key_id": VKEY.split("+")[1]}
    assert obj["query"]["codes"][1] == {"alg": "oscar-net", "model_id": "oscar-v1-e1b6df66", "bits": 64,
                                        "value": "9f3c00ff12345678"}
    assert obj["candidates"][0] == {"record_cid": CID_A, "distances": {"global-id": 31, "oscar-net": 3, "phash": 2}}


def test_no_match_reads_as_of_its_checkpoint() -> None:
    r = make_receipt(verdict="no_match", record_cid=None, candidates=())
    assert r.no_match_statement == "not registered as of checkpoint 42"
    assert verify_receipt(sign_receipt(r, KEY).to_bytes(), VKEY).record_cid is None


def test_any_verdict_name_the_lookup_gives_is_carried() -> None:
    r = make_receipt(verdict="same_scene")
    assert verify_receipt(sign_receipt(r, KEY).to_bytes(), VKEY).verdict == "same_scene"


def test_receipt_error_is_bad_input() -> None:
    assert issubclass(ReceiptError, InvalidInputError)


# --- one byte changed ---------------------------------------------------------------------------------------------
def _flip_in_value(data: bytes, marker: bytes, offset: int = 0) -> bytes:
    """``data`` with one byte changed inside the JSON string value that follows ``marker``."""
    at = data.index(marker) + len(marker) + offset
    replacement = b"n" if data[at:at + 1] != b"n" else b"m"
    return data[:at] + replacement + data[at + 1:]


def test_bad_vector_verdict_byte_changed(signed_bytes: bytes) -> None:
    tampered = _flip_in_value(signed_bytes, b'"verdict":"')  # "match" -> "natch"
    assert b'"verdict":"natch"' in tampered
    err = _fail(tampered)
    assert err.check == "signature" and "changed after it was signed" in str(err)


def test_bad_vector_signature_byte_changed(signed_bytes: bytes) -> None:
    obj = json.loads(signed_bytes)
    sig = bytearray(base64.b64decode(obj["signature"]))
    sig[10] ^= 0x01
    obj["signature"] = base64.b64encode(bytes(sig)).decode()
    assert _fail(canonical_json(obj)).check == "signature"


def test_bad_vector_signature_text_byte_changed(signed_bytes: bytes) -> None:
    tampered = _flip_in_value(signed_bytes, b'"signature":"', offset=5)
    assert _fail(tampered).check in ("signature", "field:signature")


def test_bad_vector_checkpoint_root_byte_changed(signed_bytes: bytes) -> None:
    def flip_root(obj: dict[str, Any]) -> None:
        root = bytearray(base64.b64decode(obj["checkpoint"]["root"]))
        root[0] ^= 0x80
        obj["checkpoint"]["root"] = base64.b64encode(bytes(root)).decode()

    assert _fail(_edit(signed_bytes, flip_root)).check == "signature"


def test_bad_vector_checkpoint_size_changed(signed_bytes: bytes) -> None:
    tampered = signed_bytes.replace(b'"size":42', b'"size":43')
    assert tampered != signed_bytes and _fail(tampered).check == "signature"


def test_every_single_byte_change_is_refused(signed_bytes: bytes) -> None:
    """Exhaustive: change each byte of the stored receipt in turn; not one variant verifies."""
    for i in range(len(signed_bytes)):
        byte = signed_bytes[i]
        other = ord("x") if byte != ord("x") else ord("y")
        tampered = signed_bytes[:i] + bytes([other]) + signed_bytes[i + 1:]
        with pytest.raises(ReceiptError):
            verify_receipt(tampered, VKEY)


# --- the wrong key ----------------------------------------------------------------------------------------------
def test_bad_vector_other_key_same_name(signed_bytes: bytes) -> None:
    other = encode_verifier_key(KEY_NAME, Ed25519PrivateKey.generate().public_key())
    err = _fail(signed_bytes, other)
    assert err.check == "key_mismatch" and "not by the given key" in str(err)


def test_bad_vector_receipt_relabelled_to_another_key(signed_bytes: bytes) -> None:
    """Someone edits the receipt to name their own key: the key matches, the signature does not."""
    mallory = Ed25519PrivateKey.generate()
    relabelled = _edit(signed_bytes, lambda o: o.update(service=service_key_ref(KEY_NAME, mallory).to_obj()))
    assert _fail(relabelled, encode_verifier_key(KEY_NAME, mallory.public_key())).check == "signature"


def test_bad_vector_signed_by_another_key_under_our_name() -> None:
    mallory = Ed25519PrivateKey.generate()
    forged = SignedReceipt(make_receipt(), mallory.sign(make_receipt().signing_bytes())).to_bytes()
    assert _fail(forged).check == "signature"


def test_signing_with_a_key_the_receipt_does_not_name_is_refused() -> None:
    with pytest.raises(ReceiptError) as info:
        sign_receipt(make_receipt(), Ed25519PrivateKey.generate())
    assert info.value.check == "key_mismatch"


@pytest.mark.parametrize("vkey", ["", "provenance-log", "provenance-log+zzzzzzzz+AAAA",
                                  VKEY[:-4] + "AAA=", VKEY.replace("provenance-log", "other-name", 1)])
def test_bad_vector_malformed_service_key(signed_bytes: bytes, vkey: str) -> None:
    assert _fail(signed_bytes, vkey).check == "service_key"


# --- malformed receipts -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, what", [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"a": 1, "a": 2}', "repeats the key"),
    (b'{"size": NaN}', "not valid JSON"),
    (b"x" * (1 << 20 + 1), "at most"),
])
def test_bad_vector_malformed_json(text: bytes, what: str) -> None:
    err = _fail(text)
    assert err.check == "json" and what in str(err)


@pytest.mark.parametrize("field", ["schema", "id", "issued_at", "service", "query", "verdict", "record_cid",
                                   "candidates", "checkpoint", "signature"])
def test_bad_vector_missing_field(signed_bytes: bytes, field: str) -> None:
    err = _fail(_edit(signed_bytes, lambda o: o.pop(field)))
    assert field in str(err) and err.check.startswith("field:")


@pytest.mark.parametrize("path", [("checkpoint", "root"), ("checkpoint", "origin"), ("query", "sha256"),
                                  ("service", "key_id")])
def test_bad_vector_missing_nested_field(signed_bytes: bytes, path: tuple[str, str]) -> None:
    err = _fail(_edit(signed_bytes, lambda o: o[path[0]].pop(path[1])))
    assert err.check == f"field:{path[0]}" and path[1] in str(err)


@pytest.mark.parametrize("name, change, check", [
    ("unknown top-level field", lambda o: o.update(note="hi"), "field:receipt"),
    ("unknown checkpoint field", lambda o: o["checkpoint"].update(extra=1), "field:checkpoint"),
    ("size as a string", lambda o: o["checkpoint"].update(size="42"), "field:checkpoint.size"),
    ("size as a bool", lambda o: o["checkpoint"].update(size=True), "field:checkpoint.size"),
    ("negative size", lambda o: o["checkpoint"].update(size=-1), "field:checkpoint.size"),
    ("root not base64", lambda o: o["checkpoint"].update(root="not*base64"), "field:checkpoint.root"),
    ("root not canonical base64", lambda o: o["checkpoint"].update(
        root=base64.b64encode(ROOT).decode()[:-2] + "B="), "field:checkpoint.root"),
    ("root too short", lambda o: o["checkpoint"].update(root=base64.b64encode(b"x" * 31).decode()),
     "field:checkpoint.root"),
    ("signature not base64", lambda o: o.update(signature="!!"), "field:signature"),
    ("signature too short", lambda o: o.update(signature=base64.b64encode(b"s" * 63).decode()), "field:signature"),
    ("verdict not a string", lambda o: o.update(verdict=1), "field:verdict"),
    ("verdict upper case", lambda o: o.update(verdict="MATCH"), "field:verdict"),
    ("id too short", lambda o: o.update(id="abc"), "field:id"),
    ("time not RFC 3339", lambda o: o.update(issued_at="yesterday"), "field:issued_at"),
    ("impossible date", lambda o: o.update(issued_at="2026-02-30T00:00:00Z"), "field:issued_at"),
    ("sha256 upper case", lambda o: o["query"].update(sha256="A" * 64), "field:query.sha256"),
    ("code value too long", lambda o: o["query"]["codes"][1].update(value="00" * 9), "field:query.codes[1].value"),
    ("code bits a float", lambda o: o["query"]["codes"][1].update(bits=64.0), "field:query.codes[1].bits"),
    ("code channel twice", lambda o: o["query"]["codes"].append(o["query"]["codes"][0]), "field:query.codes"),
    ("record CID not a CID", lambda o: o.update(record_cid="hello"), "field:record_cid"),
    ("record CID not canonical", lambda o: o.update(record_cid=CID_A.upper()), "field:record_cid"),
    ("record CID not a candidate", lambda o: o.update(candidates=o["candidates"][1:]), "field:record_cid"),
    ("no_match naming a record", lambda o: o.update(verdict="no_match"), "field:record_cid"),
    ("distance beyond the code", lambda o: o["candidates"][0]["distances"].update(phash=65),
     "field:candidates[0].distances.phash"),
    ("distance on a channel without a code", lambda o: o["candidates"][0]["distances"].update(pdq=1),
     "field:candidates[0].distances"),
    ("candidate twice", lambda o: o["candidates"].append(o["candidates"][0]), "field:candidates"),
    ("candidates not a list", lambda o: o.update(candidates={}), "field:candidates"),
    ("receipt not an object", lambda o: o.clear(), "field:receipt"),
])
def test_bad_vector_malformed_fields(signed_bytes: bytes, name: str, change: Callable[[dict[str, Any]], None],
                                     check: str) -> None:
    err = _fail(_edit(signed_bytes, change))
    assert err.check == check, (name, err.check, str(err))


def test_a_json_array_is_not_a_receipt() -> None:
    assert _fail(b"[]").check == "field:receipt"
