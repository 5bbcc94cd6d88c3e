"""The C2SP ``tlog-witness`` wire format of ``POST /add-checkpoint``: pure encoding and parsing, no I/O.

Request body::

    old <size>\\n                 (decimal, no leading zeros; 0 when the client knows of no earlier cosignature)
    <base64 hash>\\n              (0 to 63 consistency proof lines, RFC 6962 §2.1.2, from old size to the new size)
    \\n                           (an empty line)
    <signed checkpoint note>     (body, blank line, signature lines)

Answers: 200 with cosignature lines; 409 with ``text/x.tlog.size`` (``<size>\\n``) when the old size is not the
witness's; 404 unknown origin; 403 no trusted log signature; 400 malformed; 422 bad consistency proof.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from provenance.translog.hashing import HASH_SIZE
from provenance.witness.errors import MalformedRequestError

__all__ = [
    "ADD_CHECKPOINT_PATH",
    "MAX_BODY_BYTES",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpointRequest",
    "encode_add_checkpoint",
    "encode_size_body",
    "parse_add_checkpoint",
    "parse_size_body",
]

ADD_CHECKPOINT_PATH = "/add-checkpoint"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 64 * 1024
"""Largest request body a witness reads: 63 proof lines and a note with many signatures fit easily."""

_OLD_RE = re.compile(r"old (0|[1-9][0-9]*)", re.ASCII)
_SIZE_RE = re.compile(r"(0|[1-9][0-9]*)\n", re.ASCII)
_MAX_SIZE = 2**64 - 1


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """A parsed add-checkpoint body: the client's old size, the consistency proof, and the checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str


def encode_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not 0 <= old_size <= _MAX_SIZE:
        raise MalformedRequestError(f"old size must be an integer in [0, 2**64), got {old_size!r}")
    if len(proof) > MAX_PROOF_LINES:
        raise MalformedRequestError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes, got {len(proof)}")
    if any(len(h) != HASH_SIZE for h in proof):
        raise MalformedRequestError(f"consistency proof hashes must be {HASH_SIZE} bytes")
    lines = [f"old {old_size}\n"] + [base64.b64encode(h).decode("ascii") + "\n" for h in proof]
    return ("".join(lines) + "\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Parse a request body; anything malformed raises :class:`MalformedRequestError` (a 400)."""
    if len(body) > MAX_BODY_BYTES:
        raise MalformedRequestError(f"request body is {len(body)} bytes; at most {MAX_BODY_BYTES} are read")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequestError("request body is not valid UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise MalformedRequestError("request body has no empty line between the old size and proof and the note")
    lines = head.split("\n")
    match = _OLD_RE.fullmatch(lines[0])
    if match is None:
        raise MalformedRequestError(f"first line must be 'old <size>' without leading zeros, got {lines[0][:40]!r}")
    old_size = int(match.group(1))
    if old_size > _MAX_SIZE:
        raise MalformedRequestError(f"old size {old_size} does not fit in 64 bits")
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise MalformedRequestError(f"at most {MAX_PROOF_LINES} consistency proof lines, got {len(proof_lines)}")
    proof: list[bytes] = []
    for n, line in enumerate(proof_lines, 1):
        try:
            raw = base64.b64decode(line.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error, ValueError):
            raise MalformedRequestError(f"consistency proof line {n} is not base64") from None
        if len(raw) != HASH_SIZE or base64.b64encode(raw).decode("ascii") != line:
            raise MalformedRequestError(f"consistency proof line {n} is not a canonical base64 {HASH_SIZE}-byte hash")
        proof.append(raw)
    if not note:
        raise MalformedRequestError("request body has no checkpoint note after the empty line")
    return AddCheckpointRequest(old_size, tuple(proof), note)


def encode_size_body(size: int) -> bytes:
    """The body of a 409 answer (``text/x.tlog.size``)."""
    return f"{size}\n".encode("ascii")


def parse_size_body(body: bytes) -> int:
    """Read a ``text/x.tlog.size`` body (decimal size and a newline)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedRequestError("size body is not ASCII") from None
    if _SIZE_RE.fullmatch(text) is None:
        raise MalformedRequestError(f"size body must be a decimal size and a newline, got {text[:40]!r}")
    size = int(text)
    if size > _MAX_SIZE:
        raise MalformedRequestError(f"size {size} does not fit in 64 bits")
    return size
