"""Copies downscaled with no anti-aliasing filter (issue 13): verdicts with and without the unfiltered rendering.

A nearest-neighbour resize, or a bilinear one that reads two pixels whatever the scale (OpenCV's default, many
thumbnailers and canvases), keeps a photo's fine texture as aliasing. The world recipe's copies are all filtered, so
this benchmark makes its own, from each reference of a dataset (default: the world test split):

* two benign copies, by nearest neighbour and by bilinear sampling, to 30-65 % of the reference's size, JPEG 85;
* one edit made on the reference (a copy-move, a recolouring or an inpainted removal of 2-6 % of the picture, in
  turn; ``provenance.bench.manipulations``), then downscaled the same way (nearest and bilinear in turn), and, as a
  control, the same edit downscaled to the same size with a proper filter (``INTER_AREA``): what the unfiltered
  copies lose against it is the aliasing's doing, what both lose is the small size's.

Each edit's visible share (``world.visible_share``: pixels moved by 16 or more of 255) is recorded; edits that
visibly change under 0.25 % of the picture are imperceptible and reported apart, as in the world benchmark.

Every copy goes through the lookup's pair evidence and the shipped verdict policy (as ``bench_verdicts.py``) twice:
with the comparison's unfiltered rendering (``compare.UNFILTERED_MODEL``, ``resampling.unfiltered_rendering``) and
without. Reported per kind of copy: the share of each verdict with Wilson 95 % intervals, and how often the
rendering was used.

    .venv/bin/python benchmarks/bench_unfiltered.py --dataset benchmarks/out/world-test \\
        --out benchmarks/out/unfiltered.jsonl [--shard 0/2]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from bench_verdicts import Runner, rate, shipped_policy  # benchmarks/ is on the path when a script there runs

from provenance.bench import manipulations
from provenance.bench.dataset import load_dataset
from provenance.bench.world import visible_bucket_of, visible_share
from provenance.lookup import compare

EDITS = ("copy_move", "recolour", "object_removal")
EDIT_SHARE = (0.02, 0.06)  # share of the picture an edit targets
SCALES = (0.30, 0.65)  # the copy's size, as a share of the reference's
INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR}
FILTERED = {"area": cv2.INTER_AREA}  # the control: a proper anti-aliased downscale
QUALITY = 85


def _downscaled(rgb: np.ndarray, scale: float, interpolation: str, path: Path) -> Path:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(8, round(w * scale)), max(8, round(h * scale))),
                       interpolation={**INTERPOLATIONS, **FILTERED}[interpolation])
    cv2.imwrite(str(path), cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    return path


def copies_of(index: int, reference: Path, rgb: np.ndarray, seed: int, folder: Path) -> list[dict[str, Any]]:
    """The four copies made of one reference (deterministic in ``seed`` and ``index``)."""
    rng = np.random.default_rng([seed, index])
    jobs = []
    for interpolation in INTERPOLATIONS:
        scale = float(rng.uniform(*SCALES))
        jobs.append({"relation": "benign", "kind": interpolation, "scale": round(scale, 3),
                     "query": _downscaled(rgb, scale, interpolation, folder / f"{index}-{interpolation}.jpg")})
    edit = EDITS[index % len(EDITS)]
    interpolation = tuple(INTERPOLATIONS)[(index // len(EDITS)) % len(INTERPOLATIONS)]
    edited, mask, _ = getattr(manipulations, edit)(rgb.copy(), rng, manipulations.EditContext(area=EDIT_SHARE))
    scale = float(rng.uniform(*SCALES))
    visible = visible_share(rgb, edited)
    facts = {"relation": "manipulated", "scale": round(scale, 3),
             "mask_share": round(float(np.asarray(mask, bool).mean()), 4), "visible_share": round(visible, 4),
             "visible_bucket": visible_bucket_of(visible)}
    jobs.append({**facts, "kind": f"{edit}+{interpolation}", "interpolation": interpolation,
                 "query": _downscaled(edited, scale, interpolation, folder / f"{index}-edit.jpg")})
    jobs.append({**facts, "kind": f"{edit}+area", "interpolation": "area",
                 "query": _downscaled(edited, scale, "area", folder / f"{index}-edit-area.jpg")})
    return [{**j, "reference": str(reference)} for j in jobs]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    ds = load_dataset(args.dataset)
    folder = args.out.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    shard, shards = (int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    runner = Runner(shipped_policy()[0])
    rows = []
    with args.out.open("w", encoding="utf-8") as fh:
        for index, ref in enumerate(ds.references[: args.limit or None]):
            if index % shards != shard:
                continue
            reference = ds.path(ref)
            for job in copies_of(index, reference, runner.reference(reference)[0], args.seed, folder):
                row = {**job, "query": str(job["query"])}
                for setting in (True, False):
                    compare.UNFILTERED_MODEL = setting
                    ev, evidence = runner.pair(reference, job["query"])
                    key = "with" if setting else "without"
                    row[key] = evidence["verdict"]
                    row[f"{key}_scores"] = [evidence.get(k) for k in ("score", "region_score", "peak_score")]
                    if setting:
                        row["unfiltered"] = bool(evidence.get("unfiltered"))
                compare.UNFILTERED_MODEL = True
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]]) -> None:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["relation"] == "manipulated":
            seen = "imperceptible" if r.get("visible_bucket") == "imperceptible" else "perceptible"
            resize = r["kind"].split("+")[-1]
            unfiltered = "unfiltered" if resize in INTERPOLATIONS else resize
            groups[f"{seen} edits: {resize}"].append(r)
            groups[f"{seen} edits: {unfiltered}, {r['kind'].split('+')[0]}"].append(r)
            if seen == "perceptible":
                groups[f"perceptible edits: {unfiltered}, {r['visible_bucket']}"].append(r)
        else:
            groups[f"{r['relation']}: {r['kind']}"].append(r)
    print(f"{'copies':44s} {'n':>4s}  {'setting':8s} {'match':>34s} {'altered':>34s}  other  rendered")
    for key in sorted(groups):
        g = groups[key]
        for setting in ("without", "with"):
            match = sum(r[setting] == "match" for r in g)
            altered = sum(r[setting] == "altered" for r in g)
            rendered = sum(r["unfiltered"] for r in g) if setting == "with" else ""
            print(f"{key:44s} {len(g):4d}  {setting:8s} {rate(match, len(g)):>34s} {rate(altered, len(g)):>34s}  "
                  f"{len(g) - match - altered:5d}  {rendered}")
    changed = [r for r in rows if r["with"] != r["without"]]
    print(f"\nverdicts the rendering changed: {len(changed)}")
    for r in changed:
        print(f"  {r['relation']:11s} {r['kind']:24s} {r['without']} -> {r['with']}  scores "
              f"{r['without_scores']} -> {r['with_scores']}  {Path(r['reference']).name}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=Path("benchmarks/out/world-test"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/unfiltered.jsonl"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="the first N references only (0: all)")
    ap.add_argument("--shard", default="", help="I/N: run the I-th of N interleaved shares of the references")
    ap.add_argument("--summary-only", nargs="*", type=Path, default=None,
                    help="summarise these JSONL files (e.g. the shards' --out) without running anything")
    args = ap.parse_args()
    if args.summary_only is not None:
        files = args.summary_only or [args.out]
        rows = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    else:
        rows = run(args)
    summarise(rows)


if __name__ == "__main__":
    main()
