"""Verdict quality on pairs (issue 13): every (reference, query) pair of a dataset through the lookup's own evidence
(``provenance.lookup.evidence.examine``: verification, the scene test, the aligned comparison) and verdict policy
(``verdict.decide``, with the shipped thresholds), without the hash index. Fast enough to run on a calibration
split and a test split of a few thousand pairs, and the input of ``calibrate_verdicts.py``.

    .venv/bin/python benchmarks/bench_verdicts.py --dataset benchmarks/out/world-cal \
        --same-scene benchmarks/same_scene_pairs.csv --out benchmarks/out/verdicts-cal.jsonl

Pairs: the dataset's benign and manipulated pairs; each unrelated photo (the dataset's distractors) against
``--unrelated-refs`` references drawn for it (the system benchmark, ``attribution_system.py``, has the index choose
them instead); and the real photo pairs of ``--same-scene`` (a CSV of ``reference,query,relation,note`` with paths
relative to ``--shared``; relation ``same_scene`` for two photos of one scene, ``other_photo`` for two photos that
only share an object or a pattern). One JSON object per pair is appended to ``--out`` (an existing file is resumed:
pairs already in it are skipped), then a summary is printed: per relation, per reference size, per benign kind, per
edit kind and edit-size bucket, with Wilson 95 % intervals.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from provenance.bench.dataset import load_dataset
from provenance.bench.metrics import wilson
from provenance.bench.world import bucket_of, variant_facts
from provenance.lookup import geometry
from provenance.lookup.compare import PEAK_POOL, pooled_max
from provenance.lookup.dense import DENSE_MODEL
from provenance.lookup.evidence import PairEvidence, examine
from provenance.lookup.features import LocalFeatures, extract_features
from provenance.lookup.verdict import Candidate, Policy, decide

ROOT = Path(__file__).resolve().parents[1]


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k / n:7.2%} ({k}/{n}) [{lo:.2%}, {hi:.2%}]" if n else "n/a"


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB")))


def _box_hit(boxes: tuple, mask: np.ndarray) -> tuple[float, bool]:
    """IoU of the union of ``boxes`` with the mask's bounding box, and whether any box touches the mask."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0.0, False
    truth = np.zeros(mask.shape, bool)
    truth[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] = True
    pred = np.zeros(mask.shape, bool)
    for x, y, w, h in boxes:
        pred[y: y + h, x: x + w] = True
    union = int((pred | truth).sum())
    return (int((pred & truth).sum()) / union if union else 0.0), bool((pred & mask).any())


def candidate_from_row(row: dict[str, Any], record_cid: str = "ref") -> Candidate:
    """The verdict's view of a stored evidence row (what ``PairEvidence.candidate`` gives at run time)."""
    resolution = row.get("resolution")
    if resolution is None and row.get("score") is not None:  # rows written before the field existed
        resolution = round(min(row["reference_side"], 512) * row.get("comparison_scale", 1.0))
    clone = row.get("clone")
    return Candidate(record_cid, (), None, None, row["inliers"], row["inlier_ratio"], row["passed"],
                     row.get("mirrored", False), "", row.get("score"), (), {},
                     fundamental_inliers=row.get("fundamental_inliers"), off_plane_share=row.get("off_plane_share"),
                     inlier_density=row.get("inlier_density"),
                     changed_fraction=row.get("changed_fraction"),
                     clone_matches=None if clone is None or clone.get("gap") is not None else clone["matches"],
                     clone_gap=None if clone is None else clone.get("gap"), comparison_side=resolution,
                     region_score=row.get("region_score"),
                     peak_score=row.get("peak_score", (row.get("pools") or {}).get(str(PEAK_POOL))),
                     dense=row.get("dense", False), chroma_score=row.get("chroma_score"),
                     beyond_continuity=row.get("beyond_continuity"), beyond_seam=row.get("beyond_seam"),
                     beyond_texture=row.get("beyond_texture"), beyond_edge=row.get("beyond_edge"))


def evidence_row(ev: PairEvidence, policy: Policy) -> dict[str, Any]:
    g, s, a = ev.geometry, ev.scene, ev.analysis
    v = decide([ev.candidate("ref")], policy, query_hash="", model="")
    row: dict[str, Any] = {"verdict": v.verdict, "passed": g.passed, "inliers": g.inliers, "matches": g.matches,
                           "inlier_ratio": round(g.inlier_ratio, 4), "mirrored": g.mirrored,
                           "dense": g.model == DENSE_MODEL}
    if s is not None:
        row.update(fundamental_inliers=s.fundamental_inliers, off_plane_share=round(s.off_plane_share, 4),
                   inlier_density=None if s.inlier_density is None else round(s.inlier_density, 4))
        if s.frame is not None:
            row.update(beyond_continuity=round(s.frame.continuity, 4), beyond_seam=round(s.frame.seam, 4),
                       beyond_texture=round(s.frame.texture, 4), beyond_edge=s.frame.edge)
    if a is not None:
        row.update(score=round(a.score, 3), changed_fraction=round(a.changed_fraction, 4), overlap=round(a.overlap, 4),
                   blur_sigma=a.blur_sigma, noise_floor=round(a.noise_floor, 3),
                   comparison_scale=round(a.comparison_scale, 4), resolution=a.resolution,
                   region_score=round(a.region_score, 3), peak_score=round(a.peak_score, 3),
                   chroma_score=round(a.chroma_score, 3), unfiltered=a.unfiltered,
                   pools={str(share): round(pooled_max(a.heat, a.compared, share), 3) for share in POOL_SHARES},
                   boxes=[list(b) for b in a.boxes])
    elif ev.not_compared:
        row["not_compared"] = ev.not_compared
    if ev.clone is not None:
        row["clone"] = ev.clone.to_obj()
    return row


#: Pooling widths (shares of the long side) at which the heat's largest pooled value is recorded per pair, to choose
#: the comparison's compact-change score from evidence.
POOL_SHARES = (0.003, 0.005, 0.0075, 0.01, 0.015)


class Runner:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.features: dict[Path, tuple[np.ndarray, LocalFeatures]] = {}
        self.times: list[float] = []

    def reference(self, path: Path) -> tuple[np.ndarray, LocalFeatures]:
        if path not in self.features:
            rgb = _rgb(path)
            self.features[path] = (rgb, extract_features(rgb))
        return self.features[path]

    def pair(self, ref_path: Path, query_path: Path) -> tuple[PairEvidence, dict[str, Any]]:
        ref_rgb, ref_f = self.reference(ref_path)
        q = _rgb(query_path)
        t = time.perf_counter()
        ev = examine(q, geometry.query_features(q), ref_f, lambda: ref_rgb)
        self.times.append(time.perf_counter() - t)
        return ev, {**evidence_row(ev, self.policy), "query_size": [q.shape[1], q.shape[0]],
                    "reference_side": max(ref_rgb.shape[:2])}


def pairs_to_run(args: argparse.Namespace) -> list[dict[str, Any]]:
    ds = load_dataset(args.dataset)
    facts = variant_facts(args.dataset)
    jobs: list[dict[str, Any]] = []
    for p in ds.pairs:
        info = facts.get(p.query, {})
        job = {"relation": p.relation, "kind": p.kind, "reference": str(ds.path(p.reference)),
               "query": str(ds.path(p.query))}
        if p.relation == "manipulated":
            share = info.get("mask_share")
            job.update(mask_share=share, edit_bucket=info.get("edit_bucket") or (bucket_of(share) if share else None),
                       visible_share=info.get("visible_share"), visible_bucket=info.get("visible_bucket"),
                       thumbnail_scale=info.get("thumbnail_scale"))
        jobs.append(job)
    rng = np.random.default_rng(args.seed)
    refs = list(ds.references)
    for d in ds.distractors:
        for i in rng.choice(len(refs), size=min(args.unrelated_refs, len(refs)), replace=False):
            jobs.append({"relation": "unrelated", "kind": "unrelated", "reference": str(ds.path(refs[int(i)])),
                         "query": str(ds.path(d))})
    if args.same_scene:
        with args.same_scene.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                jobs.append({"relation": row["relation"], "kind": row.get("note", ""),
                             "reference": str(args.shared / row["reference"]),
                             "query": str(args.shared / row["query"])})
    return jobs


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    policy, _ = shipped_policy()
    done: dict[tuple[str, str], dict[str, Any]] = {}
    if args.out.is_file():
        for line in args.out.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            done[(r["reference"], r["query"])] = r
    jobs = pairs_to_run(args)
    if args.every > 1:  # an even spread over photos, sizes and kinds
        jobs = jobs[::args.every]
    if args.shard:  # I/N: every N-th job from the I-th, for N processes side by side (each with its own --out)
        i, n = (int(v) for v in args.shard.split("/"))
        jobs = jobs[i::n]
    jobs = [j for j in jobs if (j["reference"], j["query"]) not in done]
    print(f"{len(done)} pairs already in {args.out}; {len(jobs)} to run", flush=True)
    runner = Runner(policy)
    t0 = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a", encoding="utf-8") as fh:
        for n, job in enumerate(jobs, 1):
            ev, row = runner.pair(Path(job["reference"]), Path(job["query"]))
            row = {**job, **row}
            if job["relation"] == "manipulated" and ev.analysis is not None:
                mask_path = Path(job["query"]).with_name(Path(job["query"]).stem + ".mask.png")
                if mask_path.is_file():
                    w, h = ev.analysis.reference_size
                    with Image.open(mask_path) as m:
                        mask = np.asarray(m.resize((w, h), Image.Resampling.NEAREST)) > 0
                    iou, hit = _box_hit(ev.analysis.boxes, mask)
                    row.update(box_iou=round(iou, 4), box_hit=hit)
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            done[(job["reference"], job["query"])] = row
            if n % 100 == 0:
                print(f"  {n}/{len(jobs)} pairs, {(time.perf_counter() - t0) / n:.2f} s each", flush=True)
    if runner.times:
        t = np.array(runner.times) * 1000
        print(f"evidence per pair (verification, scene, comparison): median {np.median(t):.0f} ms, "
              f"p90 {np.percentile(t, 90):.0f} ms")
    return list(done.values())


def shipped_policy() -> tuple[Policy, Any]:
    """The shipped thresholds (``verdict_calibration.json``; the hash's are not used on pairs) and confidence."""
    from provenance.lookup.calibration import load_calibration

    cal = load_calibration()
    return cal.policy(hash_threshold=22, hash_altered=22, identity_gate=None), cal.confidence


def judge(rows: list[dict[str, Any]], policy: Policy, confidence: Any) -> None:
    """Set each row's ``verdict``, ``confidence`` and ``confident`` from its evidence under ``policy``."""
    for r in rows:
        v = decide([candidate_from_row(r)], policy, query_hash="", model="")
        if confidence is not None:
            v = confidence.apply(v)
        r["verdict"], r["confidence"], r["confident"] = v.verdict, v.confidence, v.confident


RIGHT = {"benign": ("match",), "manipulated": ("altered",), "unrelated": ("no_match",),
         "same_scene": ("same_scene", "no_match"), "other_photo": ("no_match", "same_scene")}


def reliability(rows: list[dict[str, Any]], bins: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0)) -> None:
    """Predicted confidence against the observed share of right verdicts, per confidence bin."""
    rated = [r for r in rows if r.get("confidence") is not None and r["relation"] in RIGHT]
    if not rated:
        return
    print("\nreliability (confidence bin: n, mean confidence, share right [95 % CI])")
    for lo, hi in zip(bins, bins[1:]):
        g = [r for r in rated if lo <= r["confidence"] < hi or (hi == 1.0 and r["confidence"] == 1.0)]
        if g:
            ok = sum(r["verdict"] in RIGHT[r["relation"]] for r in g)
            print(f"  [{lo:.2f}, {hi:.2f})  n={len(g):5d}  mean {np.mean([r['confidence'] for r in g]):.3f}  "
                  f"right {rate(ok, len(g))}")
    for rel in ("benign", "manipulated"):
        g = [r for r in rated if r["relation"] == rel]
        print(f"  not confident, {rel}: {rate(sum(r['confident'] is False for r in g), len(g))}")
    seen = [r for r in rated if r["relation"] == "manipulated" and r.get("visible_bucket") != "imperceptible"]
    print(f"  not confident, perceptible edits: {rate(sum(r['confident'] is False for r in seen), len(seen))}")


def summarise(rows: list[dict[str, Any]]) -> None:
    """Per relation and breakdown: the share of each verdict, with Wilson 95 % intervals."""
    def table(title: str, groups: dict[str, list[dict[str, Any]]], good: str) -> None:
        print(f"\n{title} (right verdict: {good})")
        for key in sorted(groups):
            g = groups[key]
            counts = {v: sum(r["verdict"] == v for r in g) for v in ("match", "altered", "same_scene", "no_match")}
            ok = sum(r["verdict"] in good.split("|") for r in g)
            print(f"  {key:28s} n={len(g):5d}  {good} {rate(ok, len(g))}  {counts}")

    by_rel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_rel[r["relation"]].append(r)
    benign, edits = by_rel.get("benign", []), by_rel.get("manipulated", [])
    table("benign copies by reference size", _group(benign, lambda r: f"{r['reference_side']}px"), "match")
    table("benign copies by kind", _group(benign, lambda r: r["kind"]), "match")
    table("edits by reference size", _group(edits, lambda r: f"{r['reference_side']}px"), "altered")
    table("edits by size bucket (share of the picture under the edit's mask)",
          _group(edits, lambda r: r.get("edit_bucket") or "?"), "altered")
    table("edits by visible size bucket (share of the picture the edit visibly changed)",
          _group(edits, lambda r: r.get("visible_bucket") or "?"), "altered")
    table("edits by kind", _group(edits, lambda r: r["kind"]), "altered")
    table("edits by how they were shared (thumbnailed: the edit shown at 30-65 %)",
          _group(edits, _shared_as), "altered")
    for rel, good in (("unrelated", "no_match"), ("same_scene", "same_scene|no_match"),
                      ("other_photo", "no_match|same_scene")):
        if by_rel.get(rel):
            table(f"{rel} pairs", {"all": by_rel[rel]}, good)
    fnr = sum(r["verdict"] != "match" for r in benign)
    print(f"\nbenign not match (FNR): {rate(fnr, len(benign))}")
    seen = [r for r in edits if r.get("visible_bucket") != "imperceptible"]
    print(f"edits called match (FPR), perceptible edits: {rate(sum(r['verdict'] == 'match' for r in seen), len(seen))}")
    for how, g in sorted(_group(seen, _shared_as).items()):
        certified = sum(r["verdict"] == "match" and r.get("confident") is not False for r in g)
        print(f"  {how}: called match {rate(sum(r['verdict'] == 'match' for r in g), len(g))}, "
              f"certified (a confident match) {rate(certified, len(g))}")
    print(f"edits called match, every edit (imperceptible ones too): "
          f"{rate(sum(r['verdict'] == 'match' for r in edits), len(edits))}")
    big = [r for r in edits if _visible(r) >= 0.02]
    print(f"altered recall, edits visibly changing >= 2 % of the pixels: "
          f"{rate(sum(r['verdict'] == 'altered' for r in big), len(big))}")
    big = [r for r in edits if (r.get("mask_share") or 0) >= 0.02]
    print(f"altered recall, edit masks >= 2 % of the pixels: "
          f"{rate(sum(r['verdict'] == 'altered' for r in big), len(big))}")
    rendered = [sum(bool(r.get("unfiltered")) for r in g) for g in (benign, edits)]
    print("compared with the reference rendered as an unfiltered downscale (resampling.unfiltered_rendering): "
          f"benign {rendered[0]}, edits {rendered[1]}")
    hits = [r for r in edits if r["verdict"] == "altered" and "box_iou" in r]
    if hits:
        print(f"altered edits: mean box IoU {np.mean([r['box_iou'] for r in hits]):.3f}, a box on the edit "
              f"{np.mean([r['box_hit'] for r in hits]):.1%}")


def _shared_as(row: dict[str, Any]) -> str:
    """How an edit was shared: thumbnailed (``world --thumbnailed-edits``) or lightly re-shared."""
    return "thumbnailed" if row.get("thumbnail_scale") else "re-shared"


def _visible(row: dict[str, Any]) -> float:
    """The share of the picture an edit visibly changed (its mask's share for datasets built before it was
    recorded)."""
    share = row.get("visible_share")
    return float(row.get("mask_share") or 0.0) if share is None else float(share)


def refresh_facts(rows: list[dict[str, Any]], dataset: Path) -> None:
    """Refresh each edit's size facts from the dataset's ``build.json`` (stored evidence may predate a fact)."""
    facts = variant_facts(dataset)
    root = dataset.resolve()
    for r in rows:
        if r["relation"] != "manipulated":
            continue
        try:
            info = facts.get(str(Path(r["query"]).resolve().relative_to(root)), {})
        except ValueError:
            continue
        for key in ("mask_share", "edit_bucket", "visible_share", "visible_bucket", "thumbnail_scale"):
            if key in info:
                r[key] = info[key]


def _group(rows: list[dict[str, Any]], key) -> dict[str, list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[key(r)].append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="JSONL of per-pair evidence (resumed if it exists)")
    ap.add_argument("--same-scene", type=Path, default=None, help="CSV of real same-scene / other-photo pairs")
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data",
                    help="root the --same-scene paths are relative to")
    ap.add_argument("--unrelated-refs", type=int, default=10, help="references each unrelated photo is tried against")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=1, help="run every N-th pair only (a quick, even sample)")
    ap.add_argument("--shard", default="", help="I/N: run the I-th of N interleaved shares of the pairs (0-based)")
    ap.add_argument("--summary-only", action="store_true", help="summarise --out without running anything")
    args = ap.parse_args()
    rows = ([json.loads(line) for line in args.out.read_text(encoding="utf-8").splitlines()]
            if args.summary_only else run(args))
    refresh_facts(rows, args.dataset)
    judge(rows, *shipped_policy())  # stored evidence, judged by the thresholds shipped now
    summarise(rows)
    reliability(rows)


if __name__ == "__main__":
    main()
