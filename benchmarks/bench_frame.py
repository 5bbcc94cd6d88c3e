"""What the query shows past the original's edge (``provenance.lookup.frame``), on pairs where it matters.

Another photo of the same scene that is framed a little wider goes on past the registered photo's edge. A copy never
does: whatever lies past the edge is padding, an app's frame, or a neighbouring picture. This benchmark measures
``FrameEvidence`` (continuity, seam, texture) and whether ``verdict.goes_beyond_frame`` fires on:

* **positives**: the same-scene pairs of ``--same-scene`` (the real pairs in the shared data, both directions);
* **negatives**, the dataset's edits (``--limit`` of them, every kind), each re-shared four ways, because an edit
  called *same_scene* is lost to *altered*:
  * as made (a light re-share);
  * padded or letterboxed (``platform.padding``);
  * inside an app's screenshot frame (``platform.screenshot``);
  * in a collage: butted, with no gutter, against a photo of the dataset's unrelated set. This is the hardest
    case, a textured picture right across the edge.
* the dataset's benign padded and screenshot copies.

It prints, per group, how many pairs verified, how many have an edge inside the query, and how many fire. It also
prints each measure's extremes, so that the thresholds' margins can be read.

    python benchmarks/bench_frame.py --dataset benchmarks/out/world-cal \\
        --same-scene benchmarks/same_scene_pairs.csv --limit 400
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance.bench import platform as P  # noqa: E402
from provenance.lookup.calibration import load_calibration  # noqa: E402
from provenance.lookup.features import LocalFeatures, extract_features  # noqa: E402
from provenance.lookup.frame import FrameEvidence, beyond_frame  # noqa: E402
from provenance.lookup.geometry import query_features, verify_query  # noqa: E402
from provenance.lookup.verdict import Candidate, Policy, goes_beyond_frame  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def collage(img: Image.Image, other: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``img`` butted against ``other`` (scaled to its height), left or right, with no gutter."""
    h = img.height
    side = other.resize((max(8, round(other.width * h / other.height)), h), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (img.width + side.width, h))
    if rng.random() < 0.5:
        canvas.paste(img, (0, 0))
        canvas.paste(side, (img.width, 0))
    else:
        canvas.paste(side, (0, 0))
        canvas.paste(img, (side.width, 0))
    return canvas


def measure(query: Image.Image, reference: LocalFeatures) -> tuple[bool, FrameEvidence | None, int]:
    """(verified, what lies past the original's edges, inliers) for one query."""
    rgb = np.asarray(query)
    geo = verify_query(query_features(rgb), reference)
    if not geo.passed or geo.homography is None:
        return False, None, geo.inliers
    return True, beyond_frame(rgb, geo.homography, (reference.width, reference.height)), geo.inliers


def fires(ev: FrameEvidence | None, inliers: int, policy: Policy) -> bool:
    """Whether the shipped rule fires, with the tie's inliers (a weak tie never fires)."""
    if ev is None:
        return False
    c = Candidate("q", (), None, None, inliers, beyond_continuity=ev.continuity, beyond_seam=ev.seam,
                  beyond_texture=ev.texture, beyond_edge=ev.edge)
    return goes_beyond_frame(c, policy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--same-scene", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=400, help="edits measured (spread over the dataset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="JSON lines of every measurement")
    args = ap.parse_args(argv)
    cal = load_calibration()
    policy = cal.policy(hash_threshold=22, hash_altered=22, identity_gate=None)
    rows = list(csv.DictReader((args.dataset / "pairs.csv").open()))
    edits = [r for r in rows if r["relation"] == "manipulated"]
    edits = [edits[i] for i in np.linspace(0, len(edits) - 1, min(args.limit, len(edits))).astype(int)]
    framed = [r for r in rows if r["relation"] == "benign" and r["kind"] in ("world:padding", "world:screenshot")]
    unrelated = sorted((args.dataset / "distractors").glob("*"))[:200] or sorted(
        p for r in rows if r["relation"] == "unrelated" for p in [args.dataset / r["query"]])
    rng = np.random.default_rng(args.seed)
    groups: dict[str, list[tuple[bool, FrameEvidence | None, int]]] = defaultdict(list)
    out = args.out.open("w") if args.out else None
    cache: dict[str, LocalFeatures] = {}

    def ref(path: Path) -> LocalFeatures:
        key = str(path)
        if key not in cache:
            cache.clear()
            cache[key] = extract_features(np.asarray(_rgb(path)))
        return cache[key]

    def record(group: str, name: str, result: tuple[bool, FrameEvidence | None, int]) -> None:
        groups[group].append(result)
        if out is not None:
            ev = result[1]
            out.write(json.dumps({"group": group, "query": name, "passed": result[0], "inliers": result[2],
                                  "frame": None if ev is None else ev.to_obj()}) + "\n")

    for r in csv.DictReader(args.same_scene.open()):
        group = "positive: " + r["relation"]
        record(group, r["query"], measure(_rgb(SHARED / r["query"]), extract_features(np.asarray(
            _rgb(SHARED / r["reference"])))))
    for i, r in enumerate(edits):
        reference = ref(args.dataset / r["reference"])
        q = _rgb(args.dataset / r["query"])
        other = _rgb(unrelated[i % len(unrelated)])
        record("edit as made", r["query"], measure(q, reference))
        record("edit padded", r["query"], measure(P.padding(q, rng)[0], reference))
        record("edit in a screenshot", r["query"], measure(P.screenshot(q, rng)[0], reference))
        record("edit in a collage", r["query"], measure(collage(q, other, rng), reference))
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(edits)} edits", file=sys.stderr)
    for r in framed:
        record("benign " + r["kind"].split(":")[1], r["query"],
               measure(_rgb(args.dataset / r["query"]), ref(args.dataset / r["reference"])))
    if out is not None:
        out.close()

    print(f"policy: seam <= {policy.scene_beyond_seam} x (1 + continuity), texture {policy.scene_beyond_texture}"
          f" to {1 / policy.scene_beyond_texture:.2f}, edge >= {policy.scene_beyond_min_edge} px")
    print(f"{'group':28s} {'pairs':>6s} {'verified':>8s} {'edge in':>8s} {'fires':>6s}   seam / (1 + continuity) where "
          f"the texture and edge qualify: lowest 3 (highest 3 for positives)")
    t = policy.scene_beyond_texture
    for group, results in groups.items():
        evs = [ev for ok, ev, _ in results if ok and ev is not None]
        n_fire = sum(fires(ev, n, policy) for ok, ev, n in results if ok and ev is not None)
        ratios = sorted(e.seam / (1 + max(0.0, e.continuity)) for e in evs
                        if t <= e.texture <= 1 / t and e.edge >= policy.scene_beyond_min_edge)
        shown = ratios[-3:] if group.startswith("positive") else ratios[:3]
        print(f"{group:28s} {len(results):6d} {sum(ok for ok, _, _ in results):8d} {len(evs):8d} {n_fire:6d}   "
              f"{', '.join(f'{r:.3f}' for r in shown)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
