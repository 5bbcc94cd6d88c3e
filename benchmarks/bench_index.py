"""Hash-index benchmark: single-query search latency, build time, memory and recall of the index structures.

    .venv/bin/python benchmarks/bench_index.py [--sizes 1e3,1e5,1e6,1e7] [--approx-sizes 1e6,1e7]
                                               [--compact-sizes 1e6,1e7] [--delta-check] [--ivf-sizes 1e6]
                                               [--huge] [--queries 200] [--k 10] [--threads 2]

For each size N, N random 64-bit codes (``--bits 256``: the global-id channel's width; ids 0..N-1) go into
``FlatBinaryIndex`` (exact), at the approximate sizes ``MultiHashBinaryIndex`` (faiss), and at the compact sizes
``CompactMultiHashIndex`` (the same multi-index hashing in numpy CSR tables; pure numpy, so it searches on one
thread whatever ``--threads`` says); at
``--ivf-sizes`` a raw faiss ``IndexBinaryIVF`` is measured for comparison (it is not offered by
``provenance.index``: see the multihash module for why). Two query sets of ``--queries`` each:

* near-duplicate: a stored code with 0..8 random bits flipped (what lookup sees: a re-encoded or edited copy);
* random: uniform codes (their 10 nearest neighbours lie ~15-20 bits away, far outside any lookup threshold).

Printed per index: build (add) time, resident-memory growth, p50/p99 latency of one query at k=10 through our
Python layer, recall@10 against the flat results, and for near-duplicate queries how often the source code was
returned. ``--huge`` adds 100M codes (flat; the compact index if its memory, extrapolated from the largest smaller
run, fits; faiss multi-hash only if its build, extrapolated from 10M, would take under ``--max-build-s`` and fit in
memory). ``--delta-check`` then fills the compact index's delta (exact-scan segment) to just below its merge
threshold, times the near-duplicate queries again and times the merge that folds it into the tables. faiss runs
with ``--threads`` OpenMP threads (2 by default: this machine's cores, shared with other work, so the load average
is printed too). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from provenance.index import FlatBinaryIndex, Index, MultiHashBinaryIndex  # noqa: E402
from provenance.index.compact_mih import CompactMultiHashIndex  # noqa: E402

BITS = 64


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()


def heap_bytes() -> int:
    """Bytes the process holds from malloc (glibc mallinfo2: in-use arena + mmapped blocks); faiss, numpy and
    Python all allocate through it. Unlike RSS this does not hide an index in memory freed by an earlier one.
    Falls back to RSS where mallinfo2 is missing."""
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        return int(info.uordblks + info.hblkhd)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def parse_sizes(text: str) -> list[int]:
    return [n for n in (int(float(x)) for x in text.split(",") if x.strip()) if n > 0]  # "0": none


def human(n: int) -> str:
    for unit, div in (("M", 1_000_000), ("K", 1_000)):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


@dataclass
class Run:
    name: str
    build_s: float
    mem_mb: float
    near: tuple[float, float, float]  # p50, p99 in ms; CPU ms per query (all threads)
    rand: tuple[float, float, float]
    near_ids: list[list[int]]
    rand_ids: list[list[int]]
    note: str = ""


REPEAT = 1  # set from --repeat


def time_queries(search: Callable[[np.ndarray], list[int]],
                 queries: np.ndarray) -> tuple[tuple[float, float, float], list[list[int]]]:
    """p50/p99 over the queries of one query's time: its fastest over REPEAT passes over the whole set.

    Other jobs share the two cores and stall a process for tens of ms at a time, in bursts; separate passes (not
    back-to-back repeats) let a query dodge a burst, so the figure is closer to what the index itself costs.
    Also returned: the process CPU time per query (every thread, mean over all passes), which waiting does not
    inflate (OpenMP spin-waiting does).
    """
    search(queries[0])  # warm-up
    times = np.full(len(queries), np.inf)
    found: list[list[int]] = []
    cpu = time.process_time()
    for _ in range(REPEAT):
        found = []
        for i, q in enumerate(queries):
            t = time.perf_counter()
            found.append(search(q))
            times[i] = min(times[i], time.perf_counter() - t)
    cpu_ms = (time.process_time() - cpu) * 1e3 / (REPEAT * len(queries))
    ms = np.array(times) * 1e3
    return (float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), cpu_ms), found


def _timed_build(make: Callable[[], Index], ids: np.ndarray, codes: np.ndarray) -> tuple[Index, float, float]:
    """A new index filled by one add: the index, the build time (s) and the heap it added (MiB)."""
    gc.collect()
    before = heap_bytes()
    t = time.perf_counter()
    index = make()
    index.add(ids, codes)
    build = time.perf_counter() - t
    gc.collect()
    return index, build, (heap_bytes() - before) / 2**20


def _build_and_query(make: Callable[[], Index], ids: np.ndarray, codes: np.ndarray, near: np.ndarray,
                     rand: np.ndarray, k: int) -> tuple[Index, float, float, list, list, list, list]:
    """Build by one add (time, heap growth in MiB), then time single queries of both sets."""
    index, build, mem = _timed_build(make, ids, codes)

    def one(q: np.ndarray) -> list[int]:
        return [h.id for h in index.search(q[None, :], k)[0]]

    near_lat, near_ids = time_queries(one, near)
    rand_lat, rand_ids = time_queries(one, rand)
    return index, build, mem, near_lat, near_ids, rand_lat, rand_ids


def measure_index(name: str, make: Callable[[], Index], ids: np.ndarray, codes: np.ndarray, near: np.ndarray,
                  rand: np.ndarray, k: int) -> Run:
    index, build, mem, near_lat, near_ids, rand_lat, rand_ids = _build_and_query(make, ids, codes, near, rand, k)
    del index
    gc.collect()
    return Run(name, build, mem, near_lat, rand_lat, near_ids, rand_ids)


def measure_compact(ids: np.ndarray, codes: np.ndarray, near: np.ndarray, rand: np.ndarray, k: int,
                    delta_check: bool, rng: np.random.Generator, nflip: int = 2,
                    persist_dir: Path | None = None) -> tuple[Run, str]:
    """The compact multi-hash index, built by one bulk add; with ``delta_check``, also search latency with a full
    delta and the time of the merge that empties it; with ``persist_dir``, the time to save and load it there.
    Returns the run and the extra lines ("" without them)."""
    index, build, mem, near_lat, near_ids, rand_lat, rand_ids = _build_and_query(
        lambda: CompactMultiHashIndex(BITS, nflip=nflip), ids, codes, near, rand, k)
    assert isinstance(index, CompactMultiHashIndex)

    def one(q: np.ndarray) -> list[int]:
        return [h.id for h in index.search(q[None, :], k)[0]]

    p = index.params()
    run = Run(f"CompactMultiHash {p['nhash']}x{p['b']} nflip={nflip}", build, mem, near_lat, rand_lat, near_ids,
              rand_ids, note=f"guaranteed radius {index.recall_radius}")
    line = ""
    if delta_check:
        fill = index._merge_threshold()  # the delta merges once it holds more than this
        extra_codes = rng.integers(0, 256, size=(fill, BITS // 8), dtype=np.uint8)
        extra_ids = np.arange(len(ids), len(ids) + fill, dtype=np.int64)
        t = time.perf_counter()
        for lo in range(0, fill, 10_000):  # ingest-sized batches: each lands in the delta
            index.add(extra_ids[lo : lo + 10_000], extra_codes[lo : lo + 10_000])
        fill_s = time.perf_counter() - t
        delta_n = index._delta.n
        full_lat, _ = time_queries(one, near)
        t = time.perf_counter()
        index.merge()
        merge_s = time.perf_counter() - t
        merged_lat, _ = time_queries(one, near)
        line = (f"compact delta check: {delta_n:,} codes in the delta (added in {fill_s:.1f} s): near p50/p99 "
                f"{full_lat[0]:.3f}/{full_lat[1]:.3f} ms; merge into the tables {merge_s:.1f} s; after it "
                f"{merged_lat[0]:.3f}/{merged_lat[1]:.3f} ms")
    if persist_dir is not None:
        path = persist_dir / "bench-compact.bin"
        expected = index.search(near[:50], k)
        t = time.perf_counter()
        index.save(path)
        save_s = time.perf_counter() - t
        size_mb = path.stat().st_size / 2**20
        del index
        gc.collect()
        t = time.perf_counter()
        index = Index.load(path)
        load_s = time.perf_counter() - t
        same = index.search(near[:50], k) == expected
        path.unlink()
        path.with_name(path.name + ".json").unlink()
        persisted = (f"compact persistence: save {save_s:.1f} s ({size_mb:,.0f} MB file), load (sha256 + table "
                     f"rebuild) {load_s:.1f} s, same answers after loading: {same}")
        line = f"{line}\n{persisted}" if line else persisted
    del index
    gc.collect()
    return run, line


def measure_build(make: Callable[[], Index], ids: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    """Build time (s) and memory (MB) only."""
    index, build, mem = _timed_build(make, ids, codes)
    del index
    gc.collect()
    return build, mem


def measure_raw_flat(codes: np.ndarray, near: np.ndarray, rand: np.ndarray, k: int) -> Run:
    """faiss IndexBinaryFlat with no Python layer: how much our wrapper (ids, ties, locking) adds."""
    gc.collect()
    before = heap_bytes()
    t = time.perf_counter()
    flat = faiss.IndexBinaryFlat(BITS)
    flat.add(codes)
    build = time.perf_counter() - t
    mem = (heap_bytes() - before) / 2**20

    def one(q: np.ndarray) -> list[int]:
        return flat.search(q[None, :], k)[1][0].tolist()

    near_lat, near_ids = time_queries(one, near)
    rand_lat, rand_ids = time_queries(one, rand)
    del flat
    gc.collect()
    return Run("faiss flat (raw, no ids)", build, mem, near_lat, rand_lat, near_ids, rand_ids)


def measure_ivf(codes: np.ndarray, near: np.ndarray, rand: np.ndarray, k: int, nlist: int, nprobe: int) -> Run:
    gc.collect()
    before = heap_bytes()
    t = time.perf_counter()
    quantizer = faiss.IndexBinaryFlat(BITS)
    ivf = faiss.IndexBinaryIVF(quantizer, BITS, nlist)
    ivf.nprobe = nprobe
    ivf.train(codes[: min(len(codes), 64 * nlist)])
    trained = time.perf_counter() - t
    ivf.add(codes)
    build = time.perf_counter() - t
    mem = (heap_bytes() - before) / 2**20

    def one(q: np.ndarray) -> list[int]:
        return [i for i in ivf.search(q[None, :], k)[1][0].tolist() if i >= 0]

    near_lat, near_ids = time_queries(one, near)
    rand_lat, rand_ids = time_queries(one, rand)
    del ivf, quantizer
    gc.collect()
    return Run(f"faiss IVF nlist={nlist} nprobe={nprobe}", build, mem, near_lat, rand_lat, near_ids, rand_ids,
               note=f"training {trained:.1f} s of it")


def recall(approx: list[list[int]], exact: list[list[int]]) -> float:
    return float(np.mean([len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(approx, exact, strict=True)]))


def make_queries(rng: np.random.Generator, codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = rng.integers(0, len(codes), size=n)
    near = codes[src].copy()
    for row in range(n):
        for b in rng.choice(BITS, size=int(rng.integers(0, 9)), replace=False):
            near[row, b // 8] ^= np.uint8(0x80 >> (b % 8))
    rand = rng.integers(0, 256, size=(n, BITS // 8), dtype=np.uint8)
    return near, rand, src


def report(n: int, runs: list[Run], flat: Run, src: np.ndarray) -> None:
    print(f"\n== {human(n)} codes ({n:,}) ==")
    print(f"{'index':34s} {'build s':>7s} {'mem MB':>7s} {'near p50/p99 ms':>17s} {'rand p50/p99 ms':>17s} "
          f"{'cpu ms/q':>8s} {'recall@10 near/rand':>19s} {'src found':>9s}")
    for r in runs:
        found = np.mean([int(s) in ids for s, ids in zip(src.tolist(), r.near_ids, strict=True)])
        rec = f"{recall(r.near_ids, flat.near_ids):.3f}/{recall(r.rand_ids, flat.rand_ids):.3f}"
        print(f"{r.name:34s} {r.build_s:7.2f} {r.mem_mb:7.0f} {r.near[0]:8.3f}/{r.near[1]:<8.3f} "
              f"{r.rand[0]:8.3f}/{r.rand[1]:<8.3f} {r.near[2]:8.3f} {rec:>19s} {found:9.3f}"
              + (f"  ({r.note})" if r.note else ""))
    sys.stdout.flush()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1e3,1e5,1e6,1e7", help="flat index sizes")
    ap.add_argument("--approx-sizes", default="1e6,1e7", help="sizes at which the multi-hash index is measured too")
    ap.add_argument("--compact-sizes", default="1e6,1e7",
                    help="sizes at which the compact multi-hash index is measured (and 100M with --huge)")
    ap.add_argument("--compact-nflips", default="2",
                    help="bit flips probed per table for the compact index, one run each (2: radius 8, 3: radius 11)")
    ap.add_argument("--delta-check", action="store_true",
                    help="also time compact searches with a full delta, and the merge that empties it")
    ap.add_argument("--persist-dir", type=Path, default=None,
                    help="also time saving and loading the compact index (a file of 16 bytes a code) in this folder")
    ap.add_argument("--raw-sizes", default="1e3,1e5,1e6,1e7", help="sizes at which raw faiss flat is measured")
    ap.add_argument("--ivf-sizes", default="1e6", help="sizes at which raw faiss IVF is measured (slow to train)")
    ap.add_argument("--huge", action="store_true", help="also 100M codes (flat; multi-hash if it fits)")
    ap.add_argument("--max-build-s", type=float, default=300.0, help="skip a 100M build projected to take longer")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1, help="passes over the queries; each keeps its fastest")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bits", type=int, default=64,
                    help="code width: 64 (OSCAR-Net, pHash) or 256 (the global-id channel)")
    args = ap.parse_args()
    global REPEAT, BITS
    REPEAT = max(1, args.repeat)
    BITS = args.bits

    faiss.omp_set_num_threads(args.threads)
    sizes = parse_sizes(args.sizes) + ([100_000_000] if args.huge else [])
    approx, ivf_sizes = set(parse_sizes(args.approx_sizes)), set(parse_sizes(args.ivf_sizes))
    raw_sizes = set(parse_sizes(args.raw_sizes))
    compact_sizes = set(parse_sizes(args.compact_sizes))
    print(f"faiss {faiss.__version__}, faiss threads = {args.threads} (omp_set_num_threads), {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} (the cores are shared: latencies include waiting)")
    print(f"single query per search call, k={args.k}, {args.queries} near-duplicate (0-8 bits flipped) + "
          f"{args.queries} random queries, {REPEAT} passes (each query's fastest kept); recall@10 is against the flat "
          f"index's results; mem = malloc'd bytes added by the build ({'mallinfo2' if _MALLINFO2 else 'RSS'})")
    rng = np.random.default_rng(args.seed)
    mh_build_per_code = None
    mh_mem_per_code = None
    cm_mem_per_code = 30.0 / 2**20  # MB a code before any run: 28 bytes + offsets, rounded up
    for n in sizes:
        t = time.perf_counter()
        codes = rng.integers(0, 256, size=(n, BITS // 8), dtype=np.uint8)
        ids = np.arange(n, dtype=np.int64)
        near, rand, src = make_queries(rng, codes, args.queries)
        gen = time.perf_counter() - t
        flat = measure_index("FlatBinaryIndex", lambda: FlatBinaryIndex(BITS), ids, codes, near, rand, args.k)
        runs = [flat]
        if n in raw_sizes:
            runs.append(measure_raw_flat(codes, near, rand, args.k))
        want_mh = n in approx or (n == 100_000_000 and args.huge)
        if want_mh and n == 100_000_000:
            if mh_build_per_code is None or mh_mem_per_code is None:  # no smaller run here: time a 1M build
                sample = measure_build(lambda: MultiHashBinaryIndex(BITS), ids[:1_000_000], codes[:1_000_000])
                mh_build_per_code, mh_mem_per_code = sample[0] / 1_000_000, sample[1] / 1_000_000
                basis = "a 1M build"
            else:
                basis = "the largest run"
            proj_s, proj_mb = mh_build_per_code * n, mh_mem_per_code * n
            if proj_s > args.max_build_s or proj_mb * 2**20 > 0.7 * available_bytes():
                print(f"\nNOTE: multi-hash at {human(n)} skipped: projected build {proj_s:.0f} s "
                      f"(limit {args.max_build_s:.0f} s) and {proj_mb:.0f} MB "
                      f"({available_bytes() / 2**20:.0f} MB available), extrapolated linearly from {basis}")
                want_mh = False
        if want_mh:
            mh = measure_index("MultiHash 3x21 nflip=2", lambda: MultiHashBinaryIndex(BITS), ids, codes,
                               near, rand, args.k)
            mh.note = "guaranteed radius 8"
            runs.append(mh)
            mh_build_per_code, mh_mem_per_code = mh.build_s / n, mh.mem_mb / n
        extra = ""
        want_cm = n in compact_sizes or (n == 100_000_000 and args.huge)
        if want_cm and cm_mem_per_code * n * 2**20 * 1.5 > available_bytes():  # 1.5: the build's sort buffers
            print(f"\nNOTE: compact multi-hash at {human(n)} skipped: projected {cm_mem_per_code * n:.0f} MB "
                  f"(+50% while building), {available_bytes() / 2**20:.0f} MB available")
            want_cm = False
        if want_cm:
            for i, nflip in enumerate(int(x) for x in args.compact_nflips.split(",")):
                cm, line = measure_compact(ids, codes, near, rand, args.k, args.delta_check and i == 0, rng, nflip,
                                           args.persist_dir if i == 0 else None)
                runs.append(cm)
                extra = extra or line
                cm_mem_per_code = max(cm_mem_per_code, cm.mem_mb / n)
        if n in ivf_sizes:
            runs.append(measure_ivf(codes, near, rand, args.k, nlist=1024, nprobe=16))
        report(n, runs, flat, src)
        if extra:
            print(extra)
        print(f"(codes generated in {gen:.1f} s; load average now {os.getloadavg()[0]:.1f})")
        del codes, ids, runs, flat
        gc.collect()
    print(f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GB")


if __name__ == "__main__":
    main()
