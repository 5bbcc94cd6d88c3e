"""Calibrate the byBinding cutoffs: how close do the codes of *unrelated* photos come, per soft-binding algorithm?

``GET /matches/byBinding`` has only a code, no image to verify, so each algorithm needs a Hamming cutoff whose false
matches are rare at the service's scale. Target (issue 15): at most 0.1 % of queries for an unrelated image get a
false match against 1M records, i.e. a per-pair rate of at most 1e-3 / 1e6 = 1e-9.

For every photo of the folders given (default: ``../shared/data/photos`` and ``../shared/data/train-photos``, each
file a different photo) the script computes the service's own codes (``provenance.hashing``: pHash, global-id,
OSCAR-Net; the two networks on a
fixed sample of ``--network-limit`` photos, they are slow on CPU), then every pair's distance. 1e-9 is far below
what a few million pairs can show, so the tail is extrapolated with a beta-binomial fitted to the distances' mean
and variance (bits of natural photos are correlated: a plain binomial would be far too optimistic); the fit is
checked against the empirical curve where that has counts. The cutoff is the largest distance at which the fitted
per-pair rate ``P(D <= d)`` is <= 1e-9 *and* no unrelated pair was seen. Prints the curve and the constants that
``provenance/softbinding/calibration.py`` ships; writes ``OUT/calibration.json`` (and caches codes in
``OUT/codes.jsonl``, so a re-run only hashes new photos).

    nice .venv/bin/python benchmarks/bench_softbinding_calibration.py [--network-limit 700] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from provenance.softbinding.algorithms import registered_name
from provenance.softbinding.calibration import (
    TARGET_PAIR_RATE,
    Calibration,
    cutoff_for,
    fit_beta_binomial,
    fit_exponential_tail,
    tail_inflation,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIRS = (ROOT.parent / "shared" / "data" / "photos", ROOT.parent / "shared" / "data" / "train-photos")
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def photo_files(dirs: list[Path]) -> list[Path]:
    files = [p for d in dirs for p in sorted(d.rglob("*")) if p.is_file() and p.suffix.lower() in SUFFIXES]
    seen: set[str] = set()
    unique = []
    for p in files:  # the same bytes twice are one photo, not an unrelated pair
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            unique.append(p)
    return unique


def load_cache(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """(file path, alg) -> (model id, hex)."""
    cache: dict[tuple[str, str], tuple[str, str]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            cache[(row["path"], row["alg"])] = (row["model_id"], row["hex"])
    return cache


def hash_all(files: list[Path], hasher, cache: dict, cache_path: Path) -> list[str]:  # type: ignore[no-untyped-def]
    codes = []
    started, done = time.monotonic(), 0
    with cache_path.open("a") as out:
        for p in files:
            key = (str(p), hasher.alg)
            if key not in cache:
                try:
                    code = hasher.hash_image(p.read_bytes())
                except Exception as exc:  # noqa: BLE001 - an unreadable photo is left out, and said so
                    print(f"  skip {p}: {exc}", file=sys.stderr)
                    codes.append("")
                    continue
                cache[key] = (code.model_id, code.value)
                out.write(json.dumps({"path": str(p), "alg": hasher.alg, "model_id": code.model_id,
                                      "hex": code.value}) + "\n")
                out.flush()
                done += 1
                if done % 100 == 0:
                    rate = done / (time.monotonic() - started)
                    print(f"  {hasher.alg}: {done} hashed ({rate:.1f}/s)", file=sys.stderr)
            codes.append(cache[key][1])
    return codes


def pair_histogram(codes: list[str], bits: int) -> np.ndarray:
    """Counts of every pairwise Hamming distance 0..bits over all unordered pairs."""
    words = bits // 64
    arr = np.array([[int(c[16 * w: 16 * (w + 1)], 16) for w in range(words)] for c in codes], dtype=np.uint64)
    hist = np.zeros(bits + 1, dtype=np.int64)
    for i in range(len(arr) - 1):
        d = np.bitwise_count(arr[i + 1:] ^ arr[i]).sum(axis=1)
        hist += np.bincount(d, minlength=bits + 1)
    return hist


def closest_pairs(codes: list[str], files: list[Path], bits: int, n: int = 5) -> list[tuple[int, str, str]]:
    words = bits // 64
    arr = np.array([[int(c[16 * w: 16 * (w + 1)], 16) for w in range(words)] for c in codes], dtype=np.uint64)
    best: list[tuple[int, str, str]] = []
    for i in range(len(arr) - 1):
        d = np.bitwise_count(arr[i + 1:] ^ arr[i]).sum(axis=1)
        j = int(np.argmin(d))
        best.append((int(d[j]), str(files[i]), str(files[i + 1 + j])))
    return sorted(best)[:n]


def report(alg: str, bits: int, hist: np.ndarray, cal: Calibration, cutoff: int | None) -> dict:  # type: ignore[type-arg]
    fit = cal.fit
    pairs = int(hist.sum())
    cum = np.cumsum(hist)
    print(f"\n{alg} ({bits} bits): {pairs:,} unrelated pairs; mean {fit.mean:.2f}, sd {fit.sd:.2f}; "
          f"beta-binomial a={fit.a:.3f} b={fit.b:.3f}, inflated x{cal.inflation:.3g}; exponential tail "
          f"log10 P = {cal.tail[0]:.3f} + {cal.tail[1]:.4f} d" if cal.tail else "")
    print(f"  {'d':>4} {'pairs<=d':>10} {'empirical':>11} {'beta-bin.':>11} {'exp. tail':>11} {'used':>11} score")
    curve = []
    top = int(np.argmax(hist))
    for d in range(0, top + 1):
        emp = cum[d] / pairs
        bb = cal.inflation * fit.cdf(d)
        exp_tail = 10 ** (cal.tail[0] + cal.tail[1] * d) if cal.tail else 0.0
        score = Calibration(bits, fit.a, fit.b, cutoff, cal.inflation, cal.tail).similarity_score(d)
        curve.append({"d": d, "pairs_at_or_below": int(cum[d]), "empirical": emp, "beta_binomial": bb,
                      "exponential_tail": exp_tail, "pair_rate": cal.pair_rate(d), "score": score})
        if d <= (cutoff or 0) + 6 or d % 4 == 0 or cum[d] < 50:
            print(f"  {d:>4} {int(cum[d]):>10,} {emp:>11.3e} {bb:>11.3e} {exp_tail:>11.3e} {cal.pair_rate(d):>11.3e}"
                  f" {score:>5}")
    print(f"  cutoff at <= {TARGET_PAIR_RATE:g} per pair: {cutoff}")
    return {"alg": alg, "bits": bits, "pairs": pairs, "mean": fit.mean, "sd": fit.sd, "a": fit.a, "b": fit.b,
            "cutoff": cutoff, "curve": curve}


#: What docs/benchmarks.md reports for finding a query's source (``bench_channels.py``, test split: 24 references
#: + 122 distractors), quoted into the results file so that one file carries the evidence.
RETRIEVAL = {
    "source": "benchmarks/bench_channels.py (docs/benchmarks.md, 'Which hash finds the source')",
    "setup": "held-out test split: 24 reference photos, 218 benign and 138 manipulated queries, 122 distractors",
    "recall": {"phash": {"benign_r1": 0.743, "benign_r10": 0.798, "manipulated_r1": 0.986, "manipulated_r10": 1.0},
               "oscar-net": {"benign_r1": 0.628, "benign_r10": 0.950, "manipulated_r1": 0.522,
                             "manipulated_r10": 0.783},
               "global-id": {"benign_r1": 1.0, "benign_r10": 1.0, "manipulated_r1": 0.993, "manipulated_r10": 1.0}},
}


def write_results(path: Path, rows: list[dict]) -> None:  # type: ignore[type-arg]
    """The compact, citable form: per algorithm its list name, model, cutoff and the low end of its curve."""
    out = {"target_pair_rate": TARGET_PAIR_RATE,
           "target": "at most 0.1 % of unrelated queries falsely matched against 1M records",
           "algorithms": [{"alg": registered_name(r["alg"], r["model_id"]), "model_id": r["model_id"],
                           "bits": r["bits"], "photos": r["photos"], "unrelated_pairs": r["pairs"],
                           "mean_distance": round(r["mean"], 2), "sd": round(r["sd"], 2), "cutoff": r["cutoff"],
                           "closest_unrelated_pairs": [{"distance": d, "a": Path(a).name, "b": Path(b).name}
                                                       for d, a, b in r["closest_pairs"]],
                           "curve": [{k: (round(v, 15) if isinstance(v, float) else v) for k, v in c.items()}
                                     for c in r["curve"][: (r["cutoff"] or 0) + 24]]}
                          for r in rows],
           "retrieval": RETRIEVAL}
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, action="append", default=[], help="folder of photos (repeatable)")
    ap.add_argument("--network-limit", type=int, default=700,
                    help="global-id and OSCAR-Net codes for this many photos (all shared ones + a fixed sample)")
    ap.add_argument("--algs", default="phash,global-id,oscar-net")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "softbinding-calibration")
    ap.add_argument("--results", type=Path, default=None,
                    help="also write the compact results the soft binding algorithm list entry cites "
                         "(docs/softbinding-benchmark-results.json)")
    args = ap.parse_args()
    dirs = args.photos or [d for d in DEFAULT_DIRS if d.is_dir()]
    if not dirs:
        print("no photo folders found (../shared/data/photos, ../shared/data/train-photos)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    files = photo_files(dirs)
    print(f"{len(files)} distinct photos from {', '.join(map(str, dirs))}", file=sys.stderr)

    from provenance.hashing import GlobalIdHasher, OscarNetHasher, PHashHasher

    hashers = {"phash": PHashHasher, "global-id": GlobalIdHasher, "oscar-net": OscarNetHasher}
    cache_path = args.out / "codes.jsonl"
    cache = load_cache(cache_path)
    results = []
    for alg in args.algs.split(","):
        hasher = hashers[alg]()
        chosen = files
        if alg != "phash" and len(files) > args.network_limit:  # the networks are slow on CPU: a fixed sample
            shared = [p for p in files if "train-photos" not in p.parts]
            rest = [p for p in files if "train-photos" in p.parts]
            chosen = shared + random.Random(0).sample(rest, max(0, args.network_limit - len(shared)))
        codes = hash_all(chosen, hasher, cache, cache_path)
        kept = [(c, p) for c, p in zip(codes, chosen) if c]
        bits = hasher.bits
        hist = pair_histogram([c for c, _ in kept], bits)
        fit = fit_beta_binomial(hist, bits)
        cutoff = cutoff_for(fit, hist)
        cal = Calibration(bits, fit.a, fit.b, cutoff, inflation=tail_inflation(fit, hist),
                          tail=fit_exponential_tail(hist))
        row = report(alg, bits, hist, cal, cutoff)
        row["inflation"], row["tail"] = cal.inflation, list(cal.tail or ())
        row["photos"] = len(kept)
        row["model_id"] = next(iter(cache[(str(p), alg)][0] for _, p in kept[:1]), None)
        row["closest_pairs"] = closest_pairs([c for c, _ in kept], [p for _, p in kept], bits)
        print("  closest pairs:", *(f"{d} {Path(a).name}~{Path(b).name}" for d, a, b in row["closest_pairs"]))
        results.append(row)
    path = args.out / "calibration.json"
    earlier = json.loads(path.read_text()) if path.is_file() else []
    merged = {r["alg"]: r for r in [*earlier, *results]}  # a run over some algorithms keeps the others' results
    path.write_text(json.dumps(list(merged.values()), indent=1))
    if args.results is not None:
        write_results(args.results, list(merged.values()))
    print("\nconstants for provenance/softbinding/calibration.py:")
    for r in merged.values():
        print(f'    "{registered_name(r["alg"], r["model_id"])}": Calibration(bits={r["bits"]}, a={r["a"]:.4f}, b={r["b"]:.4f}, cutoff={r["cutoff"]}, '
              f'inflation={r["inflation"]:.4g}, tail=({r["tail"][0]:.4f}, {r["tail"][1]:.5f}), pairs={r["pairs"]}, '
              f'photos={r["photos"]}),  # {r["model_id"]}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
