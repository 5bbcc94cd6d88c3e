"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes, signed with Ed25519.

A checkpoint note looks like::

    provenance.example/log
    4
    1c2Fv8...base64 root...=

    — provenance-log q0aJ5W+...base64(4-byte key ID || 64-byte Ed25519 signature)...

* body: origin line, decimal tree size (no leading zeros), standard base64 of the 32-byte RFC 6962 root; each line
  ends in ``\\n``. Extension lines are rejected: this log never writes them and they are not auditable.
* signature lines: em dash (U+2014), space, key name, space, base64 of key ID || signature, newline; they follow the
  body after one blank line. Key ID = ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]`` (signed-note, Ed25519).
* verifier key (one string to hand an auditor): ``<name>+<8 hex digits of key ID>+<base64(0x01 || public key)>``,
  the format of golang.org/x/mod/sumdb/note.

Base64 must be canonical (what re-encoding gives back). Everything wrong raises :class:`CheckpointError`. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from provenance.errors import CheckpointError
from provenance.translog.hashing import HASH_SIZE

__all__ = [
    "ED25519_ALG",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "VerifierKey",
    "encode_verifier_key",
    "key_id",
    "parse_checkpoint_body",
    "parse_checkpoint_note",
    "parse_note",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "verify_checkpoint_note",
    "verify_checkpoint_note_with",
    "verify_note",
]

ED25519_ALG = 0x01
"""Signed-note signature type byte for Ed25519."""

SIG_PREFIX = "\u2014 "
"""Every signature line starts with an em dash and a space."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec asks verifiers to accept at least 16)."""

MAX_TREE_SIZE = 2**64 - 1

_SIZE_RE = re.compile(r"(0|[1-9][0-9]*)", re.ASCII)
_HEX8_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)


# --- small helpers ----------------------------------------------------------------------------------------------------
def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    """Strict, canonical standard base64 (RFC 4648 §4, padded)."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise CheckpointError(f"{what} is not valid base64: {text!r}") from exc
    if _b64encode(raw) != text:
        raise CheckpointError(f"{what} is not canonical base64: {text!r}")
    return raw


def _check_text_chars(text: str, what: str) -> None:
    for ch in text:
        if ch < " " and ch != "\n":
            raise CheckpointError(f"{what} contains the control character {ch!r}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise CheckpointError(f"{what} is not valid UTF-8") from exc


def _check_key_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise CheckpointError("key name must be a non-empty string")
    if any(ch.isspace() or ch == "+" or ch < " " or ch == "\x7f" for ch in name):
        raise CheckpointError(f"key name {name!r} must not contain spaces, '+' or control characters")


def _raw_public_key(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    raw = bytes(public_key)
    if len(raw) != 32:
        raise CheckpointError(f"Ed25519 public key must be 32 bytes, got {len(raw)}")
    return raw


def key_id(key_name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """4-byte signed-note key ID of an Ed25519 key: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``."""
    _check_key_name(key_name)
    material = key_name.encode("utf-8") + b"\n" + bytes([ED25519_ALG]) + _raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:4]


# --- verifier keys ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A named Ed25519 public key, as an auditor is given it."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def encode(self) -> str:
        return encode_verifier_key(self.name, self.public_key)


def encode_verifier_key(key_name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
    raw = _raw_public_key(public_key)
    return f"{key_name}+{key_id(key_name, raw).hex()}+{_b64encode(bytes([ED25519_ALG]) + raw)}"


def parse_verifier_key(text: str) -> VerifierKey:
    """Parse an encoded verifier key, checking its key ID against its name and public key."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise CheckpointError(f"verifier key must be <name>+<hex key ID>+<base64 key>, got {text!r}")
    name, hex_id, key64 = parts
    _check_key_name(name)
    if not _HEX8_RE.fullmatch(hex_id):
        raise CheckpointError(f"verifier key ID must be 8 lowercase hex digits, got {hex_id!r}")
    key = _b64decode(key64, "verifier public key")
    if len(key) != 33 or key[0] != ED25519_ALG:
        raise CheckpointError(
            f"verifier public key must be 0x01 followed by a 32-byte Ed25519 key, got {len(key)} bytes"
            + (f" with type byte 0x{key[0]:02x}" if key else "")
        )
    expected = key_id(name, key[1:])
    if expected.hex() != hex_id:
        raise CheckpointError(f"verifier key ID {hex_id} does not match name and key (expected {expected.hex()})")
    return VerifierKey(name, expected, Ed25519PublicKey.from_public_bytes(key[1:]))


# --- signed notes -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: who (name + key ID) and the raw signature bytes."""

    key_name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{SIG_PREFIX}{self.key_name} {_b64encode(self.key_id + self.signature)}\n"


def _check_note_text(text: str) -> None:
    if not isinstance(text, str):
        raise CheckpointError(f"note text must be str, got {type(text).__name__}")
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    _check_text_chars(text, "note text")


def sign_note(text: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``text`` (ending in a newline) with an Ed25519 key; return the note with its one signature line."""
    _check_note_text(text)
    kid = key_id(key_name, private_key.public_key())
    sig = private_key.sign(text.encode("utf-8"))
    return text + "\n" + NoteSignature(key_name, kid, sig).line()


def _as_text(note: str | bytes) -> str:
    if isinstance(note, (bytes, bytearray, memoryview)):
        try:
            return bytes(note).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CheckpointError("note is not valid UTF-8") from exc
    if not isinstance(note, str):
        raise CheckpointError(f"note must be str or bytes, got {type(note).__name__}")
    return note


def parse_note(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines (nothing is verified)."""
    note = _as_text(note)
    _check_text_chars(note, "note")
    if not note.endswith("\n"):
        raise CheckpointError("note must end with a newline (is it truncated?)")
    split = note.rfind("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line separating its text from signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise CheckpointError("note has no signature lines")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"note has {len(lines)} signature lines; at most {MAX_SIGNATURES} are accepted")
    sigs: list[NoteSignature] = []
    for n, line in enumerate(lines, 1):
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError(f"signature line {n} does not start with an em dash and a space: {line!r}")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise CheckpointError(f"signature line {n} must be '— <key name> <base64>', got {line!r}")
        name, sig64 = fields
        _check_key_name(name)
        raw = _b64decode(sig64, f"signature line {n}")
        if len(raw) < 5:
            raise CheckpointError(
                f"signature line {n} holds {len(raw)} bytes; a key ID and a signature need at least 5"
            )
        sigs.append(NoteSignature(name, raw[:4], raw[4:]))
    return text, sigs


def verify_note(note: str | bytes, key_name: str, public_key: Ed25519PublicKey | bytes) -> tuple[str, NoteSignature]:
    """Return the note's text and the signature by the given key, after checking it.

    Signatures by other keys (a different name or key ID) are ignored, as the spec requires; every signature line
    matching the key must verify.
    """
    text, sigs = parse_note(note)
    raw_key = _raw_public_key(public_key)
    kid = key_id(key_name, raw_key)
    label = f"{key_name}+{kid.hex()}"
    mine = [s for s in sigs if s.key_name == key_name and s.key_id == kid]
    if not mine:
        others = ", ".join(f"{s.key_name}+{s.key_id.hex()}" for s in sigs)
        raise CheckpointError(f"note has no signature by key {label} (it is signed by: {others})")
    pub = Ed25519PublicKey.from_public_bytes(raw_key)
    for s in mine:
        if len(s.signature) != 64:
            raise CheckpointError(f"signature by key {label} is {len(s.signature)} bytes; Ed25519 signatures are 64")
        try:
            pub.verify(s.signature, text.encode("utf-8"))
        except InvalidSignature:
            raise CheckpointError(f"invalid signature by key {label}: the note text or signature was altered") from None
    return text, mine[0]


# --- checkpoints ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: the log's ``origin``, its ``size`` in leaves, and the RFC 6962 ``root`` at that size."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointError("checkpoint origin must be a non-empty string")
        if "\n" in self.origin:
            raise CheckpointError("checkpoint origin must be a single line")
        _check_text_chars(self.origin, "checkpoint origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size must be an integer in [0, 2**64), got {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes, got {self.root!r}")

    def body(self) -> str:
        """The note text: origin, size and base64 root, one per line."""
        return f"{self.origin}\n{self.size}\n{_b64encode(self.root)}\n"


def parse_checkpoint_body(text: str) -> Checkpoint:
    """Parse a checkpoint note text (without signatures)."""
    _check_note_text(text)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint needs origin, size and root lines, got {len(lines)} line(s)")
    if len(lines) > 3:
        raise CheckpointError(f"checkpoint has {len(lines) - 3} extension line(s); this log accepts none")
    origin, size_s, root64 = lines
    if not origin:
        raise CheckpointError("checkpoint origin line is empty")
    if not _SIZE_RE.fullmatch(size_s):
        raise CheckpointError(f"checkpoint size must be decimal digits without leading zeros, got {size_s!r}")
    size = int(size_s)
    if size > MAX_TREE_SIZE:
        raise CheckpointError(f"checkpoint size {size} does not fit in 64 bits")
    root = _b64decode(root64, "checkpoint root")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes, got {len(root)}")
    return Checkpoint(origin, size, root)


def sign_checkpoint(cp: Checkpoint, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """The signed note for ``cp`` (the spec recommends ``key_name == cp.origin``)."""
    return sign_note(cp.body(), key_name, private_key)


def parse_checkpoint_note(note: str | bytes) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a checkpoint note without verifying anything: for display or to pick a key. Never trust the result."""
    text, sigs = parse_note(note)
    return parse_checkpoint_body(text), sigs


def verify_checkpoint_note(
    note: str | bytes,
    key_name: str,
    public_key: Ed25519PublicKey | bytes,
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Verify the note's signature by the given key and return its checkpoint.

    With ``origin``, also require the checkpoint to come from that log (a signature by the right key over another
    log's checkpoint is rejected).
    """
    text, _sig = verify_note(note, key_name, public_key)
    cp = parse_checkpoint_body(text)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin is {cp.origin!r}, expected {origin!r}")
    return cp


def verify_checkpoint_note_with(note: str | bytes, verifier_keys: Sequence[VerifierKey | str]) -> Checkpoint:
    """Verify with the first of ``verifier_keys`` (objects or encoded strings) that has signed the note."""
    keys = [parse_verifier_key(k) if isinstance(k, str) else k for k in verifier_keys]
    _text, sigs = parse_note(note)
    for k in keys:
        if any(s.key_name == k.name and s.key_id == k.key_id for s in sigs):
            return verify_checkpoint_note(note, k.name, k.public_key)
    names = ", ".join(f"{k.name}+{k.key_id.hex()}" for k in keys) or "none"
    raise CheckpointError(f"note has no signature by any trusted key ({names})")
