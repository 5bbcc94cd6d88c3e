"""CARv1 (content-addressed archive) writing and reading, so locally stored content can move to any IPFS node.

A CARv1 is ``varint(len) header`` then ``varint(len) cid block`` sections; the header is DAG-CBOR
``{"roots": [CID...], "version": 1}`` with CIDs as tag 42 over ``0x00 + binary CID``. ``ipfs dag import`` of a CAR
holding every block of a file's UnixFS DAG recreates it under the same root CID. The CBOR needed is a handful
of major types, so it is encoded here rather than adding a dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from provenance.cid import cid_from_bytes, cid_to_bytes, decode_varint, encode_varint

_CID_TAG = 42


class CborCid(bytes):
    """Binary CID to be written as CBOR tag 42 (with the 0x00 multibase-identity prefix DAG-CBOR requires)."""


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise ValueError("CBOR integer too large")


def cbor_encode(obj: object) -> bytes:
    """DAG-CBOR for the subset CAR headers use: uint, bytes, str, list, str-keyed dict, CID."""
    if isinstance(obj, CborCid):
        return _cbor_head(6, _CID_TAG) + cbor_encode(b"\x00" + bytes(obj))
    if isinstance(obj, bool) or obj is None:
        raise TypeError("bool/None not needed here")
    if isinstance(obj, int) and obj >= 0:
        return _cbor_head(0, obj)
    if isinstance(obj, bytes):
        return _cbor_head(2, len(obj)) + obj
    if isinstance(obj, str):
        raw = obj.encode()
        return _cbor_head(3, len(raw)) + raw
    if isinstance(obj, list):
        return _cbor_head(4, len(obj)) + b"".join(cbor_encode(x) for x in obj)
    if isinstance(obj, dict):
        # DAG-CBOR key order: shorter encoded key first, then bytewise.
        keys = sorted(obj, key=lambda k: (len(k.encode()), k.encode()))
        return _cbor_head(5, len(obj)) + b"".join(cbor_encode(k) + cbor_encode(obj[k]) for k in keys)
    raise TypeError(f"cannot CBOR-encode {type(obj).__name__}")


def cbor_decode(buf: bytes) -> object:
    """Inverse of :func:`cbor_encode` (same subset); raises ValueError on anything else or trailing bytes."""
    value, end = _cbor_item(buf, 0)
    if end != len(buf):
        raise ValueError("trailing bytes after CBOR item")
    return value


def _cbor_item(buf: bytes, pos: int) -> tuple[object, int]:
    if pos >= len(buf):
        raise ValueError("truncated CBOR")
    major, info = buf[pos] >> 5, buf[pos] & 31
    pos += 1
    if info < 24:
        arg = info
    elif 24 <= info <= 27:
        size = 1 << (info - 24)
        arg, pos = int.from_bytes(buf[pos : pos + size], "big"), pos + size
    else:
        raise ValueError("indefinite lengths are not DAG-CBOR")
    if major == 0:
        return arg, pos
    if major in (2, 3):
        raw = bytes(buf[pos : pos + arg])
        if len(raw) != arg:
            raise ValueError("truncated CBOR string")
        return (raw if major == 2 else raw.decode()), pos + arg
    if major == 4:
        items = []
        for _ in range(arg):
            item, pos = _cbor_item(buf, pos)
            items.append(item)
        return items, pos
    if major == 5:
        out = {}
        for _ in range(arg):
            key, pos = _cbor_item(buf, pos)
            out[key], pos = _cbor_item(buf, pos)
        return out, pos
    if major == 6 and arg == _CID_TAG:
        tagged, pos = _cbor_item(buf, pos)
        if not isinstance(tagged, bytes) or not tagged.startswith(b"\x00"):
            raise ValueError("bad CID in tag 42")
        return CborCid(tagged[1:]), pos
    raise ValueError(f"unsupported CBOR major type {major}")


def car_header(roots: Iterable[str]) -> bytes:
    root_list = [CborCid(cid_to_bytes(r)) for r in roots]
    if not root_list:
        raise ValueError("a CAR needs at least one root")
    body = cbor_encode({"roots": root_list, "version": 1})
    return encode_varint(len(body)) + body


def write_car(roots: Iterable[str], blocks: Iterable[tuple[bytes, bytes]], out: BinaryIO) -> int:
    """Write a CARv1; ``blocks`` are ``(binary CID, block)``; duplicates (by CID) are written once. Returns bytes."""
    written = out.write(car_header(roots))
    seen: set[bytes] = set()
    for cid, block in blocks:
        if cid in seen:
            continue
        seen.add(cid)
        written += out.write(encode_varint(len(cid) + len(block)))
        written += out.write(cid)
        written += out.write(block)
    return written


def _cid_length(buf: bytes, pos: int) -> int:
    """Length of the binary CID starting at ``pos`` (v0 = 34-byte multihash; v1 = version, codec, multihash)."""
    if buf[pos : pos + 2] == b"\x12\x20":
        return 34
    end = pos
    for _ in range(3):  # version, codec, multihash code
        _, end = decode_varint(buf, end)
    length, end = decode_varint(buf, end)
    return end + length - pos


def read_car(buf: bytes) -> tuple[list[str], Iterator[tuple[bytes, bytes]]]:
    """Parse a CARv1: ``(root CIDs, iterator of (binary CID, block))``. For tests and tooling; no hash checks."""
    length, pos = decode_varint(buf)
    header = cbor_decode(buf[pos : pos + length])
    if not isinstance(header, dict) or header.get("version") != 1 or not isinstance(header.get("roots"), list):
        raise ValueError("not a CARv1 header")
    roots = [cid_from_bytes(bytes(r)) for r in header["roots"]]

    def sections(pos: int) -> Iterator[tuple[bytes, bytes]]:
        while pos < len(buf):
            size, pos = decode_varint(buf, pos)
            cid_len = _cid_length(buf, pos)
            yield bytes(buf[pos : pos + cid_len]), bytes(buf[pos + cid_len : pos + size])
            pos += size

    return roots, sections(pos + length)
