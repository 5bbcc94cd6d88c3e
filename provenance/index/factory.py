"""Pick the index structure for a collection size: :func:`create_index` is the one place that decides.

The threshold comes from ``benchmarks/bench_index.py`` (random 64-bit codes, one query per call, k=10, one thread,
on a shared 2-core machine; p50 latency, memory added by the build, build time; ranges span runs at different load):

======  =============================  ==================================  ===================================
codes   flat (exact, faiss)            compact multi-hash 3x21, 2 flips    faiss multi-hash 3x21, 2 flips
                                       (exact to 8 bits)                   (exact to 8 bits)
======  =============================  ==================================  ===================================
1M      1.2 ms,  23 MB, build 0.03 s   0.11 ms,    51 MB, build 0.2 s      0.20 ms, 240 MB, build 2.5 s
10M     11-16 ms, 281 MB, build 0.3 s  0.23 ms,   291 MB, build 2.8-4.8 s  1.8-2.6 ms, 1.0 GB, build 19-23 s
100M    99-114 ms, 2.5 GB, build 4 s   1.3-1.5 ms, 2.7 GB, build 37-41 s   not run: ~24 GB, ~250 s (projected)
======  =============================  ==================================  ===================================

Above 10M the compact index probes 3 flips per substring (exact to 11 bits, 8.4 ms at 100M, recall@10 vs flat 0.98)
rather than 2 (exact to 8, 1.4 ms): the tolerant pHash channel's threshold (10 bits) then lies inside the exact
radius, so lookup still finds every benign copy through pHash, and the 50 ms budget is far away either way.

Up to 10M the flat scan costs little next to hashing the query image and is exact at any distance, which matters:
lookup thresholds lie beyond the multi-hash radius of 8 bits (OSCAR's calibrated 22 bits, pHash's 10), and a
multi-hash index finds a code farther than its radius only when one substring happens to be within 2 bits (for
uniformly spread flips: 77 % at 10 bits, 12 % at 16, 1 % at 22). Beyond 10M the flat scan's linear cost dominates
(100 ms a query at 100M), and the compact multi-hash index (:mod:`provenance.index.compact_mih`) answers in about a
millisecond with about the flat index's memory (6 % more); it replaces faiss ``IndexBinaryMultiHash`` there, which
needs ~100 bytes a code and could not be built at 100M on this machine. faiss multi-hash files written before still
load.
"""

from __future__ import annotations

from pathlib import Path

from provenance.index.base import Index
from provenance.index.codes import check_bits
from provenance.index.compact_mih import CompactMultiHashIndex
from provenance.index.errors import InvalidCodeError
from provenance.index.flat import FlatBinaryIndex

__all__ = ["FLAT_MAX_CODES", "LARGE_NFLIP", "create_index", "load_index"]

#: Up to this many codes an exact flat scan is used; above it, compact multi-index hashing.
FLAT_MAX_CODES = 10_000_000
#: Bit flips probed per 21-bit substring above that, for 64-bit codes: exact to 3 * (3 + 1) - 1 = 11 bits.
LARGE_NFLIP = 3


def create_index(bits: int, expected_size: int) -> Index:
    """An empty index for ``bits``-bit codes, suited to about ``expected_size`` codes."""
    check_bits(bits)
    if isinstance(expected_size, bool) or not isinstance(expected_size, int) or expected_size < 0:
        raise InvalidCodeError(f"expected_size must be a non-negative integer, got {expected_size!r}")
    if expected_size <= FLAT_MAX_CODES:
        return FlatBinaryIndex(bits)
    return CompactMultiHashIndex(bits, nflip=LARGE_NFLIP) if bits == 64 else CompactMultiHashIndex(bits)


def load_index(path: Path) -> Index:
    """Read any index written by ``Index.save`` (the sidecar names its kind)."""
    return Index.load(path)
