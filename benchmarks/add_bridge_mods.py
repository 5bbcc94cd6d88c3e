"""Append the real PDQ ``bridge-mods`` benign edits (../shared/data/pdq/data/bridge-mods: one original, eleven edits
made with real tools: blur, sharpen, contrast, saturation, shrink, square crops) to an attribution dataset, as
benign pairs of subset ``pdq-bridge-mods``. The issue's hasher targets are measured on a held-out ``make-dataset``
build plus these.

    .venv/bin/python benchmarks/add_bridge_mods.py benchmarks/out/train-data/test
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = ROOT.parent / "shared" / "data" / "pdq" / "data" / "bridge-mods"
ORIGINAL = "aaa-orig.jpg"
SUBSET = "pdq-bridge-mods"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--bridge", type=Path, default=BRIDGE)
    args = ap.parse_args()
    pairs = args.dataset / "pairs.csv"
    with pairs.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
        fields = list(rows[0].keys())
    rows = [r for r in rows if r.get("dataset") != SUBSET]  # idempotent
    dest = args.dataset / SUBSET
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(args.bridge, dest)
    for edit in sorted(p.name for p in dest.iterdir() if p.suffix == ".jpg" and p.name != ORIGINAL):
        rows.append({"reference": f"{SUBSET}/{ORIGINAL}", "query": f"{SUBSET}/{edit}", "relation": "benign",
                     "kind": f"bridge:{Path(edit).stem}", "dataset": SUBSET})
    with pairs.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in fields} for r in rows)
    print(f"{pairs}: {len(rows)} pairs ({sum(r['dataset'] == SUBSET for r in rows)} from {args.bridge})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
