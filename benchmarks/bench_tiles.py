"""The log as C2SP tiles: serving throughput on loopback, and ``audit --from-tiles`` time, at 100K (and 1M) leaves.

    .venv/bin/python benchmarks/bench_tiles.py [--leaves 100000 [1000000 ...]] [--requests 2000]
                                               [--concurrency 1 8] [--keep DIR]

For each size: a real ledger (SQLite file, the log's own key) is grown with ``append_many`` (valid raw CIDv1s as
entries) and checkpointed; ``provenance log export-tiles`` writes the static tree; a real ``provenance serve``
process serves it on loopback. Then

(a) requests/s and MB/s for random full level-0 tiles, random entry bundles (gzip, as a client asks) and
    ``/checkpoint``, over keep-alive connections, 1 and N client threads;
(b) ``audit --from-tiles`` wall time: the CLI on the exported directory (a process, as a user runs it), and the
    audit over HTTP from the server, with its phases (fetch, rebuild, entries).

Figures depend on the machine and its load; they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from provenance.auditor.sources import HttpTileSource  # noqa: E402
from provenance.auditor.tiles_audit import AuditPolicy, audit_tiles  # noqa: E402
from provenance.cid import raw_cid  # noqa: E402
from provenance.config import Settings  # noqa: E402
from provenance.services import open_ledger  # noqa: E402
from provenance.translog import encode_verifier_key, parse_verifier_key  # noqa: E402
from provenance.translog.tiles import TILE_WIDTH, TileId  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin" / "provenance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build(data_dir: Path, leaves: int, batch: int = 10_000) -> tuple[str, float]:
    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        t0 = time.perf_counter()
        for start in range(0, leaves, batch):
            cids = [raw_cid(i.to_bytes(8, "big")) for i in range(start, min(leaves, start + batch))]
            with ledger.engine.begin() as conn:
                ledger.log.append_many(conn, cids)
        elapsed = time.perf_counter() - t0
        ledger.checkpoint()
        return encode_verifier_key(ledger.config.log_key_name, ledger.log_public_key()), elapsed
    finally:
        ledger.close()


class Server:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen([str(BIN), "--data-dir", str(data_dir), "serve", "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{self.url}/checkpoint", timeout=2)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"provenance serve did not start; see {log}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self._log.close()


def throughput(url: str, paths: list[str], threads: int, headers: dict[str, str]) -> tuple[float, float]:
    """(requests/s, MB/s of bodies as sent) fetching ``paths`` with ``threads`` keep-alive clients."""
    chunks = [paths[i::threads] for i in range(threads)]
    sizes = [0] * threads
    errors: list[str] = []

    def worker(k: int) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            for p in chunks[k]:
                with client.stream("GET", "/" + p) as resp:
                    body = b"".join(resp.iter_raw())
                if resp.status_code != 200:
                    errors.append(f"{p}: {resp.status_code}")
                sizes[k] += len(body)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:3]}")
    return len(paths) / elapsed, sum(sizes) / elapsed / 1e6


def run(leaves: int, requests: int, concurrency: list[int], work: Path) -> list[str]:
    data, tiles = work / f"data-{leaves}", work / f"tiles-{leaves}"
    print(f"\n=== {leaves:,} leaves ===", flush=True)
    vkey, append_s = build(data, leaves)
    print(f"append_many: {leaves / append_s:,.0f} leaves/s ({append_s:.1f} s)", flush=True)
    t0 = time.perf_counter()
    out = subprocess.run([str(BIN), "--data-dir", str(data), "log", "export-tiles", str(tiles)], capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr)
    print(f"export-tiles: {time.perf_counter() - t0:.1f} s ({out.stdout.strip()})", flush=True)

    rows = []
    server = Server(data, work / f"serve-{leaves}.log")
    try:
        rng = random.Random(1)
        full = leaves // TILE_WIDTH
        kinds = {
            "level-0 tile (8 KiB)": ([TileId(0, rng.randrange(full)).path for _ in range(requests)], {}),
            "entry bundle (gzip)": ([TileId(None, rng.randrange(full)).path for _ in range(requests)],
                                    {"Accept-Encoding": "gzip"}),
            "checkpoint": (["checkpoint"] * requests, {}),
        }
        for name, (paths, headers) in kinds.items():
            for threads in concurrency:
                rps, mbps = throughput(server.url, paths, threads, headers)
                line = f"serve {name:22s} {threads:2d} client(s): {rps:7.0f} req/s  {mbps:6.1f} MB/s"
                print(line, flush=True)
                rows.append(f"{leaves:>9,} | {line}")

        t0 = time.perf_counter()
        cli = subprocess.run([str(BIN), "audit", "--from-tiles", str(tiles), "--log-key", vkey], capture_output=True,
                             text=True, cwd=ROOT)
        cli_s = time.perf_counter() - t0
        if cli.returncode != 0:
            raise RuntimeError(f"audit failed:\n{cli.stdout[-2000:]}\n{cli.stderr[-2000:]}")
        line = f"audit --from-tiles DIR (CLI process): {cli_s:.1f} s"
        print(line, flush=True)
        rows.append(f"{leaves:>9,} | {line}")

        source = HttpTileSource(server.url)
        try:
            t0 = time.perf_counter()
            report = audit_tiles(source, AuditPolicy(log_key=parse_verifier_key(vkey)))
            http_s = time.perf_counter() - t0
        finally:
            source.close()
        assert report.ok, report.summary()
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in report.timings_s.items() if k != "total")
        line = f"audit --from-tiles URL (over HTTP): {http_s:.1f} s ({report.tiles_fetched} resources; {phases})"
        print(line, flush=True)
        rows.append(f"{leaves:>9,} | {line}")
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leaves", type=int, nargs="+", default=[100_000])
    parser.add_argument("--requests", type=int, default=2000, help="requests per throughput measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-tiles-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for n in args.leaves:
            rows.extend(run(n, args.requests, args.concurrency, work))
    print("\n=== summary ===")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
