"""The one contract every ``Index`` implementation runs: exactness against a numpy brute force, ties, removal,
persistence, corruption, 256-bit codes and concurrent writers and readers.

"Exact" is checked up to each index's ``recall_radius``: every stored code within it must be returned, in
(distance, id) order; for the flat index the radius is the full width, so its results equal the brute force.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from provenance.errors import InvalidInputError, ProvenanceError
from provenance.index import (
    DuplicateIdError,
    FlatBinaryIndex,
    Hit,
    Index,
    IndexCorruptError,
    IndexFileMissingError,
    InvalidCodeError,
    MultiHashBinaryIndex,
)
from provenance.index.codes import hamming_distances
from provenance.index.compact_mih import CompactMultiHashIndex

MakeIndex = Callable[[int], Index]

IMPLEMENTATIONS: dict[str, MakeIndex] = {
    "flat": FlatBinaryIndex,
    "multihash": MultiHashBinaryIndex,
    # small substrings: big buckets, so many candidates beyond the radius and full fetches (tie doubling paths)
    "multihash-b8": lambda bits: MultiHashBinaryIndex(bits, nhash=4, b=8, nflip=1),
    # default parameters: small collections stay in the exact-scan delta (min_delta 16384), bulk adds are merged
    "compact-mih": CompactMultiHashIndex,
    # tiny delta: every add batch past 100 codes merges into the CSR tables, removals tombstone base rows
    "compact-mih-merging": lambda bits: CompactMultiHashIndex(bits, min_delta=100),
    # small substrings (dense offsets tables, big buckets) and frequent merges
    "compact-mih-b8": lambda bits: CompactMultiHashIndex(bits, nhash=4, b=8, nflip=1, min_delta=64),
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def make_index(request: pytest.FixtureRequest) -> MakeIndex:
    return IMPLEMENTATIONS[request.param]


def random_codes(rng: np.random.Generator, n: int, bits: int = 64) -> np.ndarray:
    return rng.integers(0, 256, size=(n, bits // 8), dtype=np.uint8)


def flip(rng: np.random.Generator, code: np.ndarray, nbits: int) -> np.ndarray:
    out = code.copy()
    for b in rng.choice(len(code) * 8, size=nbits, replace=False):
        out[b // 8] ^= np.uint8(0x80 >> (b % 8))
    return out


def brute_force(ids: np.ndarray, codes: np.ndarray, query: np.ndarray, limit: int | None = None) -> list[Hit]:
    """Every stored code (or the first ``limit``) sorted by (distance, id): the reference the index must match."""
    d = hamming_distances(codes, query)
    order = np.lexsort((ids, d))[:limit]
    return [Hit(int(i), int(x)) for i, x in zip(ids[order].tolist(), d[order].tolist(), strict=True)]


def assert_matches(index: Index, got: list[list[Hit]], ids: np.ndarray, codes: np.ndarray, queries: np.ndarray,
                   k: int) -> None:
    assert len(got) == len(queries)
    radius = index.recall_radius
    for query, hits in zip(queries, got, strict=True):
        d = hamming_distances(codes, query)
        truth = brute_force(ids, codes, query, limit=k)
        true_distance = dict(zip(ids.tolist(), d.tolist(), strict=True))
        assert len(hits) <= k
        assert hits == sorted(hits, key=lambda h: (h.distance, h.id))
        assert all(true_distance[h.id] == h.distance for h in hits)
        within = [h for h in truth if h.distance <= radius]
        assert hits[: len(within)] == within
        if radius >= index.bits:
            assert hits == truth


def near_queries(rng: np.random.Generator, codes: np.ndarray, n: int, max_flips: int) -> np.ndarray:
    picks = rng.integers(0, len(codes), size=n)
    return np.stack([flip(rng, codes[i], int(rng.integers(0, max_flips + 1))) for i in picks])


# --- exactness ---------------------------------------------------------------------------------------------------
def test_random_codes_match_brute_force(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(1)
    index = make_index(64)
    codes = random_codes(rng, 3000)
    ids = rng.choice(10**12, size=len(codes), replace=False).astype(np.int64)  # sparse, unordered ids
    index.add(ids[:1000], codes[:1000])
    index.add(ids[1000:], codes[1000:])  # a second batch into a non-empty index
    assert len(index) == 3000
    queries = np.concatenate([near_queries(rng, codes, 30, index.recall_radius), random_codes(rng, 20)])
    for k in (1, 10, 40):
        assert_matches(index, index.search(queries, k), ids, codes, queries, k)


def test_ties_resolved_by_smallest_id(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(2)
    base = random_codes(rng, 1)[0]
    same = np.repeat(base[None, :], 100, axis=0)  # 100 codes at distance 0 of the query
    near = np.stack([flip(rng, base, 1) for _ in range(100)])  # and 100 at distance 1
    codes = np.concatenate([same, near])
    ids = rng.permutation(200).astype(np.int64) + 500
    index = make_index(64)
    index.add(ids, codes)
    for k in (5, 10, 100, 150):
        (hits,) = index.search(base[None, :], k)
        assert hits == brute_force(ids, codes, base)[:k]
    (hits,) = index.search(base[None, :], 10)
    assert [h.id for h in hits] == sorted(ids[:100].tolist())[:10] and {h.distance for h in hits} == {0}


def test_fewer_hits_than_k_when_the_index_is_small(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(3)
    base = random_codes(rng, 1)[0]
    codes = np.stack([flip(rng, base, n) for n in (0, 1, 2, 3, 4)])
    index = make_index(64)
    index.add(np.arange(5), codes)
    (hits,) = index.search(base[None, :], 10)
    assert [h.distance for h in hits] == [0, 1, 2, 3, 4] and [h.id for h in hits] == [0, 1, 2, 3, 4]


def test_empty_index(make_index: MakeIndex, tmp_path: Path) -> None:
    index = make_index(64)
    query = np.zeros((2, 8), dtype=np.uint8)
    assert len(index) == 0 and index.search(query, 5) == [[], []] and index.max_id() is None
    index.add(np.array([7]), np.ones((1, 8), dtype=np.uint8))
    assert index.remove(np.array([7])) == 1
    assert len(index) == 0 and index.search(query, 5) == [[], []]
    index.save(tmp_path / "empty.faissbin")
    again = Index.load(tmp_path / "empty.faissbin")
    assert len(again) == 0 and again.search(query, 1) == [[], []]


def test_256_bit_codes(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(4)
    index = make_index(256)
    assert index.bits == 256 and index.code_size == 32
    codes = random_codes(rng, 800, 256)
    ids = np.arange(800, dtype=np.int64) * 3
    index.add(ids, codes)
    queries = np.concatenate([near_queries(rng, codes, 20, index.recall_radius), random_codes(rng, 5, 256)])
    assert_matches(index, index.search(queries, 10), ids, codes, queries, 10)
    with pytest.raises(InvalidCodeError, match=r"shape \[n, 32\]"):
        index.search(random_codes(rng, 1, 64), 1)


# --- removal ----------------------------------------------------------------------------------------------------
def test_remove_never_returns_removed_ids(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(5)
    index = make_index(64)
    codes = random_codes(rng, 4000)
    ids = np.arange(4000, dtype=np.int64)
    index.add(ids, codes)
    gone = rng.choice(4000, size=1500, replace=False)  # past the multi-hash tombstone threshold: compacts
    assert index.remove(gone[:10]) == 10
    assert index.remove(gone) == 1490  # already-removed and unknown ids are not counted
    assert index.remove(np.array([10**9])) == 0
    keep = np.setdiff1d(ids, gone)
    assert len(index) == 2500 and np.array_equal(index.ids(), keep) and int(gone[0]) not in index
    queries = codes[gone[:30]]  # exact codes of removed entries
    assert_matches(index, index.search(queries, 10), keep, codes[keep], queries, 10)
    removed = set(gone.tolist())
    assert not any(h.id in removed for hits in index.search(queries, 50) for h in hits)


def test_few_removals_stay_hidden(make_index: MakeIndex) -> None:
    """Below the multi-hash compaction threshold removed codes are tombstones inside faiss; still never returned."""
    rng = np.random.default_rng(6)
    base = random_codes(rng, 1)[0]
    codes = np.repeat(base[None, :], 300, axis=0)  # all tied: whichever 36 faiss fetches first may all be removed
    index = make_index(64)
    index.add(np.arange(300), codes)
    index.remove(np.arange(0, 120))
    index.remove(np.arange(120, 200, 2))
    for k in (1, 15, 60):
        (hits,) = index.search(base[None, :], k)
        assert [h.id for h in hits] == (list(range(121, 200, 2)) + list(range(200, 300)))[:k]


def test_re_add_after_remove(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(7)
    index = make_index(64)
    codes = random_codes(rng, 50)
    index.add(np.arange(50), codes)
    index.remove(np.array([3]))
    index.add(np.array([3]), codes[10:11])  # the same id comes back with another code
    (hits,) = index.search(codes[3:4], 1)
    assert Hit(3, 0) not in hits  # the old code is gone (the multi-hash index may find nothing at all here)
    (hits,) = index.search(codes[10:11], 2)
    assert hits == [Hit(3, 0), Hit(10, 0)]
    assert len(index) == 50


def test_duplicate_ids_are_refused(make_index: MakeIndex) -> None:
    index = make_index(64)
    codes = np.zeros((3, 8), dtype=np.uint8)
    index.add(np.array([1, 2, 3]), codes)
    with pytest.raises(DuplicateIdError, match=r"already in the index: \[2\]"):
        index.add(np.array([9, 2]), codes[:2])
    with pytest.raises(DuplicateIdError, match="more than once"):
        index.add(np.array([5, 4, 5]), codes)
    assert len(index) == 3 and 9 not in index and 4 not in index


@pytest.mark.parametrize(("ids", "codes", "message"), [
    (np.array([1]), np.zeros((1, 8), dtype=np.int32), "must be uint8"),
    (np.array([1]), np.zeros((1, 4), dtype=np.uint8), r"shape \[n, 8\]"),
    (np.array([1]), np.zeros(8, dtype=np.uint8), r"shape \[n, 8\]"),
    (np.array([1, 2]), np.zeros((1, 8), dtype=np.uint8), "2 ids for 1 codes"),
    (np.array([-1]), np.zeros((1, 8), dtype=np.uint8), "non-negative"),
    (np.array([1.5]), np.zeros((1, 8), dtype=np.uint8), "must be integers"),
    (np.array([[1]]), np.zeros((1, 8), dtype=np.uint8), "1-D"),
])
def test_bad_input_is_refused(make_index: MakeIndex, ids: np.ndarray, codes: np.ndarray, message: str) -> None:
    index = make_index(64)
    with pytest.raises(InvalidCodeError, match=message) as info:
        index.add(ids, codes)
    assert isinstance(info.value, InvalidInputError) and len(index) == 0


def test_bad_k_is_refused(make_index: MakeIndex) -> None:
    index = make_index(64)
    for k in (0, -1, 1.5, True):
        with pytest.raises(InvalidCodeError, match="k must be a positive integer"):
            index.search(np.zeros((1, 8), dtype=np.uint8), k)  # type: ignore[arg-type]


# --- persistence ---------------------------------------------------------------------------------------------
def test_save_load_round_trip(make_index: MakeIndex, tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    index = make_index(64)
    codes = random_codes(rng, 2000)
    ids = np.arange(2000, dtype=np.int64) + 100
    index.add(ids, codes)
    index.remove(ids[:20])
    path = tmp_path / "sub" / "oscar.faissbin"
    index.save(path)
    sidecar = json.loads((tmp_path / "sub" / "oscar.faissbin.json").read_text())
    assert sidecar["format_version"] == 1 and sidecar["bits"] == 64 and sidecar["count"] == 1980
    assert sidecar["max_id"] == 2099 and sidecar["kind"] == index.kind and sidecar["params"] == index.params()
    assert len(sidecar["sha256"]) == 64 and sidecar["size"] == path.stat().st_size
    for loaded in (Index.load(path), type(index).load(path)):
        assert type(loaded) is type(index) and loaded.params() == index.params()
        assert len(loaded) == 1980 and np.array_equal(loaded.ids(), index.ids())
        queries = np.concatenate([codes[:40], near_queries(rng, codes, 20, 4)])
        assert loaded.search(queries, 10) == index.search(queries, 10)
    assert not list(tmp_path.glob("sub/.*.tmp"))  # temporary files renamed away


def test_loaded_index_keeps_working(make_index: MakeIndex, tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    index = make_index(64)
    codes = random_codes(rng, 100)
    index.add(np.arange(50), codes[:50])
    index.save(tmp_path / "i.faissbin")
    loaded = Index.load(tmp_path / "i.faissbin")
    with pytest.raises(DuplicateIdError):
        loaded.add(np.array([49]), codes[:1])
    loaded.add(np.arange(50, 100), codes[50:])
    loaded.remove(np.array([0]))
    assert_matches(loaded, loaded.search(codes[:20], 5), np.arange(1, 100), codes[1:], codes[:20], 5)


@pytest.fixture
def saved(make_index: MakeIndex, tmp_path: Path) -> Path:
    index = make_index(64)
    index.add(np.arange(300), random_codes(np.random.default_rng(10), 300))
    path = tmp_path / "oscar.faissbin"
    index.save(path)
    return path


def _rewrite_sidecar(path: Path, **changes: object) -> None:
    import hashlib

    side = path.with_name(path.name + ".json")
    obj = json.loads(side.read_text())
    data = path.read_bytes()
    obj.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    obj.update(changes)
    side.write_text(json.dumps(obj))


def test_truncated_file_is_corrupt(saved: Path) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(IndexCorruptError, match=r"oscar\.faissbin: \d+ bytes, but its sidecar says \d+ \(truncated"):
        Index.load(saved)


def test_altered_file_fails_sha256(saved: Path) -> None:
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"oscar\.faissbin: sha256 [0-9a-f]{64} does not match its sidecar"):
        Index.load(saved)


@pytest.mark.parametrize("cut", [0, 10, 200, -1])
def test_truncated_file_with_matching_sidecar_is_corrupt(saved: Path, cut: int) -> None:
    """Even if the sidecar was rewritten for the damaged bytes, faiss's own parse failure is reported, not raised."""
    data = saved.read_bytes()
    saved.write_bytes(data[:cut] if cut >= 0 else data[: len(data) + cut])
    _rewrite_sidecar(saved)
    with pytest.raises(IndexCorruptError, match=r"oscar\.faissbin: (faiss )?cannot read the index"):
        Index.load(saved)


def test_sidecar_problems(saved: Path) -> None:
    side = saved.with_name(saved.name + ".json")
    _rewrite_sidecar(saved, count=7)
    with pytest.raises(IndexCorruptError, match=r"oscar\.faissbin: holds 300 codes, but its sidecar says 7"):
        Index.load(saved)
    _rewrite_sidecar(saved, kind="hnsw")
    with pytest.raises(IndexCorruptError, match="unknown index kind 'hnsw'"):
        Index.load(saved)
    _rewrite_sidecar(saved, format_version=99)
    with pytest.raises(IndexCorruptError, match="format version 99 is not supported"):
        Index.load(saved)
    side.write_text("{not json")
    with pytest.raises(IndexCorruptError, match=r"oscar\.faissbin\.json: unreadable sidecar"):
        Index.load(saved)
    side.unlink()
    with pytest.raises(IndexCorruptError, match="sidecar oscar.faissbin.json is missing"):
        Index.load(saved)
    saved.unlink()
    with pytest.raises(IndexFileMissingError, match="no index file at"):
        Index.load(saved)


def test_load_as_the_wrong_class(saved: Path) -> None:
    kind = json.loads(saved.with_name(saved.name + ".json").read_text())["kind"]
    other = MultiHashBinaryIndex if kind == "flat" else FlatBinaryIndex
    with pytest.raises(IndexCorruptError, match=f"holds a '{kind}' index, not a {other.__name__}"):
        other.load(saved)


def test_index_errors_are_provenance_errors() -> None:
    assert issubclass(IndexCorruptError, ProvenanceError) and issubclass(DuplicateIdError, ProvenanceError)


# --- concurrency -------------------------------------------------------------------------------------------------
def test_concurrent_add_remove_and_search(make_index: MakeIndex) -> None:
    rng = np.random.default_rng(11)
    n, batch = 6000, 100
    codes = random_codes(rng, n)
    index = make_index(64)
    index.add(np.arange(1000), codes[:1000])
    committed = [1000]  # ids below this are added (and ids % 7 == 3 below 1000 get removed once)
    errors: list[BaseException] = []
    done = threading.Event()

    def writer(start: int, stop: int) -> None:
        try:
            for lo in range(start, stop, batch):
                index.add(np.arange(lo, lo + batch), codes[lo : lo + batch])
                committed[0] = max(committed[0], lo + batch)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)

    def remover() -> None:
        try:
            for lo in range(0, 1000, 50):
                index.remove(np.arange(lo, lo + 50)[np.arange(lo, lo + 50) % 7 == 3])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader(seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not done.is_set():
                i = int(r.integers(0, 1000))
                if i % 7 == 3:
                    continue
                (hits,) = index.search(codes[i : i + 1], 3)
                assert hits and hits[0] == Hit(i, 0), (i, hits)  # present before the search began: always found
                assert hits == sorted(hits, key=lambda h: (h.distance, h.id))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
    writers = [threading.Thread(target=writer, args=(1000 + w * 2500, 3500 + w * 2500)) for w in range(2)]
    writers.append(threading.Thread(target=remover))
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    done.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, errors[:3]
    live = np.array([i for i in range(n) if not (i < 1000 and i % 7 == 3)], dtype=np.int64)
    assert np.array_equal(index.ids(), live)
    queries = near_queries(rng, codes, 30, 4)
    assert_matches(index, index.search(queries, 10), live, codes[live], queries, 10)
