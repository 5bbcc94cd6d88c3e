"""Transparency-log benchmark: SQL append throughput, and proof sizes/timings at a million leaves.

    .venv/bin/python benchmarks/bench_translog.py [--leaves 1000000] [--single 2000] [--bulk 200000]
                                                  [--batch 1000] [--pg-url URL | --no-pg]

(a) records appended per second to the SQL log on a SQLite file and on PostgreSQL: one append per transaction, and
    ``append_many`` batches; then proof generation from the SQL log at the bulk size.
(b) an in-memory log of ``--leaves`` leaves: build time, inclusion and consistency proof sizes, and median generation
    and verification times.

PostgreSQL: ``--pg-url`` or ``PROVENANCE_TEST_POSTGRES_URL`` (default the local test server); a scratch schema is made
and dropped. Figures depend on the machine; they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402

from provenance.db import make_engine, metadata  # noqa: E402
from provenance.translog.hashing import HASH_SIZE  # noqa: E402
from provenance.translog.proofs import verify_consistency, verify_inclusion  # noqa: E402
from provenance.translog.sql import SqlTransparencyLog, log_leaves, log_nodes, log_state  # noqa: E402
from provenance.translog.tree import MemoryMerkleLog  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def fake_cid(i: int) -> str:
    # Same length as a CIDv1 base32 sha2-256 string (59 chars), distinct per i.
    return f"bafkrei{i:052d}"


def median_us(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


# --- (a) SQL -------------------------------------------------------------------------------------------------------
def bench_sql(label: str, engine: Engine, single: int, bulk: int, batch: int, proof_samples: int) -> None:
    metadata.create_all(engine, tables=[log_leaves, log_nodes, log_state])
    log = SqlTransparencyLog()

    # Baseline: the commit cost of the database itself (one 1-row INSERT per transaction).
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE bench_baseline (x INTEGER)"))
    t0 = time.perf_counter()
    for i in range(single):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_baseline (x) VALUES (:x)"), {"x": i})
    dt = time.perf_counter() - t0
    print(f"  {label}: baseline, 1-row INSERT per transaction: {single / dt:,.0f} transactions/s")

    t0 = time.perf_counter()
    for i in range(single):
        with engine.begin() as conn:
            log.append(conn, fake_cid(i))
    dt = time.perf_counter() - t0
    print(f"  {label}: single appends, 1 per transaction: {single / dt:,.0f} records/s ({single} in {dt:.2f} s)")

    n = single
    t0 = time.perf_counter()
    while n < single + bulk:
        k = min(batch, single + bulk - n)
        with engine.begin() as conn:
            log.append_many(conn, [fake_cid(i) for i in range(n, n + k)])
        n += k
    dt = time.perf_counter() - t0
    print(f"  {label}: append_many, {batch} per transaction: {bulk / dt:,.0f} records/s ({bulk} in {dt:.2f} s)")

    rng = random.Random(1)
    with engine.connect() as conn:
        size = log.size(conn)
        root = log.root(conn)
        idx = [rng.randrange(size) for _ in range(proof_samples)]
        it = iter(idx)
        gen = median_us(lambda: log.inclusion_proof(conn, next(it), size), proof_samples)
        proof = log.inclusion_proof(conn, idx[0], size)
        verify_inclusion(idx[0], size, log.leaf(conn, idx[0]), proof, root)
        s1 = size // 2 + 1
        cgen = median_us(lambda: log.consistency_proof(conn, s1, size), proof_samples)
        rgen = median_us(lambda: log.root(conn, size - 1), proof_samples)
    print(
        f"  {label}: at {size:,} leaves: inclusion proof generation median {gen:,.0f} us, "
        f"consistency ({s1:,}->{size:,}) {cgen:,.0f} us, root at size-1 {rgen:,.0f} us"
    )


def sqlite_engine(tmpdir: str) -> Engine:
    return make_engine(f"sqlite:///{tmpdir}/bench.db")


def pg_schema(url: str) -> tuple[Engine, Callable[[], None]]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    u = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(u.render_as_string(hide_password=False))

    def drop() -> None:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return engine, drop


# --- (b) memory log at scale ---------------------------------------------------------------------------------------
def bench_memory(leaves: int, samples: int) -> None:
    t0 = time.perf_counter()
    log = MemoryMerkleLog()
    for i in range(leaves):
        log.append(fake_cid(i).encode())
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    root = log.root()
    print(
        f"  built {leaves:,} leaves in {build:.2f} s ({leaves / build:,.0f} leaves/s); root in "
        f"{(time.perf_counter() - t0) * 1e6:.0f} us: {root.hex()}"
    )

    rng = random.Random(2)
    idx = [rng.randrange(leaves) for _ in range(samples)]
    lengths = [len(log.inclusion_proof(i)) for i in idx[:200]] + [len(log.inclusion_proof(leaves - 1))]
    print(
        f"  inclusion proof at size {leaves:,}: {min(lengths)}..{max(lengths)} hashes "
        f"({min(lengths) * HASH_SIZE}..{max(lengths) * HASH_SIZE} bytes); leaf 0: "
        f"{len(log.inclusion_proof(0))} hashes, last leaf: {len(log.inclusion_proof(leaves - 1))} hashes"
    )

    it = iter(idx)
    gen = median_us(lambda: log.inclusion_proof(next(it)), samples)
    proofs = {i: log.inclusion_proof(i) for i in idx[:samples]}
    it = iter(idx)

    def verify_one() -> None:
        i = next(it)
        verify_inclusion(i, leaves, log.leaf_hash(i), proofs[i], root)

    ver = median_us(verify_one, samples)
    print(f"  inclusion: generation median {gen:.1f} us, verification median {ver:.1f} us (over {samples})")

    for size1 in (leaves // 2, leaves - 1, 1, 2**19 + 1 if leaves > 2**19 + 1 else leaves // 3):
        proof = log.consistency_proof(size1, leaves)
        r1 = log.root(size1)
        reps = max(samples // 10, 50)
        cgen = median_us(functools.partial(log.consistency_proof, size1, leaves), reps)
        cver = median_us(functools.partial(verify_consistency, size1, leaves, proof, r1, root), reps)
        print(
            f"  consistency ({size1:,} -> {leaves:,}): {len(proof)} hashes ({len(proof) * HASH_SIZE} bytes); "
            f"generation median {cgen:.1f} us, verification median {cver:.1f} us"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leaves", type=int, default=1_000_000)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--bulk", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--pg-url", default=os.environ.get("PROVENANCE_TEST_POSTGRES_URL", DEFAULT_PG_URL))
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--skip-sql", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if not args.skip_sql:
        print("(a) SQL log")
        with tempfile.TemporaryDirectory() as tmp:
            eng = sqlite_engine(tmp)
            try:
                bench_sql("SQLite (WAL, synchronous=NORMAL)", eng, args.single, args.bulk, args.batch, 500)
            finally:
                eng.dispose()
        if not args.no_pg:
            try:
                eng, drop = pg_schema(args.pg_url)
            except Exception as exc:  # noqa: BLE001 - benchmark: report and carry on
                print(f"  PostgreSQL unavailable ({exc}); skipped")
            else:
                try:
                    bench_sql("PostgreSQL", eng, args.single, args.bulk, args.batch, 500)
                finally:
                    drop()
    if not args.skip_memory:
        print(f"(b) in-memory log at {args.leaves:,} leaves")
        bench_memory(args.leaves, args.samples)


if __name__ == "__main__":
    main()
