"""Content addressing: the CIDs an IPFS daemon gives, computed locally with no I/O.

Why our own code: records name images by CID, and we must be able to check a CID without trusting (or even
reaching) a daemon. ``py-cid``/``multiformats`` only hash one chunk, i.e. they disagree with
``ipfs add --cid-version=1 --raw-leaves`` for anything over 256 KiB. The formats involved (unsigned varints,
two tiny protobuf messages, base32) are small enough to write and test here.

:func:`cid_for_bytes` reproduces the daemon's defaults: fixed 262144-byte chunks, raw leaves, and the *balanced*
layout with at most 174 links per node, built bottom-up (every leaf at the same depth, children grouped
left to right). One chunk (including empty input) gives a raw-codec CID of the sha2-256 digest; more chunks give
a dag-pb node holding a UnixFS ``File`` (``filesize`` + one ``blocksizes`` entry per child).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from provenance.errors import InvalidCIDError

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
CODEC_DAG_CBOR = 0x71
MH_SHA2_256 = 0x12
CHUNK_SIZE = 262_144  # the daemon's default chunker, size-262144
MAX_LINKS = 174  # the balanced layout's default links per node
UNIXFS_FILE = 2  # UnixFS Data.DataType.File

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


# --- varint (unsigned LEB128, as multiformats restricts it) -----------------------------------------------------
def encode_varint(value: int) -> bytes:
    """Unsigned varint; multiformats caps it at 9 bytes (63 bits)."""
    if value < 0 or value >= 1 << 63:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(buf: bytes, offset: int = 0) -> tuple[int, int]:
    """Return ``(value, offset after it)``; rejects truncated, over-long and non-minimal encodings."""
    value = shift = 0
    for i in range(offset, min(len(buf), offset + 9)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and i > offset:
                raise ValueError("non-minimal varint")
            return value, i + 1
        shift += 7
    raise ValueError("truncated or over-long varint")


# --- multibase: base32 (lowercase, no padding) and base58btc ----------------------------------------------------
def b32encode(data: bytes) -> str:
    """RFC 4648 base32, lowercase, unpadded (the multibase 'b' alphabet)."""
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def b32decode(text: str) -> bytes:
    """Inverse of :func:`b32encode`; raises ValueError on foreign characters, impossible lengths or stray bits
    (so each byte string has exactly one spelling)."""
    if not set(text) <= _B32_ALPHABET:
        raise ValueError("not lowercase base32")
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except binascii.Error as exc:
        raise ValueError(f"bad base32: {exc}") from None
    if b32encode(raw) != text:
        raise ValueError("non-canonical base32 (nonzero padding bits)")
    return raw


def b58encode(data: bytes) -> str:
    num = int.from_bytes(data, "big")
    out = ""
    while num:
        num, rem = divmod(num, 58)
        out = _B58_ALPHABET[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def b58decode(text: str) -> bytes:
    num = 0
    for ch in text:
        idx = _B58_ALPHABET.find(ch)
        if idx < 0:
            raise ValueError("not base58btc")
        num = num * 58 + idx
    body = num.to_bytes((num.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


# --- CIDs ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedCid:
    """A decoded CID. ``str()`` gives the canonical text: base58btc for v0, base32 for v1."""

    version: int
    codec: int
    multihash_code: int
    digest: bytes

    @property
    def multihash(self) -> bytes:
        return encode_varint(self.multihash_code) + encode_varint(len(self.digest)) + self.digest

    def to_bytes(self) -> bytes:
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(self.to_bytes())


def _parse_binary(raw: bytes) -> ParsedCid:
    if len(raw) == 34 and raw[0] == MH_SHA2_256 and raw[1] == 32:  # CIDv0: a bare sha2-256 multihash
        return ParsedCid(0, CODEC_DAG_PB, MH_SHA2_256, bytes(raw[2:]))
    try:
        version, pos = decode_varint(raw)
        if version != 1:
            raise ValueError(f"unsupported CID version {version}")
        codec, pos = decode_varint(raw, pos)
        mh_code, pos = decode_varint(raw, pos)
        length, pos = decode_varint(raw, pos)
    except ValueError as exc:
        raise InvalidCIDError(f"not a CID: {exc}") from None
    digest = bytes(raw[pos:])
    if len(digest) != length:
        raise InvalidCIDError(f"multihash digest is {len(digest)} bytes, header says {length}")
    if mh_code == MH_SHA2_256 and length != 32:
        raise InvalidCIDError("sha2-256 digest must be 32 bytes")
    return ParsedCid(1, codec, mh_code, digest)


def parse_cid(text: str) -> ParsedCid:
    """Decode a CID string (v0 ``Qm…``, or v1 in base32 ``b``/``B``, base58btc ``z``, base16 ``f``)."""
    if not isinstance(text, str) or len(text) < 2 or len(text) > 512 or not text.isascii():
        raise InvalidCIDError(f"not a CID: {text!r:.80}")
    prefix, body = text[0], text[1:]
    try:
        if len(text) == 46 and text.startswith("Qm"):
            return _parse_binary(b58decode(text))
        if prefix == "b":
            raw = b32decode(body)
        elif prefix == "B":
            raw = b32decode(body.lower())
        elif prefix == "z":
            raw = b58decode(body)
        elif prefix in "fF":
            raw = bytes.fromhex(body)
        else:
            raise InvalidCIDError(f"unsupported multibase prefix {prefix!r} in {text!r:.80}")
    except ValueError as exc:
        raise InvalidCIDError(f"not a CID: {text!r:.80} ({exc})") from None
    parsed = _parse_binary(raw)
    if parsed.version == 0:
        raise InvalidCIDError("a CIDv0 must be written in base58btc without a multibase prefix")
    return parsed


def cid_to_bytes(text: str) -> bytes:
    """Binary form of a CID string (what CAR files and dag-pb links hold)."""
    return parse_cid(text).to_bytes()


def cid_from_bytes(raw: bytes) -> str:
    """Canonical string (base32 for v1) of a binary CID."""
    return str(_parse_binary(raw))


def canonical_cid(text: str) -> str:
    """Parse and re-encode, so equal CIDs compare equal as strings (e.g. ``z…`` vs ``b…``)."""
    return str(parse_cid(text))


def _cid_v1(codec: int, block: bytes | memoryview) -> bytes:
    return bytes((1, codec, MH_SHA2_256, 32)) + hashlib.sha256(block).digest()


def raw_cid(data: bytes) -> str:
    """CIDv1 of ``data`` as one raw block (what the daemon returns for content of at most one chunk)."""
    return "b" + b32encode(_cid_v1(CODEC_RAW, data))


# --- protobuf: just the two messages UnixFS needs ---------------------------------------------------------------
def _pb_key(field: int, wire_type: int) -> bytes:
    return encode_varint(field << 3 | wire_type)


def _pb_uint(field: int, value: int) -> bytes:
    return _pb_key(field, 0) + encode_varint(value)


def _pb_bytes(field: int, value: bytes) -> bytes:
    return _pb_key(field, 2) + encode_varint(len(value)) + value


def pb_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Walk a protobuf message: yields ``(field number, int or bytes)`` for varint / length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = decode_varint(buf, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = decode_varint(buf, pos)
            yield field, value
        elif wire_type == 2:
            length, pos = decode_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited field")
            yield field, bytes(buf[pos : pos + length])
            pos += length
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")


@dataclass(frozen=True)
class PBLink:
    hash: bytes  # binary CID
    name: str
    tsize: int  # cumulative size of the linked DAG (encoded blocks + raw leaves)


def encode_unixfs_file(filesize: int, blocksizes: list[int]) -> bytes:
    """UnixFS ``Data`` of an inner File node: Type=File, filesize, one (unpacked) blocksizes entry per child."""
    return _pb_uint(1, UNIXFS_FILE) + _pb_uint(3, filesize) + b"".join(_pb_uint(4, s) for s in blocksizes)


def decode_unixfs(buf: bytes) -> tuple[int, int | None, list[int]]:
    """Return ``(type, filesize, blocksizes)`` of a UnixFS ``Data`` message."""
    kind, filesize, sizes = -1, None, []
    for field, value in pb_fields(buf):
        if field == 1 and isinstance(value, int):
            kind = value
        elif field == 3 and isinstance(value, int):
            filesize = value
        elif field == 4 and isinstance(value, int):
            sizes.append(value)
    return kind, filesize, sizes


def encode_dag_pb(links: list[PBLink], data: bytes | None) -> bytes:
    """A dag-pb PBNode in canonical order: Links (field 2) first, then Data (field 1)."""
    out = bytearray()
    for link in links:
        body = _pb_bytes(1, link.hash) + _pb_bytes(2, link.name.encode()) + _pb_uint(3, link.tsize)
        out += _pb_bytes(2, body)
    if data is not None:
        out += _pb_bytes(1, data)
    return bytes(out)


def decode_dag_pb(block: bytes) -> tuple[list[PBLink], bytes | None]:
    links: list[PBLink] = []
    data: bytes | None = None
    for field, value in pb_fields(block):
        if field == 2 and isinstance(value, bytes):
            parts = dict(pb_fields(value))
            links.append(PBLink(bytes(parts[1]), bytes(parts.get(2, b"")).decode(), int(parts.get(3, 0))))
        elif field == 1 and isinstance(value, bytes):
            data = value
    return links, data


# --- the UnixFS DAG the daemon builds ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Node:
    cid: bytes
    filesize: int  # bytes of file content under this node
    tsize: int  # bytes of blocks under this node (what the parent's link records)


def iter_unixfs_blocks(
    data: bytes, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS
) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(binary CID, block)`` for every block of the file's DAG, leaves first; the last one is the root.

    Blocks are produced lazily (leaves are sliced on demand), so a CAR writer can stream them.
    """
    if chunk_size < 1 or max_links < 2:
        raise ValueError("chunk_size must be >= 1 and max_links >= 2")
    view = memoryview(data)
    if len(view) <= chunk_size:  # one chunk (or none): the root is the raw leaf itself
        yield _cid_v1(CODEC_RAW, view), bytes(view)
        return
    level: list[_Node] = []
    for start in range(0, len(view), chunk_size):
        chunk = view[start : start + chunk_size]
        cid = _cid_v1(CODEC_RAW, chunk)
        yield cid, bytes(chunk)
        level.append(_Node(cid, len(chunk), len(chunk)))
    while len(level) > 1:
        parents: list[_Node] = []
        for i in range(0, len(level), max_links):
            children = level[i : i + max_links]
            filesize = sum(c.filesize for c in children)
            unixfs = encode_unixfs_file(filesize, [c.filesize for c in children])
            block = encode_dag_pb([PBLink(c.cid, "", c.tsize) for c in children], unixfs)
            cid = _cid_v1(CODEC_DAG_PB, block)
            yield cid, block
            parents.append(_Node(cid, filesize, len(block) + sum(c.tsize for c in children)))
        level = parents


def cid_for_bytes(data: bytes, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> str:
    """The CIDv1 (base32) that ``ipfs add --cid-version=1 --raw-leaves`` returns for ``data``."""
    if len(data) <= chunk_size:
        return raw_cid(data)
    # Keep only the last (root) block; leaves are dropped as soon as they are hashed.
    ((root, _block),) = deque(iter_unixfs_blocks(data, chunk_size=chunk_size, max_links=max_links), maxlen=1)
    return "b" + b32encode(root)
