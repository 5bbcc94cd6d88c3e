"""The small parts under the index: code conversions, the id set, the readers-writer lock and the factory."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from provenance.index import (
    FLAT_MAX_CODES,
    CompactMultiHashIndex,
    FlatBinaryIndex,
    InvalidCodeError,
    MultiHashBinaryIndex,
    code_from_hex,
    code_from_int,
    code_to_hex,
    code_to_int,
    codes_from_hex,
    create_index,
)
from provenance.index.codes import check_bits, hamming_distances
from provenance.index.idset import IdSet
from provenance.index.rwlock import ReadWriteLock


# --- codes -------------------------------------------------------------------------------------------------------
def test_first_bit_is_most_significant() -> None:
    row = code_from_int(0x8000_0000_0000_0000, 64)
    assert row.dtype == np.uint8 and row.tolist() == [0x80, 0, 0, 0, 0, 0, 0, 0]
    assert code_from_hex("8000000000000000").tolist() == row.tolist()
    assert code_from_int(1, 64).tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    assert code_to_hex(row) == "8000000000000000" and code_to_int(row) == 1 << 63


def test_round_trips() -> None:
    rng = np.random.default_rng(0)
    for bits in (8, 64, 256):
        for _ in range(20):
            value = int.from_bytes(rng.bytes(bits // 8), "big")
            row = code_from_int(value, bits)
            assert code_to_int(row) == value
            assert code_to_hex(row) == f"{value:0{bits // 4}x}"
            assert code_from_hex(f"{value:0{bits // 4}X}", bits).tolist() == row.tolist()  # upper case too
    assert codes_from_hex(["00" * 8, "ff" * 8], 64).shape == (2, 8)
    assert codes_from_hex([], 256).shape == (0, 32)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: code_from_int(1 << 64, 64), r"integer in \[0, 2\*\*64\)"),
    (lambda: code_from_int(-1, 64), r"integer in \[0, 2\*\*64\)"),
    (lambda: code_from_hex("abc", 64), "a 64-bit code has 16 hex digits, got 3"),
    (lambda: code_from_hex("zz" * 8, 64), "not hexadecimal"),
    (lambda: code_from_hex("0 " * 8, 64), "not hexadecimal"),
    (lambda: code_from_hex("abc"), "positive, even number of hex digits"),
    (lambda: code_from_hex(b"00" * 8), "must be a hex string"),  # type: ignore[arg-type]
    (lambda: check_bits(60), "multiple of 8"),
    (lambda: check_bits(0), "multiple of 8"),
])
def test_bad_codes(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidCodeError, match=message):
        call()


def test_hamming_reference() -> None:
    codes = np.array([[0, 0], [0xFF, 0], [0x0F, 0xF0]], dtype=np.uint8)
    assert hamming_distances(codes, np.array([0, 0], dtype=np.uint8)).tolist() == [0, 8, 8]


# --- id set ------------------------------------------------------------------------------------------------------
def test_idset_matches_a_python_set() -> None:
    rng = np.random.default_rng(1)
    ids, ref = IdSet(), set()
    ids.add(np.arange(0, 20000, 2, dtype=np.int64))  # sorted bulk load fast path
    ref.update(range(0, 20000, 2))
    for step in range(300):
        batch = np.unique(rng.integers(0, 30000, size=int(rng.integers(1, 60 if step % 50 else 6000))))
        if step % 2:
            new = batch[~ids.contains(batch)]
            ids.add(new)
            ref.update(new.tolist())
        else:
            old = batch[ids.contains(batch)]
            ids.remove(old)
            ref.difference_update(old.tolist())
        assert len(ids) == len(ref)
        probe = rng.integers(0, 30000, size=50)
        assert ids.contains(probe).tolist() == [int(p) in ref for p in probe]
        assert all((int(p) in ids) == (int(p) in ref) for p in probe[:5])
        assert ids.max() == max(ref, default=None)
    assert ids.to_array().tolist() == sorted(ref)


def test_idset_bulk_changes_merge_into_the_sorted_array() -> None:
    """Batches past the fold size are merged into the sorted array (unsorted input, pending small changes)."""
    rng = np.random.default_rng(2)
    ids = IdSet()
    ids.add(np.array([7, 3], dtype=np.int64))  # small changes pending in the Python sets
    ids.add(np.arange(100_000, 90_000, -2, dtype=np.int64))  # 5000 ids, descending
    ids.remove(np.array([3], dtype=np.int64))
    big = rng.permutation(np.arange(1, 20_000, 2, dtype=np.int64))  # 10000 odd ids, shuffled
    big = big[big != 7]
    ids.add(big)
    ref = {7} | set(range(90_002, 100_001, 2)) | set(big.tolist())
    assert ids.to_array().tolist() == sorted(ref) and len(ids) == len(ref)
    gone = rng.permutation(np.array(sorted(ref), dtype=np.int64))[:6000]
    ids.remove(gone)
    ref -= set(gone.tolist())
    assert ids.to_array().tolist() == sorted(ref) and ids.max() == max(ref)
    assert ids.contains(gone).sum() == 0 and ids.contains(np.array(sorted(ref))).all()


def test_idset_max_skips_removed() -> None:
    ids = IdSet()
    ids.add(np.array([1, 5, 9], dtype=np.int64))
    ids.remove(np.array([9, 5], dtype=np.int64))
    assert ids.max() == 1 and len(ids) == 1
    ids.remove(np.array([1], dtype=np.int64))
    assert ids.max() is None and ids.to_array().tolist() == []


# --- readers-writer lock -------------------------------------------------------------------------------------
def test_readers_share_writers_exclude() -> None:
    lock = ReadWriteLock()
    inside: list[str] = []
    both_read = threading.Barrier(2, timeout=5)

    def read() -> None:
        with lock.read():
            inside.append("r")
            both_read.wait()  # two readers are inside together, or this times out
            time.sleep(0.05)
            inside.append("r-")

    def write() -> None:
        with lock.write():
            inside.append("w")
            assert inside.count("r") == inside.count("r-")  # no reader inside
            inside.append("w-")

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    time.sleep(0.01)
    writer = threading.Thread(target=write)
    writer.start()
    for t in [*readers, writer]:
        t.join(5)
    assert inside[-2:] == ["w", "w-"]


def test_waiting_writer_blocks_new_readers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    release = threading.Event()

    def first_reader() -> None:
        with lock.read():
            release.wait(5)

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    t1 = threading.Thread(target=first_reader)
    t1.start()
    time.sleep(0.02)
    t2 = threading.Thread(target=writer)
    t2.start()
    time.sleep(0.02)
    t3 = threading.Thread(target=late_reader)
    t3.start()
    time.sleep(0.02)
    release.set()
    for t in (t1, t2, t3):
        t.join(5)
    assert order == ["writer", "late reader"]


# --- factory -----------------------------------------------------------------------------------------------------
def test_create_index_picks_by_size() -> None:
    assert isinstance(create_index(64, 0), FlatBinaryIndex)
    assert isinstance(create_index(64, FLAT_MAX_CODES), FlatBinaryIndex)
    big = create_index(64, FLAT_MAX_CODES + 1)
    assert isinstance(big, CompactMultiHashIndex) and big.recall_radius == 11 and big.bits == 64  # covers pHash's 10
    assert big.params() == {"nhash": 3, "b": 21, "nflip": 3}
    pdq = create_index(256, FLAT_MAX_CODES * 10)
    assert isinstance(pdq, CompactMultiHashIndex) and pdq.recall_radius == 31
    with pytest.raises(InvalidCodeError, match="expected_size"):
        create_index(64, -1)
    with pytest.raises(InvalidCodeError, match="multiple of 8"):
        create_index(63, 10)


def test_multihash_parameters_are_checked() -> None:
    with pytest.raises(InvalidCodeError, match="nhash \\* b <= bits"):
        MultiHashBinaryIndex(64, nhash=4, b=21)
    with pytest.raises(InvalidCodeError, match="nflip must be a non-negative integer"):
        MultiHashBinaryIndex(64, nflip=-1)
    assert MultiHashBinaryIndex(64, nhash=4, b=16, nflip=1).recall_radius == 7
