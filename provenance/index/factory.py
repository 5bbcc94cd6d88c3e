"""Pick the index structure for a collection size: :func:`create_index` is the one place that decides.

Threshold from ``benchmarks/bench_index.py`` (faiss threads = 2, this 2-core machine): see FLAT_MAX_CODES.
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
