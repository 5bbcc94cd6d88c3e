"""Bootstrap intervals for :func:`hasher.train.loop.code_metrics`, resampling originals (groups), pure numpy.

The variants of one original are not independent (an edit that fools the code on a photo tends to fool it on that
photo's other copies), so a resample draws originals with replacement, each carrying all of its variants. The
reference database stays fixed: every distance and top-1 outcome is computed once, and a resample only re-weights
the queries by how often their original was drawn (a weight of 2 is the same as the query appearing twice). Drawing
the counts from ``(n_groups, resamples, seed)`` alone means two codes of the same groups (two configs, two models)
see the same resamples, so the per-resample difference of a figure gives a paired interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hasher.train.data import Group
from hasher.train.loop import validation_queries

#: The figures of ``code_metrics`` that get intervals (the thresholds and mean distances do not).
INTERVAL_FIGURES = ("auc", "r1", "rbar1", "fr1", "edits_accepted_95")
DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class QueryOutcomes:
    """Per query, in the order of :func:`validation_queries`: what every figure is a weighted mean over."""

    n_groups: int
    group: np.ndarray  # index of the query's original
    benign: np.ndarray  # bool
    d_own: np.ndarray  # Hamming distance to its own reference
    top1: np.ndarray  # share of the top-1 tie its own reference gets: 1 / ties when it is among the nearest, else 0


def query_outcomes(groups: Sequence[Group], ref_codes: np.ndarray, q_codes: np.ndarray) -> QueryOutcomes:
    """The per-query outcomes behind ``code_metrics`` (same codes, same order, ties shared the same way)."""
    queries = validation_queries(groups)
    dist = (np.asarray(q_codes)[:, None, :] != np.asarray(ref_codes)[None, :, :]).sum(-1)  # [Q, R]
    own = np.array([gi for gi, _, _ in queries], dtype=np.int64)
    d_own = dist[np.arange(len(own)), own]
    best = dist.min(axis=1)
    top1 = np.where(d_own == best, 1.0 / (dist == best[:, None]).sum(axis=1), 0.0)
    return QueryOutcomes(len(groups), own, np.array([b for _, _, b in queries], dtype=bool), d_own, top1)


def group_counts(n_groups: int, resamples: int, seed: int = DEFAULT_SEED) -> np.ndarray:
    """``(resamples, n_groups)``: how often each original is drawn in each resample of ``n_groups`` draws."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    flat = (draws + n_groups * np.arange(resamples)[:, None]).ravel()
    return np.bincount(flat, minlength=resamples * n_groups).reshape(resamples, n_groups).astype(np.float64)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _hist(group: np.ndarray, d: np.ndarray, n_groups: int, n_values: int) -> np.ndarray:
    """``(n_groups, n_values)`` counts of queries per (original, distance)."""
    flat = group * n_values + d
    return np.bincount(flat, minlength=n_groups * n_values).reshape(n_groups, n_values).astype(np.float64)


def weighted_code_metrics(counts: np.ndarray, o: QueryOutcomes) -> dict[str, np.ndarray]:
    """Each figure of ``INTERVAL_FIGURES`` for every row of ``counts`` ``(B, n_groups)``; NaN where undefined.

    A row of integer counts gives what ``code_metrics`` gives on the queries duplicated that often (reference
    database unchanged); a row of ones gives its point estimates.
    """
    w = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    wq = w[:, o.group]  # (B, Q)
    b = o.benign
    r1 = _ratio(wq[:, b] @ o.top1[b], wq[:, b].sum(axis=1))
    rbar1 = 1.0 - _ratio(wq[:, ~b] @ o.top1[~b], wq[:, ~b].sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        fr1 = np.where(r1 + rbar1 > 0, r1 * rbar1 / (r1 + rbar1), 0.0)
    out = {"r1": r1, "rbar1": rbar1, "fr1": np.where(np.isnan(r1 + rbar1), np.nan, fr1)}

    n_values = int(o.d_own.max()) + 1 if len(o.d_own) else 1
    d = np.asarray(o.d_own, dtype=np.int64)
    hb = w @ _hist(o.group[b], d[b], o.n_groups, n_values)  # (B, V): benign weight at each distance
    hm = w @ _hist(o.group[~b], d[~b], o.n_groups, n_values)
    nb, nm = hb.sum(axis=1), hm.sum(axis=1)
    cb, cm = np.cumsum(hb, axis=1), np.cumsum(hm, axis=1)
    out["auc"] = _ratio((hm * (cb - 0.5 * hb)).sum(axis=1), nb * nm)  # P(benign < edit) + half the ties
    # np.quantile(..., 0.95, method="higher") of the benign distances: the sorted value at ceil(0.95 (n - 1)).
    k = np.ceil(0.95 * np.maximum(nb - 1, 0)) + 1  # how many benign pairs lie at or below the threshold
    at = np.argmax(cb >= k[:, None] - 1e-9, axis=1)
    out["edits_accepted_95"] = np.where(nb > 0, _ratio(cm[np.arange(len(w)), at], nm), np.nan)
    return out


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of the defined (non-NaN) values; ``(nan, nan)`` when none is."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    tail = 50.0 * (1.0 - level)
    return float(np.percentile(v, tail)), float(np.percentile(v, 100.0 - tail))


def bootstrap_code_metrics(groups: Sequence[Group], ref_codes: np.ndarray, q_codes: np.ndarray, *,
                           resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Every figure of ``INTERVAL_FIGURES`` in each of ``resamples`` seeded resamples of the originals."""
    o = query_outcomes(groups, ref_codes, q_codes)
    return weighted_code_metrics(group_counts(o.n_groups, resamples, seed), o)
