"""A/B latency of two builds of lookup on the same queries, interleaved so that the machine's drift (the same build
measured twice in a row here differs by up to 10 %) falls on both alike; and a check that they give the same verdicts.

Each build runs ``profile_lookup.py --serve`` in its own process (``PYTHONPATH`` = its checkout), ingests the
dataset's references, then is handed the same queries one at a time, A then B, then B then A for the next, and so
on. Reported: the median of each build's whole-lookup time and of each stage, the median of the paired differences
with a bootstrap 95 % interval, and every query whose verdict, record, confidence or region count differs.

    git worktree add /tmp/base HEAD
    .venv/bin/python benchmarks/ab_lookup.py --a /tmp/base --b . --dataset benchmarks/out/world-photos --every 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parent / "profile_lookup.py"
SAME = ("verdict", "record", "confident", "regions")


def start(checkout: Path, dataset: Path) -> subprocess.Popen:  # type: ignore[type-arg]
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--dataset", str(dataset.resolve()), "--serve"],
                            cwd=checkout, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # ingest first; warnings go to stderr
        if line.startswith('{"ready"'):
            return proc
    raise SystemExit(f"{checkout}: the lookup process ended before it was ready (rc {proc.wait()})")


def ask(proc: subprocess.Popen, i: int) -> dict:  # type: ignore[type-arg]
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{i}\n")
    proc.stdin.flush()
    for line in proc.stdout:  # a warning logged on stdout is not an answer
        if line.startswith('{"pair"'):
            return json.loads(line)
    raise SystemExit(f"the lookup process ended (rc {proc.wait()})")


def median_ci(x: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float, float]:
    boots = np.median(rng.choice(x, size=(n, len(x))), axis=1)
    return float(np.median(x)), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="checkout of build A (the baseline)")
    ap.add_argument("--b", type=Path, required=True, help="checkout of build B")
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--every", type=int, default=4, help="look up every n-th pair")
    args = ap.parse_args()

    a, b = start(args.a, args.dataset), start(args.b, args.dataset)
    n_pairs = sum(1 for _ in (args.dataset / "pairs.csv").open()) - 1
    rows: list[tuple[dict, dict]] = []  # type: ignore[type-arg]
    for k, i in enumerate(range(0, n_pairs, args.every)):
        first, second = (a, b) if k % 2 == 0 else (b, a)
        x, y = ask(first, i), ask(second, i)
        rows.append((x, y) if first is a else (y, x))
    for proc in (a, b):
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()

    rng = np.random.default_rng(0)
    ta = np.array([r[0]["timings_ms"]["total"] for r in rows])
    tb = np.array([r[1]["timings_ms"]["total"] for r in rows])
    print(f"{len(rows)} queries, each looked up by both builds (order alternating)")
    print("whole lookup, median [95 % bootstrap interval] ms: A {:.0f} [{:.0f}, {:.0f}]".format(*median_ci(ta, rng))
          + "  B {:.0f} [{:.0f}, {:.0f}]".format(*median_ci(tb, rng)))
    print("paired difference B - A, median [95 %]: {:.0f} [{:.0f}, {:.0f}] ms".format(*median_ci(tb - ta, rng)))
    stages = sorted({s for r in rows for side in r for s in side["timings_ms"]} - {"total"})
    for s in stages:
        xa = [r[0]["timings_ms"][s] for r in rows if s in r[0]["timings_ms"]]
        xb = [r[1]["timings_ms"][s] for r in rows if s in r[1]["timings_ms"]]
        print(f"  {s:<16} A median {np.median(xa) if xa else float('nan'):6.0f} ms (n {len(xa):>4})   "
              f"B median {np.median(xb) if xb else float('nan'):6.0f} ms (n {len(xb):>4})")
    differ = [(r[0], r[1]) for r in rows if any(r[0][f] != r[1][f] for f in SAME)
              or abs((r[0]["confidence"] or 0) - (r[1]["confidence"] or 0)) > 1e-9]
    print(f"verdicts that differ: {len(differ)} of {len(rows)}")
    for x, y in differ[:10]:
        print(f"  pair {x['pair']}: A {x['verdict']} {x['record']} {x['confidence']}  B {y['verdict']} {y['record']} "
              f"{y['confidence']}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
