"""Checkpoints as C2SP signed notes.

External vector: golang.org/x/mod ``sumdb/note/note_test.go`` (commit 02c991387e35f9e4c0a9b7ce137717055f8d716d),
``TestSign``/``TestNewVerifier``: the PeterNeumann key (private ``PRIVATE+KEY+PeterNeumann+c74f20a3+AYEK...``, verifier
``PeterNeumann+c74f20a3+ARpc...``) and the exact signed note it produces. Ed25519 is deterministic, so signing the
same text must give byte-identical output.
"""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from provenance.errors import CheckpointError
from provenance.translog.checkpoint import (
    Checkpoint,
    encode_verifier_key,
    key_id,
    parse_checkpoint_note,
    parse_note,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verify_checkpoint_note,
    verify_checkpoint_note_with,
    verify_note,
)
from provenance.translog.tree import MemoryMerkleLog

from .vectors import LEAVES, ROOTS

# --- the Go sumdb/note vector ------------------------------------------------------------------------------------
GO_PRIVATE = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_VERIFIER = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def _go_private_key() -> Ed25519PrivateKey:
    raw = base64.b64decode(GO_PRIVATE.split("+", 4)[4])
    assert raw[0] == 0x01  # Ed25519 type byte, then the 32-byte seed
    return Ed25519PrivateKey.from_private_bytes(raw[1:])


def test_go_vector_key_id_and_verifier_key() -> None:
    priv = _go_private_key()
    assert key_id("PeterNeumann", priv.public_key()).hex() == "c74f20a3"
    assert encode_verifier_key("PeterNeumann", priv.public_key()) == GO_VERIFIER
    vk = parse_verifier_key(GO_VERIFIER)
    assert (vk.name, vk.key_id.hex()) == ("PeterNeumann", "c74f20a3")
    assert vk.encode() == GO_VERIFIER


def test_go_vector_signed_note_is_byte_identical() -> None:
    assert sign_note(GO_TEXT, "PeterNeumann", _go_private_key()) == GO_NOTE
    vk = parse_verifier_key(GO_VERIFIER)
    text, sig = verify_note(GO_NOTE, vk.name, vk.public_key)
    assert text == GO_TEXT and sig.key_id.hex() == "c74f20a3"


def test_go_vector_other_signers_are_ignored() -> None:
    vk = parse_verifier_key(GO_VERIFIER)
    note = GO_NOTE + GO_ENOCH_SIG
    _text, sigs = parse_note(note)
    assert [s.key_name for s in sigs] == ["PeterNeumann", "EnochRoot"]
    verify_note(note, vk.name, vk.public_key)  # Enoch's line is not ours: ignored
    enoch = parse_verifier_key(GO_ENOCH_VERIFIER)
    verify_note(note, enoch.name, enoch.public_key)


@pytest.mark.parametrize(
    "bad",
    [
        GO_VERIFIER[:-1],  # truncated key
        GO_VERIFIER.replace("c74f20a3", "c74f20a4"),  # wrong key ID
        GO_VERIFIER.replace("c74f20a3", "C74F20A3"),  # key ID not lowercase hex
        GO_VERIFIER.replace("PeterNeumann", "PeterNeuman"),  # name does not match key ID
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # wrong length key
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # unknown algorithm
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
    ],
)
def test_bad_verifier_keys(bad: str) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(bad)


# --- checkpoints ------------------------------------------------------------------------------------------------------
ORIGIN = "provenance.example/log"
KEY_NAME = "provenance.example/log"
SEED = bytes(range(32))  # fixed key so the note below is reproducible
PRIV = Ed25519PrivateKey.from_private_bytes(SEED)
PUB = PRIV.public_key()
CP = Checkpoint(ORIGIN, 8, ROOTS[7])

# The exact note for CP signed with SEED, and the verifier key an auditor would be given for it (produced by this
# module; the format itself is pinned by the Go vectors above). Regenerate only if the format is meant to change.
FIXED_NOTE = (
    "provenance.example/log\n"
    "8\n"
    "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    "\n"
    "— provenance.example/log "
    "AypiqBu3zA0NOLdVnDHQE6BpwH9AcThzXcn/KXGPaO77wTjcUAi8SSNYdSGchoCKq8MTZPQi0b5ipPc3+aaZnjG7awk=\n"
)
FIXED_VERIFIER = "provenance.example/log+032a62a8+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"


def test_fixed_note_form() -> None:
    note = sign_checkpoint(CP, KEY_NAME, PRIV)
    assert note == FIXED_NOTE
    assert encode_verifier_key(KEY_NAME, PUB) == FIXED_VERIFIER
    text, sigs = parse_note(note)
    assert text == CP.body() == "provenance.example/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    assert len(sigs) == 1 and sigs[0].key_id.hex() == "032a62a8" and len(sigs[0].signature) == 64
    assert verify_checkpoint_note_with(FIXED_NOTE, [FIXED_VERIFIER]) == CP


def test_round_trip() -> None:
    note = sign_checkpoint(CP, KEY_NAME, PRIV)
    assert verify_checkpoint_note(note, KEY_NAME, PUB) == CP
    assert verify_checkpoint_note(note.encode("utf-8"), KEY_NAME, PUB, origin=ORIGIN) == CP
    cp, sigs = parse_checkpoint_note(note)
    assert cp == CP and sigs[0].key_name == KEY_NAME and sigs[0].key_id == key_id(KEY_NAME, PUB)
    vk = encode_verifier_key(KEY_NAME, PUB)
    assert verify_checkpoint_note_with(note, [vk]) == CP
    assert verify_checkpoint_note_with(note, [parse_verifier_key(GO_VERIFIER), vk]) == CP


def test_round_trip_sizes_and_roots() -> None:
    log = MemoryMerkleLog(LEAVES)
    for size in range(0, 9):
        cp = Checkpoint(ORIGIN, size, log.root(size))
        assert verify_checkpoint_note(sign_checkpoint(cp, KEY_NAME, PRIV), KEY_NAME, PUB) == cp
    big = Checkpoint(ORIGIN, 2**64 - 1, ROOTS[0])
    assert verify_checkpoint_note(sign_checkpoint(big, KEY_NAME, PRIV), KEY_NAME, PUB) == big


def _resign_free_tamper(note: str, old: str, new: str) -> str:
    assert old in note
    return note.replace(old, new, 1)


@pytest.mark.parametrize(
    ("desc", "old", "new"),
    [
        ("size", "\n8\n", "\n9\n"),
        ("root", "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=", base64.b64encode(ROOTS[6]).decode()),
        ("origin", "provenance.example/log\n8", "provenance.example/lag\n8"),
    ],
)
def test_tampered_body_fails_signature(desc: str, old: str, new: str) -> None:
    note = _resign_free_tamper(sign_checkpoint(CP, KEY_NAME, PRIV), old, new)
    with pytest.raises(CheckpointError, match=r"invalid signature by key provenance.example/log\+[0-9a-f]{8}"):
        verify_checkpoint_note(note, KEY_NAME, PUB)


def test_tampered_signature() -> None:
    note = sign_checkpoint(CP, KEY_NAME, PRIV)
    text, sigs = parse_note(note)
    raw = bytearray(sigs[0].key_id + sigs[0].signature)
    raw[10] ^= 1
    bad = text + "\n— " + KEY_NAME + " " + base64.b64encode(bytes(raw)).decode() + "\n"
    with pytest.raises(CheckpointError, match="invalid signature"):
        verify_checkpoint_note(bad, KEY_NAME, PUB)


def test_wrong_key() -> None:
    note = sign_checkpoint(CP, KEY_NAME, PRIV)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    with pytest.raises(CheckpointError, match=r"note has no signature by key provenance.example/log\+[0-9a-f]{8}"):
        verify_checkpoint_note(note, KEY_NAME, other)
    with pytest.raises(CheckpointError, match=r"no signature by key someone-else\+"):
        verify_checkpoint_note(note, "someone-else", PUB)
    with pytest.raises(CheckpointError, match="no signature by any trusted key"):
        verify_checkpoint_note_with(note, [GO_VERIFIER])


def test_same_name_and_key_id_but_bad_signature_rejects_even_with_a_good_one() -> None:
    note = sign_checkpoint(CP, KEY_NAME, PRIV)
    _text, sigs = parse_note(note)
    forged = base64.b64encode(sigs[0].key_id + bytes(64)).decode()
    with pytest.raises(CheckpointError, match="invalid signature"):
        verify_checkpoint_note(note + f"— {KEY_NAME} {forged}\n", KEY_NAME, PUB)


def test_origin_pinning() -> None:
    other = Checkpoint("other.example/log", 8, ROOTS[7])
    note = sign_checkpoint(other, KEY_NAME, PRIV)
    with pytest.raises(CheckpointError, match=r"origin is 'other.example/log', expected 'provenance.example/log'"):
        verify_checkpoint_note(note, KEY_NAME, PUB, origin=ORIGIN)


def test_truncated_notes() -> None:
    note = sign_checkpoint(CP, KEY_NAME, PRIV)
    for cut in (len(note) - 1, len(note) - 10, note.index("\n\n") + 2, note.index("\n\n") + 1, 30, 0):
        with pytest.raises(CheckpointError):
            verify_checkpoint_note(note[:cut], KEY_NAME, PUB)
    with pytest.raises(CheckpointError, match="must end with a newline"):
        parse_note(note[:-1])
    with pytest.raises(CheckpointError, match="no signature lines"):
        parse_note(CP.body() + "\n")
    with pytest.raises(CheckpointError, match="no blank line"):
        parse_note(CP.body())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("provenance.example/log\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "without leading zeros"),
        ("provenance.example/log\n+8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "decimal digits"),
        ("provenance.example/log\n８\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "decimal digits"),
        ("provenance.example/log\n18446744073709551616\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "64 bits"),
        ("provenance.example/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyh=\n", "not canonical base64"),
        ("provenance.example/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n", "not valid base64"),
        ("provenance.example/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz-Nw7_RgQyg=\n", "not valid base64"),
        ("provenance.example/log\n8\nAAAA\n", "root must be 32 bytes, got 3"),
        ("provenance.example/log\n8\n", "needs origin, size and root lines, got 2"),
        ("provenance.example/log\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\next\n", "1 extension line"),
        ("\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", "origin line is empty"),
    ],
)
def test_malformed_bodies_are_rejected_even_when_validly_signed(body: str, message: str) -> None:
    note = sign_note(body, KEY_NAME, PRIV)
    with pytest.raises(CheckpointError, match=message):
        verify_checkpoint_note(note, KEY_NAME, PUB)
    with pytest.raises(CheckpointError, match=message):
        parse_checkpoint_note(note)


@pytest.mark.parametrize(
    ("sig_block", "message"),
    [
        ("- provenance.example/log AAAAAAAA\n", "does not start with an em dash"),
        ("— provenance.example/log  AAAAAAAA\n", "must be '— <key name> <base64>'"),
        ("— provenance.example/log AAAAAAAA extra\n", "must be '— <key name> <base64>'"),
        ("— a+b AAAAAAAA\n", "must not contain spaces, '\\+'"),
        ("— provenance.example/log AAAA\n", "holds 3 bytes"),
        ("— provenance.example/log AAAAAAB=\n", "not canonical base64"),
        ("— provenance.example/log AAAAAAAA\nUnexpected line.\n", "signature line 2 does not start"),
        (GO_NOTE.split("\n\n")[1] * 101, "at most 100"),
    ],
)
def test_malformed_signature_lines(sig_block: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        parse_note(CP.body() + "\n" + sig_block)


def test_non_utf8_and_control_characters() -> None:
    note = sign_checkpoint(CP, KEY_NAME, PRIV).encode("utf-8")
    with pytest.raises(CheckpointError, match=r"control character '\\r'"):
        verify_checkpoint_note(note.replace(b"log\n8", b"log\r\n8"), KEY_NAME, PUB)
    with pytest.raises(CheckpointError, match="control character"):
        sign_note("provenance.example/log\r\n8\n", KEY_NAME, PRIV)
    with pytest.raises(CheckpointError, match="not valid UTF-8"):
        verify_checkpoint_note(b"\xff" + note, KEY_NAME, PUB)
    with pytest.raises(CheckpointError, match="control character"):
        verify_checkpoint_note(b"\x01" + note, KEY_NAME, PUB)


def test_checkpoint_field_validation() -> None:
    with pytest.raises(CheckpointError, match="origin must be a non-empty string"):
        Checkpoint("", 1, ROOTS[0])
    with pytest.raises(CheckpointError, match="single line"):
        Checkpoint("a\nb", 1, ROOTS[0])
    with pytest.raises(CheckpointError, match="size must be an integer"):
        Checkpoint(ORIGIN, -1, ROOTS[0])
    with pytest.raises(CheckpointError, match="size must be an integer"):
        Checkpoint(ORIGIN, True, ROOTS[0])
    with pytest.raises(CheckpointError, match="root must be 32 bytes"):
        Checkpoint(ORIGIN, 1, ROOTS[0][:31])
    with pytest.raises(CheckpointError, match="must not contain spaces"):
        sign_checkpoint(CP, "bad name", PRIV)
    with pytest.raises(CheckpointError, match="end with a newline"):
        sign_note("no newline", KEY_NAME, PRIV)
