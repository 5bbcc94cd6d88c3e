"""IPFS block store latency: put (add + pin) / get (cat), median and p95, next to the embedded local store.

    python benchmarks/bench_ipfs.py [--api http://127.0.0.1:5001] [--runs 30] [--sizes 10240,262144,2097152]

Without ``--api`` a throwaway js-ipfs daemon is started with ``scripts/ipfs-daemon.sh`` (and stopped after).
Rows: ``local`` and ``ipfs`` time the store classes; ``rpc`` times bare ``add`` / ``cat`` calls (put/get rows).
Each run puts fresh random bytes, so no put is answered from an earlier identical one. Timings are through the
store classes, so they include what the service pays: local CID computation, the CID check, pin-status lookup
and the re-hash of what comes back.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance.blockstore import BlockStore, IpfsRpcBlockStore, LocalBlockStore  # noqa: E402


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):8.2f} {p95:8.2f}"


def bench(store: BlockStore | RawRpc, size: int, runs: int) -> tuple[list[float], list[float]]:
    puts, gets = [], []
    store.put(os.urandom(size))  # warm the connection / directories
    for _ in range(runs):
        data = os.urandom(size)
        start = time.perf_counter()
        cid = store.put(data)
        puts.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        store.get(cid)
        gets.append((time.perf_counter() - start) * 1000)
    return puts, gets


class RawRpc:
    """Bare ``add`` / ``cat`` HTTP calls, no checks: the daemon's own share of the store's latency."""

    def __init__(self, api: str) -> None:
        import httpx

        self._client = httpx.Client(base_url=f"{api}/api/v0", timeout=120)

    def put(self, data: bytes) -> str:
        params = {"cid-version": "1", "raw-leaves": "true", "cid-base": "base32", "pin": "true"}
        response = self._client.post("/add", params=params, files={"file": ("b", data, "application/octet-stream")})
        response.raise_for_status()
        return str(response.json()["Hash"])

    def get(self, cid: str) -> bytes:
        response = self._client.post("/cat", params={"arg": cid})
        response.raise_for_status()
        return response.content

    def close(self) -> None:
        self._client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", help="IPFS RPC API base URL; default: start a js-ipfs daemon")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sizes", default="10240,262144,2097152", help="comma-separated byte counts")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-ipfs-") as tmp:
        script, repo = ROOT / "scripts" / "ipfs-daemon.sh", Path(tmp) / "ipfs"
        api = args.api
        if not api:
            ports = [str(_free_port()), str(_free_port())]
            api = subprocess.run(
                ["bash", str(script), "start", str(repo), *ports], check=True, capture_output=True, text=True
            ).stdout.strip()
        try:
            ipfs = IpfsRpcBlockStore(api, timeout_s=120)
            stores: dict[str, BlockStore | RawRpc] = {
                "local": LocalBlockStore(Path(tmp) / "blocks"),
                "ipfs": ipfs,
                "rpc": RawRpc(api),
            }
            agent = ipfs.ping()
            print(f"daemon: {agent} at {api}; runs per size: {args.runs}")
            print("local/ipfs = the store classes (put: CID + write/add + check; get: read/pin-ls + cat + re-hash);")
            print("rpc = bare add/cat HTTP calls to the same daemon")
            print(f"{'store':6} {'size':>9} {'op':4} {'median_ms':>8} {'p95_ms':>8}")
            for size in sizes:
                for name, store in stores.items():
                    puts, gets = bench(store, size, args.runs)
                    print(f"{name:6} {size:9d} put  {_stats(puts)}")
                    print(f"{name:6} {size:9d} get  {_stats(gets)}")
            for store in stores.values():
                store.close()
        finally:
            if not args.api:
                subprocess.run(["bash", str(script), "stop", str(repo)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
