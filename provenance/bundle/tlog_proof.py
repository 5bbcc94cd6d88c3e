"""C2SP ``tlog-proof@v1``: the text form of "this entry is at index N of the tree this checkpoint signs".

::

    c2sp.org/tlog-proof@v1
    [extra <base64 opaque data>]
    index <N>
    <base64 hash>            (zero or more: the RFC 6962 audit path, leaf's sibling first)

    <the checkpoint note, verbatim, with its signature and cosignature lines>

Reading and writing only (no verification: that is :mod:`provenance.bundle.verify`). Pure, no I/O. Everything wrong
raises :class:`~provenance.errors.BundleError` with ``check = "tlog_proof"``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from provenance.errors import BundleError
from provenance.translog.hashing import HASH_SIZE

__all__ = ["TLOG_PROOF_HEADER", "TlogProof", "parse_tlog_proof"]

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 64  # a tree of 2**64 leaves needs at most 64
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,19})", re.ASCII)


def _fail(message: str, where: str) -> BundleError:
    return BundleError(f"{where}: {message}", check="tlog_proof")


def _b64(text: str, what: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise _fail(f"{what} is not base64: {text[:60]!r}", where) from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise _fail(f"{what} is not canonical base64: {text[:60]!r}", where)
    return raw


@dataclass(frozen=True)
class TlogProof:
    """One entry's index, its inclusion proof and the checkpoint note the proof leads to. ``extra`` is the spec's
    optional, unauthenticated extra data (we never write it and never trust it)."""

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: str
    extra: bytes | None = None

    def encode(self) -> str:
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode("ascii") for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint


def parse_tlog_proof(text: str, *, where: str = "tlog-proof") -> TlogProof:
    """Parse the text form strictly (header, optional extra, index, hashes, blank line, checkpoint note).

    The checkpoint is returned verbatim and not checked here; its signature and shape are the verifier's job."""
    if not isinstance(text, str):
        raise _fail("must be a string", where)
    head, sep, checkpoint = text.partition("\n\n")
    if not sep or not checkpoint:
        raise _fail("no blank line followed by a checkpoint (is it truncated?)", where)
    lines = head.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise _fail(f"first line must be {TLOG_PROOF_HEADER!r}, got {lines[0][:60]!r}", where)
    rest = lines[1:]
    extra = None
    if rest and rest[0].startswith("extra "):
        extra = _b64(rest[0][len("extra "):], "extra data", where)
        rest = rest[1:]
    if not rest or not _INDEX.fullmatch(rest[0]):
        raise _fail("missing 'index <N>' line (decimal, no leading zeros)", where)
    index = int(rest[0][len("index "):])
    if index >= 2**64:
        raise _fail(f"index {index} does not fit in 64 bits", where)
    if len(rest) - 1 > MAX_PROOF_HASHES:
        raise _fail(f"{len(rest) - 1} proof hashes; a tree never needs more than {MAX_PROOF_HASHES}", where)
    hashes = []
    for n, line in enumerate(rest[1:]):
        raw = _b64(line, f"proof hash [{n}]", where)
        if len(raw) != HASH_SIZE:
            raise _fail(f"proof hash [{n}] is {len(raw)} bytes, not {HASH_SIZE}", where)
        hashes.append(raw)
    return TlogProof(index, tuple(hashes), checkpoint, extra)
