"""Fit, per sensitive-hash model, the distance beyond which the hash alone says "edited" (issue 17).

Once geometry ties a query to a record, the verdict is *altered* when the aligned comparison sees a change, or when
the sensitive hash's Hamming distance exceeds ``Policy.hash_altered``. Until now that distance was the model's own
match threshold (the distance that keeps 99 % of benign validation pairs). A model whose benign copies spread wider
(oscar-v2: benign distances up to 28 bits against v1's 21, threshold 16) then calls genuine copies *altered* on the
hash alone. The whole-system benchmark measured this at FNR 0.65 % -> 2.82 % (10 of the 13 lost copies).

This script hashes every reference, benign copy and edit of a calibration split with each model. It then takes
the smallest distance that keeps ``--keep`` of the benign copies at or under it, and never less than the model's
match threshold. It reports what that distance catches among the edits, and writes it per model id into
``verdict_calibration.json`` (``hash_altered``). The lookup reads it for the configured model
(``VerdictCalibration.hash_altered_for``).

    python benchmarks/calibrate_hash_altered.py --dataset benchmarks/out/world-cal \\
        --weights hasher/weights/oscar_v1.safetensors hasher/weights/oscar_v2.safetensors
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import hasher  # noqa: E402
from hasher.model import codes_to_ints  # noqa: E402
from hasher.scene_graph import SceneGraphBatch, collate  # noqa: E402
from provenance.lookup.calibration import CALIBRATION_FILE, parse_calibration  # noqa: E402


def fit(benign: list[int], keep: float, threshold: int) -> int:
    """The smallest distance with at least ``keep`` of ``benign`` at or under it, and at least ``threshold``."""
    ordered = sorted(benign)
    at = ordered[min(len(ordered) - 1, max(0, math.ceil(keep * len(ordered)) - 1))]
    return max(int(at), int(threshold))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="a make-dataset --recipe world calibration split")
    ap.add_argument("--weights", type=Path, nargs="+", required=True)
    ap.add_argument("--keep", type=float, default=0.999, help="share of benign copies within the distance")
    ap.add_argument("--out", type=Path, default=CALIBRATION_FILE, help="the calibration file updated in place")
    ap.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = ap.parse_args(argv)

    rows = [r for r in csv.DictReader((args.dataset / "pairs.csv").open())
            if r["relation"] in ("benign", "manipulated")]
    models = [hasher.load(w, device="cpu") for w in args.weights]
    for m in models:
        if m.threshold is None:
            raise SystemExit(f"{m.model_id}: no match threshold in its weights; an untrained model is not fitted")
    shared_config = len({json.dumps(m.config.to_dict(), sort_keys=True) for m in models}) == 1
    codes: dict[str, list[int]] = {}
    t0 = time.perf_counter()
    images = sorted({r["reference"] for r in rows} | {r["query"] for r in rows})
    for i, name in enumerate(images):
        path = args.dataset / name
        if shared_config:  # detection and segmentation once, every model's network on the same graph
            graph = collate([models[0].scene_graph(path)])
            codes[name] = [hasher_code(m, graph) for m in models]
        else:
            codes[name] = [m.hash(path).value for m in models]
        if (i + 1) % 250 == 0:
            print(f"  {i + 1}/{len(images)} images hashed ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    obj = json.loads(args.out.read_text(encoding="utf-8"))
    fitted = dict(obj.get("hash_altered") or {})
    for j, m in enumerate(models):
        dist = {rel: [(codes[r["reference"]][j] ^ codes[r["query"]][j]).bit_count() for r in rows
                      if r["relation"] == rel] for rel in ("benign", "manipulated")}
        d = fit(dist["benign"], args.keep, int(m.threshold))  # type: ignore[arg-type]
        b, e = np.array(dist["benign"]), np.array(dist["manipulated"])
        print(f"{m.model_id}: match threshold {m.threshold}; benign copies {len(b)}: median {np.median(b):.0f}, "
              f"99 % {np.quantile(b, 0.99):.0f}, 99.9 % {np.quantile(b, 0.999):.0f}, max {b.max()}; "
              f"edits {len(e)}: median {np.median(e):.0f}")
        print(f"  hash_altered {d}: benign copies beyond it {int((b > d).sum())} ({(b > d).mean():.2%}); edits beyond "
              f"it {int((e > d).sum())} ({(e > d).mean():.2%}); at the match threshold {m.threshold}: benign beyond "
              f"{int((b > m.threshold).sum())} ({(b > m.threshold).mean():.2%})")
        fitted[m.model_id] = d
    if args.dry_run:
        return 0
    obj["hash_altered"] = fitted
    obj.setdefault("made_by", {})["hash_altered"] = (
        "benchmarks/calibrate_hash_altered.py " + " ".join(sys.argv[1:] if argv is None else argv)
        + f" (at least {args.keep:.1%} of the benign copies of the split within it, never under the model's match "
        "threshold)")
    parse_calibration(obj)  # what is written must load
    args.out.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    print(f"wrote hash_altered {fitted} to {args.out}")
    return 0


@torch.inference_mode()
def hasher_code(model: Any, graph: SceneGraphBatch) -> int:
    """One image's code from its collated scene graph, as ``OscarHasher.hash_batch`` computes it on a CPU."""
    return int(codes_to_ints(model.model.encode_bits(graph.to(model.device)))[0])


if __name__ == "__main__":
    raise SystemExit(main())
