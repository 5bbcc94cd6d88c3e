"""Fit the verdict's thresholds and confidence model on a calibration split, and write the file lookup ships with
(``provenance/lookup/verdict_calibration.json``) together with how it was made.

    .venv/bin/python benchmarks/calibrate_verdicts.py --evidence benchmarks/out/verdicts-cal.jsonl \
        --out provenance/lookup/verdict_calibration.json

The evidence is ``bench_verdicts.py``'s per-pair output on the calibration split (``make-dataset --recipe world
--split calibration``); nothing here looks at the test split. What is fitted:

1. the altered thresholds, one for comparisons finer than ``--bins`` px and one at or below it (coarse comparisons
   of small copies leave more benign difference): on a grid, the pair that lets the fewest edits through as *match*
   (the most harmful error) while at most ``--max-false-altered`` of the benign copies are lost;
2. the region threshold: just above every benign copy's region score (``--region-margin``), so the region cue only
   adds edits the score missed;
3. the peak threshold and its contrast, and the chroma threshold, each catching the most edits the thresholds
   before it let through within a small budget of benign copies (``--peak-budget``, ``--chroma-budget``);
4. the scene thresholds are given (``--scene-*``; the real same-scene pairs are too few to fit on) and reported
   against the calibration pairs;
5. the match floor (``Policy.match_floor``): per comparison resolution (``--floor-bins``), the share of the picture
   an edit must visibly change before at most ``--floor-max-pass`` of such edits are called *match*; a match compared
   there says it cannot rule out a smaller edit (the split should hold thumbnailed edits:
   ``make-dataset --recipe world --thumbnailed-edits 1``);
6. the confidence model: per verdict, a logistic model of (margin, tie) (``provenance.lookup.confidence``) fitted
   to whether the verdict was right, and the confidence below which a verdict is not ``confident``: the largest
   that flags at most ``--unsure`` of the benign copies and of the edits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_verdicts import RIGHT, _visible, candidate_from_row, rate, refresh_facts  # noqa: E402

from provenance.lookup.calibration import FORMAT, parse_calibration  # noqa: E402
from provenance.lookup.confidence import ConfidenceModel, evidence_features, fit_logistic  # noqa: E402
from provenance.lookup.verdict import MATCH, Policy, decide  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def load_rows(paths: list[Path], dataset: Path | None = None) -> list[dict[str, Any]]:
    """The evidence rows; with ``dataset``, each edit's size facts refreshed from its ``build.json`` and the
    imperceptible edits (``provenance.bench.world.IMPERCEPTIBLE_SHARE``) left out: nothing to catch there."""
    rows = []
    for p in paths:
        rows += [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    if dataset is not None:
        refresh_facts(rows, dataset)
        rows = [r for r in rows if r.get("visible_bucket") != "imperceptible"]
    return rows


def fit_peak(rows: list[dict[str, Any]], policy: Policy, budget: float) -> tuple[float | None, float]:
    """The peak threshold and its contrast (how many times the score the peak must reach) that catch the most
    edits the other thresholds let through, losing at most ``budget`` of the benign copies they leave *match*
    (ties: fewer benign copies lost, then the higher threshold)."""
    def left_match(rel: str) -> list[Any]:
        return [c for r in rows if r["relation"] == rel for c in [candidate_from_row(r)]
                if c.peak_score is not None and c.change_score is not None
                and decide([c], policy, query_hash="", model="").verdict == "match"]
    benign, edits = left_match("benign"), left_match("manipulated")
    n_benign = sum(r["relation"] == "benign" for r in rows)
    best: tuple[int, int, float, float] | None = None
    for contrast in (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0):
        for t in np.arange(8.0, 60.01, 0.5):
            lost = sum(c.peak_score >= t and c.peak_score >= contrast * c.change_score for c in benign)
            if lost > budget * n_benign:
                continue
            caught = sum(c.peak_score >= t and c.peak_score >= contrast * c.change_score for c in edits)
            key = (-caught, lost, -float(t), -contrast)
            if best is None or key < best:
                best = key
    if best is None or best[0] == 0:
        print("peak threshold: none catches an edit within the budget")
        return None, 1.0
    caught, lost, t, contrast = -best[0], best[1], -best[2], -best[3]
    print(f"peak threshold {t:.1f} at {contrast:g}x the score: catches {caught} of the {len(edits)} edits the other "
          f"thresholds let through, loses {lost} of {n_benign} benign copies")
    return round(t, 2), contrast


def fit_chroma(rows: list[dict[str, Any]], policy: Policy, budget: float) -> float | None:
    """The chroma threshold that catches the most edits the other thresholds let through, losing at most
    ``budget`` of the benign copies they leave *match* (ties: the higher threshold); None when it catches none.
    Rows without a chroma score (evidence written before it existed) are refused: the fit would be blind."""
    left = [(r["relation"], c) for r in rows if r["relation"] in ("benign", "manipulated")
            for c in [candidate_from_row(r)] if c.change_score is not None
            and decide([c], policy, query_hash="", model="").verdict == "match"]
    if any(c.chroma_score is None for _, c in left):
        raise SystemExit("evidence without chroma_score: rerun bench_verdicts.py on the calibration split")
    benign = sorted((c.chroma_score for rel, c in left if rel == "benign"), reverse=True)
    edits = [c.chroma_score for rel, c in left if rel == "manipulated"]
    n_benign = sum(r["relation"] == "benign" for r in rows)
    allowed = int(budget * n_benign)  # benign copies the threshold may lose
    if not benign or not edits:
        return None
    # just above the (allowed + 1)-th highest benign score: loses exactly ``allowed`` of them
    threshold = round(benign[min(allowed, len(benign) - 1)] + 0.01, 2)
    caught = sum(e >= threshold for e in edits)
    print(f"chroma threshold {threshold}: catches {caught} of the {len(edits)} edits the other thresholds let "
          f"through, loses {min(allowed, len(benign) - 1)} of {n_benign} benign copies")
    return threshold if caught else None


def fit_thresholds(rows: list[dict[str, Any]], policy: Policy, bins: list[int], max_false_altered: float,
                   floor: float, small_keep: float) -> tuple[float, list[list[float]]]:
    """The altered thresholds. At or below each resolution of ``bins`` (coarse comparisons: small copies), the
    ``small_keep`` quantile of the benign copies' scores there, so small copies are not lost more often than
    large ones (the calibration split has benign small copies aplenty but few small edited copies to trade against).
    Above, on a grid from ``floor``: the threshold that lets the fewest edits through as *match* (the most harmful
    error) while at most ``max_false_altered`` of all benign copies are lost; ties go to the higher threshold."""
    judged = [(r["relation"], candidate_from_row(r)) for r in rows if r["relation"] in ("benign", "manipulated")]
    n_benign = sum(rel == "benign" for rel, _ in judged)
    n_edits = len(judged) - n_benign
    small = []
    for side in bins:
        scores = [c.change_score for rel, c in judged if rel == "benign" and c.change_score is not None
                  and c.comparison_side is not None and c.comparison_side <= side]
        small.append([side, round(float(np.quantile(scores, small_keep)), 2) if scores else None])
        print(f"  benign copies compared at <= {side} px: {len(scores)}")
    best: tuple[float, float, float] | None = None
    for base in np.arange(floor, 16.01, 0.25):
        ladder = tuple((side, max(float(base), t if t is not None else float(base))) for side, t in small)
        p = replace(policy, change_threshold=float(base), change_thresholds=ladder)
        verdicts = [(rel, decide([c], p, query_hash="", model="").verdict) for rel, c in judged]
        lost = sum(rel == "benign" and v != "match" for rel, v in verdicts) / n_benign
        passed = sum(rel == "manipulated" and v == "match" for rel, v in verdicts) / n_edits
        key = (passed, lost, -base)
        if lost <= max_false_altered and (best is None or key < best):
            best = key
    if best is None:
        raise SystemExit(f"no threshold loses under {max_false_altered:.2%} of the benign copies")
    passed, lost, base = best[0], best[1], -best[2]
    ladder_out = [[side, round(max(base, t if t is not None else base), 2)] for side, t in small]
    print(f"altered threshold {base:.2f}, by resolution {ladder_out}: edits called match {passed:.2%}, benign "
          f"copies not match {lost:.2%} on the calibration pairs")
    return round(base, 2), ladder_out


#: Edit sizes a match floor may name (shares of the picture visibly changed): the world recipe's bucket edges.
FLOOR_SHARES = (0.01, 0.02, 0.05, 0.10)


def fit_match_floor(rows: list[dict[str, Any]], policy: Policy, bins: list[int], max_pass: float
                    ) -> list[list[float]]:
    """What a *match* cannot vouch for, per comparison resolution. For each bin (comparisons above the previous
    side and up to this one), the perceptible edits compared there: the smallest share of ``FLOOR_SHARES`` such that
    of the edits visibly changing at least that much, at most ``max_pass`` are called *match*. A bin where every
    perceptible edit is held to that rate gets no floor; one where even the largest share fails gets the largest."""
    # (comparison side, visible share, called match) of every compared perceptible edit, judged once
    judged = [(c.comparison_side, _visible(r), decide([c], policy, query_hash="", model="").verdict == MATCH)
              for r in rows if r["relation"] == "manipulated" and r.get("visible_bucket") != "imperceptible"
              for c in [candidate_from_row(r)] if c.change_score is not None and c.comparison_side is not None]
    floor: list[list[float]] = []
    lower = 0
    for side in bins:
        passed = [(v, m) for s, v, m in judged if lower < s <= side]
        shares = (0.0, *FLOOR_SHARES)
        rates = {b: (sum(m for v, m in passed if v >= b), sum(v >= b for v, _ in passed)) for b in shares}
        print(f"  edits compared at {lower + 1}-{side} px: " + ", ".join(
            f">= {b:.0%}: {rate(k, n)} match" for b, (k, n) in rates.items()))
        share = next((b for b in shares if rates[b][1] and rates[b][0] <= max_pass * rates[b][1]), FLOOR_SHARES[-1])
        if share > 0.0:
            floor.append([side, share])
        lower = side
    print(f"match floor {floor} (at most {max_pass:.1%} of the edits at or above it called match)")
    return floor


def fit_region_threshold(rows: list[dict[str, Any]], policy: Policy, margin: float) -> float | None:
    """The region score above every benign copy's that the other thresholds leave *match*, times ``margin``: it may
    only add edits the score missed (an inpainted patch, a copy that blends in), never lose a benign copy here."""
    scores = [c.region_score for r in rows if r["relation"] == "benign"
              for c in [candidate_from_row(r)]
              if c.region_score is not None and decide([c], policy, query_hash="", model="").verdict == "match"]
    if not scores:
        return None
    threshold = round(max(scores) * margin, 2)
    edits = [candidate_from_row(r) for r in rows if r["relation"] == "manipulated"]
    missed = [c for c in edits if decide([c], policy, query_hash="", model="").verdict == "match"]
    caught = sum(c.region_score is not None and c.region_score >= threshold for c in missed)
    print(f"region threshold {threshold} (benign maximum {max(scores):.2f} x {margin}): catches {caught} of the "
          f"{len(missed)} edits the other thresholds let through")
    return threshold


def verdicts(rows: list[dict[str, Any]], policy: Policy) -> list[Any]:
    return [decide([candidate_from_row(r)], policy, query_hash="", model="") for r in rows]


def fit_confidence(rows: list[dict[str, Any]], policy: Policy, unsure: float) -> ConfidenceModel:
    judged = [(r, v) for r, v in zip(rows, verdicts(rows, policy), strict=True) if r["relation"] in RIGHT]
    models = {}
    for verdict in ("match", "altered", "same_scene", "no_match"):
        data = [(r, v) for r, v in judged if v.verdict == verdict]
        x = [evidence_features(verdict, next(iter(v.candidates), None) if verdict != "no_match" else None,
                               v.candidates, policy) for _, v in data]
        y = [int(v.verdict in RIGHT[r["relation"]]) for r, v in data]
        if len(data) < 10:
            print(f"confidence, {verdict}: {len(data)} pairs, too few to fit; no model")
            continue
        if len(set(y)) < 2:  # all right (or all wrong): a logistic fit runs its bias off to infinity
            print(f"confidence, {verdict}: {len(data)} pairs, all {'right' if y[0] else 'wrong'}: nothing to fit "
                  f"a probability on; no model")
            continue
        models[verdict] = fit_logistic(x, y, l2=1.0, nonnegative=True)
        print(f"confidence, {verdict}: {len(data)} pairs, {sum(y)} right; model {models[verdict]}")
    model = ConfidenceModel(models, 0.0)
    conf = {id(r): model.assess(v.verdict, next(iter(v.candidates), None), v.candidates, policy)[0]
            for r, v in judged}
    best = 0.0
    for threshold in np.round(np.arange(0.50, 0.995, 0.01), 2):
        flagged = {rel: np.mean([conf[id(r)] is not None and conf[id(r)] < threshold
                                 for r, _ in judged if r["relation"] == rel]) for rel in ("benign", "manipulated")}
        if max(flagged.values()) <= unsure:
            best = float(threshold)
    print(f"min_confidence {best} (at most {unsure:.1%} of benign copies and of edits not confident)")
    return ConfidenceModel(models, best)


def _git() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--evidence", type=Path, nargs="+", required=True)
    ap.add_argument("--dataset", type=Path, default=None,
                    help="the evidence's dataset: edit facts refreshed from its build.json, imperceptible edits left out")
    ap.add_argument("--peak-budget", type=float, default=0.002,
                    help="most benign copies the peak threshold may lose beyond the other thresholds")
    ap.add_argument("--chroma-budget", type=float, default=0.001,
                    help="most benign copies the chroma threshold may lose beyond the other thresholds")
    ap.add_argument("--out", type=Path, default=ROOT / "provenance" / "lookup" / "verdict_calibration.json")
    ap.add_argument("--bins", default="230", help="comparison resolutions (long side, px) at or below which the "
                    "second threshold applies")
    ap.add_argument("--max-false-altered", type=float, default=0.0075,
                    help="most benign copies the thresholds may lose (not match) on the calibration pairs")
    ap.add_argument("--floor", type=float, default=8.0, help="lowest altered threshold searched")
    ap.add_argument("--small-keep", type=float, default=0.995,
                    help="share of the benign copies compared at or below --bins px kept under their threshold")
    ap.add_argument("--scene-off-plane", type=float, default=Policy.scene_off_plane)
    ap.add_argument("--scene-min-inlier-ratio", type=float, default=Policy.scene_min_inlier_ratio)
    ap.add_argument("--scene-changed", type=float, default=Policy.scene_changed)
    ap.add_argument("--scene-max-density", type=float, default=Policy.scene_max_density)
    ap.add_argument("--scene-min-inliers", type=int, default=Policy.scene_min_inliers)
    ap.add_argument("--scene-beyond-seam", type=float, default=1.1,
                    help="the query goes on past the original's edge (lookup/frame.py): the most seam, times (1 + "
                         "continuity); set from benchmarks/bench_frame.py (same-scene pairs reach 0.97, edits in "
                         "frames and collages start at 1.29)")
    ap.add_argument("--scene-beyond-texture", type=float, default=Policy.scene_beyond_texture)
    ap.add_argument("--scene-beyond-min-edge", type=int, default=Policy.scene_beyond_min_edge)
    ap.add_argument("--clone-min-matches", type=int, default=Policy.clone_min_matches)
    ap.add_argument("--clone-min-gap", type=float, default=Policy.clone_min_gap)
    ap.add_argument("--unsure", type=float, default=0.02, help="most benign copies / edits flagged not confident")
    ap.add_argument("--floor-bins", default="230,4096",
                    help="comparison resolutions (long side, px) that each get their own match floor")
    ap.add_argument("--floor-max-pass", type=float, default=0.005,
                    help="most edits at or above a match floor's share that may be called match")
    ap.add_argument("--region-margin", type=float, default=1.05,
                    help="the region threshold is the largest benign region score (of copies left match) times this")
    args = ap.parse_args()

    rows = load_rows(args.evidence, args.dataset)
    counts = {rel: sum(r["relation"] == rel for r in rows) for rel in sorted({r["relation"] for r in rows})}
    print(f"{len(rows)} calibration pairs: {counts}")
    given = {"scene_off_plane": args.scene_off_plane, "scene_min_inlier_ratio": args.scene_min_inlier_ratio,
             "scene_changed": args.scene_changed, "scene_max_density": args.scene_max_density,
             "scene_min_inliers": args.scene_min_inliers, "clone_min_matches": args.clone_min_matches,
             "clone_min_gap": args.clone_min_gap, "scene_beyond_seam": args.scene_beyond_seam,
             "scene_beyond_texture": args.scene_beyond_texture, "scene_beyond_min_edge": args.scene_beyond_min_edge}
    policy = Policy(hash_threshold=22, hash_altered=22, change_threshold=args.floor, identity_gate=None,
                    **given)  # type: ignore[arg-type]
    base, by_side = fit_thresholds(rows, policy, [int(v) for v in args.bins.split(",")], args.max_false_altered,
                                   args.floor, args.small_keep)
    policy = replace(policy, change_threshold=base, change_thresholds=tuple(tuple(p) for p in by_side))
    region = fit_region_threshold(rows, policy, args.region_margin)
    policy = replace(policy, region_threshold=region)
    peak, contrast = fit_peak(rows, policy, args.peak_budget)
    policy = replace(policy, peak_threshold=peak, peak_min_contrast=contrast)
    chroma = fit_chroma(rows, policy, args.chroma_budget)
    policy = replace(policy, chroma_threshold=chroma)
    thresholds = {"change_threshold": base, "change_thresholds": by_side, "region_threshold": region,
                  "peak_threshold": peak, "peak_min_contrast": contrast, "chroma_threshold": chroma, **given}
    floor = fit_match_floor(rows, policy, [int(v) for v in args.floor_bins.split(",")], args.floor_max_pass)
    thresholds["match_floor"] = floor
    policy = replace(policy, match_floor=tuple(tuple(p) for p in floor))
    confidence = fit_confidence(rows, policy, args.unsure)
    judged = verdicts(rows, policy)
    for rel in counts:
        g = [(r, v) for r, v in zip(rows, judged, strict=True) if r["relation"] == rel]
        ok = sum(v.verdict in RIGHT.get(rel, ()) for _, v in g)
        print(f"  {rel:12s} right verdict {rate(ok, len(g))}")
    made_by = {"command": "benchmarks/calibrate_verdicts.py " + " ".join(sys.argv[1:]), "code": _git(),
               "date": date.today().isoformat(),
               "evidence": [str(p) for p in args.evidence], "pairs": counts,
               "how": "bench_verdicts.py evidence on make-dataset --recipe world --split calibration (train-photos, "
                      "hash-held-out by source); thresholds: fewest edits called match with at most "
                      f"{args.max_false_altered:.2%} of benign copies lost, by comparison resolution; a compact "
                      f"change's peak with at most {args.peak_budget:.2%} more; a colour change's chroma score with at most "
                      f"{args.chroma_budget:.2%} more; imperceptible edits left out; the scene_* and clone_* "
                      "thresholds as given (bench_geometry.py, bench_frame.py); "
                      "confidence: logistic (Platt) per verdict on (margin, tie), its minimum the highest that leaves "
                      f"at most {args.unsure:.1%} of benign copies and of edits not confident; match floor: per "
                      f"comparison resolution, the smallest edit share above which at most {args.floor_max_pass:.1%} "
                      "of the edits were called match"}
    obj = {"format": FORMAT, "made_by": made_by, "thresholds": thresholds, "confidence": confidence.to_obj()}
    if args.out.is_file():  # the per-model hash thresholds are fitted apart (calibrate_hash_altered.py): kept
        previous = json.loads(args.out.read_text(encoding="utf-8"))
        if previous.get("hash_altered"):
            obj["hash_altered"] = previous["hash_altered"]
            if "hash_altered" in previous.get("made_by", {}):  # and how they were fitted
                made_by["hash_altered"] = previous["made_by"]["hash_altered"]
    parse_calibration(obj)  # what is written must load
    args.out.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
