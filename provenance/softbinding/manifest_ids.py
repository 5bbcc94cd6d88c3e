"""C2PA manifest identifiers for our records: ``urn:c2pa:<UUID>:provenance``, derived from the record CID.

A C2PA manifest label is a ``c2pa`` URN (IANA urn-formal/c2pa; C2PA 2.x "Unique Identifiers"): ``urn:c2pa:``, a
version-4 UUID in RFC 9562 form, then optionally a claim generator identifier of at most 32 characters (no ``:``,
no ``_``). The manifest we sign for a record takes its label from the record's CID: the UUID carries the first 122
bits of the CID's sha2-256 digest in its 122 free bits (the 6 version and variant bits are v4's), so

* the label is the same every time the manifest is (re)signed, and can be published on chain before it is;
* the CID's prefix is recoverable from the label (:func:`cid_prefix_of`): one indexed prefix query on the record
  store finds the record (2^-122 chance of two records sharing a label), and the caller confirms with
  :func:`manifest_id_for`.

A version-4 UUID is "random bits"; a hash's bits are as good, and are why the label is stable. Pure: no I/O.
"""

from __future__ import annotations

import re
import uuid

from provenance.cid import CODEC_RAW, b32encode, parse_cid
from provenance.errors import InvalidCIDError

__all__ = ["CLAIM_GENERATOR_ID", "cid_prefix_of", "is_manifest_urn", "manifest_id_for", "parse_manifest_urn"]

CLAIM_GENERATOR_ID = "provenance"
_URN = re.compile(r"^urn:c2pa:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
                  r"(?::([^:_]{0,32}))?(?::(v[0-9]+_[0-9]+))?$")
# Bit positions (from the most significant, 0..127) of a UUID that v4 fixes: version (48-51) and variant (64-65).
_FIXED = frozenset({48, 49, 50, 51, 64, 65})
_FREE = tuple(i for i in range(128) if i not in _FIXED)  # 122 positions
_RAW_SHA256_PREFIX = bytes((0x01, CODEC_RAW, 0x12, 0x20))  # CIDv1, raw codec, sha2-256, 32 bytes


def manifest_id_for(record_cid: str) -> str:
    """The label of the manifest we sign for ``record_cid``."""
    digest = parse_cid(record_cid).digest
    bits = int.from_bytes(digest, "big") >> (len(digest) * 8 - len(_FREE))  # the first 122 bits
    value = 0
    for n, pos in enumerate(_FREE):
        if bits >> (len(_FREE) - 1 - n) & 1:
            value |= 1 << (127 - pos)
    value |= 0x4 << 76  # version 4: bits 48-51 = 0100
    value |= 0x2 << 62  # variant 10: bits 64-65
    return f"urn:c2pa:{uuid.UUID(int=value)}:{CLAIM_GENERATOR_ID}"


def is_manifest_urn(text: str) -> bool:
    return isinstance(text, str) and text.lower().startswith("urn:c2pa:")


def parse_manifest_urn(text: str) -> uuid.UUID:
    """The UUID of a ``urn:c2pa:`` identifier; InvalidCIDError (400 at the edge) when it is not one."""
    match = _URN.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidCIDError(f"not a C2PA manifest identifier (urn:c2pa:<uuid>[:<generator>[:v<n>_<reason>]]): "
                              f"{text!r:.120}")
    return uuid.UUID(match.group(1))


def cid_prefix_of(manifest_urn: str) -> str | None:
    """The text every record CID labelled ``manifest_urn`` starts with ("b" and 30 base32 characters); None when
    the label is not one of ours (another claim generator, or not a version-4 UUID)."""
    match = _URN.match(manifest_urn) if isinstance(manifest_urn, str) else None
    if match is None or (match.group(2) or "") != CLAIM_GENERATOR_ID or match.group(3):
        return None
    value = uuid.UUID(match.group(1)).int
    if (value >> 76) & 0xF != 4 or (value >> 62) & 0x3 != 2:
        return None
    bits = 0
    for pos in _FREE:
        bits = bits << 1 | (value >> (127 - pos) & 1)
    # The 122 digest bits after the 32-bit CID prefix: 154 known bits, 30 whole base32 characters.
    known = (int.from_bytes(_RAW_SHA256_PREFIX, "big") << 122 | bits) << (288 - 154)
    return "b" + b32encode(known.to_bytes(36, "big"))[:30]
