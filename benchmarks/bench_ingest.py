"""End-to-end ingest throughput of the ledger: decode + pHash + sign + block store + record row + log leaf.

Usage: python benchmarks/bench_ingest.py [--n 200] [--postgres URL] [--ipfs URL]
Prints images/s and the per-stage split for the embedded default (SQLite + local block store) and, when given,
PostgreSQL and/or a real IPFS daemon.
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from provenance.config import Settings
from provenance.logging import configure_logging
from provenance.records import PublisherMetadata
from provenance.services import open_ledger


def synthetic_jpegs(n: int, size: tuple[int, int] = (640, 480)) -> list[bytes]:
    rng = np.random.default_rng(7)
    out = []
    for _ in range(n):
        arr = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        img = Image.fromarray(arr).resize(size, Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=88)
        out.append(buf.getvalue())
    return out


def bench(label: str, settings: Settings, images: list[bytes]) -> None:
    ledger = open_ledger(settings)
    ledger.add_publisher("bench")
    meta = PublisherMetadata(title="bench")
    per_image = []
    t0 = time.perf_counter()
    for data in images:
        t = time.perf_counter()
        ledger.ingest(data, publisher="bench", metadata=meta)
        per_image.append(time.perf_counter() - t)
    total = time.perf_counter() - t0
    t = time.perf_counter()
    cp = ledger.anchor()
    anchor_s = time.perf_counter() - t
    ledger.close()
    ms = [x * 1000 for x in per_image]
    print(f"{label:<34} {len(images) / total:8.1f} images/s   median {statistics.median(ms):6.1f} ms   "
          f"p95 {np.percentile(ms, 95):6.1f} ms   anchor({cp.tree_size} leaves, 1 tx) {anchor_s * 1000:6.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--postgres", help="PostgreSQL URL (an empty database or schema)")
    ap.add_argument("--ipfs", help="IPFS RPC API URL")
    args = ap.parse_args()
    configure_logging("WARNING")
    images = synthetic_jpegs(args.n)
    print(f"ingesting {args.n} distinct 640x480 JPEGs (~{sum(map(len, images)) // args.n // 1024} KiB each)")
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite + local block store", Settings(data_dir=Path(tmp) / "a"), images)
        if args.postgres:
            bench("postgres + local block store", Settings(data_dir=Path(tmp) / "b", database_url=args.postgres), images)
        if args.ipfs:
            bench("sqlite + IPFS daemon", Settings(data_dir=Path(tmp) / "c", blockstore="ipfs", ipfs_api_url=args.ipfs),
                  images)


if __name__ == "__main__":
    main()
