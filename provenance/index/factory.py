"""Pick the index structure for a collection size: :func:`create_index` is the one place that decides.

The threshold comes from ``benchmarks/bench_index.py`` (random 64-bit codes, one query per call, k=10, faiss on one
thread, on a shared 2-core machine; p50 latency, memory added by the build, build time):

======  =================================  ===========================================
codes   flat (exact)                       multi-hash 3x21, 2 flips (exact to 8 bits)
======  =================================  ===========================================
1M      1.1 ms,  23 MB, build 0.03 s       0.35 ms, 240 MB, build 3-5 s
10M     18-28 ms, 281 MB, build 0.5 s      3.1 ms, 1.0 GB, build 21-62 s
100M    103 ms, 2.5 GB, build 7 s          not run: ~24 GB and ~7 min to build (projected)
======  =================================  ===========================================

Up to 10M the flat scan costs little next to hashing the query image, is exact at any distance (lookup may use
thresholds beyond multi-hash's guaranteed 8 bits), needs 3.6x less memory and builds 25-100x faster; so it is used up
to ``FLAT_MAX_CODES``. Beyond that its linear cost (100 ms a query at 100M) dominates and multi-hash's search, which
grows with bucket occupancy rather than with the whole collection, is the better trade.
"""

from __future__ import annotations

from pathlib import Path

from provenance.index.base import Index
from provenance.index.codes import check_bits
from provenance.index.errors import InvalidCodeError
from provenance.index.flat import FlatBinaryIndex
from provenance.index.multihash import MultiHashBinaryIndex

__all__ = ["FLAT_MAX_CODES", "create_index", "load_index"]

#: Up to this many codes an exact flat scan is used; above it, multi-index hashing.
FLAT_MAX_CODES = 10_000_000


def create_index(bits: int, expected_size: int) -> Index:
    """An empty index for ``bits``-bit codes, suited to about ``expected_size`` codes."""
    check_bits(bits)
    if isinstance(expected_size, bool) or not isinstance(expected_size, int) or expected_size < 0:
        raise InvalidCodeError(f"expected_size must be a non-negative integer, got {expected_size!r}")
    if expected_size <= FLAT_MAX_CODES:
        return FlatBinaryIndex(bits)
    return MultiHashBinaryIndex(bits)


def load_index(path: Path) -> Index:
    """Read any index written by ``Index.save`` (the sidecar names its kind)."""
    return Index.load(path)
