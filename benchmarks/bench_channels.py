"""Which hash finds the *source* of a query best? Chooses lookup's tamper-tolerant identity channel (issue 7).

Lookup takes the top-k of each channel and verifies them geometrically, so what matters is recall@k of the true
reference, above all for *manipulated* queries (the OSCAR hash is built to push those away from their source).
For every method: recall@1 and recall@k (k = 10 by default) of the reference among all references of the dataset
plus its distractors, for benign and for manipulated queries, with ties broken against the method (a tie with
another image counts as a miss once the tie exceeds k).

    .venv/bin/python benchmarks/bench_channels.py --dataset benchmarks/out/train-data/test \
        --methods phash-ours,pdq,dhash,whash,oscar,global-id [--k 10] [--distractor-dir benchmarks/out/training-photos/train]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from provenance.bench.cache import HashCache
from provenance.bench.dataset import load_dataset
from provenance.bench.methods import create_methods
from provenance.bench.metrics import hamming
from provenance.bench.runner import hash_files


def recall(dist: np.ndarray, target: np.ndarray, k: int) -> float:
    """Share of rows whose target is within the top ``k``, counting every tie at the target's distance against it."""
    d_t = dist[np.arange(len(target)), target]
    worse_or_tied = (dist <= d_t[:, None]).sum(axis=1) - 1  # other items ranked at or before the target
    return float((worse_or_tied < k).mean()) if len(target) else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, type=Path)
    ap.add_argument("--methods", default="phash-ours,pdq,dhash,whash,ahash,iscc,oscar,global-id")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--distractor-dir", type=Path, action="append", default=[],
                    help="folder of extra images for the database (never a query's source)")
    ap.add_argument("--cache", type=Path, default=Path("benchmarks/out/hash-cache.sqlite"))
    args = ap.parse_args()

    ds = load_dataset(args.dataset)
    methods, skipped = create_methods(args.methods.split(","))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    from provenance.ledger import expand_image_paths

    extra = [str(x.resolve()) for x in expand_image_paths(args.distractor_dir)]
    database = list(ds.references) + list(ds.distractors) + extra
    paths = [ds.path(p) for p in dict.fromkeys(database + list(ds.queries))]
    with HashCache(args.cache) as cache:
        codes, failed, bad = hash_files(paths, methods, cache, workers=2, progress=False)
    ref_index = {r: i for i, r in enumerate(database)}
    print(f"dataset {ds.name}: {len(ds.references)} references + {len(ds.distractors) + len(extra)} distractors, "
          f"{sum(p.benign for p in ds.pairs)} benign and {sum(not p.benign for p in ds.pairs)} manipulated queries")
    print(f"| method | bits | benign R@1 | benign R@{args.k} | manipulated R@1 | manipulated R@{args.k} |")
    print("|---|---|---|---|---|---|")
    for m in methods:
        if m.name in failed:
            continue
        c = codes[m.name]
        db = np.stack([c[str(ds.path(p))] for p in database])
        row = [m.name, str(m.bits)]
        for benign in (True, False):
            pairs = [p for p in ds.pairs if p.benign == benign and str(ds.path(p.query)) in c]
            q = np.stack([c[str(ds.path(p.query))] for p in pairs])
            target = np.array([ref_index[p.reference] for p in pairs])
            dist = hamming(q, db)
            row += [f"{recall(dist, target, 1):.3f}", f"{recall(dist, target, args.k):.3f}"]
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
