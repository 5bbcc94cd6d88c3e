"""Gas and latency of one anchor, on the in-process EVM and on a real JSON-RPC node (ganache).

    .venv/bin/python benchmarks/bench_anchor.py [--n 30] [--logs 10] [--rpc URL | --no-rpc]

Why both figures: gas is what anchoring costs on a real chain (the first checkpoint of a log also pays for a fresh
storage slot, so it is reported apart from later ones); latency is what a caller of ``Anchor.anchor`` waits (one
simulated + one sent transaction + receipt). Without --rpc, a throwaway ganache is started with scripts/evm-node.sh.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance.anchor import log_id_for  # noqa: E402
from provenance.anchor.evm import EvmAnchor  # noqa: E402


def _root(log: int, size: int) -> bytes:
    return hashlib.sha256(f"{log}/{size}".encode()).digest()


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    median, mean = statistics.median(values), statistics.fmean(values)
    return f"median {median * 1e3:6.1f} ms  p95 {p95 * 1e3:6.1f} ms  mean {mean * 1e3:6.1f} ms"


def bench(anchor: EvmAnchor, n: int, logs: int) -> None:
    """``logs`` first anchors (one per log id), then ``n`` subsequent anchors round-robin over those logs."""
    first_gas, first_lat, next_gas, next_lat, read_lat = [], [], [], [], []
    ids = [log_id_for(f"bench.example/log-{i}") for i in range(logs)]
    for i, log_id in enumerate(ids):
        t = time.perf_counter()
        receipt = anchor.anchor(log_id, 1, _root(i, 1))
        first_lat.append(time.perf_counter() - t)
        first_gas.append(receipt.gas_used)
    for k in range(n):
        i, size = k % logs, 2 + k // logs
        t = time.perf_counter()
        receipt = anchor.anchor(ids[i], size, _root(i, size))
        next_lat.append(time.perf_counter() - t)
        next_gas.append(receipt.gas_used)
        t = time.perf_counter()
        anchor.latest(ids[i])
        read_lat.append(time.perf_counter() - t)

    print(f"== {anchor.describe()}  chain {anchor.chain_id}  contract {anchor.contract_address}")
    print(
        f"   first anchor of a log  ({logs:3d}): gas {statistics.median(first_gas):>7,.0f}   latency {_ms(first_lat)}"
    )
    print(f"   later anchors          ({n:3d}): gas {statistics.median(next_gas):>7,.0f}   latency {_ms(next_lat)}")
    print(f"   latest() read          ({n:3d}):              latency {_ms(read_lat)}")
    if len(set(first_gas)) > 1 or len(set(next_gas)) > 1:
        print(f"   gas ranges: first {min(first_gas)}..{max(first_gas)}, later {min(next_gas)}..{max(next_gas)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="subsequent anchors to time (default 30)")
    parser.add_argument("--logs", type=int, default=10, help="distinct log ids (default 10)")
    parser.add_argument("--rpc", help="JSON-RPC URL of a node with an unlocked funded account (default: start ganache)")
    parser.add_argument("--no-rpc", action="store_true", help="only the in-process EVM")
    args = parser.parse_args()

    bench(EvmAnchor.in_process(), args.n, args.logs)
    if args.no_rpc:
        return 0
    if args.rpc:
        bench(EvmAnchor.deploy_to(args.rpc), args.n, args.logs)
        return 0
    script = ROOT / "scripts" / "evm-node.sh"
    with tempfile.TemporaryDirectory(prefix="bench-evm-") as datadir:
        started = subprocess.run([str(script), "start", str(_free_port()), datadir], capture_output=True, text=True)
        if started.returncode != 0:
            print(started.stderr, file=sys.stderr)
            return 1
        try:
            bench(EvmAnchor.deploy_to(started.stdout.split()[-1]), args.n, args.logs)
        finally:
            subprocess.run([str(script), "stop", datadir], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
