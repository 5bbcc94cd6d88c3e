"""The hash index at catalog scale: 10M codes in PostgreSQL, a cold and a warm start of ``provenance serve``, its
memory, its probes, and how soon a record another process adds is searchable in another replica.

Usage (from the repository root; ``-m`` so that the private PostgreSQL of tests/chaos/services.py imports):

    .venv/bin/python -m benchmarks.bench_index_10m [--codes 10000000] [--probes 20] [--write-doc docs/load.md]

1. A private PostgreSQL cluster (initdb in a temp dir; never the shared server) gets the service's schema, then
   ``--codes`` synthetic catalog rows (channel ``phash``, random 64-bit codes, valid record CIDs) by ``COPY``; the
   two secondary indexes are dropped for the load and built again after it, then ``VACUUM ANALYZE``.
2. **Cold start**: ``provenance serve`` on an empty data directory (no index file: the index is rebuilt from the
   catalog, then saved). Timed: the HTTP port answering ``/healthz``, and ``/readyz`` answering 200. Memory: VmRSS
   at ready and VmHWM (the peak) from /proc.
3. **Warm start**: the same server stopped (SIGTERM, which saves the index) and started again (loads the file,
   checks its sha256 and that it matches the catalog).
4. Probes and searches on the warm server: ``/readyz`` latency, ``GET /matches/byBinding`` latency (random codes).
5. **Another replica**: a second ``provenance serve`` on its own data directory (a copy of the index file). For
   each of ``--probes`` new records, a catalog row is committed from this process (what an ingest worker's
   ``register`` step writes), and replica B is asked ``GET /matches/byBinding`` for that exact code every 20 ms
   until it answers with the record: the time from the commit to that answer. Goal: under 10 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

try:
    from tests.chaos.services import PrivatePostgres
    from tests.fixtures.services import ROOT, free_port
except ModuleNotFoundError as exc:
    raise SystemExit(f"run it from the repository root as: .venv/bin/python -m benchmarks.bench_index_10m ({exc})") from exc

BIN = ROOT / ".venv" / "bin" / "provenance"
CHANNEL = "phash"
BEGIN, END = "<!-- bench_index_10m: begin -->", "<!-- bench_index_10m: end -->"


def _raw_cid(n: int) -> str:
    """A valid CIDv1 (raw, sha2-256) for row ``n``: the shape of our record CIDs, without computing records."""
    from provenance.cid import raw_cid

    return raw_cid(n.to_bytes(8, "big"))


def load_catalog(pg: PrivatePostgres, n: int, batch: int = 500_000) -> dict[str, float]:
    """Schema, then ``n`` rows by COPY with the secondary indexes dropped, then the indexes and VACUUM ANALYZE."""
    import psycopg

    from provenance.db import create_schema, make_engine

    engine = make_engine(pg.url)
    create_schema(engine)
    engine.dispose()
    timings: dict[str, float] = {}
    rng = np.random.default_rng(2024)
    now = datetime.now(timezone.utc).isoformat()
    conninfo = f"host=127.0.0.1 port={pg.port} user=postgres dbname=postgres"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE index_entries DROP CONSTRAINT uq_index_entries_cid_channel")
        conn.execute("DROP INDEX ix_index_entries_channel_id")
        t0 = time.monotonic()
        gen_s = 0.0
        with conn.cursor() as cur, cur.copy(
                "COPY index_entries (channel, record_cid, publisher_id, code, added_at) FROM STDIN") as copy:
            for start in range(0, n, batch):
                g0 = time.monotonic()
                count = min(batch, n - start)
                codes = rng.integers(0, 2**64, size=count, dtype=np.uint64)
                lines = "".join(f"{CHANNEL}\t{_raw_cid(start + i)}\tbench\t{int(c):016x}\t{now}\n"
                                for i, c in enumerate(codes.tolist()))
                gen_s += time.monotonic() - g0
                copy.write(lines)
                print(f"  copied {start + count:,} rows ({time.monotonic() - t0:.0f} s)", flush=True)
        timings["copy_s"] = time.monotonic() - t0
        timings["generate_s"] = gen_s
        t0 = time.monotonic()
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("ALTER TABLE index_entries ADD CONSTRAINT uq_index_entries_cid_channel "
                     "UNIQUE (record_cid, channel)")
        conn.execute("CREATE INDEX ix_index_entries_channel_id ON index_entries (channel, id)")
        timings["indexes_s"] = time.monotonic() - t0
        t0 = time.monotonic()
        conn.execute("VACUUM ANALYZE index_entries")
        timings["vacuum_s"] = time.monotonic() - t0
        size = conn.execute("SELECT pg_total_relation_size('index_entries')").fetchone()[0]  # type: ignore[index]
        timings["table_gib"] = size / 2**30
    return timings


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) // 1024
    except OSError:
        pass
    return out


class Server:
    def __init__(self, name: str, data_dir: Path, db_url: str, log: Path) -> None:
        self.name, self.data_dir, self.log = name, data_dir, log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
        self.env.update({"PROVENANCE_DATA_DIR": str(data_dir), "PROVENANCE_DATABASE_URL": db_url,
                         "OMP_NUM_THREADS": "1", "PROVENANCE_API_LOOKUP_RATE_PER_S": "1000",
                         "PROVENANCE_API_LOOKUP_BURST": "1000"})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 1800) -> dict[str, float]:
        """Start; returns seconds to /healthz and to /readyz 200, and memory at ready (MiB)."""
        t0 = time.monotonic()
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                                         env=self.env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        healthz = None
        peak = 0
        while time.monotonic() - t0 < timeout_s:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            peak = max(peak, _status(self.proc.pid).get("VmRSS", 0))
            try:
                if healthz is None and httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    healthz = time.monotonic() - t0
                if healthz is not None and httpx.get(f"{self.base}/readyz", timeout=10).status_code == 200:
                    mem = _status(self.proc.pid)
                    return {"healthz_s": healthz, "readyz_s": time.monotonic() - t0, "rss_mib": mem["VmRSS"],
                            "hwm_mib": max(mem["VmHWM"], peak)}
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"{self.name} not ready after {timeout_s} s")

    def stop(self) -> float:
        """SIGTERM (the index is saved at close); returns the seconds to exit."""
        assert self.proc is not None
        t0 = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def latencies(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def ms(values: list[float], q: float) -> str:
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f} ms"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", type=int, default=10_000_000)
    ap.add_argument("--probes", type=int, default=20)
    ap.add_argument("--write-doc", type=Path, default=None)
    args = ap.parse_args()
    from provenance.index.catalog import IndexCatalog
    from provenance.softbinding.manifest_ids import manifest_id_for

    tmp = Path(tempfile.mkdtemp(prefix="bench-index-10m-"))
    pg = PrivatePostgres()
    servers: list[Server] = []
    lines: list[str] = []
    try:
        pg.start()
        print(f"loading {args.codes:,} codes into a private PostgreSQL ({pg.url})", flush=True)
        load = load_catalog(pg, args.codes)
        print(f"catalog: {load}", flush=True)
        a = Server("replica A", tmp / "a", pg.url, tmp / "a.log")
        servers.append(a)
        cold = a.start()
        print(f"cold start: {cold}", flush=True)
        index_dir = tmp / "a" / "index"
        file_mib = sum(p.stat().st_size for p in index_dir.glob("*")) / 2**20 if index_dir.exists() else 0.0
        stop_s = a.stop()
        warm = a.start()
        print(f"warm start: {warm} (stop took {stop_s:.1f} s)", flush=True)
        rng = np.random.default_rng(7)
        def first_search(base: str) -> float:  # the first search after a start loads what lookup needs lazily
            t0 = time.monotonic()
            httpx.get(f"{base}/matches/byBinding", params={"alg": CHANNEL, "value": "0" * 16},
                      timeout=300).raise_for_status()
            return time.monotonic() - t0

        first_a = first_search(a.base)
        with httpx.Client(base_url=a.base, timeout=60) as client:
            ready = latencies(lambda _: client.get("/readyz").raise_for_status(), 20)
            search = latencies(lambda _: client.get("/matches/byBinding", params={
                "alg": CHANNEL, "value": f"{int(rng.integers(0, 2**63)):016x}"}).raise_for_status(), 50)
        shutil.copytree(index_dir, tmp / "b" / "index")
        b = Server("replica B", tmp / "b", pg.url, tmp / "b.log")
        servers.append(b)
        b_start = b.start()
        first_b = first_search(b.base)
        print(f"replica B up: {b_start}; first search {first_b:.1f} s", flush=True)

        from provenance.db import make_engine

        engine = make_engine(pg.url)
        catalog = IndexCatalog()
        seen: list[float] = []
        with httpx.Client(base_url=b.base, timeout=60) as client:
            for i in range(args.probes):
                cid = _raw_cid(10**12 + i)
                code = f"{int(rng.integers(0, 2**63)):016x}"
                want = manifest_id_for(cid)
                with engine.begin() as conn:
                    catalog.insert(conn, CHANNEL, cid, "bench", code)
                committed = time.monotonic()
                while True:
                    found = client.get("/matches/byBinding", params={"alg": CHANNEL, "value": code}).json()
                    if any(m["manifestId"] == want for m in found.get("matches", [])):
                        seen.append(time.monotonic() - committed)
                        break
                    if time.monotonic() - committed > 120:
                        raise SystemExit(f"record {cid} not searchable on replica B after 120 s")
                    time.sleep(0.02)
                time.sleep(0.5)
        engine.dispose()
        mem_b = _status(b.proc.pid)  # type: ignore[union-attr]
        lines = [
            f"`benchmarks/bench_index_10m.py --codes {args.codes}` ({datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, "
            f"{os.cpu_count()} cores shared with other work, load average {os.getloadavg()[0]:.1f} at the end); one "
            f"channel ({CHANNEL}, 64-bit codes), {args.codes:,} catalog rows in a private PostgreSQL 15:",
            "",
            "| step | figure |", "|---|---|",
            f"| catalog load: COPY of {args.codes:,} rows (secondary indexes dropped) | {load['copy_s']:.0f} s "
            f"({args.codes / load['copy_s']:,.0f} rows/s; {load['generate_s']:.0f} s of it generating rows) |",
            f"| rebuild the two secondary indexes; VACUUM ANALYZE | {load['indexes_s']:.0f} s; "
            f"{load['vacuum_s']:.0f} s |",
            f"| table + indexes on disk | {load['table_gib']:.2f} GiB |",
            f"| cold start (no index file: rebuilt from the catalog, then saved): /healthz answers | "
            f"{cold['healthz_s']:.1f} s |",
            f"| cold start: /readyz 200 | {cold['readyz_s']:.1f} s |",
            f"| cold start memory: RSS at ready / peak (VmHWM) | {cold['rss_mib']} MiB / {cold['hwm_mib']} MiB |",
            f"| index file on disk (+ sidecar) | {file_mib:.0f} MiB |",
            f"| stop (SIGTERM, index saved) | {stop_s:.1f} s |",
            f"| warm start (index file loaded, sha256 checked): /healthz / /readyz 200 | {warm['healthz_s']:.1f} s / "
            f"{warm['readyz_s']:.1f} s |",
            f"| warm start memory: RSS at ready / peak | {warm['rss_mib']} MiB / {warm['hwm_mib']} MiB |",
            f"| GET /readyz at {args.codes:,} (20 probes) | p50 {ms(ready, 0.5)}, max {ms(ready, 1.0)} |",
            f"| GET /matches/byBinding: the first after a start (lazy loads) | {first_a:.1f} s (replica B: "
            f"{first_b:.1f} s) |",
            f"| GET /matches/byBinding, random codes (50, after the first) | p50 {ms(search, 0.5)}, "
            f"p99 {ms(search, 0.99)} |",
            f"| replica B (own data directory, copy of the index file): /readyz 200 | {b_start['readyz_s']:.1f} s, "
            f"RSS {mem_b.get('VmRSS', 0)} MiB |",
            f"| a record committed to the catalog by another process, searchable on replica B ({args.probes} "
            f"records) | p50 {statistics.median(seen) * 1000:.0f} ms, max {max(seen) * 1000:.0f} ms "
            f"(goal < 10 s) |",
        ]
        print("\n".join(lines))
        if args.write_doc:
            write_doc(args.write_doc, "\n".join(lines))
    finally:
        for s in servers:
            s.kill()
        pg.close()
        shutil.rmtree(tmp, ignore_errors=True)


def write_doc(path: Path, report: str) -> None:
    block = f"{BEGIN}\n\n{report}\n\n{END}"
    text = path.read_text() if path.exists() else f"# Load and soak\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
