"""Bootstrap intervals of the code metrics over originals: seeded draws, re-weighting equal to duplication, point
estimates at weight one, and intervals that shrink to a point when every original is alike."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hasher.train.bootstrap import (
    INTERVAL_FIGURES,
    bootstrap_code_metrics,
    group_counts,
    percentile_interval,
    query_outcomes,
    weighted_code_metrics,
)
from hasher.train.data import Group
from hasher.train.loop import _auc, code_metrics


def _groups(n: int, benign: int = 5, manipulated: int = 3) -> list[Group]:
    return [Group(g, Path(f"g{g}/ref"), tuple(Path(f"g{g}/b{i}") for i in range(benign)),
                  tuple(Path(f"g{g}/m{i}") for i in range(manipulated))) for g in range(n)]


def _codes(groups: list[Group], seed: int, bits: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Random references; benign copies flip a few bits, edits more, so distances overlap and ties happen."""
    rng = np.random.default_rng(seed)
    refs = rng.random((len(groups), bits)) < 0.5
    benign = [refs[gi] ^ (rng.random(bits) < 0.12) for gi, g in enumerate(groups) for _ in g.benign]
    edits = [refs[gi] ^ (rng.random(bits) < 0.3) for gi, g in enumerate(groups) for _ in g.manipulated]
    return refs, np.array(benign + edits)


def _by_duplication(o, counts: np.ndarray) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The figures on queries copied ``counts[group]`` times, computed the plain way (as code_metrics does)."""
    reps = counts.astype(int)[o.group]
    b, d, top1 = np.repeat(o.benign, reps), np.repeat(o.d_own, reps), np.repeat(o.top1, reps)
    r1 = top1[b].mean() if b.any() else math.nan
    rbar1 = 1.0 - top1[~b].mean() if (~b).any() else math.nan
    fr1 = r1 * rbar1 / (r1 + rbar1) if r1 + rbar1 > 0 else (math.nan if math.isnan(r1 + rbar1) else 0.0)
    out = {"r1": r1, "rbar1": rbar1, "fr1": fr1, "auc": _auc(d[b], d[~b]), "edits_accepted_95": math.nan}
    if b.any() and (~b).any():
        out["edits_accepted_95"] = float((d[~b] <= np.quantile(d[b], 0.95, method="higher")).mean())
    return out


def test_counts_are_seeded_draws_with_replacement() -> None:
    counts = group_counts(7, 500, seed=3)
    assert counts.shape == (500, 7) and (counts.sum(axis=1) == 7).all()
    assert (counts == 0).any() and (counts >= 2).any()
    assert np.array_equal(counts, group_counts(7, 500, seed=3))
    assert not np.array_equal(counts, group_counts(7, 500, seed=4))


def test_weight_one_gives_code_metrics() -> None:
    groups = _groups(9)
    refs, queries = _codes(groups, seed=1)
    point = code_metrics(groups, refs, queries)
    ones = weighted_code_metrics(np.ones(len(groups)), query_outcomes(groups, refs, queries))
    for key in INTERVAL_FIGURES:
        assert ones[key][0] == pytest.approx(point[key], abs=1e-12), key


@pytest.mark.parametrize("seed", [2, 5])
def test_reweighting_equals_duplicating_the_drawn_originals(seed: int) -> None:
    groups = _groups(6, benign=4, manipulated=2)
    refs, queries = _codes(groups, seed=seed)
    o = query_outcomes(groups, refs, queries)
    counts = group_counts(len(groups), 200, seed=seed)
    figs = weighted_code_metrics(counts, o)
    for row, c in enumerate(counts):
        expected = _by_duplication(o, c)
        for key in INTERVAL_FIGURES:
            if math.isnan(expected[key]):
                assert math.isnan(figs[key][row]), (row, key)
            else:
                assert figs[key][row] == pytest.approx(expected[key], abs=1e-12), (row, key)


def test_interval_is_a_point_when_every_original_is_alike() -> None:
    groups = _groups(8, benign=3, manipulated=2)
    refs = np.eye(8, 16, dtype=bool) | np.eye(8, 16, k=8, dtype=bool)  # references 2+ bits apart
    benign = [refs[gi] for gi, g in enumerate(groups) for _ in g.benign]
    edits = [refs[gi] ^ np.eye(1, 16, k=(gi + 3) % 16, dtype=bool)[0] for gi, g in enumerate(groups)
             for _ in g.manipulated]
    figs = bootstrap_code_metrics(groups, refs, np.array(benign + edits), resamples=300, seed=0)
    point = code_metrics(groups, refs, np.array(benign + edits))
    for key in INTERVAL_FIGURES:
        lo, hi = percentile_interval(figs[key])
        assert lo == pytest.approx(point[key]) and hi == pytest.approx(point[key]), key


def test_intervals_cover_the_point_and_narrow_with_more_originals() -> None:
    """Ten copies of the same six originals: the same AUC, an interval about sqrt(10) times narrower."""
    small = _groups(6)
    refs, queries = _codes(small, seed=11)
    o = query_outcomes(small, refs, queries)
    widths = []
    for copies in (1, 10):
        groups = _groups(6 * copies)
        tiled_refs = np.tile(refs, (copies, 1))
        benign = np.concatenate([queries[o.benign][o.group[o.benign] == gi] for gi in np.tile(range(6), copies)])
        edits = np.concatenate([queries[~o.benign][o.group[~o.benign] == gi] for gi in np.tile(range(6), copies)])
        tiled_queries = np.concatenate([benign, edits])
        point = code_metrics(groups, tiled_refs, tiled_queries)
        assert point["auc"] == pytest.approx(code_metrics(small, refs, queries)["auc"])
        lo, hi = percentile_interval(bootstrap_code_metrics(groups, tiled_refs, tiled_queries)["auc"])
        assert lo <= point["auc"] <= hi and hi > lo
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2
    assert percentile_interval(np.array([np.nan, np.nan])) == pytest.approx((math.nan, math.nan), nan_ok=True)
