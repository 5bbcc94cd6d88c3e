"""Run the attribution benchmark: hash every image with every method (cached), score B1/B2/pairs/per-kind, sweep the
number of distractor codes, time the searches, and hand everything to ``report`` for results.json/.md and plots.

Databases: B1 = every query image + the dataset's distractors (+ N extra distractor codes); B2 = the references +
the same distractors (+ the same codes). The headline metrics use all N extra codes (none by default); the sweep
repeats B1/B2 on growing prefixes of them.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from provenance.bench import distractors as D
from provenance.bench import metrics as MX
from provenance.bench.cache import HashCache, file_sha256
from provenance.bench.dataset import Dataset, load_dataset
from provenance.bench.methods import HashMethod, create_methods, open_image
from provenance.bench.make_dataset import list_images

log = logging.getLogger(__name__)
_BLOCK_CELLS = 8_000_000  # distance-matrix cells computed at once (uint16: 16 MB)


@dataclass(frozen=True)
class RunConfig:
    dataset: Path
    out: Path
    methods: tuple[str, ...] | None = None  # None: every registered method
    distractor_codes: int = 0
    distractor_pool: tuple[Path, ...] = ()  # extra real images for distractor codes (not part of the dataset)
    cache: Path | None = None  # default: <out>/hash-cache.sqlite
    seed: int = MX.DEFAULT_SEED
    R: int = MX.DEFAULT_R
    workers: int = 2
    progress: bool = True
    sweep: tuple[int, ...] | None = None  # distractor counts to score; default 0, 10^2..10^6 below N, and N
    bootstrap: int = MX.DEFAULT_RESAMPLES  # cluster-bootstrap resamples of the references for the intervals; 0: none
    compare_to: str | None = None  # a method every other one gets paired-difference intervals against


@dataclass
class MethodData:
    """Everything the metrics need for one method, as packed code arrays aligned with the dataset's orderings."""

    method: HashMethod
    refs: np.ndarray
    queries: np.ndarray
    distractors: np.ndarray
    extra: np.ndarray  # extra distractor codes (possibly none)


# --- hashing ------------------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_hash_worker(names: list[str]) -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER["methods"] = create_methods(names)[0]


def _hash_chunk(paths: list[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Codes of the decodable images (in order) and the reason for each one that is not."""
    methods: list[HashMethod] = _WORKER["methods"]
    images, bad = [], {}
    for p in paths:
        try:
            images.append(open_image(p))
        except Exception as exc:  # undecodable, or a decompression bomb: reported, never fatal here
            bad[p] = f"{type(exc).__name__}: {exc}"
    return {m.name: m.hash_many(images) for m in methods}, bad


def hash_files(paths: list[Path], methods: list[HashMethod], cache: HashCache, workers: int,
               progress: bool) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str], dict[str, str]]:
    """``{method: {str(path): packed code}}`` for every decodable file, from the cache where possible; the methods
    that failed (name -> reason); the files that could not be decoded (path -> reason). Classical methods run in
    ``workers`` processes; models in this one, batched."""
    from tqdm import tqdm

    strs = [str(p) for p in paths]
    content = {s: file_sha256(s) for s in tqdm(strs, desc="sha256", disable=not progress, unit="img")}
    out: dict[str, dict[str, np.ndarray]] = {}
    missing: dict[str, list[str]] = {}
    for m in methods:
        got = cache.get_many(set(content.values()), m.name, m.model_id)
        out[m.name] = {s: got[content[s]] for s in strs if content[s] in got}
        missing[m.name] = [s for s in strs if content[s] not in got]
    pooled = [m for m in methods if m.batch_fn is None and missing[m.name]]
    todo = sorted(set().union(*(missing[m.name] for m in pooled))) if pooled else []
    bad_files: dict[str, str] = {}
    if todo:
        chunks = [todo[i : i + 16] for i in range(0, len(todo), 16)]
        bar = tqdm(total=len(todo), desc="hashing", disable=not progress, unit="img")
        with ProcessPoolExecutor(max(1, workers), mp_context=mp.get_context("spawn"), initializer=_init_hash_worker,
                                 initargs=([m.name for m in pooled],)) as ex:
            for chunk, (result, bad) in zip(chunks, ex.map(_hash_chunk, chunks), strict=True):
                bad_files.update(bad)
                good = [s for s in chunk if s not in bad]
                for m in pooled:
                    out[m.name].update(zip(good, result[m.name], strict=True))
                    cache.put_many(((content[s], c) for s, c in zip(good, result[m.name], strict=True)),
                                   m.name, m.model_id)
                bar.update(len(chunk))
        bar.close()
    failed: dict[str, str] = {}
    for m in methods:
        if m.batch_fn is None or not missing[m.name]:
            continue
        need = [s for s in missing[m.name] if s not in bad_files]
        try:
            for start in tqdm(range(0, len(need), 16), desc=f"hashing {m.name}", disable=not progress):
                part = need[start : start + 16]
                codes = m.hash_many([open_image(s) for s in part])
                out[m.name].update(zip(part, codes, strict=True))
                cache.put_many(((content[s], c) for s, c in zip(part, codes, strict=True)), m.name, m.model_id)
        except Exception as exc:  # a model that fails must not take the classical baselines down with it
            failed[m.name] = f"hashing failed: {type(exc).__name__}: {exc}"
            log.warning("method %s dropped: %s", m.name, failed[m.name])
    return out, failed, bad_files


def throughput(method: HashMethod, paths: list[Path], n: int = 24) -> float:
    """Images per second from file (decode + hash), single process, on up to ``n`` of the dataset's images."""
    sample = paths[:: max(1, len(paths) // n)][:n]
    method.hash_many([open_image(sample[0])])  # warm-up (lazy imports, model load)
    start = time.perf_counter()
    for p in sample:
        method.hash_many([open_image(p)])
    return len(sample) / (time.perf_counter() - start)


# --- scoring ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Index:
    """Orderings shared by every method: who belongs to whom, by position in the code arrays."""

    ref_of_query: np.ndarray  # query position -> reference position
    benign: np.ndarray  # per query
    relevant: list[np.ndarray]  # per reference: positions of its benign queries
    manipulated: list[np.ndarray]  # per reference: positions of its manipulated queries
    pair_ref: np.ndarray  # per pair row: reference position
    pair_query: np.ndarray  # per pair row: query position
    pair_benign: np.ndarray
    pair_kind: list[str]


def build_index(ds: Dataset) -> Index:
    rpos = {r: i for i, r in enumerate(ds.references)}
    qpos = {q: i for i, q in enumerate(ds.queries)}
    ref_of_query = np.zeros(len(ds.queries), np.int64)
    benign = np.zeros(len(ds.queries), bool)
    rel: list[list[int]] = [[] for _ in ds.references]
    man: list[list[int]] = [[] for _ in ds.references]
    for p in ds.pairs:
        q, r = qpos[p.query], rpos[p.reference]
        ref_of_query[q], benign[q] = r, p.benign
        (rel if p.benign else man)[r].append(q)
    return Index(ref_of_query, benign, [np.array(x, np.int64) for x in rel], [np.array(x, np.int64) for x in man],
                 np.array([rpos[p.reference] for p in ds.pairs]), np.array([qpos[p.query] for p in ds.pairs]),
                 np.array([p.benign for p in ds.pairs]), [p.kind for p in ds.pairs])


def _blocks(queries: np.ndarray, database: np.ndarray) -> Any:
    """Yield (start, distance block) over query rows, keeping each block near ``_BLOCK_CELLS`` cells."""
    words = MX.to_words(database)
    step = max(1, _BLOCK_CELLS // max(1, len(database)))
    for start in range(0, len(queries), step):
        yield start, MX.hamming(queries[start : start + step], words)


def score(data: MethodData, ix: Index, n_extra: int, seed: int, R: int) -> dict[str, Any]:
    """B1 and B2 with the first ``n_extra`` extra distractor codes in both databases; also the per-reference B1
    scores and per-query B2 ranks, which the bootstrap re-weights instead of recomputing any distance."""
    extra = data.extra[:n_extra]
    db1 = np.concatenate([data.queries, data.distractors, extra])
    scores = []
    for start, block in _blocks(data.refs, db1):
        for k, row in enumerate(block):
            r = start + k
            scores.append(MX.b1_query_scores(row, ix.relevant[r], ix.manipulated[r], R, seed, r))
    b1 = MX.b1_summary(scores, R)
    db2 = np.concatenate([data.refs, data.distractors, extra])
    ranks = np.zeros(len(data.queries), np.int64)
    for start, block in _blocks(data.queries, db2):
        for k, row in enumerate(block):
            q = start + k
            ranks[q] = MX.ranks_of(row, [ix.ref_of_query[q]], seed, 1_000_000 + q)[0]
    b2 = MX.b2_summary(ranks, ix.benign)
    return {"b1": b1, "b2": b2, "ranks": ranks, "b1_scores": MX.b1_score_array(scores), "database_B1": len(db1),
            "database_B2": len(db2)}


def search_timing(data: MethodData, n_extra: int, n_queries: int = 32) -> dict[str, float | None]:
    """ms per query for a top-1 search of the B2 database: numpy brute force, and FAISS IndexBinaryFlat if present."""
    db = np.ascontiguousarray(np.concatenate([data.refs, data.distractors, data.extra[:n_extra]]))
    q = np.ascontiguousarray(data.queries[:n_queries])
    words = MX.to_words(db)
    start = time.perf_counter()
    for row in q:
        int(np.argmin(MX.hamming(row[None, :], words)[0]))
    numpy_ms = (time.perf_counter() - start) * 1000 / len(q)
    faiss_ms: float | None = None
    try:
        import faiss

        index = faiss.IndexBinaryFlat(db.shape[1] * 8)
        index.add(db)
        start = time.perf_counter()
        index.search(q, 1)
        faiss_ms = (time.perf_counter() - start) * 1000 / len(q)
    except ImportError:
        pass
    return {"search_ms_numpy": round(numpy_ms, 4), "search_ms_faiss": None if faiss_ms is None else round(faiss_ms, 4)}


def sweep_sizes(n: int, given: tuple[int, ...] | None) -> list[int]:
    if given is not None:
        return sorted({min(max(0, s), n) for s in given})
    return sorted({0, n, *(10**k for k in range(2, 7) if 10**k < n)})


# --- the run ------------------------------------------------------------------------------------------------------

def run_attribution(cfg: RunConfig) -> dict[str, Any]:
    """Run everything and write results.json, results.md, pair_distances.csv and the plots into ``cfg.out``."""
    from provenance.bench import report

    t0 = time.perf_counter()
    ds = load_dataset(cfg.dataset)
    cfg.out.mkdir(parents=True, exist_ok=True)
    methods, skipped = create_methods(list(cfg.methods) if cfg.methods else None)
    if not methods:
        raise ValueError(f"no usable method: {skipped}")
    ix = build_index(ds)
    extra_files = [p for folder in cfg.distractor_pool for p in list_images(folder)]
    dataset_distractors = [ds.path(d) for d in ds.distractors]
    dplan = D.plan(cfg.distractor_codes, dataset_distractors, extra_files) if cfg.distractor_codes else None
    timings: dict[str, float] = {}

    with HashCache(cfg.cache or cfg.out / "hash-cache.sqlite") as cache:
        dataset_files = [ds.path(rel) for rel in ds.all_images()]
        files = dataset_files + (list(map(Path, dplan.extra)) if dplan else [])
        t = time.perf_counter()
        codes, failed, bad_files = hash_files(files, methods, cache, cfg.workers, cfg.progress)
        bad_dataset = [f for f in map(str, dataset_files) if f in bad_files]
        if bad_dataset:
            raise ValueError(f"cannot decode dataset image(s): {[(f, bad_files[f]) for f in bad_dataset[:5]]}")
        if dplan and bad_files:  # undecodable pool images are left out of the real distractor codes
            for f, why in bad_files.items():
                log.warning("distractor pool image %s skipped: %s", f, why)
            extra_files = [f for f in extra_files if str(f) not in bad_files]
            dplan = D.plan(cfg.distractor_codes, dataset_distractors, extra_files)
        skipped.update(failed)
        methods = [m for m in methods if m.name not in failed]
        if not methods:
            raise ValueError(f"no usable method: {skipped}")
        timings["hash_dataset_s"] = time.perf_counter() - t
        data = {m.name: MethodData(
            m, np.stack([codes[m.name][str(ds.path(r))] for r in ds.references]),
            np.stack([codes[m.name][str(ds.path(q))] for q in ds.queries]),
            (np.stack([codes[m.name][str(ds.path(d))] for d in ds.distractors]) if ds.distractors
             else np.zeros((0, m.n_bytes), np.uint8)), np.zeros((0, m.n_bytes), np.uint8)) for m in methods}
        if dplan:
            t = time.perf_counter()
            extra = D.distractor_codes(dplan, methods, cache, codes, cfg.seed, cfg.workers, cfg.progress)
            timings["distractor_codes_s"] = time.perf_counter() - t
            for m in methods:
                data[m.name].extra = extra[m.name]

    sizes = sweep_sizes(cfg.distractor_codes, cfg.sweep)
    results: dict[str, Any] = {}
    pair_dists: dict[str, np.ndarray] = {}
    clustered: dict[str, MX.Clustered] = {}
    t = time.perf_counter()
    for m in methods:
        d = data[m.name]
        pair_dists[m.name] = MX.pair_distances(d.refs[ix.pair_ref], d.queries[ix.pair_query])
        results[m.name] = _method_results(m, d, ix, pair_dists[m.name], sizes, cfg, dataset_files, clustered)
    if cfg.compare_to and cfg.bootstrap:
        _paired(results, clustered, cfg)
    timings["scoring_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    out = {"dataset": ds.name, "methods": results}
    run_info = {
        "skipped": skipped,
        "settings": {"dataset_path": str(ds.root), "seed": cfg.seed, "R": cfg.R, "n_references": len(ds.references),
                     "n_queries": len(ds.queries), "n_benign": int(ix.benign.sum()),
                     "n_manipulated": int((~ix.benign).sum()), "n_distractor_images": len(ds.distractors),
                     "distractor_codes": _plan_info(dplan, cfg.distractor_pool), "undecodable_pool_images": bad_files,
                     "sweep_sizes": sizes, "workers": cfg.workers},
        "bootstrap": ({"resamples": cfg.bootstrap, "unit": "reference", "seed": cfg.seed, "level": 0.95,
                       "interval": "percentile"} if cfg.bootstrap else None),
        "timings": {k: round(v, 2) for k, v in timings.items()},
    }
    report.write_all(out, run_info, ds, ix, pair_dists, cfg.out)
    return out


def _method_results(m: HashMethod, d: MethodData, ix: Index, pair_dist: np.ndarray, sizes: list[int],
                    cfg: RunConfig, files: list[Path], clustered: dict[str, MX.Clustered]) -> dict[str, Any]:
    sweep = []
    main: dict[str, Any] = {}
    for n in sizes:
        s = score(d, ix, n, cfg.seed, cfg.R)
        b1, b2 = s["b1"], s["b2"]
        sweep.append({"n_distractor_codes": n, "database_B1": s["database_B1"], "database_B2": s["database_B2"],
                      "B1_mAP": b1.mAP, "B1_mmAP": b1.mmAP, "B1_mmAP@R": b1.mmAP_at_R, "B2_R1": b2.R1,
                      "B2_R1bar": b2.R1bar, "B2_FR1": b2.FR1, "B2_FmAP": b2.FmAP, **search_timing(d, n)})
        if n == cfg.distractor_codes:
            main = s
    b1, b2 = main["b1"], main["b2"]
    pm = MX.pair_metrics(pair_dist, ix.pair_benign)
    top1 = main["ranks"][ix.pair_query] == 1
    intervals: dict[str, Any] = {}
    if cfg.bootstrap:
        c = clustered[m.name] = MX.Clustered(len(d.refs), main["b1_scores"], ix.ref_of_query, main["ranks"],
                                             ix.benign, ix.pair_ref, pair_dist, ix.pair_benign)
        intervals = {"intervals": {k: list(v) for k, v in MX.bootstrap_intervals(c, cfg.bootstrap, cfg.seed).items()}}
    return {
        "bits": m.bits, "B1_mAP": b1.mAP, "B1_mmAP": b1.mmAP, "B2_R1": b2.R1, "B2_R1bar": b2.R1bar,
        "B2_FR1": b2.FR1, "B2_FmAP": b2.FmAP, "AUC": pm.AUC, "FPR_at_TPR95": pm.FPR_at_TPR95,
        "FPR_at_TPR99": pm.FPR_at_TPR99,
        "per_kind": MX.per_kind(ix.pair_kind, ix.pair_benign, pair_dist, top1, pm.threshold95),
        "images_per_s": round(throughput(m, files), 2),
        "B1_mmAP@R": b1.mmAP_at_R, "R": cfg.R, "B2_mAP": b2.mAP, "B2_mAPbar": b2.mAPbar,
        "threshold_TPR95": pm.threshold95, "threshold_TPR99": pm.threshold99, "model_id": m.model_id,
        "n_distractor_codes": cfg.distractor_codes, "distractor_sweep": sweep, **intervals,
    }


def _paired(results: dict[str, Any], clustered: dict[str, MX.Clustered], cfg: RunConfig) -> None:
    """Each method's figures minus ``cfg.compare_to``'s, with paired-bootstrap intervals (same resamples)."""
    base = cfg.compare_to
    if base not in clustered:
        raise ValueError(f"--compare-to {base!r} is not among the scored methods {sorted(clustered)}")
    for name, c in clustered.items():
        if name == base:
            continue
        ci = MX.paired_difference_intervals(c, clustered[base], cfg.bootstrap, cfg.seed)
        results[name]["paired_vs"] = {
            "method": base,
            "difference": {k: results[name][k] - results[base][k] for k in MX.INTERVAL_FIGURES},
            "intervals": {k: list(v) for k, v in ci.items()},
        }


def _plan_info(p: D.DistractorPlan | None, roots: tuple[Path, ...]) -> dict[str, Any]:
    if p is None:
        return {"requested": 0, "real": 0, "synthesised": 0}
    return {"requested": p.requested, "real": p.real, "synthesised": p.synthesised,
            "real_from": [str(r) for r in roots], "synthesis_pool_images": len(p.pool),
            "pool_digest": p.pool_digest,
            "recipe": ("hashes of real pool images first; the rest hash synthesised images: random crops (20-100% "
                       "area, aspect 1:2-2:1) of the synthesis-pool photos, mirrored at random, brightness/contrast/"
                       f"colour jitter, short side 96-256 px (provenance.bench.distractors {D.RECIPE_VERSION})")}
