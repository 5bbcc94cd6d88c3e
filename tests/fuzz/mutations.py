"""Hypothesis strategies that mutate real inputs: bytes (bit flips, overwrites, truncation, insertion, deletion,
duplication), image header fields (PNG chunks with their CRC fixed so decoders look past it, JPEG frame headers,
GIF and WebP sizes), and JSON documents (a value replaced by any JSON, a key dropped or added, a type changed,
deep nesting), so that the parsers are driven past their first check."""

from __future__ import annotations

import json
import re
import struct
import zlib
from typing import Any

from hypothesis import strategies as st

import rfc8785

# --- bytes ---------------------------------------------------------------------------------------------------------
_BYTE_OPS = ("flip", "set", "truncate", "insert", "delete", "duplicate", "zero_run")


def _position(draw: st.DrawFn, data: bytearray, hot: tuple[int, int] | None) -> int:
    """Positions are biased towards the first 64 bytes (headers) or a ``hot`` range, where parsers decide most."""
    if not data:
        return 0
    if hot is not None and draw(st.booleans()):
        lo, hi = max(0, hot[0]), min(len(data) - 1, hot[1])
        if lo <= hi:
            return draw(st.integers(lo, hi))
    if draw(st.booleans()):
        return draw(st.integers(0, min(63, len(data) - 1)))
    return draw(st.integers(0, len(data) - 1))


def mutate_bytes(draw: st.DrawFn, seed: bytes, *, max_ops: int = 4, hot: tuple[int, int] | None = None) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_ops))):
        op = draw(st.sampled_from(_BYTE_OPS))
        pos = _position(draw, data, hot)
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from((0x00, 0xFF, 0x7F, 0x80, 0x01))) if draw(st.booleans()) else \
                draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        elif op == "duplicate":
            n = draw(st.integers(1, 64))
            data[pos:pos] = data[pos:pos + n]
        elif op == "zero_run":
            n = draw(st.integers(1, 32))
            data[pos:pos + n] = bytes(len(data[pos:pos + n]))
    return bytes(data)


@st.composite
def mutated_bytes(draw: st.DrawFn, seeds: dict[str, bytes], max_ops: int = 4) -> bytes:
    return mutate_bytes(draw, seeds[draw(st.sampled_from(sorted(seeds)))], max_ops=max_ops)


# --- image headers -------------------------------------------------------------------------------------------------
def _field_value(draw: st.DrawFn, size: int) -> int:
    top = (1 << (8 * size)) - 1
    special = {0, 1, 2, 7, 8, 16, 255, 3000, 65535, top, top // 2 + 1}
    return draw(st.one_of(st.sampled_from(sorted(v for v in special if v <= top)), st.integers(0, top)))


def _png_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(offset of the length field, data length, chunk type) of each well-formed chunk."""
    out, pos = [], 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        if pos + 12 + length > len(data):
            break
        out.append((pos, length, kind))
        pos += 12 + length
    return out


def _png_field(draw: st.DrawFn, data: bytes) -> bytes:
    """Change one field of a chunk (IHDR's width, height, depth, colour type, compression, filter or interlace;
    or any byte of another chunk) and write the chunk's CRC again, so the decoder acts on the change."""
    chunks = _png_chunks(data)
    if not chunks:
        return data
    pos, length, kind = draw(st.sampled_from(chunks))
    buf = bytearray(data)
    body = pos + 8
    if kind == b"IHDR" and length == 13:
        off, size = draw(st.sampled_from(((0, 4), (4, 4), (8, 1), (9, 1), (10, 1), (11, 1), (12, 1))))
        buf[body + off:body + off + size] = _field_value(draw, size).to_bytes(size, "big")
    elif kind == b"IDAT" and length and draw(st.booleans()):
        # a valid zlib stream of other bytes: the decoder gets past zlib and sees wrong scanlines
        raw = zlib.decompress(bytes(buf[body:body + length])) if draw(st.booleans()) else b""
        raw = raw[: draw(st.integers(0, len(raw)))] + draw(st.binary(max_size=64))
        new = zlib.compress(raw)
        buf[body:body + length] = new
        buf[pos:pos + 4] = struct.pack(">I", len(new))
        length = len(new)
    elif length:
        at = body + draw(st.integers(0, length - 1))
        buf[at] = draw(st.integers(0, 255))
    crc = zlib.crc32(bytes(buf[pos + 4:body + length])) & 0xFFFFFFFF
    buf[body + length:body + length + 4] = struct.pack(">I", crc)
    return bytes(buf)


def _jpeg_field(draw: st.DrawFn, data: bytes) -> bytes:
    """Change a field of the frame header (SOF0/SOF2: precision, height, width, components, sampling, tables)."""
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            break
    else:
        return data
    buf = bytearray(data)
    off, size = draw(st.sampled_from(((4, 1), (5, 2), (7, 2), (9, 1), (11, 1), (12, 1), (2, 2))))
    if at + off + size <= len(buf):
        buf[at + off:at + off + size] = _field_value(draw, size).to_bytes(size, "big")
    return bytes(buf)


def _gif_field(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    at = data.find(b"\x2c", 13)  # the first image descriptor, roughly
    fields = [(6, 2), (8, 2), (10, 1)] + ([(at + 5, 2), (at + 7, 2), (at + 9, 1)] if at > 0 else [])
    off, size = draw(st.sampled_from(fields))
    if off + size <= len(buf):
        buf[off:off + size] = _field_value(draw, size).to_bytes(size, "little")
    return bytes(buf)


def _webp_field(draw: st.DrawFn, data: bytes) -> bytes:
    buf = bytearray(data)
    off, size = draw(st.sampled_from(((4, 4), (16, 4), (20, 4), (24, 2), (26, 2), (21, 4))))
    if off + size <= len(buf):
        buf[off:off + size] = _field_value(draw, size).to_bytes(size, "little")
    return bytes(buf)


@st.composite
def mutated_images(draw: st.DrawFn, seeds: dict[str, bytes]) -> bytes:
    """A real small image, with a header field changed (half the time) and then a few byte-level mutations."""
    name = draw(st.sampled_from(sorted(seeds)))
    data = seeds[name]
    if draw(st.booleans()):
        fmt = name.split("-")[0]
        change = {"png": _png_field, "jpeg": _jpeg_field, "gif": _gif_field, "webp": _webp_field}.get(fmt)
        if change is not None:
            data = change(draw, data)
    if draw(st.integers(0, 3)):
        data = mutate_bytes(draw, data, max_ops=3)
    return data


# --- JSON documents --------------------------------------------------------------------------------------------------
json_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**70), 2**70), st.sampled_from((0, -1, 2**53 + 1, 2**64, -(2**63) - 1, 10**400)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40), st.sampled_from(("", "\x00", "\ud800", "\u2014", "a" * 5000, "ed25519:" + "0" * 32)),
)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_paths(v, (*prefix, k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.extend(_paths(v, (*prefix, i)))
    return out


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


_DEEP = re.compile(rb'"__deep__(\d+)__(list|dict)__"')


def _nested(depth: int, kind: str) -> str:
    """A placeholder for ``depth`` levels of nesting, written out as brackets by :func:`to_json_bytes` (Python's own
    serialisers would stop at their recursion limit before the parsers under test are reached)."""
    return f"__deep__{depth}__{kind}__"


def _depth(draw: st.DrawFn) -> int:
    return draw(st.one_of(st.integers(1, 40), st.sampled_from((100, 1_000, 5_000, 20_000))))


def _deep_text(match: re.Match[bytes]) -> bytes:
    depth, kind = int(match.group(1)), match.group(2)
    return b"[" * depth + b"]" * depth if kind == b"list" else b'{"a":' * depth + b"[]" + b"}" * depth


def mutate_json(draw: st.DrawFn, seed: Any, max_ops: int = 3) -> Any:
    obj = json.loads(json.dumps(seed))
    for _ in range(draw(st.integers(1, max_ops))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(("replace", "replace", "delete", "add", "retype", "nest", "string")))
        if not path:
            if op in ("replace", "nest"):
                obj = draw(json_values) if op == "replace" else _nested(_depth(draw), "list")
            continue
        parent, key = _get(obj, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = draw(json_values)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(json_values)
        elif op == "add" and isinstance(parent, list):
            parent.insert(key, draw(json_values))
        elif op == "retype":
            value = parent[key]
            parent[key] = (str(value) if not isinstance(value, str) else
                           draw(st.sampled_from((0, 1.5, None, True, [value], {"value": value}))))
        elif op == "nest":
            parent[key] = _nested(_depth(draw), draw(st.sampled_from(("list", "dict"))))
        elif op == "string" and isinstance(parent[key], str):
            text = parent[key]
            at = draw(st.integers(0, len(text)))
            parent[key] = text[:at] + draw(st.text(max_size=4)) + text[at + draw(st.integers(0, 4)):]
    return obj


def to_json_bytes(obj: Any, canonical: bool) -> bytes:
    """The document's bytes: RFC 8785 canonical form when asked and possible (so a canonical-only parser is driven
    past that check), else plain JSON."""
    data = None
    if canonical:
        try:
            data = rfc8785.dumps(obj)
        except (rfc8785.CanonicalizationError, TypeError, ValueError):
            pass
    if data is None:
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _DEEP.sub(_deep_text, data)


@st.composite
def mutated_json(draw: st.DrawFn, seeds: dict[str, Any], canonical: bool = False) -> bytes:
    """A seed document, mutated structurally (most examples) or as bytes, serialised."""
    seed = seeds[draw(st.sampled_from(sorted(seeds)))]
    if draw(st.integers(0, 4)) == 0:
        return mutate_bytes(draw, to_json_bytes(seed, canonical), max_ops=3)
    return to_json_bytes(mutate_json(draw, seed), canonical)


@st.composite
def mutated_text(draw: st.DrawFn, seeds: dict[str, str]) -> str:
    """A line-oriented text seed (notes, tlog-proofs): lines dropped, duplicated, swapped or edited, or bytes
    mutated (decoded leniently)."""
    text = seeds[draw(st.sampled_from(sorted(seeds)))]
    if draw(st.booleans()):
        raw = mutate_bytes(draw, text.encode("utf-8"), max_ops=3)
        return raw.decode("utf-8", "replace")
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(("drop", "dup", "swap", "edit", "insert")))
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "edit":
            line = lines[i]
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.text(max_size=6)) + line[at + draw(st.integers(0, 6)):]
        elif op == "insert":
            lines.insert(i, draw(st.text(max_size=30)))
    return "\n".join(lines)
