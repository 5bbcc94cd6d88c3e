"""Is OSCAR-Net's object stream limited by the detector? The hash with more objects, box masks, a larger detector.

Usage: nice -n 10 python benchmarks/detector_study.py [--weights FILE]... --dataset DIR [--dataset DIR]...
                                                      [--out DIR] [--limit N] [--config NAME]... [--combine A+B]...

Most shared photos get 0-2 objects from CenterNet, so the object stream may see too little to matter. Each trained
head is set-based (no positional encoding, no slot count), so a head trained with 8 objects runs unchanged on 16;
only the preprocessing fields of its config are swapped. For each weights file x preprocessing config x dataset:

* objects per image (after the config's cap; histogram 0, 1, 2, 3-5, 6-8, 9+, mean, share with <= 2), over every
  image of the dataset (references and variants);
* seconds per image, on 1 torch thread: detect (CenterNet incl. letterbox + NMS), the rest of the scene graph
  (decode, GrabCut or boxes, crops, features) and the network (both CNNs + head), each image alone as on CPU;
* ``hasher.train.loop.code_metrics`` (pair AUC, R@1, R-bar@1, FR1, edits accepted at 95 % benign) from the
  whole network's codes, with 95 % bootstrap intervals over originals (``hasher.train.bootstrap``: 1000 seeded
  resamples) and, paired on the same resamples, the difference to the weights' own config;
* objects per image had the detector kept lower scores (``SCORE_THRESHOLDS``; the hasher keeps >= 0.25), at each
  detector size: whether the cap or the detector's confidence is what leaves most photos with 0-2 objects.

Configs (``CONFIGS``): ``baseline`` (the weights' own preprocessing), ``objects16`` (max_objects 16), ``box-masks``
(grabcut_iterations 0: each object's mask is its filled box), ``detect512`` (CenterNet at 512 px, its training size).
``--combine objects16+detect512`` adds the union of named configs. ``--config NAME`` runs only those (baseline is
always run: the differences are taken against it).

Scene graphs (exact float32 tensors) and their object counts and times are cached per (preprocessing, image
sha256) under ``OUT/cache/graphs``; codes and network times per (model id, preprocessing, image sha256) under
``OUT/cache/codes``; a rerun recomputes only what is missing, and reports the times measured when each entry was
made. ``OUT/results.json`` holds every figure; the markdown table is printed and written to ``OUT/results.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO / "hasher" / "weights" / "oscar_v1.safetensors"
DEFAULT_OUT = REPO / "benchmarks" / "out" / "detector-study"

#: Preprocessing changes against the weights' own config.
CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "objects16": {"max_objects": 16},
    "box-masks": {"grabcut_iterations": 0},
    "detect512": {"detect_size": 512},
}
#: Histogram bins of objects per image: (label, lowest, highest).
OBJECT_BINS = (("0", 0, 0), ("1", 1, 1), ("2", 2, 2), ("3-5", 3, 5), ("6-8", 6, 8), ("9+", 9, 10**9))
#: Detector score thresholds at which objects per image are also counted (the hasher keeps >= 0.25).
SCORE_THRESHOLDS = (0.25, 0.15, 0.10, 0.05)
RESAMPLES = 1000
PREPROCESSING_SHOWN = ("detect_size", "max_objects", "grabcut_iterations", "grabcut_size", "mask_crops")
SEED = 0


# ------------------------------------------------------------------------------------------------ pure summaries


def object_histogram(counts: Sequence[int]) -> dict[str, Any]:
    """Histogram over ``OBJECT_BINS`` (shares of images), the mean and the share of images with <= 2 objects."""
    c = np.asarray(counts, dtype=np.int64)
    n = max(len(c), 1)
    hist = {label: float(((c >= lo) & (c <= hi)).sum() / n) for label, lo, hi in OBJECT_BINS}
    return {"hist": hist, "mean": float(c.mean()) if len(c) else float("nan"), "share_le2": float((c <= 2).sum() / n),
            "max": int(c.max()) if len(c) else 0}


def config_changes(names: Sequence[str], combine: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The configs to run, by name: baseline first, then ``names`` (all of ``CONFIGS`` when empty), then unions."""
    chosen = ["baseline", *[n for n in (names or CONFIGS) if n != "baseline"]]
    out: dict[str, dict[str, Any]] = {}
    for name in chosen:
        if name not in CONFIGS:
            raise SystemExit(f"unknown config {name!r}; known: {', '.join(CONFIGS)}")
        out[name] = dict(CONFIGS[name])
    for spec in combine:
        parts = spec.split("+")
        if len(parts) < 2 or any(p not in CONFIGS for p in parts):
            raise SystemExit(f"--combine {spec!r}: give two or more of {', '.join(CONFIGS)} joined by '+'")
        merged: dict[str, Any] = {}
        for p in parts:
            merged.update(CONFIGS[p])
        out[spec] = merged
    return out


# ------------------------------------------------------------------------------------------------ measuring


class TimedDetector:
    """The detector ``image_scene_graph`` calls, with the seconds of its last ``detect`` recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.seconds = 0.0

    def detect(self, image: np.ndarray, **kwargs: Any) -> list[Any]:
        t0 = time.perf_counter()
        try:
            return self.inner.detect(image, **kwargs)
        finally:
            self.seconds = time.perf_counter() - t0


@dataclass(frozen=True)
class ImageResult:
    objects: int
    detect_s: float
    graph_s: float  # decode + detect + masks + scene graph
    network_s: float
    code: str  # hex, first bit most significant


def _write_atomic(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    tmp.replace(path)


class Study:
    """One weights file: its model and, per config, the detector and caches."""

    def __init__(self, weights: Path, out: Path) -> None:
        from hasher.api import _model_from_head, read_head_weights

        self.head = read_head_weights(weights)
        self.model = _model_from_head(self.head).eval()  # the network never reads the preprocessing fields
        self._warm = False
        self.weights = weights
        self.out = out
        self._detectors: dict[int, TimedDetector] = {}

    def config(self, changes: dict[str, Any]) -> Any:
        return self.head.config.replace(**changes)

    def detector(self, size: int) -> TimedDetector:
        from hasher.detect import create_detector

        if size not in self._detectors:
            det = TimedDetector(create_detector("centernet", device="cpu", input_size=size))
            det.detect(np.full((size, size, 3), 128, np.uint8))  # warm-up: the first call's one-off costs are not timed
            self._detectors[size] = det
        return self._detectors[size]

    def preprocessing_key(self, cfg: Any) -> str:
        from hasher.train.features import preprocessing_fingerprint

        ident = {"preprocessing": preprocessing_fingerprint(cfg), "detector": self.detector(cfg.detect_size).model_id}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]

    def image(self, path: Path, cfg: Any) -> ImageResult:
        import torch

        from hasher.api import image_scene_graph
        from hasher.scene_graph import SceneGraph, collate

        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        key = self.preprocessing_key(cfg)
        graph_dir = self.out / "cache" / "graphs" / key / sha[:2]
        stats_path, graph_path = graph_dir / f"{sha}.json", graph_dir / f"{sha}.pt"
        code_path = self.out / "cache" / "codes" / self.head.model_id / key / sha[:2] / f"{sha}.json"
        graph = None
        if stats_path.is_file() and graph_path.is_file():
            stats = json.loads(stats_path.read_text())
        else:
            det = self.detector(cfg.detect_size)
            t0 = time.perf_counter()
            graph = image_scene_graph(data, det, cfg)
            stats = {"objects": graph.num_nodes - 1, "detect_s": det.seconds, "graph_s": time.perf_counter() - t0}
            _write_atomic(graph_path, lambda p: torch.save(asdict(graph), p))
            _write_atomic(stats_path, lambda p: p.write_text(json.dumps(stats)))
        if code_path.is_file():
            code = json.loads(code_path.read_text())
        else:
            if graph is None:
                graph = SceneGraph(**torch.load(graph_path, weights_only=True))
            with torch.inference_mode():
                if not self._warm:  # warm-up, untimed
                    self.model.encode_bits(collate([graph]))
                    self._warm = True
                t0 = time.perf_counter()
                bits = self.model.encode_bits(collate([graph]))[0]
                network_s = time.perf_counter() - t0
            code = {"hex": bits_to_hex(bits.numpy()), "network_s": network_s}
            _write_atomic(code_path, lambda p: p.write_text(json.dumps(code)))
        return ImageResult(stats["objects"], stats["detect_s"], stats["graph_s"], code["network_s"], code["hex"])


    def scores(self, path: Path, size: int) -> list[float]:
        """Every detection score >= the lowest of ``SCORE_THRESHOLDS`` (up to 100 objects), cached per image."""
        from hasher.io import load_rgb

        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        det = self.detector(size)
        key = hashlib.sha256(det.model_id.encode()).hexdigest()[:12]
        cache = self.out / "cache" / "scores" / key / sha[:2] / f"{sha}.json"
        if cache.is_file():
            return list(json.loads(cache.read_text()))
        found = [d.score for d in det.detect(load_rgb(data), max_objects=100, min_score=min(SCORE_THRESHOLDS))]
        _write_atomic(cache, lambda p: p.write_text(json.dumps(found)))
        return found


def score_rows(study: Study, sizes: Sequence[int], dataset: Path, limit: int | None) -> list[dict[str, Any]]:
    """Objects per image if the detector kept lower scores: is the detector, not the cap, what limits the stream?"""
    from hasher.train.data import all_paths, read_groups

    groups = read_groups([dataset])[:limit] if limit else read_groups([dataset])
    rows = []
    for size in sizes:
        per_image = [study.scores(p, size) for p in all_paths(groups)]
        for t in SCORE_THRESHOLDS:
            c = np.array([sum(s >= t for s in found) for found in per_image])
            rows.append({"dataset": str(dataset), "detect_size": size, "min_score": t, "mean": float(c.mean()),
                         "share_le2": float((c <= 2).mean()), "share_zero": float((c == 0).mean()),
                         "share_over8": float((c > 8).mean())})
    return rows


def score_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| dataset | detect px | min score | objects mean | ≤ 2 objects | 0 objects | > 8 objects |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {Path(r['dataset']).name} | {r['detect_size']} | {r['min_score']:.2f} | {r['mean']:.2f} "
              f"| {100 * r['share_le2']:.0f} % | {100 * r['share_zero']:.0f} % | {100 * r['share_over8']:.0f} % |"
              for r in rows]
    return "\n".join(lines)


def bits_to_hex(bits: np.ndarray) -> str:
    """Bool bits, first most significant (``codes_to_ints``'s convention), as lower-case hex."""
    return "".join(f"{int(''.join('1' if b else '0' for b in bits[i:i + 4]), 2):x}" for i in range(0, len(bits), 4))


def hex_to_bits(code: str, n_bits: int) -> np.ndarray:
    return np.array([(int(code, 16) >> (n_bits - 1 - k)) & 1 for k in range(n_bits)], dtype=bool)


# ------------------------------------------------------------------------------------------------ the run


def measure(study: Study, configs: dict[str, dict[str, Any]], paths: Sequence[Path],
            log: Any) -> dict[str, dict[Path, ImageResult]]:
    """Every image through every config, configs interleaved per image: on a shared machine the load drifts, and
    interleaving lets every config's seconds see the same drift."""
    cfgs = {name: study.config(changes) for name, changes in configs.items()}
    out: dict[str, dict[Path, ImageResult]] = {name: {} for name in cfgs}
    t0 = time.perf_counter()
    for n, p in enumerate(paths, 1):
        for name, cfg in cfgs.items():
            out[name][p] = study.image(p, cfg)
        if n % 40 == 0 or n == len(paths):
            log(f"  {n}/{len(paths)} images x {len(cfgs)} configs ({time.perf_counter() - t0:.0f} s)")
    return out


def summarise(study: Study, name: str, changes: dict[str, Any], dataset: Path, groups: Sequence[Any],
              results: dict[Path, ImageResult]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One row of the table (objects, seconds, code metrics with intervals) and its bootstrap resamples."""
    from hasher.train.bootstrap import bootstrap_code_metrics, percentile_interval
    from hasher.train.loop import code_metrics, validation_queries

    bits = study.head.config.code_bits
    refs = np.stack([hex_to_bits(results[g.reference].code, bits) for g in groups])
    queries = np.stack([hex_to_bits(results[p].code, bits) for _, p, _ in validation_queries(groups)])
    metrics = code_metrics(groups, refs, queries)
    resampled = bootstrap_code_metrics(groups, refs, queries, resamples=RESAMPLES, seed=SEED)
    rows = list(results.values())
    seconds = {k: float(np.mean([getattr(r, k) for r in rows])) for k in ("detect_s", "graph_s", "network_s")}
    seconds["total_s"] = seconds["graph_s"] + seconds["network_s"]
    row = {
        "weights": str(study.weights), "model_id": study.head.model_id, "config": name, "changes": changes,
        "dataset": str(dataset), "originals": len(groups), "images": len(rows),
        "objects": object_histogram([r.objects for r in rows]), "seconds": seconds, "metrics": metrics,
        "intervals": {k: list(percentile_interval(v)) for k, v in resampled.items()},
    }
    return row, resampled


def add_deltas(row: dict[str, Any], resampled: dict[str, np.ndarray], base_row: dict[str, Any],
               base: dict[str, np.ndarray]) -> None:
    """Paired differences to the baseline (same originals, same resamples): point and 95 % interval."""
    from hasher.train.bootstrap import percentile_interval

    row["delta_vs_baseline"] = {k: {"point": row["metrics"][k] - base_row["metrics"][k],
                                    "interval": list(percentile_interval(resampled[k] - base[k]))} for k in resampled}


def _ci(point: float, interval: Sequence[float], signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return f"{fmt.format(point)} [{fmt.format(interval[0])}, {fmt.format(interval[1])}]"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    head = ("| dataset | config | objects mean | ≤ 2 objects | 0 / 1 / 2 / 3–5 / 6–8 / 9+ (%) | s / image "
            "(detect + graph + CNNs/head) | AUC [95 %] | ΔAUC [95 %] | R@1 | R̄@1 | FR1 [95 %] | ΔFR1 [95 %] "
            "| edits accepted @95 % |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        o, s, m, i = r["objects"], r["seconds"], r["metrics"], r["intervals"]
        d = r.get("delta_vs_baseline")
        hist = " / ".join(f"{100 * v:.0f}" for v in o["hist"].values())
        lines.append(
            f"| {Path(r['dataset']).name} | {r['config']} | {o['mean']:.2f} | {100 * o['share_le2']:.0f} % | {hist} "
            f"| {s['total_s']:.2f} ({s['detect_s']:.2f} + {s['graph_s'] - s['detect_s']:.2f} + {s['network_s']:.2f}) "
            f"| {_ci(m['auc'], i['auc'])} | {_ci(d['auc']['point'], d['auc']['interval'], True) if d else '—'} "
            f"| {m['r1']:.3f} | {m['rbar1']:.3f} | {_ci(m['fr1'], i['fr1'])} "
            f"| {_ci(d['fr1']['point'], d['fr1']['interval'], True) if d else '—'} | {m['edits_accepted_95']:.3f} |")
    return "\n".join(lines)


def check_against_hasher(study: Study, path: Path) -> bool:
    """The baseline code of one image equals what ``hasher.load(weights).hash`` gives: the study measures what
    ships, not a lookalike pipeline."""
    import hasher

    cached = study.image(path, study.config({})).code
    return hasher.load(study.weights, device="cpu").hash(path.read_bytes()).hex == cached


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", action="append", type=Path,
                    help=f"head weights (repeatable; default {DEFAULT_WEIGHTS})")
    ap.add_argument("--dataset", action="append", type=Path, required=True,
                    help="attribution dataset folder with pairs.csv (repeatable)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--limit", type=int, default=None, help="only the first N originals of each dataset")
    ap.add_argument("--config", action="append", default=[], help=f"run only these of {', '.join(CONFIGS)}")
    ap.add_argument("--combine", action="append", default=[],
                    help="also the union of configs, e.g. objects16+detect512")
    args = ap.parse_args(argv)

    import cv2
    import torch

    from hasher.train.data import all_paths, read_groups

    torch.set_num_threads(1)  # the machine is shared; and per-image seconds mean one thread
    cv2.setNumThreads(1)
    configs = config_changes(args.config, args.combine)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows: list[dict[str, Any]] = []
    scores: list[dict[str, Any]] = []
    checks: dict[str, bool] = {}
    for weights in args.weights or [DEFAULT_WEIGHTS]:
        study = Study(weights, args.out)
        own = {k: getattr(study.head.config, k) for k in PREPROCESSING_SHOWN}
        log(f"{study.head.model_id}: own config {json.dumps(own)}")
        for dataset in args.dataset:
            groups = read_groups([dataset])[:args.limit] if args.limit else read_groups([dataset])
            log(f"{dataset}: {len(groups)} originals")
            measured = measure(study, configs, all_paths(groups), log)
            base: tuple[dict[str, Any], dict[str, np.ndarray]] | None = None
            for name, changes in configs.items():
                row, resampled = summarise(study, name, changes, dataset, groups, measured[name])
                if base is None:
                    base = (row, resampled)
                else:
                    add_deltas(row, resampled, *base)
                rows.append(row)
            sizes = sorted({study.config(c).detect_size for c in configs.values()})
            scores += score_rows(study, sizes, dataset, args.limit)
        checks[study.head.model_id] = check_against_hasher(study, read_groups([args.dataset[0]])[0].reference)
        log(f"{study.head.model_id}: baseline code reproduces hasher.load(weights).hash: {checks[study.head.model_id]}")

    table = markdown(rows) + "\n\n" + score_markdown(scores)
    print(table)
    meta = {"argv": sys.argv if argv is None else list(argv), "torch_threads": torch.get_num_threads(),
            "nice": os.nice(0), "resamples": RESAMPLES, "seed": SEED, "configs": configs,
            "baseline_reproduces_hasher": checks, "torch": torch.__version__}
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows, "scores": scores}, indent=1) + "\n")
    (args.out / "results.md").write_text(table + "\n")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
