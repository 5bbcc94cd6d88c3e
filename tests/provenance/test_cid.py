"""Pure tests of content addressing: no daemon, no I/O.

Multi-chunk vectors below were produced by a real daemon (js-ipfs 0.66.1,
``add?cid-version=1&raw-leaves=true[&chunker=size-N]``); ``test_cid_daemon.py`` re-checks against a live one.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance.cid import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    MAX_LINKS,
    MH_SHA2_256,
    UNIXFS_FILE,
    ParsedCid,
    PBLink,
    b32decode,
    b32encode,
    b58decode,
    b58encode,
    canonical_cid,
    cid_for_bytes,
    cid_from_bytes,
    cid_to_bytes,
    decode_dag_pb,
    decode_unixfs,
    decode_varint,
    encode_dag_pb,
    encode_unixfs_file,
    encode_varint,
    iter_unixfs_blocks,
    parse_cid,
    raw_cid,
)
from provenance.errors import InvalidCIDError

HELLO = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
HELLO_V0 = "QmWATWQ7fVPP2EFGu71UkfnqhYXDYH566qy47CnJDgvs8u"  # same bytes as a dag-pb UnixFS file (CIDv0)
EMPTY = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


# --- known vectors --------------------------------------------------------------------------------------------------
def test_hello_world() -> None:
    assert cid_for_bytes(b"hello world\n") == HELLO
    assert raw_cid(b"hello world\n") == HELLO


def test_empty_input_is_the_raw_cid_of_nothing() -> None:
    assert cid_for_bytes(b"") == EMPTY  # what the daemon answers for an empty file


@pytest.mark.parametrize(
    ("data", "chunk_size", "expected"),
    [
        (bytes(262145), CHUNK_SIZE, "bafybeigllfqgfpqydppr6cmv56g7ax4wyhruzswvcefv6j5kj77nzttfki"),
        (pattern(1 << 20), CHUNK_SIZE, "bafybeiclphklsx6bfzfb5aezogjldbkeicyyvma6wrfnielfg7haplwahy"),
        (pattern(3 * (1 << 20) + 7), CHUNK_SIZE, "bafybeidinh3dauvwalhlask6qiyxhxhl3lgncj4lebrg53d2kj5434qy2a"),
        (bytes(46 << 20), CHUNK_SIZE, "bafybeid6w6343ludrvponavnrvu4m6sd6hk3tg3otuemrpy5qvwewagfo4"),  # 184 chunks
        (pattern(200), 1, "bafybeibwmmlzhclcsnk2akhwn6pjrze2zpa2t6wu4vr5klxjnagxerpyp4"),
        # 174*174+3 leaves: three layers of dag-pb nodes above the leaves
        (pattern(174 * 174 + 3), 1, "bafybeiecqd4uao7sxxf2vv3akornhsuzigocscwrxrhlagtzm5wuhluhqq"),
        (pattern(256 * (174 * 174 + 1)), 256, "bafybeidjgrerhnmfzav3qxaxkknv2r6m3uf4hfr5tza7tcpfmjksovizjq"),
    ],
    ids=["zeros-262145", "pattern-1MiB", "pattern-3MiB+7", "zeros-46MiB", "1B-chunks-200", "3-layers", "3-layers-256"],
)
def test_daemon_recorded_vectors(data: bytes, chunk_size: int, expected: str) -> None:
    assert cid_for_bytes(data, chunk_size=chunk_size) == expected


def test_chunk_boundary_switches_codec() -> None:
    assert parse_cid(cid_for_bytes(bytes(CHUNK_SIZE))).codec == CODEC_RAW
    assert parse_cid(cid_for_bytes(bytes(CHUNK_SIZE + 1))).codec == CODEC_DAG_PB


# --- parsing -------------------------------------------------------------------------------------------------------
def test_parse_hello() -> None:
    parsed = parse_cid(HELLO)
    assert parsed == ParsedCid(1, CODEC_RAW, MH_SHA2_256, hashlib.sha256(b"hello world\n").digest())
    assert str(parsed) == HELLO
    assert cid_from_bytes(cid_to_bytes(HELLO)) == HELLO
    assert cid_to_bytes(HELLO)[:4] == bytes([1, 0x55, 0x12, 32])


def test_other_spellings_fold_to_one_canonical_form() -> None:
    raw = cid_to_bytes(HELLO)
    assert canonical_cid(HELLO.upper()) == HELLO  # 'B' = base32 upper
    assert canonical_cid("z" + b58encode(raw)) == HELLO
    assert canonical_cid("f" + raw.hex()) == HELLO


def test_cid_v0() -> None:
    parsed = parse_cid(HELLO_V0)
    assert (parsed.version, parsed.codec, parsed.multihash_code) == (0, CODEC_DAG_PB, MH_SHA2_256)
    assert str(parsed) == HELLO_V0
    assert len(parsed.to_bytes()) == 34


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "b",
        "hello",
        "bafy",  # truncated
        HELLO[:-4],  # digest shorter than the multihash says
        HELLO + "aa",  # trailing bytes
        "m" + HELLO[1:],  # base64 multibase: not supported
        "b" + HELLO[1:].replace("a", "1"),  # '1' is not base32
        " " + HELLO,
        HELLO + "\n",
        "bAFKreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4",  # mixed case
        "Qm" + "0" * 44,  # '0' is not base58
        "z" + b58encode(bytes([2, 0x55, 0x12, 32]) + bytes(32)),  # CID version 2
        "b" + b32encode(bytes([1, 0x55, 0x12, 20]) + bytes(20)),  # sha2-256 must be 32 bytes
        "b" + b32encode(bytes([0x12, 32]) + bytes(32)),  # a v0 multihash dressed up as multibase v1
        "b" + b32encode(bytes([1, 0x80])),  # truncated varint
        "é" * 10,
        HELLO[:-1] + "5",  # same bytes, but nonzero padding bits: not a canonical spelling
    ],
)
def test_parse_rejects_garbage(bad: str) -> None:
    with pytest.raises(InvalidCIDError):
        parse_cid(bad)


@pytest.mark.parametrize("bad", [None, b"bafkrei", 42])
def test_parse_rejects_non_strings(bad: object) -> None:
    with pytest.raises(InvalidCIDError):
        parse_cid(bad)  # type: ignore[arg-type]


def test_cid_from_bytes_rejects_garbage() -> None:
    with pytest.raises(InvalidCIDError):
        cid_from_bytes(b"\x01\x55\x12\x20short")


# --- varint / base32 / base58 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, b"\x00"), (1, b"\x01"), (127, b"\x7f"), (128, b"\x80\x01"), (300, b"\xac\x02"), (16384, b"\x80\x80\x01")],
)
def test_varint_vectors(value: int, encoded: bytes) -> None:
    assert encode_varint(value) == encoded
    assert decode_varint(encoded) == (value, len(encoded))


@pytest.mark.parametrize("bad", [b"", b"\x80", b"\x80\x00", b"\xff" * 9 + b"\x01"])
def test_varint_rejects_truncated_nonminimal_overlong(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_varint(bad)


@pytest.mark.parametrize("bad", [-1, 1 << 63])
def test_varint_range(bad: int) -> None:
    with pytest.raises(ValueError):
        encode_varint(bad)


@given(st.integers(min_value=0, max_value=(1 << 63) - 1), st.binary(max_size=4))
def test_varint_round_trip(value: int, tail: bytes) -> None:
    encoded = encode_varint(value)
    assert decode_varint(encoded + tail) == (value, len(encoded))


@given(st.binary(max_size=80))
def test_base32_and_base58_round_trip(data: bytes) -> None:
    assert b32decode(b32encode(data)) == data
    assert b58decode(b58encode(data)) == data


def test_base32_rejects_impossible_length() -> None:
    with pytest.raises(ValueError):
        b32decode("a")


# --- protobuf (dag-pb / UnixFS) -------------------------------------------------------------------------------------
@given(
    st.lists(st.tuples(st.binary(min_size=1, max_size=40), st.text(max_size=8), st.integers(0, 1 << 40)), max_size=5),
    st.one_of(st.none(), st.binary(max_size=40)),
)
def test_dag_pb_round_trip(links: list[tuple[bytes, str, int]], data: bytes | None) -> None:
    pb_links = [PBLink(h, n, t) for h, n, t in links]
    assert decode_dag_pb(encode_dag_pb(pb_links, data)) == (pb_links, data)


@given(st.lists(st.integers(0, 1 << 40), max_size=200))
def test_unixfs_round_trip(sizes: list[int]) -> None:
    assert decode_unixfs(encode_unixfs_file(sum(sizes), sizes)) == (UNIXFS_FILE, sum(sizes), sizes)


def test_dag_pb_layout_is_canonical() -> None:
    """Links (field 2) before Data (field 1); an empty Name is written, as both daemons do."""
    block = encode_dag_pb([PBLink(b"\x01", "", 5)], b"\x08\x02")
    assert block == bytes.fromhex("1207 0a0101 1200 1805 0a020802")


# --- the DAG itself -------------------------------------------------------------------------------------------------
def _reassemble(blocks: dict[bytes, bytes], cid: bytes) -> tuple[bytes, int]:
    """Walk the DAG from ``cid``: (file bytes, depth); checks every link's Tsize and the UnixFS sizes on the way."""
    parsed = cid_from_bytes(cid)
    block = blocks[cid]
    assert parse_cid(parsed).digest == hashlib.sha256(block).digest()
    if cid[1] == CODEC_RAW:
        return block, 0
    links, data = decode_dag_pb(block)
    assert data is not None
    kind, filesize, sizes = decode_unixfs(data)
    parts, depths = [], set()
    for link, size in zip(links, sizes, strict=True):
        assert link.name == ""
        content, depth = _reassemble(blocks, link.hash)
        assert len(content) == size
        assert link.tsize == _tsize(blocks, link.hash)
        parts.append(content)
        depths.add(depth)
    assert kind == UNIXFS_FILE and filesize == sum(sizes)
    assert len(depths) == 1, "balanced layout: every leaf at the same depth"
    return b"".join(parts), depths.pop() + 1


def _tsize(blocks: dict[bytes, bytes], cid: bytes) -> int:
    if cid[1] == CODEC_RAW:
        return len(blocks[cid])
    links, _ = decode_dag_pb(blocks[cid])
    return len(blocks[cid]) + sum(_tsize(blocks, link.hash) for link in links)


@pytest.mark.parametrize(
    ("size", "chunk_size", "max_links", "depth"),
    [(0, 4, 3, 0), (4, 4, 3, 0), (5, 4, 3, 1), (12, 4, 3, 1), (13, 4, 3, 2), (36, 4, 3, 2), (37, 4, 3, 3)],
)
def test_layers(size: int, chunk_size: int, max_links: int, depth: int) -> None:
    data = pattern(size)
    blocks = list(iter_unixfs_blocks(data, chunk_size=chunk_size, max_links=max_links))
    root = blocks[-1][0]
    assert "b" + b32encode(root) == cid_for_bytes(data, chunk_size=chunk_size, max_links=max_links)
    content, got_depth = _reassemble(dict(blocks), root)
    assert content == data
    assert got_depth == depth


def test_real_parameters_two_layers() -> None:
    data = pattern(MAX_LINKS * CHUNK_SIZE + 1)  # one chunk more than a single node can link
    blocks = dict(iter_unixfs_blocks(data))
    root = cid_to_bytes(cid_for_bytes(data))
    links, _ = decode_dag_pb(blocks[root])
    assert len(links) == 2
    assert _reassemble(blocks, root) == (data, 2)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 8), st.integers(2, 5))
def test_property_dag_is_complete_and_consistent(data: bytes, chunk_size: int, max_links: int) -> None:
    cid = cid_for_bytes(data, chunk_size=chunk_size, max_links=max_links)
    parsed = parse_cid(cid)
    assert (parsed.version, parsed.multihash_code, len(parsed.digest)) == (1, MH_SHA2_256, 32)
    assert str(parsed) == cid and cid_from_bytes(parsed.to_bytes()) == cid
    blocks = dict(iter_unixfs_blocks(data, chunk_size=chunk_size, max_links=max_links))
    if len(data) <= chunk_size:
        assert parsed.codec == CODEC_RAW and parsed.digest == hashlib.sha256(data).digest()
        assert list(blocks.values()) == [data]
    else:
        assert parsed.codec == CODEC_DAG_PB
        assert _reassemble(blocks, parsed.to_bytes())[0] == data


@given(st.binary(max_size=3 * 1024))
def test_property_default_parameters(data: bytes) -> None:
    parsed = parse_cid(cid_for_bytes(data))
    assert parsed == ParsedCid(1, CODEC_RAW, MH_SHA2_256, hashlib.sha256(data).digest())
