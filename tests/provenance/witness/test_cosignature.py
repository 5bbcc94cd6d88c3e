"""C2SP tlog-cosignature v1: key IDs, verifier keys, the signed message and the signature layout.

Vectors:
* the spec's own example (c2sp.org/tlog-cosignature): the cosignature line by ``witness.example.com/w1`` on the
  ``example.com/behind-the-sofa`` checkpoint carries timestamp 1679315147, the ``time`` line of the spec's signed
  message example. The spec publishes no witness key, so only the layout can be checked against it;
* a vector computed here independently of the module (hashlib + raw Ed25519) with the RFC 8032 §7.1 TEST 1 key.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from provenance.errors import CheckpointError, CosignatureError
from provenance.translog.checkpoint import (
    Checkpoint,
    encode_verifier_key,
    parse_note,
    sign_checkpoint,
    verify_checkpoint_note,
)
from provenance.translog.cosignature import (
    WitnessSigner,
    add_cosignatures,
    check_cosignatures,
    cosign,
    cosignature_timestamp,
    cosigned_message,
    encode_witness_private_key,
    encode_witness_vkey,
    parse_cosignature_lines,
    parse_witness_private_key,
    parse_witness_vkey,
    verify_cosignature,
    witness_key_id,
)

SPEC_NOTE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+"
    "zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0"
    "xUe+mbIUBkBIfZ+qnA==\n"
)
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_MESSAGE = (
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)

RFC8032_TEST1_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_TEST1_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


def test_spec_example_cosignature_layout() -> None:
    text, sigs = parse_note(SPEC_NOTE)
    assert text == SPEC_BODY
    witness = next(s for s in sigs if s.key_name == "witness.example.com/w1")
    assert witness.key_id == bytes.fromhex("8d66cf3f")
    assert len(witness.signature) == 8 + 64
    assert cosignature_timestamp(witness) == 1679315147
    # The spec's signed-message example, byte for byte.
    assert cosigned_message(SPEC_BODY, 1679315147) == SPEC_MESSAGE.encode()


def test_key_id_and_vkey_computed_independently() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SEED)
    assert key.public_key().public_bytes_raw() == RFC8032_TEST1_PUB
    name = "witness.example/w1"
    expected_id = hashlib.sha256(name.encode() + b"\n" + b"\x04" + RFC8032_TEST1_PUB).digest()[:4]
    assert witness_key_id(name, RFC8032_TEST1_PUB) == expected_id
    vkey = encode_witness_vkey(name, RFC8032_TEST1_PUB)
    key64 = base64.b64encode(b"\x04" + RFC8032_TEST1_PUB).decode()
    assert vkey == f"{name}+{expected_id.hex()}+{key64}"
    assert re.fullmatch(r"[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]{44}", vkey)
    # The cosignature key ID differs from the signed-note (0x01) key ID of the same key and name.
    assert expected_id != hashlib.sha256(name.encode() + b"\n\x01" + RFC8032_TEST1_PUB).digest()[:4]
    parsed = parse_witness_vkey(vkey)
    assert (parsed.name, parsed.key_id, parsed.public_key.public_bytes_raw()) == (name, expected_id, RFC8032_TEST1_PUB)


def test_cosignature_line_computed_independently() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC8032_TEST1_SEED)
    name, ts = "witness.example/w1", 1700000000
    body = Checkpoint("example.com/log", 7, bytes(range(32))).body()
    message = f"cosignature/v1\ntime {ts}\n{body}".encode()
    raw_sig = key.sign(message)  # Ed25519 is deterministic
    kid = hashlib.sha256(name.encode() + b"\n\x04" + RFC8032_TEST1_PUB).digest()[:4]
    expected_line = f"\u2014 {name} {base64.b64encode(kid + ts.to_bytes(8, 'big') + raw_sig).decode()}\n"
    assert cosign(body, name, key, ts).line() == expected_line
    Ed25519PublicKey.from_public_bytes(RFC8032_TEST1_PUB).verify(raw_sig, message)


@pytest.fixture
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signed(log_key: Ed25519PrivateKey) -> tuple[Checkpoint, str]:
    cp = Checkpoint("example.com/log", 12, hashlib.sha256(b"root").digest())
    return cp, sign_checkpoint(cp, "example.com/log", log_key)


def test_cosigned_note_verifies_for_witness_and_log(signed, log_key) -> None:  # type: ignore[no-untyped-def]
    cp, note = signed
    w1 = WitnessSigner("w1.example/w", Ed25519PrivateKey.generate())
    w2 = WitnessSigner("w2.example/w", Ed25519PrivateKey.generate())
    full = add_cosignatures(note, [w1.cosign(cp.body(), 1700000001), w2.cosign(cp.body(), 1700000002)])
    assert verify_cosignature(full, w1.vkey()) == 1700000001
    assert verify_cosignature(full, w2.key) == 1700000002
    assert verify_checkpoint_note(full, "example.com/log", log_key.public_key()) == cp  # log signature unaffected
    assert add_cosignatures(full, [w1.cosign(cp.body(), 1700000001)]) == full  # no duplicate lines


def test_tampering_is_caught(signed) -> None:  # type: ignore[no-untyped-def]
    cp, note = signed
    w = WitnessSigner("w.example/w", Ed25519PrivateKey.generate())
    sig = w.cosign(cp.body(), 1700000000)
    good = add_cosignatures(note, [sig])
    # Another root under the same cosignature line.
    other = sign_checkpoint(Checkpoint(cp.origin, cp.size, b"\x00" * 32), "example.com/log",
                            Ed25519PrivateKey.generate())
    with pytest.raises(CosignatureError, match="invalid cosignature"):
        verify_cosignature(add_cosignatures(other, [sig]), w.vkey())
    # Another timestamp under the same signature bytes.
    forged = type(sig)(sig.key_name, sig.key_id, (1700000099).to_bytes(8, "big") + sig.signature[8:])
    with pytest.raises(CosignatureError, match="invalid cosignature"):
        verify_cosignature(add_cosignatures(note, [forged]), w.vkey())
    # A timestamp of 2**63 or more.
    huge = type(sig)(sig.key_name, sig.key_id, (2**63).to_bytes(8, "big") + sig.signature[8:])
    with pytest.raises(CosignatureError, match="exceeds"):
        verify_cosignature(add_cosignatures(note, [huge]), w.vkey())
    assert verify_cosignature(good, w.vkey()) == 1700000000


def test_other_key_under_same_name_is_ignored_then_reported_absent(signed) -> None:  # type: ignore[no-untyped-def]
    cp, note = signed
    real = WitnessSigner("w.example/w", Ed25519PrivateKey.generate())
    impostor = WitnessSigner("w.example/w", Ed25519PrivateKey.generate())
    full = add_cosignatures(note, [impostor.cosign(cp.body(), 1700000000)])
    with pytest.raises(CosignatureError, match="no cosignature by witness"):
        verify_cosignature(full, real.vkey())
    [check] = check_cosignatures(full, [real.vkey()])
    assert check.status == "absent"
    # Same name AND key ID as the real witness, but made with another key: invalid, not absent.
    sig = impostor.cosign(cp.body(), 1700000000)
    spoofed = type(sig)(real.name, real.key.key_id, sig.signature)
    [check] = check_cosignatures(add_cosignatures(note, [spoofed]), [real.vkey()])
    assert check.status == "invalid" and "invalid cosignature" in (check.reason or "")


def test_log_key_is_not_a_witness_key(log_key) -> None:  # type: ignore[no-untyped-def]
    log_vkey = encode_verifier_key("example.com/log", log_key.public_key())
    with pytest.raises(CosignatureError, match="0x04"):
        parse_witness_vkey(log_vkey)
    vkey = encode_witness_vkey("w.example/w", log_key.public_key())
    name, hex_id, b64 = vkey.split("+", 2)
    with pytest.raises(CosignatureError, match="does not match"):
        parse_witness_vkey(f"{name}x+{hex_id}+{b64}")
    for bad in ("", "no-plus-signs", "a+zzzzzzzz+AAAA", "a b+00000000+" + b64):
        with pytest.raises(CosignatureError):
            parse_witness_vkey(bad)


def test_private_key_file_round_trip() -> None:
    key = Ed25519PrivateKey.generate()
    text = encode_witness_private_key("w.example/w", key)
    assert text.startswith("PRIVATE+KEY+w.example/w+")
    signer = parse_witness_private_key(text + "\n")
    assert signer.vkey() == encode_witness_vkey("w.example/w", key.public_key())
    with pytest.raises(CosignatureError, match="does not match"):
        parse_witness_private_key(text.replace("w.example/w", "w.example/x"))
    with pytest.raises(CosignatureError):
        parse_witness_private_key("not a key")


def test_response_lines_parse_and_bad_ones_are_refused(signed) -> None:  # type: ignore[no-untyped-def]
    cp, _note = signed
    w = WitnessSigner("w.example/w", Ed25519PrivateKey.generate())
    line = w.cosign(cp.body(), 5).line()
    [sig] = parse_cosignature_lines(cp.body(), line.encode())
    assert cosignature_timestamp(sig) == 5
    for bad in (b"", b"\xff\n", line[:-1].encode(), b"not a signature line\n", (line + "\n").encode()):
        with pytest.raises(CheckpointError):
            parse_cosignature_lines(cp.body(), bad)
    with pytest.raises(CosignatureError):
        cosign(cp.body(), "w.example/w", Ed25519PrivateKey.generate(), -1)
