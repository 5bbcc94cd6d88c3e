"""How the 256-bit global-id channel's index finds sources far away, at the sizes where ``create_index`` stops
scanning flat (above 10M it builds ``CompactMultiHashIndex`` with 8 substrings of 32 bits and 3 flips: exact to 31).

The global-id code of a copy lies 30-90 bits from its source's (median ~34), far more than a 64-bit hash's, so the
question is not latency alone but recall at those distances. N random 256-bit codes are indexed as
``create_index(256, 20M)`` would; queries are stored codes with ``d`` bits flipped uniformly at random; printed per
``d``: how often the source is in the top 10, and the p50 latency of one query (1 thread). Figures are printed,
never asserted.

    .venv/bin/python benchmarks/bench_global_id_index.py [--n 1e7] [--queries 50] [--distances 20,28,31,34,40,50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from provenance.index.factory import FLAT_MAX_CODES, create_index


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=float, default=1e7)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--distances", default="20,28,31,34,40,50")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    n = int(args.n)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    index = create_index(256, 2 * FLAT_MAX_CODES)  # the structure a large global-id channel gets
    t = time.perf_counter()
    index.add(np.arange(n, dtype=np.int64), codes)
    index.merge()
    print(f"{type(index).__name__} {index.params()}: {n:,} codes built in {time.perf_counter() - t:.1f} s")
    for d in (int(x) for x in args.distances.split(",")):
        found, latency = 0, []
        for _ in range(args.queries):
            src = int(rng.integers(0, n))
            bits = np.unpackbits(codes[src])
            bits[rng.choice(256, size=d, replace=False)] ^= 1
            start = time.perf_counter()
            hits = index.search(np.packbits(bits)[None, :], 10)[0]
            latency.append((time.perf_counter() - start) * 1000)
            found += src in [h.id for h in hits]
        print(f"  {d:>3} bits flipped: source in the top 10 for {found}/{args.queries}, "
              f"p50 {np.median(latency):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
