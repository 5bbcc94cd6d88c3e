"""Attribution metrics (OSCAR-Net paper §4.2): pure functions over numpy arrays and small dataclasses.

Conventions, chosen so every method is scored under identical rules:

* Codes are packed bits (``np.packbits`` order, MSB first), shape ``(N, n_bytes)``; distance is Hamming.
* Ranking sorts by distance; ties are broken at random by a key ``tie_keys(seed, query_id, item)`` that depends only
  on the seed, the query's index and the item's index, never on the method. So two methods that give the same
  distances get the same ranks, and a method cannot win by the accident of database order.
* Ranks are 1-based. Only the ranks of the items a metric needs are computed (``ranks_of``), so a database of
  a million distractor codes costs a few vectorised passes per query, not a full sort.

Benchmark I (B1): a reference queries a database of every query image (+ distractors); relevant = its benign
variants. AP = (1/|rel|) * sum_i i / rank_i. mmAP (paper eq. 12) counts only the relevant items ranked before the
reference's first manipulated variant (benign variants ranked after it count as misses; with no manipulated variant
mmAP = AP). mmAP@R additionally stops at rank R and divides by min(|rel|, R). References without benign variants are
left out of B1 (AP is undefined for them).

Benchmark II (B2): a query image searches the references (+ distractors); its target is its own reference.
R@1 = share of benign queries whose top-1 is the target; R̄@1 = 1 - share of manipulated queries whose top-1 is the
target; FR1 = R@1 * R̄@1 / (R@1 + R̄@1) exactly as the paper's eq. 13 (no factor 2, so the best value is 0.5).
FmAP is the same over mAP (one relevant item, so AP = 1 / rank).

Pairs: Hamming distance of each (reference, query) pair. The threshold for TPR t is the smallest distance that
accepts at least a share t of the benign pairs; FPR_at_TPR is the share of manipulated pairs accepted there.
AUC is P(d_benign < d_manipulated) + ½ P(equal) (ties count half).

Intervals: a cluster bootstrap over the references. Each resample draws the references with replacement, each
carrying all its queries and pairs; the database stays fixed, so the per-reference B1 scores, per-query B2 ranks and
per-pair distances of the full run are only re-weighted (weight = how often the reference was drawn), never
recomputed. The TPR thresholds are recomputed within each resample. Percentile intervals (2.5 %, 97.5 %).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_SEED = 20210917  # fixed tie-breaking seed, the same for every method
DEFAULT_R = 100


# --- codes and distances ------------------------------------------------------------------------------------------

def to_words(packed: np.ndarray) -> np.ndarray:
    """``(N, n_bytes)`` uint8 packed codes -> ``(N, W)`` uint64 words (zero-padded), for fast XOR + popcount."""
    packed = np.ascontiguousarray(np.atleast_2d(packed), dtype=np.uint8)
    pad = (-packed.shape[1]) % 8
    if pad:
        packed = np.concatenate([packed, np.zeros((packed.shape[0], pad), np.uint8)], axis=1)
    return packed.view(np.uint64)


def hamming(queries: np.ndarray, database: np.ndarray) -> np.ndarray:
    """Hamming distances ``(Q, N)`` (uint16) between two sets of packed codes (uint8) or words (uint64)."""
    q = queries if queries.dtype == np.uint64 else to_words(queries)
    db = database if database.dtype == np.uint64 else to_words(database)
    q = np.atleast_2d(q)
    out = np.zeros((q.shape[0], db.shape[0]), dtype=np.uint16)
    for w in range(q.shape[1]):
        out += np.bitwise_count(q[:, w : w + 1] ^ db[None, :, w]).astype(np.uint16)
    return out


def pair_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Hamming distance between two equally long sets of codes."""
    wa, wb = to_words(a), to_words(b)
    return np.bitwise_count(wa ^ wb).sum(axis=1).astype(np.int64)


# --- ranking ------------------------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fast, well-mixed bijection on uint64 (wrapping arithmetic is intended)."""
    with np.errstate(over="ignore"):
        x = (x + _GOLDEN).astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def tie_keys(seed: int, query_id: int, idx: np.ndarray | Sequence[int]) -> np.ndarray:
    """Random tie-breaking keys (uint64, lower ranks first) of database items ``idx`` for one query.

    A hash of (seed, query, item) rather than a drawn permutation: it is computed only for the items tied with a
    target, so a query over a million codes costs no million random draws, and it is the same for every method.
    """
    base = _splitmix64(np.array([seed * 1_000_003 + query_id], dtype=np.uint64))[0]
    return _splitmix64(np.asarray(idx, dtype=np.uint64) ^ base)


def ranks_of(dist: np.ndarray, targets: Sequence[int] | np.ndarray, seed: int, query_id: int) -> np.ndarray:
    """1-based ranks of ``targets`` in one query's ranking: by distance, ties by ``tie_keys`` (then by index)."""
    dist = np.asarray(dist)
    out = np.empty(len(targets), dtype=np.int64)
    for i, t in enumerate(np.asarray(targets, dtype=np.int64)):
        d = dist[t]
        tied = np.flatnonzero(dist == d)
        keys, kt = tie_keys(seed, query_id, tied), tie_keys(seed, query_id, [t])[0]
        before = np.count_nonzero(keys < kt) + np.count_nonzero((keys == kt) & (tied < t))
        out[i] = 1 + int(np.count_nonzero(dist < d)) + int(before)
    return out


def full_ranking(dist: np.ndarray, seed: int, query_id: int) -> np.ndarray:
    """Database indices best first (for small databases and tests; the order ``ranks_of`` implies)."""
    idx = np.arange(len(dist))
    return np.lexsort((idx, tie_keys(seed, query_id, idx), np.asarray(dist)))


# --- Benchmark I --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class B1Result:
    mAP: float
    mmAP: float
    mmAP_at_R: float
    R: int
    n_queries: int


def b1_query_scores(dist: np.ndarray, relevant: Sequence[int], manipulated: Sequence[int], R: int = DEFAULT_R,
                    seed: int = DEFAULT_SEED, query_id: int = 0) -> tuple[float, float, float] | None:
    """(AP, mmAP, mmAP@R) of one reference; ``None`` when it has no relevant (benign) item."""
    if len(relevant) == 0:
        return None
    rel = np.sort(ranks_of(dist, relevant, seed, query_id))
    first_manip = int(ranks_of(dist, manipulated, seed, query_id).min()) if len(manipulated) else math.inf
    precision = np.arange(1, len(rel) + 1) / rel
    ap = float(precision.sum() / len(rel))
    before = rel < first_manip
    mmap = float(precision[before].sum() / len(rel))
    mmap_r = float(precision[before & (rel <= R)].sum() / min(len(rel), R))
    return ap, mmap, mmap_r


def b1_summary(scores: Sequence[tuple[float, float, float] | None], R: int = DEFAULT_R) -> B1Result:
    kept = np.array([s for s in scores if s is not None], dtype=np.float64).reshape(-1, 3)
    if len(kept) == 0:
        return B1Result(math.nan, math.nan, math.nan, R, 0)
    m = kept.mean(axis=0)
    return B1Result(float(m[0]), float(m[1]), float(m[2]), R, len(kept))


def benchmark1(dist: np.ndarray, relevant: Sequence[Sequence[int]], manipulated: Sequence[Sequence[int]],
               seed: int = DEFAULT_SEED, R: int = DEFAULT_R, query_ids: Sequence[int] | None = None) -> B1Result:
    """B1 over a whole ``(n_refs, N)`` distance matrix; ``query_ids`` default to row numbers."""
    ids = range(len(dist)) if query_ids is None else query_ids
    scores = [b1_query_scores(row, rel, man, R, seed, qid)
              for row, qid, rel, man in zip(dist, ids, relevant, manipulated, strict=True)]
    return b1_summary(scores, R)


# --- Benchmark II -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class B2Result:
    R1: float
    R1bar: float
    FR1: float
    mAP: float
    mAPbar: float
    FmAP: float
    n_benign: int
    n_manipulated: int



def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n (95 % by default); (0, 1) when n is 0."""
    if n == 0:
        return (0.0, 1.0)
    p, den = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / den, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))

def harmonic_f(a: float, b: float) -> float:
    """The paper's eq. 13 combination a*b/(a+b) (no factor 2); 0 when both are 0."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return 0.0 if a + b == 0 else a * b / (a + b)


def b2_summary(target_ranks: np.ndarray, benign: np.ndarray) -> B2Result:
    """B2 from the rank of each query's own reference and whether the query is benign."""
    ranks = np.asarray(target_ranks, dtype=np.float64)
    benign = np.asarray(benign, dtype=bool)

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else math.nan

    r1 = mean(ranks[benign] == 1)
    r1bar = 1.0 - mean(ranks[~benign] == 1)
    ap = mean(1.0 / ranks[benign])
    apbar = 1.0 - mean(1.0 / ranks[~benign])
    return B2Result(r1, r1bar, harmonic_f(r1, r1bar), ap, apbar, harmonic_f(ap, apbar),
                    int(benign.sum()), int((~benign).sum()))


def b2_target_ranks(dist: np.ndarray, targets: Sequence[int], seed: int = DEFAULT_SEED,
                    query_ids: Sequence[int] | None = None) -> np.ndarray:
    """Rank of each query's target (its reference) in its row of ``dist``."""
    ids = range(len(dist)) if query_ids is None else query_ids
    return np.array([ranks_of(row, [t], seed, qid)[0]
                     for row, qid, t in zip(dist, ids, targets, strict=True)], dtype=np.int64)


def benchmark2(dist: np.ndarray, targets: Sequence[int], benign: Sequence[bool], seed: int = DEFAULT_SEED,
               query_ids: Sequence[int] | None = None) -> B2Result:
    return b2_summary(b2_target_ranks(dist, targets, seed, query_ids), np.asarray(benign, dtype=bool))


# --- pairs --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairResult:
    AUC: float
    FPR_at_TPR95: float
    FPR_at_TPR99: float
    threshold95: float
    threshold99: float
    n_benign: int
    n_manipulated: int


def threshold_at_tpr(benign_dist: np.ndarray, tpr: float) -> float:
    """Smallest distance accepting (d <= threshold) at least a share ``tpr`` of the benign pairs."""
    d = np.sort(np.asarray(benign_dist))
    if d.size == 0:
        return math.nan
    k = max(1, math.ceil(tpr * d.size - 1e-9))
    return float(d[k - 1])


def accepted_share(dist: np.ndarray, threshold: float) -> float:
    d = np.asarray(dist)
    return float(np.mean(d <= threshold)) if d.size and not math.isnan(threshold) else math.nan


def roc_auc(benign_dist: np.ndarray, manipulated_dist: np.ndarray) -> float:
    """P(benign distance < manipulated distance), ties counting half (Mann-Whitney U / (n_b n_m))."""
    b = np.sort(np.asarray(benign_dist, dtype=np.float64))
    m = np.asarray(manipulated_dist, dtype=np.float64)
    if b.size == 0 or m.size == 0:
        return math.nan
    less = np.searchsorted(b, m, side="left")
    less_or_equal = np.searchsorted(b, m, side="right")
    return float((less.sum() + 0.5 * (less_or_equal - less).sum()) / (b.size * m.size))


def pair_metrics(dist: np.ndarray, benign: np.ndarray) -> PairResult:
    dist = np.asarray(dist)
    benign = np.asarray(benign, dtype=bool)
    db, dm = dist[benign], dist[~benign]
    t95, t99 = threshold_at_tpr(db, 0.95), threshold_at_tpr(db, 0.99)
    return PairResult(roc_auc(db, dm), accepted_share(dm, t95), accepted_share(dm, t99), t95, t99,
                      int(db.size), int(dm.size))


# --- per kind -----------------------------------------------------------------------------------------------------

def kind_tokens(kind: str) -> list[str]:
    """Split a kind such as ``seen:jpeg_resize+flip`` into ``['seen:jpeg_resize', 'seen:flip']`` (a ``group:``
    prefix carries to the following parts); free text without ``+`` is one token; '' gives ``['unspecified']``."""
    parts = [p.strip() for p in kind.split("+") if p.strip()]
    if not parts:
        return ["unspecified"]
    group = parts[0].split(":", 1)[0] + ":" if ":" in parts[0] else ""
    return [p if ":" in p else group + p for p in parts]


def per_kind(kinds: Sequence[str], benign: Sequence[bool], dist: np.ndarray, top1: np.ndarray,
             threshold95: float) -> dict[str, dict[str, float | int | str]]:
    """Robustness per benign transform and sensitivity per edit type.

    For each ``relation/token``: n pairs, mean distance, ``R1`` = share of those queries whose B2 top-1 is their
    reference, ``accepted_at_TPR95`` = share with distance <= the global TPR95 threshold; manipulated tokens also get
    ``AUC_vs_benign`` (that edit against all benign pairs). A pair with several tokens counts toward each.
    """
    benign_arr = np.asarray(benign, dtype=bool)
    dist = np.asarray(dist, dtype=np.float64)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, (kind, is_benign) in enumerate(zip(kinds, benign_arr, strict=True)):
        for token in kind_tokens(kind):
            groups[f"{'benign' if is_benign else 'manipulated'}/{token}"].append(i)
    out: dict[str, dict[str, float | int | str]] = {}
    for key in sorted(groups):
        idx = np.array(groups[key])
        entry: dict[str, float | int | str] = {
            "relation": key.split("/", 1)[0], "n": int(idx.size), "mean_distance": float(dist[idx].mean()),
            "R1": float(np.mean(top1[idx])), "accepted_at_TPR95": accepted_share(dist[idx], threshold95)}
        if entry["relation"] == "manipulated":
            entry["AUC_vs_benign"] = roc_auc(dist[benign_arr], dist[idx])
        out[key] = entry
    return out


# --- bootstrap intervals ------------------------------------------------------------------------------------------

DEFAULT_RESAMPLES = 1000
INTERVAL_FIGURES = ("B1_mAP", "B1_mmAP", "B1_mmAP@R", "B2_R1", "B2_R1bar", "B2_FR1", "AUC", "FPR_at_TPR95",
                    "FPR_at_TPR99")


@dataclass(frozen=True)
class Clustered:
    """Per-item results of one full run, each tied to its reference: the bootstrap's unit.

    The variants of one photo are not independent (an edit that fools a hash on a photo tends to fool it on that
    photo's other copies), so the references are what a resample draws, each carrying all of its queries and pairs.
    The database stays fixed, so every rank and distance here is computed once and only re-weighted.
    """

    n_refs: int
    b1_scores: np.ndarray  # (n_refs, 3): AP, mmAP, mmAP@R; NaN rows for references left out of B1
    query_ref: np.ndarray  # per query: its reference (B2 target)
    query_rank: np.ndarray  # per query: B2 rank of its reference
    query_benign: np.ndarray
    pair_ref: np.ndarray  # per pair: its reference
    pair_dist: np.ndarray
    pair_benign: np.ndarray


def b1_score_array(scores: Sequence[tuple[float, float, float] | None]) -> np.ndarray:
    """``b1_query_scores`` of every reference as an ``(n_refs, 3)`` array, NaN where it was ``None``."""
    out = np.full((len(scores), 3), np.nan)
    for i, s in enumerate(scores):
        if s is not None:
            out[i] = s
    return out


def bootstrap_counts(n_units: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n_units)``: how often each unit is drawn in each resample of ``n_units`` draws with replacement.

    Weighting every item by its unit's count is the same as duplicating it that many times (and leaving it out at
    0), without building the duplicated arrays.
    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_units, size=(resamples, n_units))
    flat = (draws + n_units * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n_units).reshape(resamples, n_units).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _per_ref_hist(ref: np.ndarray, value_idx: np.ndarray, n_refs: int, n_values: int) -> np.ndarray:
    """``(n_refs, n_values)`` counts of items per (reference, distinct distance)."""
    flat = np.asarray(ref, np.int64) * n_values + value_idx
    return np.bincount(flat, minlength=n_refs * n_values).reshape(n_refs, n_values).astype(np.float64)


def weighted_figures(counts: np.ndarray, c: Clustered) -> dict[str, np.ndarray]:
    """Every figure of ``INTERVAL_FIGURES`` for each row of ``counts`` ``(B, n_refs)`` (reference weights).

    Each item is weighted by its reference's count, so a row of integer counts gives exactly what the point metrics
    (``b1_summary``, ``b2_summary``, ``pair_metrics``) give on the explicitly duplicated items; a row of ones gives
    the point estimates. All work is ``counts @ per-reference totals``: linear in B times the references.
    """
    w = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = c.n_refs
    out: dict[str, np.ndarray] = {}

    valid = ~np.isnan(c.b1_scores[:, 0])  # references with benign variants
    b1 = _ratio(w[:, valid] @ c.b1_scores[valid], w[:, valid].sum(axis=1)[:, None])
    out["B1_mAP"], out["B1_mmAP"], out["B1_mmAP@R"] = b1[:, 0], b1[:, 1], b1[:, 2]

    ref, benign = np.asarray(c.query_ref, np.int64), np.asarray(c.query_benign, bool)
    top1 = np.asarray(c.query_rank) == 1

    def share_top1(sel: np.ndarray) -> np.ndarray:
        return _ratio(w @ np.bincount(ref[sel & top1], minlength=n), w @ np.bincount(ref[sel], minlength=n))

    r1, r1bar = share_top1(benign), 1.0 - share_top1(~benign)
    with np.errstate(invalid="ignore", divide="ignore"):
        fr1 = np.where(r1 + r1bar > 0, r1 * r1bar / (r1 + r1bar), 0.0)
    out["B2_R1"], out["B2_R1bar"], out["B2_FR1"] = r1, r1bar, np.where(np.isnan(r1 + r1bar), np.nan, fr1)

    if len(c.pair_dist) == 0:
        for key in ("AUC", "FPR_at_TPR95", "FPR_at_TPR99"):
            out[key] = np.full(len(w), np.nan)
        return out
    values, idx = np.unique(np.asarray(c.pair_dist), return_inverse=True)
    pb = np.asarray(c.pair_benign, bool)
    pref = np.asarray(c.pair_ref, np.int64)
    hb = w @ _per_ref_hist(pref[pb], idx[pb], n, len(values))  # (B, V): benign weight at each distance
    hm = w @ _per_ref_hist(pref[~pb], idx[~pb], n, len(values))
    nb, nm = hb.sum(axis=1), hm.sum(axis=1)
    cb = np.cumsum(hb, axis=1)
    out["AUC"] = _ratio((hm * (cb - 0.5 * hb)).sum(axis=1), nb * nm)
    cm = np.cumsum(hm, axis=1)
    for tpr, key in ((0.95, "FPR_at_TPR95"), (0.99, "FPR_at_TPR99")):
        # the threshold of ``threshold_at_tpr`` on the duplicated benign distances, recomputed per resample
        k = np.maximum(1, np.ceil(tpr * nb - 1e-9))
        at = np.argmax(cb >= k[:, None], axis=1)  # first distance reaching k benign pairs (0 when none drawn)
        out[key] = np.where(nb > 0, _ratio(cm[np.arange(len(w)), at], nm), np.nan)
    return out


def paired_difference_intervals(a: Clustered, b: Clustered, resamples: int = DEFAULT_RESAMPLES,
                                seed: int = DEFAULT_SEED, level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals of ``figure(a) - figure(b)`` for two methods scored on the same references, both
    re-weighted by the *same* resamples (a paired bootstrap): a difference whose interval excludes 0 is a result,
    whatever the two methods' own (wider) intervals say."""
    if a.n_refs != b.n_refs:
        raise ValueError("a paired difference needs the same references")
    if resamples < 1 or a.n_refs == 0:
        return {k: (math.nan, math.nan) for k in INTERVAL_FIGURES}
    counts = bootstrap_counts(a.n_refs, resamples, seed)
    fa, fb = weighted_figures(counts, a), weighted_figures(counts, b)
    tail = 50.0 * (1.0 - level)
    out: dict[str, tuple[float, float]] = {}
    for key in INTERVAL_FIGURES:
        d = fa[key] - fb[key]
        d = d[~np.isnan(d)]
        out[key] = (float(np.percentile(d, tail)), float(np.percentile(d, 100.0 - tail))) if d.size else (
            math.nan, math.nan)
    return out


def bootstrap_intervals(c: Clustered, resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile intervals (``level``, e.g. 2.5 %–97.5 %) of each figure over ``resamples`` cluster resamples.

    Resamples in which a figure is undefined (say, no manipulated pair drawn) are left out of that figure's
    percentiles; a figure undefined in every resample gets ``(nan, nan)``.
    """
    if resamples < 1 or c.n_refs == 0:
        return {k: (math.nan, math.nan) for k in INTERVAL_FIGURES}
    figs = weighted_figures(bootstrap_counts(c.n_refs, resamples, seed), c)
    tail = 50.0 * (1.0 - level)
    out: dict[str, tuple[float, float]] = {}
    for key in INTERVAL_FIGURES:
        v = figs[key][~np.isnan(figs[key])]
        out[key] = (float(np.percentile(v, tail)), float(np.percentile(v, 100.0 - tail))) if v.size else (
            math.nan, math.nan)
    return out
