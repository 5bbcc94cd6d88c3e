"""Geometric verification and aligned comparison (provenance.lookup) on two make-dataset splits.

    .venv/bin/python benchmarks/bench_geometry.py [--photos ../shared/data/photos] [--workdir DIR]
    .venv/bin/python benchmarks/bench_geometry.py --dataset CALIBRATION_DIR REPORT_DIR

Without --dataset, the photos are split in two halves (alternating in sorted order, symlinked into two folders) and
a dataset is built from each with ``build_dataset`` (what ``provenance bench make-dataset`` runs): the calibration
split with seed 0, the report split with seed 1. Thresholds are chosen on the calibration split only, then applied
unchanged to the report split, so the report numbers are not fitted to themselves.

Per split it measures, for the homography and the fundamental model: the verification pass rate of benign pairs,
of manipulated pairs, and of unrelated pairs (each reference against a benign and a manipulated variant of the next
photo). For pairs verified by homography, the aligned comparison: AUC benign vs manipulated, the altered threshold
that keeps ``--keep`` of the calibration benign pairs unaltered, the benign false-altered rate and the detection
rate per manipulation kind on both splits, and on the report split the mean IoU of the predicted boxes (as one
region) with the bounding box of the ground-truth change mask (manipulated queries are only resized, so the mask is
resized to the reference). Benign pairs are broken down by transform (a seen variant counts under each transform
it combines: JPEG + resize always, then sharpness, noise, colour...; an unseen one under its corruption: shot,
impulse and speckle noise, blurs, pixelate), with their false-altered rate on both splits. Latencies: one
extraction, one verification of a candidate (both orientations), one comparison.

With the defaults each photo gets 4 seen and 2 unseen benign variants, so each unseen corruption (pixelate among
them) lands on about a third of the photos. ``--seen 8 --unseen 6`` gives every photo every unseen corruption and
twice the seen combinations; the first 4 + 2 variants (and the manipulated ones) are the same images as with the
defaults, since every variant draws from its own seeded generator.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from provenance.bench.dataset import Dataset, load_dataset
from provenance.bench.make_dataset import BuildConfig, build_dataset, list_images
from provenance.lookup import compare, geometry
from provenance.lookup.features import LocalFeatures, extract_features

ROOT = Path(__file__).resolve().parents[1]
MODELS: tuple[geometry.Model, ...] = ("homography", "fundamental")


@dataclass
class PairResult:
    relation: str  # benign | manipulated | unrelated
    kind: str
    query: str
    passed: dict[str, bool]
    inliers: dict[str, int] = field(default_factory=dict)
    score: float | None = None
    iou: float | None = None
    hit: bool | None = None
    region_boxes: dict[float, tuple] = field(default_factory=dict)  # region threshold -> boxes
    mask: np.ndarray | None = None  # ground-truth change mask on the reference frame


@dataclass
class Timings:
    extract: list[float] = field(default_factory=list)
    blob_bytes: list[int] = field(default_factory=list)
    verify: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    compare: list[float] = field(default_factory=list)


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _timed(times: list[float], fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    times.append(time.perf_counter() - t)
    return out


def _query_features(rgb: np.ndarray, timings: Timings) -> geometry.QueryFeatures:
    straight = _timed(timings.extract, extract_features, rgb)
    mirrored = _timed(timings.extract, extract_features, np.ascontiguousarray(rgb[:, ::-1]))
    return geometry.QueryFeatures(straight, mirrored)


def _box_iou(boxes: tuple, mask: np.ndarray) -> tuple[float, bool]:
    """IoU of the union of ``boxes`` (as one region) with the mask's bounding box; and whether any box hits it."""
    ys, xs = np.nonzero(mask)
    truth = np.zeros(mask.shape, bool)
    truth[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] = True
    pred = np.zeros(mask.shape, bool)
    for x, y, w, h in boxes:
        pred[y: y + h, x: x + w] = True
    union = int((pred | truth).sum())
    return (int((pred & truth).sum()) / union if union else 0.0), bool((pred & mask).any())


def run_split(ds: Dataset, region_thresholds: tuple[float, ...], timings: Timings) -> list[PairResult]:
    refs: dict[str, tuple[np.ndarray, LocalFeatures]] = {}
    for rel in ds.references:
        rgb = _rgb(ds.path(rel))
        refs[rel] = (rgb, _timed(timings.extract, extract_features, rgb))
        timings.blob_bytes.append(len(refs[rel][1].to_bytes()))
    order = list(ds.references)
    by_ref: dict[str, list] = defaultdict(list)
    for p in ds.pairs:
        by_ref[p.reference].append(p)
    # Unrelated pairs: each reference against the first benign and first manipulated query of the next photo.
    unrelated: dict[str, list[str]] = defaultdict(list)
    for i, rel in enumerate(order):
        other = by_ref[order[(i + 1) % len(order)]]
        for relation in ("benign", "manipulated"):
            q = next((p.query for p in other if p.relation == relation), None)
            if q:
                unrelated[q].append(rel)

    results: list[PairResult] = []
    for p in ds.pairs:
        q_rgb = _rgb(ds.path(p.query))
        qf = _query_features(q_rgb, timings)
        ref_rgb, ref_f = refs[p.reference]
        verdicts = {m: _timed(timings.verify[m], geometry.verify_query, qf, ref_f, m) for m in MODELS}
        res = PairResult(p.relation, p.kind, p.query, {m: v.passed for m, v in verdicts.items()},
                         {m: v.inliers for m, v in verdicts.items()})
        h = verdicts["homography"]
        if h.passed:
            try:
                a = _timed(timings.compare, compare.aligned_difference, q_rgb, ref_rgb, h.homography)
            except compare.InsufficientOverlapError:
                a = None
            if a is not None:
                res.score = a.score
                for t in region_thresholds:
                    res.region_boxes[t] = compare.change_regions(a.heat, a.compared, a.reference_size, t)[0]
                if p.relation == "manipulated":
                    mask_path = ds.path(p.query).with_name(Path(p.query).stem + ".mask.png")
                    with Image.open(mask_path) as m:
                        mask = np.asarray(m.resize((ref_rgb.shape[1], ref_rgb.shape[0]), Image.Resampling.NEAREST))
                    res.mask = mask > 0
        results.append(res)
        for rel in unrelated.get(p.query, ()):
            v = {m: geometry.verify_query(qf, refs[rel][1], m) for m in MODELS}
            results.append(PairResult("unrelated", p.kind, f"{rel} vs {p.query}", {m: x.passed for m, x in v.items()},
                                      {m: x.inliers for m, x in v.items()}))
    return results


def auc(neg: list[float], pos: list[float]) -> float:
    """P(pos score > neg score), ties count half (Mann-Whitney)."""
    if not neg or not pos:
        return float("nan")
    n, p = np.asarray(neg), np.asarray(pos)
    return float(((p[:, None] > n[None, :]).sum() + 0.5 * (p[:, None] == n[None, :]).sum()) / (len(n) * len(p)))


def _rate(flags: list[bool]) -> str:
    return f"{np.mean(flags):6.1%} ({sum(flags)}/{len(flags)})" if flags else "   n/a"


def _ms(values: list[float]) -> str:
    v = sorted(values)
    return f"median {statistics.median(v) * 1e3:6.1f} ms  p95 {v[round(0.95 * (len(v) - 1))] * 1e3:6.1f} ms" \
        if v else "n/a"


def _transforms(kind: str) -> list[str]:
    """The transforms a benign ``kind`` token combines: ``seen:jpeg_resize+flip`` -> [jpeg_resize, flip]."""
    return kind.split(":", 1)[-1].split("+")


def _benign_kinds(results: list[PairResult]) -> list[str]:
    seen = {t for r in results if r.relation == "benign" and r.kind.startswith("seen:") for t in _transforms(r.kind)}
    unseen = {t for r in results if r.relation == "benign" and not r.kind.startswith("seen:")
              for t in _transforms(r.kind)}
    return sorted(seen) + sorted(unseen - seen)


def _scores(results: list[PairResult], relation: str, transform: str | None = None) -> list[float]:
    return [r.score for r in results if r.relation == relation and r.score is not None
            and (transform is None or transform in _transforms(r.kind))]


def report(cal: list[PairResult], rep: list[PairResult], keep: float, region_thresholds: tuple[float, ...],
           timings: Timings) -> None:
    print("\n== geometric verification: pass rate (calibration split | report split)")
    print(f"{'model':12s} {'benign':>30s} {'manipulated':>30s} {'unrelated':>30s}")
    for m in MODELS:
        for name, res in (("cal", cal), ("report", rep)):
            cells = [_rate([r.passed[m] for r in res if r.relation == rel])
                     for rel in ("benign", "manipulated", "unrelated")]
            print(f"{m[:5] + ' ' + name:12s} " + " ".join(f"{c:>30s}" for c in cells))

    print(f"inliers (both splits): {'model':12s} {'unrelated max':>14s} {'related min':>12s} {'related p5':>11s}  "
          f"pass needs")
    for m in MODELS:
        unrel = [r.inliers[m] for r in cal + rep if r.relation == "unrelated"]
        rel = [r.inliers[m] for r in cal + rep if r.relation != "unrelated"]
        print(f"{'':23s}{m:12s} {max(unrel):14d} {min(rel):12d} {np.percentile(rel, 5):11.0f}  "
              f">= {geometry.MIN_INLIERS[m]} inliers, ratio >= {geometry.MIN_INLIER_RATIO[m]}")

    benign_cal = _scores(cal, "benign")
    threshold = float(np.quantile(benign_cal, keep)) if benign_cal else float("nan")
    print("\n== aligned comparison (pairs verified by homography)")
    print(f"AUC benign vs manipulated: calibration {auc(benign_cal, _scores(cal, 'manipulated')):.4f}  "
          f"report {auc(_scores(rep, 'benign'), _scores(rep, 'manipulated')):.4f}")
    print(f"threshold keeping {keep:.0%} of calibration benign pairs unaltered: {threshold:.1f}  "
          f"(module ALTERED_THRESHOLD = {compare.ALTERED_THRESHOLD}; the report below uses the module constant)")
    t = compare.ALTERED_THRESHOLD
    for name, res in (("calibration", cal), ("report", rep)):
        ben = _scores(res, "benign")
        print(f"{name:12s} benign false-altered {_rate([s >= t for s in ben])}   manipulated detected "
              f"{_rate([s >= t for s in _scores(res, 'manipulated')])}")

    print(f"\nbenign pairs per transform (threshold {t}; a seen variant counts under each transform it combines):")
    print(f"{'transform':20s} {'calibration false-altered':>26s} {'report false-altered':>26s} {'report median':>14s} "
          f"{'report max':>11s}")
    for kind in _benign_kinds(cal + rep):
        cells = []
        for res in (cal, rep):
            cells.append(_rate([s >= t for s in _scores(res, "benign", kind)]))
        rs = _scores(rep, "benign", kind)
        print(f"{kind:20s} {cells[0]:>26s} {cells[1]:>26s} {np.median(rs) if rs else float('nan'):14.1f} "
              f"{max(rs) if rs else float('nan'):11.1f}")

    print(f"\nper manipulation kind (threshold {t}; verified, IoU and box hits on the report split, boxes at "
          f"REGION_THRESHOLD {compare.REGION_THRESHOLD}):")
    print(f"{'kind':20s} {'n':>3s} {'verified':>9s} {'cal detected':>17s} {'report detected':>17s} {'mean IoU':>9s} "
          f"{'box hits':>9s}")
    kinds = sorted({r.kind for r in rep if r.relation == "manipulated"})
    for kind in kinds + ["all"]:
        rows = [r for r in rep if r.relation == "manipulated" and (kind == "all" or r.kind == kind)]
        det = [r for r in rows if r.score is not None and r.score >= t]
        cal_rows = [r for r in cal if r.relation == "manipulated" and (kind == "all" or r.kind == kind)]
        cal_det = _rate([r.score is not None and r.score >= t for r in cal_rows])
        ious = [_box_iou(r.region_boxes[compare.REGION_THRESHOLD], r.mask) for r in det]
        iou = np.mean([i for i, _ in ious]) if ious else 0.0
        hits = np.mean([h for _, h in ious]) if ious else 0.0
        print(f"{kind:20s} {len(rows):3d} {np.mean([r.passed['homography'] for r in rows]):9.1%} {cal_det:>17s} "
              f"{_rate([r.score is not None and r.score >= t for r in rows]):>17s} {iou:9.3f} {hits:9.1%}")

    print("\nregion threshold sweep on the calibration split (detected manipulated pairs; benign boxes per pair):")
    for rt in region_thresholds:
        det = [r for r in cal if r.relation == "manipulated" and r.score is not None and r.score >= t]
        ious = [_box_iou(r.region_boxes[rt], r.mask)[0] for r in det]
        ben = [len(r.region_boxes[rt]) for r in cal if r.relation == "benign" and r.score is not None]
        print(f"  region threshold {rt:5.1f}: mean IoU {np.mean(ious) if ious else 0:.3f}  "
              f"benign pairs with a box {np.mean([b > 0 for b in ben]):.1%}")

    print("\n== latency (this machine, single process)")
    print(f"extraction (one image)          {_ms(timings.extract)}")
    for m in MODELS:
        print(f"verify {m:12s} (2 orient.) {_ms(timings.verify[m])}")
    print(f"aligned comparison (one pair)   {_ms(timings.compare)}")
    b = np.asarray(timings.blob_bytes)
    print(f"\nfeature blob per reference: median {np.median(b) / 1024:.0f} KiB, min {b.min() / 1024:.0f} KiB, "
          f"max {b.max() / 1024:.0f} KiB ({len(b)} references)")


def _dump(path: Path, rows: list[tuple[str, PairResult]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["split", "relation", "kind", "query", *(f"{m}_passed" for m in MODELS),
                      *(f"{m}_inliers" for m in MODELS), "score", "boxes"])
        for split, r in rows:
            out.writerow([split, r.relation, r.kind, r.query, *(int(r.passed[m]) for m in MODELS),
                          *(r.inliers.get(m, "") for m in MODELS), "" if r.score is None else f"{r.score:.2f}",
                          len(r.region_boxes.get(compare.REGION_THRESHOLD, ()))])


def _build(photos: Path, workdir: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    files = list_images(photos)
    outs = []
    for half, seed in ((0, 0), (1, 1)):
        folder = workdir / f"photos_{half}"
        for f in files[half::2]:
            link = folder / f.relative_to(photos)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(f.resolve())
        out = workdir / f"dataset_{half}"
        if not (out / "pairs.csv").exists():
            cfg = BuildConfig(seed=seed, n_seen=args.seen, n_unseen=args.unseen, n_manipulated=args.manipulated,
                              workers=args.workers)
            build_dataset(folder, out, cfg, progress=False)
        outs.append(out)
    return outs[0], outs[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", nargs=2, type=Path, metavar=("CALIBRATION", "REPORT"))
    ap.add_argument("--photos", type=Path, default=ROOT.parent / "shared" / "data" / "photos")
    ap.add_argument("--workdir", type=Path, default=None, help="Where built datasets go (default: a temp folder).")
    ap.add_argument("--seen", type=int, default=4)
    ap.add_argument("--unseen", type=int, default=2)
    ap.add_argument("--manipulated", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dump", type=Path, default=None, help="Write every pair's result to this CSV file.")
    ap.add_argument("--keep", type=float, default=0.99, help="Share of calibration benign pairs kept unaltered.")
    args = ap.parse_args()

    region_thresholds = tuple(sorted({4.0, 6.0, 8.0, 12.0, compare.REGION_THRESHOLD, 20.0}))
    with tempfile.TemporaryDirectory() as tmp:
        if args.dataset:
            cal_dir, rep_dir = args.dataset
        else:
            workdir = args.workdir or Path(tmp)
            t = time.perf_counter()
            cal_dir, rep_dir = _build(args.photos, workdir, args)
            print(f"built {cal_dir} and {rep_dir} in {time.perf_counter() - t:.0f} s")
        timings = Timings()
        t = time.perf_counter()
        cal = run_split(load_dataset(cal_dir), region_thresholds, timings)
        rep = run_split(load_dataset(rep_dir), region_thresholds, timings)
        n = sum(r.relation != "unrelated" for r in cal + rep)
        print(f"scored {n} pairs (+{len(cal) + len(rep) - n} unrelated) in {time.perf_counter() - t:.0f} s")
        report(cal, rep, args.keep, region_thresholds, timings)
        if args.dump:
            _dump(args.dump, [("calibration", r) for r in cal] + [("report", r) for r in rep])


if __name__ == "__main__":
    main()
