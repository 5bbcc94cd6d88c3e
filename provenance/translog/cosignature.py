"""Witness cosignatures: C2SP ``tlog-cosignature`` v1 (timestamped Ed25519, signature type ``0x04``). Pure, no I/O.

A cosignature is one more signed-note signature line on a checkpoint, made by a witness's key::

    — witness.example/w1 base64(key ID || uint64 big-endian timestamp || Ed25519 signature)

* key ID = ``SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]``;
* the Ed25519 signature covers ``"cosignature/v1\\n" + "time <timestamp>\\n" + <checkpoint body>`` (the body with its
  final newline, without any signature line); the timestamp is POSIX seconds, decimal, no leading zeros, < 2**63;
* a witness's verifier key is ``<name>+<hex key ID>+<base64(0x04 || public key)>`` (signed-note vkey form);
* a witness's private key file holds ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || 32-byte seed)>``, the
  golang.org/x/mod/sumdb/note signer-key form with the cosignature type byte.

Verifiers ignore signature lines whose (name, key ID) matches no configured witness, as signed-note requires; a line
that matches a configured witness must verify. Everything wrong raises :class:`CosignatureError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from provenance.errors import CheckpointError, CosignatureError
from provenance.translog.checkpoint import NoteSignature, parse_note

__all__ = [
    "COSIGNATURE_ALG",
    "COSIGNATURE_HEADER",
    "MAX_TIMESTAMP",
    "CosignatureCheck",
    "WitnessKey",
    "WitnessSigner",
    "add_cosignatures",
    "check_cosignatures",
    "cosign",
    "cosignature_timestamp",
    "cosigned_message",
    "encode_witness_private_key",
    "encode_witness_vkey",
    "parse_cosignature_lines",
    "parse_witness_private_key",
    "parse_witness_vkey",
    "verify_cosignature",
    "witness_key_id",
]

COSIGNATURE_ALG = 0x04
"""Signed-note signature type byte of timestamped Ed25519 witness cosignatures."""

COSIGNATURE_HEADER = "cosignature/v1\n"
"""First line of every signed message: domain separation from plain checkpoint signatures."""

MAX_TIMESTAMP = 2**63 - 1

_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX8_RE = re.compile(r"[0-9a-f]{8}", re.ASCII)
_SIG_LEN = 8 + 64  # timestamp || Ed25519 signature


# --- small helpers ----------------------------------------------------------------------------------------------------
def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise CosignatureError(f"{what} is not valid base64") from exc
    if _b64encode(raw) != text:
        raise CosignatureError(f"{what} is not canonical base64")
    return raw


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise CosignatureError("witness key name must be a non-empty string")
    if any(ch.isspace() or ch == "+" or ch < " " or ch == "\x7f" for ch in name):
        raise CosignatureError(f"witness key name {name!r} must not contain spaces, '+' or control characters")


def _raw_public_key(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    raw = bytes(public_key)
    if len(raw) != 32:
        raise CosignatureError(f"Ed25519 public key must be 32 bytes, got {len(raw)}")
    return raw


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature timestamp must be an integer in [0, 2**63), got {timestamp!r}")


def _check_body(body: str) -> None:
    if not isinstance(body, str) or not body.endswith("\n") or "\n\n" in body:
        raise CosignatureError("checkpoint body must be note text ending in one newline, without signature lines")


def witness_key_id(name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """4-byte key ID of a cosigning key: ``SHA-256(name || 0x0A || 0x04 || public key)[:4]``."""
    _check_name(name)
    material = name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_ALG]) + _raw_public_key(public_key)
    return hashlib.sha256(material).digest()[:4]


# --- keys -------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class WitnessKey:
    """A witness's name and public key, as the log operator and auditors are given it."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    @property
    def label(self) -> str:
        """``name+hexid``: how errors and reports name the witness."""
        return f"{self.name}+{self.key_id.hex()}"

    def encode(self) -> str:
        return encode_witness_vkey(self.name, self.public_key)


def encode_witness_vkey(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """``<name>+<hex key ID>+<base64(0x04 || public key)>``."""
    raw = _raw_public_key(public_key)
    return f"{name}+{witness_key_id(name, raw).hex()}+{_b64encode(bytes([COSIGNATURE_ALG]) + raw)}"


def parse_witness_vkey(text: str | WitnessKey) -> WitnessKey:
    """Parse a witness verifier key, checking its type byte and its key ID against its name and key."""
    if isinstance(text, WitnessKey):
        return text
    if not isinstance(text, str):
        raise CosignatureError(f"witness verifier key must be a string, got {type(text).__name__}")
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise CosignatureError(f"witness verifier key must be <name>+<hex key ID>+<base64 key>, got {text!r}")
    name, hex_id, key64 = parts
    _check_name(name)
    if not _HEX8_RE.fullmatch(hex_id):
        raise CosignatureError(f"witness verifier key ID must be 8 lowercase hex digits, got {hex_id!r}")
    key = _b64decode(key64, "witness public key")
    if len(key) != 33 or key[0] != COSIGNATURE_ALG:
        kind = f" of type 0x{key[0]:02x}" if key else ""
        raise CosignatureError(
            f"witness public key must be 0x04 followed by a 32-byte Ed25519 key, got {len(key)} bytes{kind}"
        )
    expected = witness_key_id(name, key[1:])
    if expected.hex() != hex_id:
        raise CosignatureError(f"witness key ID {hex_id} does not match name and key (expected {expected.hex()})")
    return WitnessKey(name, expected, Ed25519PublicKey.from_public_bytes(key[1:]))


@dataclass(frozen=True, slots=True)
class WitnessSigner:
    """A witness's private key with its name: what ``provenance witness serve --key`` loads."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def key(self) -> WitnessKey:
        pub = self.private_key.public_key()
        return WitnessKey(self.name, witness_key_id(self.name, pub), pub)

    def vkey(self) -> str:
        return self.key.encode()

    def cosign(self, checkpoint_body: str, timestamp: int) -> NoteSignature:
        return cosign(checkpoint_body, self.name, self.private_key, timestamp)


def encode_witness_private_key(name: str, private_key: Ed25519PrivateKey) -> str:
    """``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`` (keep it secret)."""
    seed = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    kid = witness_key_id(name, private_key.public_key())
    return f"{_PRIVATE_PREFIX}{name}+{kid.hex()}+{_b64encode(bytes([COSIGNATURE_ALG]) + seed)}"


def parse_witness_private_key(text: str) -> WitnessSigner:
    """Parse a private key file's contents (surrounding whitespace allowed); the key ID must match."""
    text = text.strip()
    if not text.startswith(_PRIVATE_PREFIX):
        raise CosignatureError("witness private key must start with 'PRIVATE+KEY+'")
    parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
    if len(parts) != 3:
        raise CosignatureError("witness private key must be PRIVATE+KEY+<name>+<hex key ID>+<base64 key>")
    name, hex_id, key64 = parts
    _check_name(name)
    raw = _b64decode(key64, "witness private key")
    if len(raw) != 33 or raw[0] != COSIGNATURE_ALG:
        raise CosignatureError("witness private key must be 0x04 followed by a 32-byte Ed25519 seed")
    private_key = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if witness_key_id(name, private_key.public_key()).hex() != hex_id:
        raise CosignatureError("witness private key ID does not match its name and key")
    return WitnessSigner(name, private_key)


# --- signing and verifying ------------------------------------------------------------------------------------------
def cosigned_message(checkpoint_body: str, timestamp: int) -> bytes:
    """The bytes a v1 cosignature signs: header line, ``time <t>`` line, then the checkpoint body."""
    _check_body(checkpoint_body)
    _check_timestamp(timestamp)
    return (COSIGNATURE_HEADER + f"time {timestamp}\n" + checkpoint_body).encode("utf-8")


def cosign(checkpoint_body: str, key_name: str, private_key: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    """Cosign a checkpoint body at ``timestamp``; ``.line()`` of the result is the signature line to append."""
    kid = witness_key_id(key_name, private_key.public_key())
    sig = private_key.sign(cosigned_message(checkpoint_body, timestamp))
    return NoteSignature(key_name, kid, timestamp.to_bytes(8, "big") + sig)


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The timestamp a cosignature line carries (nothing is verified)."""
    if len(signature.signature) != _SIG_LEN:
        raise CosignatureError(
            f"cosignature by {signature.key_name}+{signature.key_id.hex()} holds {len(signature.signature)} bytes "
            f"after its key ID; a timestamp and an Ed25519 signature are {_SIG_LEN}"
        )
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise CosignatureError(f"cosignature timestamp {timestamp} exceeds 2**63 - 1")
    return timestamp


def _parse(note: str | bytes) -> tuple[str, list[NoteSignature]]:
    try:
        return parse_note(note)
    except CosignatureError:
        raise
    except CheckpointError as exc:
        raise CosignatureError(f"cannot read the cosigned note: {exc}") from exc


def _verify_one(text: str, sig: NoteSignature, key: WitnessKey) -> int:
    timestamp = cosignature_timestamp(sig)
    try:
        key.public_key.verify(sig.signature[8:], cosigned_message(text, timestamp))
    except InvalidSignature:
        raise CosignatureError(
            f"invalid cosignature by witness {key.label}: the checkpoint, timestamp or signature was altered"
        ) from None
    return timestamp


def verify_cosignature(note: str | bytes, witness_vkey: WitnessKey | str) -> int:
    """Verify the cosignature(s) of one witness on a signed checkpoint note; return the cosignature's timestamp.

    Lines by other keys are ignored; every line matching the witness's name and key ID must verify, and at least one
    must be there.
    """
    key = parse_witness_vkey(witness_vkey)
    text, sigs = _parse(note)
    mine = [s for s in sigs if s.key_name == key.name and s.key_id == key.key_id]
    if not mine:
        raise CosignatureError(f"note has no cosignature by witness {key.label}")
    stamps = [_verify_one(text, s, key) for s in mine]
    return max(stamps)


@dataclass(frozen=True, slots=True)
class CosignatureCheck:
    """What one configured witness's cosignature on a note came to."""

    witness: WitnessKey
    status: Literal["valid", "absent", "invalid"]
    timestamp: int | None = None
    reason: str | None = None


def check_cosignatures(note: str | bytes, witness_keys: Sequence[WitnessKey | str]) -> list[CosignatureCheck]:
    """One :class:`CosignatureCheck` per configured witness, in order (a malformed note raises)."""
    keys = [parse_witness_vkey(k) for k in witness_keys]
    text, sigs = _parse(note)
    out: list[CosignatureCheck] = []
    for key in keys:
        mine = [s for s in sigs if s.key_name == key.name and s.key_id == key.key_id]
        if not mine:
            out.append(CosignatureCheck(key, "absent", reason=f"no cosignature by witness {key.label}"))
            continue
        try:
            stamp = max(_verify_one(text, s, key) for s in mine)
        except CosignatureError as exc:
            out.append(CosignatureCheck(key, "invalid", reason=str(exc)))
        else:
            out.append(CosignatureCheck(key, "valid", timestamp=stamp))
    return out


def parse_cosignature_lines(checkpoint_body: str, response: str | bytes) -> list[NoteSignature]:
    """Read signature lines (a witness's ``add-checkpoint`` answer) by parsing them as a note on the body."""
    _check_body(checkpoint_body)
    if isinstance(response, (bytes, bytearray)):
        try:
            response = bytes(response).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CosignatureError("cosignature lines are not valid UTF-8") from exc
    if not response or not response.endswith("\n") or "\n\n" in response:
        raise CosignatureError("cosignature lines must be one or more signature lines, each ending in a newline")
    _text, sigs = _parse(checkpoint_body + "\n" + response)
    return sigs


def add_cosignatures(note: str, signatures: Iterable[NoteSignature]) -> str:
    """Append signature lines to a signed note, skipping lines it already holds."""
    text, existing = _parse(note)
    have = {s.line() for s in existing}
    out = note
    for sig in signatures:
        line = sig.line()
        if line not in have:
            out += line
            have.add(line)
    if text != _parse(out)[0]:  # defensive: appending lines never changes the text
        raise CosignatureError("appending cosignatures changed the note text")
    return out
