"""Witness benchmark: the time to integrate and cosign a checkpoint with 3 witnesses (separate processes, loopback).

    .venv/bin/python benchmarks/bench_witness.py [--prefill 100000] [--rounds 30] [--leaves-per-round 10] [--quorum 3]

Three ``provenance witness serve`` processes run on free loopback ports with keys made for the run. A ledger
(SQLite in a temporary data directory) is prefilled with ``--prefill`` leaves, then for each of ``--rounds`` rounds
``--leaves-per-round`` leaves are appended and ``Ledger.checkpoint()`` is timed: read size and root, sign the note,
ask the 3 witnesses in parallel (each verifies the log signature and the consistency proof, fsyncs its state, cosigns),
verify the 3 cosignatures, store the note. For comparison: the same without witnesses, and one witness's
add-checkpoint alone in this process (parse, verify, consistency proof, atomic fsync'd state write, cosign).
Figures depend on the machine (and its disk's fsync); they are printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from provenance.config import Settings  # noqa: E402
from provenance.keyring import Keyring  # noqa: E402
from provenance.ledger import Ledger  # noqa: E402
from provenance.logging import configure_logging  # noqa: E402
from provenance.services import open_ledger  # noqa: E402
from provenance.translog import encode_verifier_key, parse_verifier_key  # noqa: E402
from provenance.translog.checkpoint import Checkpoint, sign_checkpoint  # noqa: E402
from provenance.translog.cosignature import WitnessSigner, encode_witness_private_key  # noqa: E402
from provenance.translog.tree import MemoryMerkleLog  # noqa: E402
from provenance.witness.protocol import encode_add_checkpoint  # noqa: E402
from provenance.witness.service import Witness  # noqa: E402
from provenance.witness.state import trusted_logs  # noqa: E402
from provenance.witness.store import StateDir  # noqa: E402

BIN = Path(sys.executable).parent / "provenance"
ORIGIN = "bench.provenance.test/log"
KEY_NAME = "provenance-log"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_cid(i: int) -> str:
    return f"bafkrei{i:052d}"


def append(ledger: Ledger, start: int, n: int) -> None:
    with ledger.engine.begin() as conn:
        ledger.log.append_many(conn, [fake_cid(i) for i in range(start, start + n)])


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms   min {ms[0]:7.2f} ms   (n={len(ms)})"


def start_witnesses(root: Path, log_vkey: str, n: int = 3) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")} | {"PROVENANCE_LOG_LEVEL": "WARNING"}
    procs, entries = [], []
    for i in range(n):
        key = Ed25519PrivateKey.generate()
        name = f"w{i}.bench.test/witness"
        path = root / f"w{i}.key"
        path.write_text(encode_witness_private_key(name, key) + "\n")
        path.chmod(0o600)
        port = free_port()
        procs.append(subprocess.Popen(
            [str(BIN), "witness", "serve", "--key", str(path), "--state", str(root / f"w{i}-state"),
             "--log", f"{ORIGIN}={log_vkey}", "--port", str(port)], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        entries.append(f"http://127.0.0.1:{port}={WitnessSigner(name, key).vkey()}")
    for proc, entry in zip(procs, entries):
        url = entry.split("=", 1)[0]
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"witness at {url} exited with {proc.returncode}")
            try:
                if httpx.get(url + "/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"witness at {url} did not start")
            time.sleep(0.1)
    return procs, entries


def bench_ledger(data: Path, settings_extra: dict[str, object], prefill: int, rounds: int, per_round: int,
                 warmup: int = 2) -> tuple[list[float], int]:
    ledger = open_ledger(Settings(data_dir=data, log_origin=ORIGIN, log_key_name=KEY_NAME,
                                  database_url=f"sqlite:///{data / 'bench.sqlite3'}", **settings_extra))
    try:
        append(ledger, 0, prefill)
        size = prefill
        samples = []
        for r in range(warmup + rounds):
            append(ledger, size, per_round)
            size += per_round
            t0 = time.perf_counter()
            cp = ledger.checkpoint()
            dt = time.perf_counter() - t0
            assert cp.tree_size == size
            if r >= warmup:
                samples.append(dt)
        return samples, size
    finally:
        ledger.close()


def bench_in_process_witness(root: Path, rounds: int, per_round: int, prefill: int) -> list[float]:
    log_key = Ed25519PrivateKey.generate()
    tree = MemoryMerkleLog(f"leaf {i}".encode() for i in range(prefill))
    signer = WitnessSigner("w.bench.test/witness", Ed25519PrivateKey.generate())
    logs = trusted_logs([(ORIGIN, parse_verifier_key(encode_verifier_key(KEY_NAME, log_key.public_key())))])
    witness = Witness(signer, logs, StateDir(root / "inproc-state"))
    old, samples = 0, []
    try:
        for _ in range(rounds + 1):
            for _ in range(per_round):
                tree.append(f"leaf {tree.size}".encode())
            size = tree.size
            note = sign_checkpoint(Checkpoint(ORIGIN, size, tree.root()), KEY_NAME, log_key)
            body = encode_add_checkpoint(old, tree.consistency_proof(old, size) if old else [], note)
            t0 = time.perf_counter()
            witness.add_checkpoint(body)
            if old:
                samples.append(time.perf_counter() - t0)
            old = size
    finally:
        witness.close()
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefill", type=int, default=100_000, help="leaves in the log before the timed rounds")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--leaves-per-round", type=int, default=10)
    ap.add_argument("--quorum", type=int, default=3, choices=(1, 2, 3))
    args = ap.parse_args()
    configure_logging("WARNING")

    with tempfile.TemporaryDirectory(prefix="bench-witness-") as tmp:
        root = Path(tmp)
        log_key = Keyring(root / "with" / "keys").service_key(KEY_NAME)
        log_vkey = encode_verifier_key(KEY_NAME, log_key.public_key())
        procs, entries = start_witnesses(root, log_vkey)
        try:
            print(f"witness cosigning: 3 `provenance witness serve` processes on loopback, quorum {args.quorum}; "
                  f"SQLite log prefilled with {args.prefill} leaves, +{args.leaves_per_round} leaves per checkpoint")
            base, _ = bench_ledger(root / "without", {}, args.prefill, args.rounds, args.leaves_per_round)
            print(f"  checkpoint, no witnesses:                     {summary(base)}")
            witnessed, size = bench_ledger(root / "with", {"witnesses": ",".join(entries),
                                                           "witness_quorum": args.quorum},
                                           args.prefill, args.rounds, args.leaves_per_round)
            print(f"  checkpoint integrated and cosigned by all 3:  {summary(witnessed)}   (tree size {size})")
            one = bench_in_process_witness(root, args.rounds, args.leaves_per_round, args.prefill)
            print(f"  one witness's add-checkpoint, in process:     {summary(one)}")
            print(f"  => witnessing adds {statistics.median(witnessed) * 1000 - statistics.median(base) * 1000:.2f} ms"
                  " (median) to a checkpoint")
        finally:
            for p in procs:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
