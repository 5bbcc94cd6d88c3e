"""The system benchmark (the OSCAR-Net paper's Table 6, extended with the *altered* verdict): every query of an
attribution dataset through the real lookup, against an index padded with distractor codes.

Set-up per distractor size N: a fresh embedded service (SQLite, local block store, FAISS files) ingests the
dataset's references through the real ingest pipeline (C2PA, OSCAR-Net + pHash + global-id, RootSIFT, signed,
logged, indexed); then N distractor codes per channel (uniform random for the 64-bit channels, modelled real-photo
codes for global-id: ``GlobalIdDistractors``) are bulk-inserted into the index catalog under made-up record ids (no
record and no features, so a distractor that reaches the top-k only takes a candidate slot from the true source;
its verification cost is not counted) and the index is rebuilt. Every query then runs through ``Lookup.lookup``.

Reported, per N, each with its Wilson 95 % interval:
* FNR: benign queries not returned as ``match`` to their own photo (a world dataset registers each photo at several
  sizes: a match to any of them is right);
* FPR: manipulated queries returned as ``match`` (to anything);
* altered recall: manipulated queries returned as ``altered`` with the right source, overall and for edits of at
  least 2 % of the pixels;
* unrelated photos (never ingested: the dataset's distractors, or ``--unrelated``) returned as ``no_match``, and as
  ``altered``;
* real same-scene and other-photo pairs (``--same-scene``): their reference is registered, their query looked up;
  never ``altered`` or ``match``;
* the share of benign copies and of edits whose verdict is not ``confident``, and a reliability table (confidence
  bin against the share of right verdicts);
* every figure per reference size, per benign kind, per edit kind and per edit-size bucket;
* latency percentiles of the whole lookup (decode, hashes, search, verification, comparison, verdict).

Thresholds and the confidence model are the shipped ones (the hash's calibrated on the validation split, the
verdict's in ``provenance/lookup/verdict_calibration.json``, fitted on the calibration split by
``calibrate_verdicts.py``); nothing is tuned on the dataset reported here. ``system.json`` keeps every query's
verdict and evidence.

    .venv/bin/python benchmarks/attribution_system.py --dataset benchmarks/out/world-test \
        --same-scene benchmarks/same_scene_pairs.csv --distractors 1000,1000000
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from provenance.bench.dataset import load_dataset
from provenance.bench.metrics import wilson
from provenance.bench.world import variant_facts
from provenance.config import Settings
from provenance.ledger import expand_image_paths
from provenance.records import PublisherMetadata
from provenance.services import open_service


class GlobalIdDistractors:
    """Distractor codes for the 256-bit global-id channel that look like real photos' codes, not uniform bits.

    Uniform random 256-bit codes sit 128 +- 8 bits from everything, far easier to reject than real photos' codes,
    whose bits are correlated. So the projected descriptors (before the sign) of a pool of real photos are modelled
    as a Gaussian (their mean and covariance, shrunk by 10 % towards its mean variance), and each distractor code is
    the sign of a sample. ``realism()`` compares the Hamming distances between pool photos with those between
    samples, so the report can show the model is not easier than the real thing.
    """

    def __init__(self, photos: list[Path]) -> None:
        from hasher.global_id import load_global_id

        gid = load_global_id()
        z = gid.project(np.stack([gid.descriptor(p) for p in photos]))
        self.z = z
        self.mu = z.mean(0)
        cov = np.cov(z, rowvar=False)
        cov = 0.9 * cov + 0.1 * np.trace(cov) / len(cov) * np.eye(len(cov))
        self.chol = np.linalg.cholesky(cov)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = self.mu + rng.standard_normal((n, len(self.mu))) @ self.chol.T
        return np.packbits(z > 0, axis=1)

    def realism(self, seed: int = 0) -> dict[str, list[float]]:
        from provenance.bench.metrics import hamming

        real = np.packbits(self.z > 0, axis=1)
        fake = self.sample(len(real), np.random.default_rng(seed))

        def pairwise(codes: np.ndarray) -> np.ndarray:
            return hamming(codes, codes)[np.triu_indices(len(codes), 1)]

        qs = [0.0, 0.001, 0.01, 0.5]
        return {"real_photos": [float(np.quantile(pairwise(real), q)) for q in qs],
                "model_samples": [float(np.quantile(pairwise(fake), q)) for q in qs], "quantiles": qs}


def pad_index(service, n: int, seed: int, first: int = 0,  # type: ignore[no-untyped-def]
              global_id: GlobalIdDistractors | None = None) -> None:
    """Bulk-insert ``n`` distractor codes per channel (named from ``first`` on) into the catalog, then rebuild the
    indexes: uniform random codes for the 64-bit channels, modelled real-photo codes for global-id."""
    from provenance.index.catalog import index_entries

    rng = np.random.default_rng(seed)
    now = datetime.now(timezone.utc)
    widths = {"oscar-net": 64, "phash": 64}
    if global_id is not None:
        widths["global-id"] = 256
    for channel, bits in widths.items():
        done = 0
        while done < n:
            part = min(50_000, n - done)
            raw = (global_id.sample(part, rng) if channel == "global-id" and global_id is not None
                   else rng.integers(0, 256, size=(part, bits // 8), dtype=np.uint8))
            rows = [{"channel": channel, "record_cid": f"distractor-{channel}-{first + done + i}",
                     "publisher_id": "noise",
                     "code": raw[i].tobytes().hex(), "added_at": now} for i in range(part)]
            with service.ledger.engine.begin() as conn:
                conn.execute(index_entries.insert(), rows)
            done += part
    service.lookup.index.rebuild()


def photo_of(reference: str) -> str:
    """The photo a reference was made from: the world recipe registers one photo at several sizes
    (``references/<photo>@<side>.jpg``), and a copy matched to any of them is matched to its photo."""
    return Path(reference).stem.split("@")[0]


def share(k: int, n: int) -> dict[str, float | int]:
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "ci95": [lo, hi]}


def fmt(x: dict) -> str:  # type: ignore[type-arg]
    return f"{x['rate']:.2%} ({x['k']}/{x['n']}) [{x['ci95'][0]:.2%}, {x['ci95'][1]:.2%}]" if x["n"] else "n/a"


#: What counts as right, per relation (a same-scene pair may be a lead or nothing, never a copy).
RIGHT = {"benign": ("match",), "manipulated": ("altered",), "unrelated": ("no_match",),
         "same_scene": ("same_scene", "no_match"), "other_photo": ("no_match", "same_scene")}


def summarise(rows: list[dict]) -> dict:  # type: ignore[type-arg]
    """The system's figures, each with its Wilson 95 % interval, overall and per reference size / kind / bucket."""
    by = lambda rel: [r for r in rows if r["relation"] == rel]  # noqa: E731
    benign, edits, unrelated = by("benign"), by("manipulated"), by("unrelated")
    ok_match = lambda r: r["verdict"] == "match" and r["right_source"]  # noqa: E731
    ok_altered = lambda r: r["verdict"] == "altered" and r["right_source"]  # noqa: E731
    big = [r for r in edits if (r.get("mask_share") or 1.0) >= 0.02]
    # Edits that visibly change next to nothing (world datasets: ``visible_bucket`` "imperceptible") are reported
    # apart; the FPR and the recall of visible edits count the others.
    seen = [r for r in edits if r.get("visible_bucket") != "imperceptible"]
    visible = lambda r: r.get("visible_share") if r.get("visible_share") is not None else (  # noqa: E731
        r.get("mask_share") or 1.0)
    big_seen = [r for r in seen if visible(r) >= 0.02]
    out = {"fnr": share(sum(not ok_match(r) for r in benign), len(benign)),
           "fpr": share(sum(r["verdict"] == "match" for r in seen), len(seen)),
           "fpr_every_edit": share(sum(r["verdict"] == "match" for r in edits), len(edits)),
           "altered_recall_visible_2pct": share(sum(ok_altered(r) for r in big_seen), len(big_seen)),
           "altered_recall": share(sum(ok_altered(r) for r in edits), len(edits)),
           "altered_recall_2pct": share(sum(ok_altered(r) for r in big), len(big)),
           "no_match_unrelated": share(sum(r["verdict"] == "no_match" for r in unrelated), len(unrelated)),
           "unrelated_altered": share(sum(r["verdict"] == "altered" for r in unrelated), len(unrelated)),
           # a registered photo claimed for an unrelated one (match or altered): the harmful error
           "unrelated_claimed": share(sum(r["verdict"] in ("match", "altered") for r in unrelated), len(unrelated)),
           "unrelated_verdicts": {x: sum(r["verdict"] == x for r in unrelated)
                                  for x in ("match", "altered", "same_scene", "no_match")},
           "same_scene_altered": share(sum(r["verdict"] == "altered" for r in by("same_scene") + by("other_photo")),
                                       len(by("same_scene") + by("other_photo"))),
           "same_scene_match": share(sum(r["verdict"] == "match" for r in by("same_scene") + by("other_photo")),
                                     len(by("same_scene") + by("other_photo"))),
           "unsure_benign": share(sum(r.get("confident") is False for r in benign), len(benign)),
           "unsure_edits": share(sum(r.get("confident") is False for r in edits), len(edits))}
    groups: dict[str, dict[str, list[dict]]] = {  # type: ignore[type-arg]
        "benign_by_size": {}, "benign_by_kind": {}, "edits_by_size": {}, "edits_by_bucket": {},
        "edits_by_visible_bucket": {}, "edits_by_kind": {}}
    for r in benign:
        groups["benign_by_size"].setdefault(f"{r['reference_side']}px", []).append(r)
        groups["benign_by_kind"].setdefault(r["kind"], []).append(r)
    for r in edits:
        groups["edits_by_size"].setdefault(f"{r['reference_side']}px", []).append(r)
        groups["edits_by_bucket"].setdefault(r.get("edit_bucket") or "?", []).append(r)
        groups["edits_by_visible_bucket"].setdefault(r.get("visible_bucket") or "?", []).append(r)
        groups["edits_by_kind"].setdefault(r["kind"], []).append(r)
    for name, g in groups.items():
        ok = ok_match if name.startswith("benign") else ok_altered
        out[name] = {k: {**share(sum(ok(r) for r in v), len(v)),
                         "verdicts": {x: sum(r["verdict"] == x for r in v)
                                      for x in ("match", "altered", "same_scene", "no_match")}}
                     for k, v in sorted(g.items())}
    rated = [r for r in rows if r.get("confidence") is not None]
    bins = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0001)
    out["reliability"] = []
    for lo, hi in zip(bins, bins[1:], strict=False):
        g = [r for r in rated if lo <= r["confidence"] < hi]
        if g:
            right = sum(r["verdict"] in RIGHT[r["relation"]] for r in g)
            out["reliability"].append({"bin": [lo, min(hi, 1.0)], "mean_confidence": float(np.mean(
                [r["confidence"] for r in g])), **share(right, len(g))})
    return out


def print_summary(n: int, s: dict, latency: dict) -> None:  # type: ignore[type-arg]
    print(f"N={n:>9,}: FNR {fmt(s['fnr'])}  FPR (perceptible edits) {fmt(s['fpr'])}; every edit "
          f"{fmt(s['fpr_every_edit'])}")
    print(f"    altered recall {fmt(s['altered_recall'])}; edit masks >= 2 % {fmt(s['altered_recall_2pct'])}; "
          f"visibly >= 2 % {fmt(s['altered_recall_visible_2pct'])}")
    print(f"    unrelated no_match {fmt(s['no_match_unrelated'])}; unrelated altered {fmt(s['unrelated_altered'])}; "
          f"match or altered {fmt(s['unrelated_claimed'])}; verdicts {s['unrelated_verdicts']}")
    print(f"    same-scene / other photos altered {fmt(s['same_scene_altered'])}, match {fmt(s['same_scene_match'])}")
    print(f"    not confident: benign {fmt(s['unsure_benign'])}, edits {fmt(s['unsure_edits'])}")
    print(f"    latency p50 {latency['p50']:.0f} ms p90 {latency['p90']:.0f} ms p99 {latency['p99']:.0f} ms")
    for name in ("benign_by_size", "benign_by_kind", "edits_by_size", "edits_by_bucket", "edits_by_visible_bucket",
                 "edits_by_kind"):
        print(f"    {name}:")
        for k, v in s[name].items():
            print(f"      {k:<28} {fmt(v)}  {v['verdicts']}")
    print("    reliability (confidence bin: mean confidence, share right):")
    for b in s["reliability"]:
        print(f"      [{b['bin'][0]:.2f}, {b['bin'][1]:.2f})  {b['mean_confidence']:.3f}  {fmt(b)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=False)
    ap.add_argument("--unrelated", type=Path, default=None,
                    help="folder of photos never ingested (default: the dataset's distractors)")
    ap.add_argument("--same-scene", type=Path, default=None,
                    help="CSV of real same-scene / other-photo pairs (reference,query,relation,note), paths "
                         "relative to --shared: each reference is registered, each query looked up")
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--distractors", default="1000,100000,1000000")
    ap.add_argument("--max-queries", type=int, default=0, help="cap on queries per relation (0: all)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/system"))
    ap.add_argument("--distractor-model-photos", type=Path, default=Path("benchmarks/out/training-photos/train"),
                    help="real photos (not in the dataset) whose global-id codes the distractor model imitates")
    ap.add_argument("--summary-only", action="store_true",
                    help="recompute and print the figures of --out/system.json (its rows) without running anything")
    args = ap.parse_args()
    if args.summary_only:
        for run in json.loads((args.out / "system.json").read_text()):
            print_summary(run["distractors"], summarise(run["rows"]), run["latency_ms"])
        return 0
    if args.dataset is None:
        ap.error("--dataset is required (except with --summary-only)")

    ds = load_dataset(args.dataset)
    facts = variant_facts(args.dataset)
    unrelated = (list(expand_image_paths([args.unrelated])) if args.unrelated
                 else [ds.path(d) for d in ds.distractors])
    benign = [p for p in ds.pairs if p.benign]
    manipulated = [p for p in ds.pairs if not p.benign]
    if args.max_queries:  # an even spread over photos and kinds, not the first photos only
        benign = benign[::max(1, -(-len(benign) // args.max_queries))]
        manipulated = manipulated[::max(1, -(-len(manipulated) // args.max_queries))]
        unrelated = unrelated[::max(1, -(-len(unrelated) // args.max_queries))]
    scene_pairs: list[dict[str, str]] = []
    if args.same_scene:
        with args.same_scene.open(newline="", encoding="utf-8") as fh:
            scene_pairs = list(csv.DictReader(fh))
        # One index holds both photos of a pair used in both directions, and a query that is itself registered
        # matches itself: keep the first direction of each pair, and no pair whose query another one registers.
        registered: set[str] = set()
        kept = []
        for pair in scene_pairs:
            if pair["query"] not in registered and pair["reference"] not in {q["query"] for q in kept}:
                kept.append(pair)
                registered.add(pair["reference"])
        scene_pairs = kept
        # an unrelated photo must not be one the pairs register (the corpus can hold it in both roles)
        scene_stems = {Path(p["reference"]).stem for p in scene_pairs}
        unrelated = [u for u in unrelated if not any(stem in u.stem for stem in scene_stems)]
    args.out.mkdir(parents=True, exist_ok=True)
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        service = open_service(Settings(data_dir=Path(tmp)))
        service.ledger.add_publisher("bench")
        cid_of: dict[str, str] = {}
        t = time.perf_counter()
        for ref in ds.references:
            result = service.pipeline.ingest(ds.path(ref).read_bytes(), publisher="bench",
                                             metadata=PublisherMetadata(title=ref))
            cid_of[ref] = result.cid
        for pair in scene_pairs:  # the registered side of each real same-scene pair
            ref = "shared:" + pair["reference"]
            if ref not in cid_of:
                cid_of[ref] = service.pipeline.ingest((args.shared / pair["reference"]).read_bytes(),
                                                      publisher="bench", metadata=PublisherMetadata(title=ref)).cid
        photo_cids: dict[str, set[str]] = {}
        for ref, cid in cid_of.items():
            photo_cids.setdefault(photo_of(ref), set()).add(cid)
        ingest_s = time.perf_counter() - t
        print(f"ingested {len(cid_of)} references in {ingest_s:.1f} s; {len(benign)} benign, {len(manipulated)} "
              f"manipulated, {len(unrelated)} unrelated queries, {len(scene_pairs)} same-scene pairs", flush=True)
        global_id, realism = None, None
        if any(h.alg == "global-id" for h in service.lookup.hashers):
            global_id = GlobalIdDistractors(list(expand_image_paths([args.distractor_model_photos])))
            realism = global_id.realism()
            print(f"global-id distractor model from {len(global_id.z)} photos: pairwise distance quantiles "
                  f"{realism['quantiles']}: real {realism['real_photos']}, model {realism['model_samples']}")
        padded = 0
        for n in (int(v) for v in args.distractors.split(",")):
            pad_index(service, n - padded, seed=n, first=padded, global_id=global_id)
            padded = n
            rows: list[dict] = []  # type: ignore[type-arg]

            def run(data: bytes, relation: str, kind: str, query: str, reference: str | None, **extra) -> None:
                start = time.perf_counter()
                v = service.lookup.lookup(data).to_obj()
                ms = (time.perf_counter() - start) * 1000
                own = photo_cids.get(photo_of(reference), set()) if reference else set()
                # the evidence of the verdict's candidate (or the true source's), for calibration and analysis
                best = next((c for c in v["candidates"] if c["record_cid"] == v["record_cid"]), None) or \
                    next((c for c in v["candidates"] if c["record_cid"] in own), None)
                rows.append({"relation": relation, "kind": kind, "query": query, "reference": reference,
                             "verdict": v["verdict"], "confidence": v.get("confidence"),
                             "confident": v.get("confident"), "latency_ms": ms,
                             "right_source": (v["record_cid"] in own) if reference else v["record_cid"] is None,
                             "source_found": bool(own & {c["record_cid"] for c in v["candidates"]}),
                             "explanation": v["explanation"], "evidence": best, **extra})

            for p in benign + manipulated:
                info = facts.get(p.query, {})
                extra = {"reference_side": info.get("reference_side") or _long_side(ds.path(p.reference))}
                if not p.benign:
                    extra.update(mask_share=info.get("mask_share"), edit_bucket=info.get("edit_bucket"),
                                 visible_share=info.get("visible_share"), visible_bucket=info.get("visible_bucket"))
                run(ds.path(p.query).read_bytes(), p.relation, p.kind, p.query, p.reference, **extra)
            for u in unrelated:
                run(u.read_bytes(), "unrelated", "unrelated", str(u), None)
            for pair in scene_pairs:
                run((args.shared / pair["query"]).read_bytes(), pair["relation"], pair.get("note", ""),
                    pair["query"], "shared:" + pair["reference"])
            lat = np.array([r["latency_ms"] for r in rows])
            latency = {"p50": float(np.percentile(lat, 50)), "p90": float(np.percentile(lat, 90)),
                       "p99": float(np.percentile(lat, 99)), "mean": float(lat.mean())}
            summary = summarise(rows)
            report.append({"distractors": n, **summary, "latency_ms": latency,
                           "queries": {rel: sum(r["relation"] == rel for r in rows) for rel in RIGHT},
                           "global_id_distractor_model": realism, "rows": rows})
            print_summary(n, summary, latency)
            (args.out / "system.json").write_text(json.dumps(report, indent=1))
        service.close()
    return 0


def _long_side(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return max(im.size)


if __name__ == "__main__":
    raise SystemExit(main())
