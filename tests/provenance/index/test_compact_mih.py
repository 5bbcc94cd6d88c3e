"""What the contract cannot see of ``CompactMultiHashIndex``: the radius boundary, the candidate rule beyond it, the
delta and its merges, tombstones across a merge (also one running in another thread), and its own file layout."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from provenance.index import Hit, Index, IndexCorruptError, InvalidCodeError
from provenance.index.codes import code_from_int, hamming_distances
from provenance.index.compact_mih import _HEADER, CompactMultiHashIndex, _substring_keys

BITS = 64


def random_codes(rng: np.random.Generator, n: int, bits: int = BITS) -> np.ndarray:
    return rng.integers(0, 256, size=(n, bits // 8), dtype=np.uint8)


def with_flips(code: np.ndarray, positions: list[int]) -> np.ndarray:
    """``code`` with the given bit positions (0 = most significant) flipped."""
    out = code.copy()
    for p in positions:
        out[p // 8] ^= np.uint8(0x80 >> (p % 8))
    return out


def reference(index: CompactMultiHashIndex, ids: np.ndarray, codes: np.ndarray, query: np.ndarray,
              k: int) -> list[Hit]:
    """The documented result, by brute force: among stored codes that share a table bucket within ``nflip`` flips of
    the query (one substring within nflip bits), the k best by (distance, id)."""
    p = index.params()
    q = query[None, :]
    candidate = np.zeros(len(codes), dtype=bool)
    for t in range(p["nhash"]):
        diff = _substring_keys(codes, t, p["b"]) ^ _substring_keys(q, t, p["b"])[0]
        candidate |= np.bitwise_count(diff) <= p["nflip"]
    d = hamming_distances(codes, query)
    d, cand_ids = d[candidate], ids[candidate]
    order = np.lexsort((cand_ids, d))[:k]
    return [Hit(int(i), int(x)) for i, x in zip(cand_ids[order].tolist(), d[order].tolist(), strict=True)]


# --- the radius --------------------------------------------------------------------------------------------------
def test_radius_is_tight_for_the_default_parameters() -> None:
    """3 substrings of 21 bits, 2 flips: 8 bits spread 3/3/2 (the worst case) are found; 9 spread 3/3/3 are not,
    even though they are the only stored codes near the query; a flip of the unused last bit costs nothing."""
    rng = np.random.default_rng(0)
    index = CompactMultiHashIndex(BITS, min_delta=10)
    assert index.params() == {"nhash": 3, "b": 21, "nflip": 2} and index.recall_radius == 8
    query = random_codes(rng, 1)[0]
    at_radius = [with_flips(query, list(rng.choice(21, 3, replace=False)) + list(21 + rng.choice(21, 3, replace=False))
                            + list(42 + rng.choice(21, 2, replace=False))) for _ in range(20)]
    beyond = [with_flips(query, list(rng.choice(21, 3, replace=False)) + list(21 + rng.choice(21, 3, replace=False))
                         + list(42 + rng.choice(21, 3, replace=False))) for _ in range(20)]
    spare_bit = [with_flips(query, [0, 1, 2, 21, 22, 23, 42, 43, 63])]  # 9 bits, but only 8 inside the substrings
    codes = np.stack(at_radius + beyond + spare_bit)
    ids = np.arange(len(codes), dtype=np.int64)
    assert set(hamming_distances(codes, query).tolist()) == {8, 9}
    far = random_codes(rng, 5000)  # filler, so the codes above sit in the CSR tables with many others
    index.add(np.arange(100, 5100), far)
    index.add(ids, codes)
    index.merge()
    assert index._delta.n == 0 and not index._parts and index._base.n == 5000 + len(codes)
    (hits,) = index.search(query[None, :], 100)
    found = {h.id: h.distance for h in hits}
    assert all(found.get(i) == 8 for i in range(20))  # every code at the radius
    assert not any(i in found for i in range(20, 40))  # 3/3/3 at 9 bits: in no probed bucket
    assert found.get(40) == 9  # the spare bit: still a candidate (8 flips inside the substrings)


@pytest.mark.parametrize(("params", "radius"), [
    ({"nhash": 4, "b": 16, "nflip": 1}, 7),
    ({"nhash": 2, "b": 32, "nflip": 3}, 7),
    ({"nhash": 8, "b": 8, "nflip": 0}, 7),
])
def test_every_code_within_the_radius_is_found(params: dict[str, int], radius: int) -> None:
    rng = np.random.default_rng(1)
    index = CompactMultiHashIndex(BITS, min_delta=50, **params)
    assert index.recall_radius == radius
    base = random_codes(rng, 40)
    near = np.stack([with_flips(base[i % 40], list(rng.choice(BITS, radius - (i % 2), replace=False)))
                     for i in range(400)])
    codes = np.concatenate([base, near, random_codes(rng, 2000)])
    ids = rng.permutation(len(codes)).astype(np.int64) * 7
    index.add(ids[:1500], codes[:1500])
    index.add(ids[1500:], codes[1500:])
    for q in range(40):
        (hits,) = index.search(base[q : q + 1], 50)
        d = hamming_distances(codes, base[q])
        within = sorted((int(x), int(i)) for x, i in zip(d, ids, strict=True) if x <= radius)[:50]
        assert [(h.distance, h.id) for h in hits[: len(within)]] == within


# --- results do not depend on where a code sits ---------------------------------------------------------------
def test_results_follow_the_candidate_rule_in_every_layout(tmp_path: Path) -> None:
    """Delta only, flat parts, merged tables, tombstones, a save/load: always the reference's answer, beyond the
    radius too, so merges and restarts never change what a lookup returns."""
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 6000)
    ids = rng.choice(10**9, size=len(codes), replace=False).astype(np.int64)
    queries = np.concatenate([np.stack([with_flips(codes[i], list(rng.choice(BITS, int(rng.integers(0, 12)),
                                                                                    replace=False)))
                                        for i in rng.integers(0, len(codes), 40)]),
                              random_codes(rng, 20)])
    layouts = {
        "delta": CompactMultiHashIndex(BITS),  # 6000 < min_delta: never merged
        "merged": CompactMultiHashIndex(BITS, min_delta=100),
        "dense-b8": CompactMultiHashIndex(BITS, nhash=4, b=8, nflip=1, min_delta=100),
        "delta-b8": CompactMultiHashIndex(BITS, nhash=4, b=8, nflip=1),
    }
    gone = ids[rng.choice(len(ids), 300, replace=False)]
    keep = ~np.isin(ids, gone)
    for name, index in layouts.items():
        for lo in range(0, len(codes), 700):
            index.add(ids[lo : lo + 700], codes[lo : lo + 700])
        index.remove(gone)
        assert len(index) == int(keep.sum()), name
        if name.startswith("merged"):
            assert index._base.n_dead == 300 and index._base.n > 5000
        path = tmp_path / f"{name}.bin"
        index.save(path)
        loaded = Index.load(path)
        assert isinstance(loaded, CompactMultiHashIndex) and loaded._delta.n == 0
        for k in (1, 10, 30):
            got = index.search(queries, k)
            assert loaded.search(queries, k) == got, name
            for q, hits in zip(queries, got, strict=True):
                assert hits == reference(index, ids[keep], codes[keep], q, k), name


def test_256_bit_codes_use_sparse_tables() -> None:
    rng = np.random.default_rng(3)
    index = CompactMultiHashIndex(256, min_delta=100)
    assert index.params() == {"nhash": 8, "b": 32, "nflip": 3} and index.recall_radius == 31
    codes = random_codes(rng, 1500, 256)
    ids = np.arange(1500, dtype=np.int64)
    index.add(ids, codes)
    assert index._base.n == 1500 and index._base.offsets is None and index._base.keys is not None
    for q in range(5):
        query = with_flips(codes[q], list(rng.choice(256, 31, replace=False)))
        (hits,) = index.search(query[None, :], 5)
        assert hits == reference(index, ids, codes, query, 5) and hits[0] == Hit(q, 31)


# --- delta and merges ------------------------------------------------------------------------------------------
def test_delta_merges_past_its_threshold() -> None:
    rng = np.random.default_rng(4)
    index = CompactMultiHashIndex(BITS, min_delta=100, delta_fraction=8)
    codes = random_codes(rng, 2000)
    index.add(np.arange(0, 1000), codes[:1000])  # a batch past the threshold: merged at once
    assert index._base.n == 1000 and index._delta.n == 0
    for i in range(1000, 1250):  # one code at a time, as ingest adds them
        index.add(np.array([i]), codes[i : i + 1])
        assert index._delta.n <= max(100, len(index) // 8)
    assert index._base.n + index._delta.n == 1250 and index._base.n > 1000
    assert not index._parts and len(index) == 1250 and 1249 in index and index.max_id() == 1249
    assert np.array_equal(index.ids(), np.arange(1250))
    for q in (0, 999, 1000, 1249):
        (hits,) = index.search(codes[q : q + 1], 1)
        assert hits == [Hit(q, 0)]
    assert index.merge() and index._delta.n == 0 and index._base.n == 1250
    assert not index.merge()  # nothing left to fold


def test_tombstones_are_hidden_then_purged_by_a_merge() -> None:
    rng = np.random.default_rng(5)
    index = CompactMultiHashIndex(BITS, min_delta=100)
    codes = np.repeat(random_codes(rng, 1), 3000, axis=0)  # all tied: removed ids must not take result slots
    index.add(np.arange(3000), codes)
    index.remove(np.arange(0, 1000, 2))  # 500 tombstones: below max(1024, n/64), kept as tombstones
    assert index._base.n == 3000 and index._base.n_dead == 500
    (hits,) = index.search(codes[:1], 5)
    assert [h.id for h in hits] == [1, 3, 5, 7, 9]
    assert index.max_id() == 2999 and 0 not in index and 1 in index
    index.remove(np.arange(2000, 3000))  # 1500 tombstones: past the threshold, the merge purges them
    assert index._base.n == 1500 and index._base.n_dead == 0 and len(index) == 1500
    assert index.max_id() == 1999 and np.array_equal(index.ids(), np.concatenate([np.arange(1, 1000, 2),
                                                                                   np.arange(1000, 2000)]))
    (hits,) = index.search(codes[:1], 3)
    assert [h.id for h in hits] == [1, 3, 5]
    index.add(np.array([0, 2999]), codes[:2])  # removed ids come back (into the delta)
    (hits,) = index.search(codes[:1], 2)
    assert [h.id for h in hits] == [0, 1] and len(index) == 1502 and index.max_id() == 2999


def test_changes_during_a_merge_survive_it() -> None:
    """The merge builds outside the lock: searches, adds and removals go on, and the swap keeps what they did."""
    rng = np.random.default_rng(6)
    index = CompactMultiHashIndex(BITS, min_delta=100)
    codes = random_codes(rng, 3000)
    index.add(np.arange(1000), codes[:1000])
    index.add(np.arange(1000, 1090), codes[1000:1090])  # in the delta
    started, release = threading.Event(), threading.Event()
    build = index._build

    def slow_build(ids: np.ndarray, c: np.ndarray):  # type: ignore[no-untyped-def]
        started.set()
        assert release.wait(10)
        return build(ids, c)

    index._build = slow_build  # type: ignore[method-assign]
    merger = threading.Thread(target=index.merge)
    merger.start()
    assert started.wait(10)
    assert index._parts and index._delta.n == 0  # the delta was frozen into a flat part, still searched
    assert index.search(codes[1050:1051], 1) == [[Hit(1050, 0)]]
    index.add(np.arange(2000, 2050), codes[2000:2050])  # lands in the new delta
    assert index.remove(np.array([5, 1050, 2001])) == 3  # base row, frozen part row, delta row
    assert index.remove(np.array([7])) == 1
    index.add(np.array([7]), codes[2500:2501])  # removed and re-added while merging: the new code wins
    assert 5 not in index and 7 in index and len(index) == 1090 + 50 - 3
    release.set()
    merger.join(10)
    index._build = build  # type: ignore[method-assign]
    assert not index._parts and index._base.n == 1090 and index._base.n_dead == 3  # 5, 7 and 1050 tombstoned
    assert len(index) == 1090 + 50 - 3
    for removed in (5, 1050, 2001):
        assert removed not in index
        assert all(h.id != removed for h in index.search(codes[removed : removed + 1], 5)[0])
    assert all(h.id != 7 for h in index.search(codes[7:8], 5)[0])  # its old code is gone...
    assert index.search(codes[2500:2501], 1) == [[Hit(7, 0)]]  # ...its new one is found
    assert index.search(codes[2049:2050], 1) == [[Hit(2049, 0)]]


def test_concurrent_searches_while_merging_in_another_thread() -> None:
    rng = np.random.default_rng(7)
    index = CompactMultiHashIndex(BITS, min_delta=200, delta_fraction=8)
    codes = random_codes(rng, 20000)
    index.add(np.arange(2000), codes[:2000])
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        r = np.random.default_rng(8)
        try:
            while not done.is_set():
                i = int(r.integers(0, 2000))
                assert index.search(codes[i : i + 1], 1) == [[Hit(i, 0)]]
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    for lo in range(2000, 20000, 150):  # many merges, each run by this writer while the readers search
        index.add(np.arange(lo, lo + 150), codes[lo : lo + 150])
    done.set()
    for t in readers:
        t.join(30)
    assert not errors, errors[:3]
    assert len(index) == 20000 and index._base.n > 10000


# --- persistence -----------------------------------------------------------------------------------------------
def test_file_layout(tmp_path: Path) -> None:
    index = CompactMultiHashIndex(BITS, min_delta=10)
    codes = np.stack([code_from_int(v, BITS) for v in (1, 2, 3, 4)])
    index.add(np.array([40, 10, 30, 20]), codes)
    index.remove(np.array([30]))
    path = tmp_path / "c.bin"
    index.save(path)
    data = path.read_bytes()
    assert len(data) == _HEADER.size + 3 * (8 + 8)
    magic, version, bits, nhash, b, nflip, _, count = _HEADER.unpack(data[: _HEADER.size])
    assert (magic[:6], version, bits, nhash, b, nflip, count) == (b"PVCMIH", 1, 64, 3, 21, 2, 3)
    body = data[_HEADER.size :]
    assert np.frombuffer(body[:24], "<i8").tolist() == [10, 20, 40]  # live ids, sorted; no tombstone
    assert [int.from_bytes(body[24 + 8 * i : 32 + 8 * i], "big") for i in range(3)] == [2, 4, 1]
    sidecar = json.loads(path.with_name("c.bin.json").read_text())
    assert sidecar["kind"] == "compact-multihash" and sidecar["count"] == 3 and sidecar["max_id"] == 40


def _damage(path: Path, edit) -> None:  # type: ignore[no-untyped-def]
    """Apply ``edit`` to the file's bytes and re-seal the sidecar, as if the damage came from a buggy writer."""
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))
    side = path.with_name(path.name + ".json")
    obj = json.loads(side.read_text())
    obj.update(sha256=hashlib.sha256(bytes(data)).hexdigest(), size=len(data))
    side.write_text(json.dumps(obj))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.__setitem__(0, ord("X")), "bad magic"),
    (lambda d: d.__setitem__(slice(8, 12), (2).to_bytes(4, "little")), "file version 2 is not supported"),
    (lambda d: d.__setitem__(slice(16, 20), (4).to_bytes(4, "little")), r"header \(bits=64, nhash=4"),
    (lambda d: d.__setitem__(slice(32, 40), (999).to_bytes(8, "little")), "do not hold the 999 codes"),
    (lambda d: d.__setitem__(slice(40, 48), (25).to_bytes(8, "little")), "negative, repeated or out of order"),
    (lambda d: d.__setitem__(slice(40, 48), (2**64 - 1).to_bytes(8, "little")), "negative, repeated or out of"),
    (lambda d: d.__setitem__(slice(40 + 8 * 9, 48 + 8 * 9), (10**6).to_bytes(8, "little")), "largest id"),
    (lambda d: d.extend(b"\0" * 16), "do not hold the 10 codes"),
])
def test_damaged_files_are_refused(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    index = CompactMultiHashIndex(BITS)
    index.add(np.arange(10) * 10, random_codes(np.random.default_rng(9), 10))
    path = tmp_path / "c.bin"
    index.save(path)
    _damage(path, edit)
    with pytest.raises(IndexCorruptError, match=message):
        Index.load(path)


def test_unknown_sidecar_parameters_are_refused(tmp_path: Path) -> None:
    index = CompactMultiHashIndex(BITS)
    index.add(np.arange(3), random_codes(np.random.default_rng(10), 3))
    path = tmp_path / "c.bin"
    index.save(path)
    side = path.with_name("c.bin.json")
    for params, message in (({"nhash": 3, "b": 21, "nflip": 2, "zz": 1}, "unknown compact multi-hash parameters"),
                            ({"nhash": 3, "b": 40, "nflip": 2}, "b <= 32")):
        obj = json.loads(side.read_text())
        obj["params"] = params
        side.write_text(json.dumps(obj))
        with pytest.raises(IndexCorruptError, match=message):
            Index.load(path)


# --- parameters ------------------------------------------------------------------------------------------------
def test_parameters_are_checked() -> None:
    with pytest.raises(InvalidCodeError, match=r"nhash \* b <= bits, b <= 32"):
        CompactMultiHashIndex(BITS, nhash=1, b=40)
    with pytest.raises(InvalidCodeError, match=r"nhash \* b <= bits"):
        CompactMultiHashIndex(BITS, nhash=4, b=21)
    with pytest.raises(InvalidCodeError, match="nflip must be a non-negative integer"):
        CompactMultiHashIndex(BITS, nflip=-1)
    with pytest.raises(InvalidCodeError, match="min_delta must be a positive integer"):
        CompactMultiHashIndex(BITS, min_delta=0)
    assert CompactMultiHashIndex(8).params() == {"nhash": 2, "b": 4, "nflip": 1}
    assert CompactMultiHashIndex(BITS, nhash=4, b=16, nflip=1).recall_radius == 7
