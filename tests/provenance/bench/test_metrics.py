"""Metrics against hand-computed values, including ties and references without manipulated variants."""

from __future__ import annotations

import math

import numpy as np
import pytest

from provenance.bench import metrics as MX

SEED = MX.DEFAULT_SEED


def test_hamming_and_pair_distances() -> None:
    a = np.array([[0b11110000], [0b00000000]], dtype=np.uint8)
    b = np.array([[0b11110000], [0b11111111], [0b00000001]], dtype=np.uint8)
    assert MX.hamming(a, b).tolist() == [[0, 4, 5], [4, 8, 1]]
    assert MX.pair_distances(a, b[:2]).tolist() == [0, 8]
    wide = np.zeros((2, 32), np.uint8)  # 256-bit codes span several words
    wide[1, [0, 9, 31]] = 0xFF
    assert MX.hamming(wide[:1], wide).tolist() == [[0, 24]]


def test_ranks_without_ties() -> None:
    dist = np.array([1, 3, 2, 5, 4])
    assert MX.ranks_of(dist, [0, 1, 2, 3, 4], SEED, 0).tolist() == [1, 3, 2, 5, 4]
    assert MX.full_ranking(dist, SEED, 0).tolist() == [0, 2, 1, 4, 3]


def test_ties_are_random_but_fixed_and_consistent() -> None:
    dist = np.array([2, 1, 1, 1, 0])
    for qid in range(20):
        order = MX.full_ranking(dist, SEED, qid)
        assert order[0] == 4 and order[-1] == 0 and sorted(order[1:4]) == [1, 2, 3]
        ranks = MX.ranks_of(dist, range(5), SEED, qid)
        assert ranks.tolist() == [int(np.flatnonzero(order == i)[0]) + 1 for i in range(5)]
        assert ranks.tolist() == MX.ranks_of(dist.copy(), range(5), SEED, qid).tolist()  # same seed, same answer
    # over many queries the tie goes either way about equally often (random, not by index)
    first = [MX.ranks_of(np.array([1, 1]), [0], SEED, qid)[0] == 1 for qid in range(400)]
    assert 150 < sum(first) < 250


def test_b1_hand_computed() -> None:
    # ranking: item0 (relevant) r1, item2 (manipulated) r2, item1 (relevant) r3, item4 r4, item3 r5
    dist = np.array([1, 3, 2, 5, 4])
    ap, mmap, mmap_r = MX.b1_query_scores(dist, [0, 1], [2], R=100)
    assert ap == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert mmap == pytest.approx(0.5)  # item1 comes after the first manipulated variant: a miss
    assert mmap_r == pytest.approx(0.5)
    assert MX.b1_query_scores(dist, [0, 1], [2], R=1)[2] == pytest.approx(1.0)  # 1/min(2, 1) * P@1
    assert MX.b1_query_scores(dist, [0, 1], [2], R=2)[2] == pytest.approx(0.5)


def test_b1_reference_without_manipulated_variant_and_without_relevant() -> None:
    dist = np.array([1, 3, 2, 5, 4])
    ap, mmap, mmap_r = MX.b1_query_scores(dist, [0, 1], [])
    assert ap == mmap == mmap_r == pytest.approx((1 + 2 / 3) / 2)
    assert MX.b1_query_scores(dist, [], [2]) is None
    res = MX.b1_summary([(1.0, 0.5, 0.5), None, (0.5, 0.5, 0.0)], R=7)
    assert (res.mAP, res.mmAP, res.mmAP_at_R, res.R, res.n_queries) == (0.75, 0.5, 0.25, 7, 2)


def test_b1_with_tie_between_benign_and_manipulated() -> None:
    dist = np.array([1, 1, 0])  # item0 relevant, item1 manipulated, tied at distance 1; item2 unrelated
    for qid in range(10):
        ap, mmap, _ = MX.b1_query_scores(dist, [0], [1], R=10, query_id=qid)
        benign_first = MX.ranks_of(dist, [0], SEED, qid)[0] == 2
        assert ap == pytest.approx(0.5 if benign_first else 1 / 3)
        assert mmap == pytest.approx(0.5 if benign_first else 0.0)


def test_benchmark1_matrix() -> None:
    dist = np.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    res = MX.benchmark1(dist, relevant=[[0, 1], [3]], manipulated=[[2], []], R=100)
    assert res.mAP == pytest.approx(1.0) and res.mmAP == pytest.approx(1.0) and res.n_queries == 2
    res = MX.benchmark1(dist, relevant=[[2, 3], [3]], manipulated=[[0], [2]], R=100)
    # ref 0: relevant at ranks 3, 4 after manipulated at 1 -> AP (1/3 + 2/4)/2, mmAP 0; ref 1: AP 1, mmAP 1
    assert res.mAP == pytest.approx(((1 / 3 + 2 / 4) / 2 + 1) / 2)
    assert res.mmAP == pytest.approx(0.5)


def test_b2_hand_computed() -> None:
    r = MX.b2_summary(np.array([1, 1, 3, 1]), np.array([True, True, False, False]))
    assert (r.R1, r.R1bar) == (1.0, 0.5)
    assert r.FR1 == pytest.approx(0.5 / 1.5)  # eq. 13: no factor 2
    assert r.mAP == 1.0 and r.mAPbar == pytest.approx(1 - (1 / 3 + 1) / 2)
    assert r.FmAP == pytest.approx(1 * (1 / 3) / (1 + 1 / 3))
    r = MX.b2_summary(np.array([1, 2, 1, 1]), np.array([True, True, False, False]))
    assert (r.R1, r.R1bar, r.FR1) == (0.5, 0.0, 0.0)
    assert MX.harmonic_f(0.0, 0.0) == 0.0


def test_benchmark2_with_ties() -> None:
    # query 0 (benign) is tied between its reference (0) and reference 1; query 1 (manipulated) is clear
    dist = np.array([[2, 2, 5], [0, 4, 4]])
    res = MX.benchmark2(dist, targets=[0, 0], benign=[True, False], seed=SEED, query_ids=[0, 1])
    won = MX.ranks_of(dist[0], [0], SEED, 0)[0] == 1
    assert res.R1 == (1.0 if won else 0.0)
    assert res.R1bar == 0.0 and res.FR1 == 0.0


def test_pairs_threshold_fpr_and_auc() -> None:
    benign = np.arange(20)
    manip = np.array([5, 18, 19, 30])
    assert MX.threshold_at_tpr(benign, 0.95) == 18
    assert MX.threshold_at_tpr(np.arange(100), 0.99) == 98  # float 0.99*100 must not round up to 100
    dist = np.concatenate([benign, manip])
    labels = np.array([True] * 20 + [False] * 4)
    res = MX.pair_metrics(dist, labels)
    assert res.FPR_at_TPR95 == 0.5 and res.FPR_at_TPR99 == 0.75
    assert MX.roc_auc(np.array([1, 2]), np.array([2, 3])) == pytest.approx(3.5 / 4)  # the 2-2 tie counts half
    assert MX.roc_auc(np.array([1, 1]), np.array([1, 1])) == pytest.approx(0.5)
    assert math.isnan(MX.roc_auc(np.array([]), np.array([1])))


def test_kind_tokens_and_per_kind() -> None:
    assert MX.kind_tokens("seen:jpeg_resize+flip") == ["seen:jpeg_resize", "seen:flip"]
    assert MX.kind_tokens("copy_move") == ["copy_move"]
    assert MX.kind_tokens("") == ["unspecified"]
    kinds = ["seen:jpeg_resize+flip", "seen:jpeg_resize", "splice", "splice"]
    out = MX.per_kind(kinds, [True, True, False, False], np.array([2, 4, 1, 6]),
                      np.array([True, False, True, False]), threshold95=4)
    assert out["benign/seen:jpeg_resize"]["n"] == 2 and out["benign/seen:jpeg_resize"]["R1"] == 0.5
    assert out["benign/seen:flip"]["mean_distance"] == 2.0
    splice = out["manipulated/splice"]
    assert splice["accepted_at_TPR95"] == 0.5 and splice["AUC_vs_benign"] == pytest.approx(0.5)


# --- bootstrap intervals ------------------------------------------------------------------------------------------

def _point(c: MX.Clustered) -> dict[str, float]:
    """The headline figures from the point metrics themselves (not from the bootstrap code)."""
    b1 = MX.b1_summary([None if np.isnan(s[0]) else tuple(s) for s in c.b1_scores])
    b2 = MX.b2_summary(c.query_rank, c.query_benign)
    pm = MX.pair_metrics(c.pair_dist, c.pair_benign)
    return {"B1_mAP": b1.mAP, "B1_mmAP": b1.mmAP, "B1_mmAP@R": b1.mmAP_at_R, "B2_R1": b2.R1, "B2_R1bar": b2.R1bar,
            "B2_FR1": b2.FR1, "AUC": pm.AUC, "FPR_at_TPR95": pm.FPR_at_TPR95, "FPR_at_TPR99": pm.FPR_at_TPR99}


def _random_run(n_refs: int, seed: int) -> MX.Clustered:
    """A run with uneven references: 1-6 queries each (one query, one pair), coarse distances full of ties, and
    some references without benign variants (left out of B1)."""
    rng = np.random.default_rng(seed)
    per_ref = rng.integers(1, 7, n_refs)
    ref = np.repeat(np.arange(n_refs), per_ref)
    benign = rng.random(len(ref)) < 0.6
    b1 = rng.random((n_refs, 3))
    b1[np.bincount(ref[benign], minlength=n_refs) == 0] = np.nan
    return MX.Clustered(n_refs, b1, ref, rng.integers(1, 4, len(ref)), benign, ref, rng.integers(0, 12, len(ref)),
                        benign)


def _duplicate(c: MX.Clustered, counts: np.ndarray) -> MX.Clustered:
    """The resample built by hand: each reference's scores, queries and pairs copied ``counts[r]`` times."""
    refs = np.repeat(np.arange(c.n_refs), counts.astype(int))
    q = np.concatenate([np.flatnonzero(c.query_ref == r) for r in refs])
    p = np.concatenate([np.flatnonzero(c.pair_ref == r) for r in refs])
    return MX.Clustered(len(refs), c.b1_scores[refs], c.query_ref[q], c.query_rank[q], c.query_benign[q],
                        c.pair_ref[p], c.pair_dist[p], c.pair_benign[p])


def test_bootstrap_counts_are_seeded_draws_with_replacement() -> None:
    counts = MX.bootstrap_counts(7, 500, seed=3)
    assert counts.shape == (500, 7) and (counts.sum(axis=1) == 7).all()
    assert (counts == 0).any() and (counts >= 2).any()  # with replacement: some left out, some drawn twice
    assert np.array_equal(counts, MX.bootstrap_counts(7, 500, seed=3))
    assert not np.array_equal(counts, MX.bootstrap_counts(7, 500, seed=4))
    assert abs(counts.mean() - 1.0) < 1e-12 and 0.7 < counts.var() < 1.0  # multinomial: var 1 - 1/7


def test_weights_equal_explicit_duplication() -> None:
    c = _random_run(12, seed=1)
    counts = MX.bootstrap_counts(c.n_refs, 40, seed=9)
    figs = MX.weighted_figures(counts, c)
    for b, row in enumerate(counts):
        expected = _point(_duplicate(c, row))
        for key in MX.INTERVAL_FIGURES:
            got = figs[key][b]
            if math.isnan(expected[key]):
                assert math.isnan(got), (b, key)
            else:
                assert got == pytest.approx(expected[key], rel=1e-12, abs=1e-12), (b, key)
    ones = MX.weighted_figures(np.ones(c.n_refs), c)  # weight 1 everywhere: the point estimates
    assert {k: pytest.approx(v[0]) for k, v in ones.items()} == _point(c)



def test_interval_collapses_when_every_reference_is_the_same() -> None:
    n = 10  # each reference: one benign query found (rank 1), one edit missed (rank 2), one edit found
    ref = np.repeat(np.arange(n), 3)
    benign = np.tile([True, False, False], n)
    c = MX.Clustered(n, np.tile([[0.8, 0.3, 0.3]], (n, 1)), ref, np.tile([1, 2, 1], n), benign, ref,
                     np.tile([3, 9, 2], n), benign)
    point = _point(c)
    for key, (lo, hi) in MX.bootstrap_intervals(c, 300, seed=5).items():
        assert lo == pytest.approx(point[key], abs=1e-12) and hi == pytest.approx(point[key], abs=1e-12), key
        assert hi - lo < 1e-12, key  # equal up to the rounding of a weighted mean


def test_interval_widens_with_references_that_disagree() -> None:
    n = 40  # half the references' benign copies are found, half are not: R@1 = 0.5 with ~N(0.5, 0.079)
    ref = np.repeat(np.arange(n), 2)
    benign = np.tile([True, False], n)
    ranks = np.where(benign, np.repeat(np.arange(n) % 2 + 1, 2), 2)
    dist = np.where(benign, np.repeat(np.arange(n) % 2 * 10, 2), 5)  # half the benign pairs beyond the edits
    c = MX.Clustered(n, np.repeat([[1.0, 1.0, 1.0], [0.2, 0.0, 0.0]], n // 2, axis=0), ref, ranks, benign, ref,
                     dist, benign)
    point = _point(c)
    iv = MX.bootstrap_intervals(c, 2000, seed=7)
    for key in ("B1_mAP", "B1_mmAP", "B2_R1", "B2_FR1", "AUC"):
        lo, hi = iv[key]
        assert lo < point[key] < hi, key
    lo, hi = iv["B2_R1"]
    assert 0.30 < lo < 0.42 and 0.58 < hi < 0.70  # ± 1.96 * sqrt(0.25 / 40) = ± 0.155
    assert iv["B2_R1bar"] == (1.0, 1.0)  # no edit is ever found: no spread to find
    assert iv["FPR_at_TPR95"] == (1.0, 1.0)  # the threshold moves per resample, every edit stays accepted


def test_intervals_are_seeded_and_undefined_figures_are_nan() -> None:
    c = _random_run(15, seed=2)
    a, b = MX.bootstrap_intervals(c, 200, seed=11), MX.bootstrap_intervals(c, 200, seed=11)
    assert a == b
    assert a != MX.bootstrap_intervals(c, 200, seed=12)
    only_benign = MX.Clustered(3, np.full((3, 3), 0.5), np.arange(3), np.ones(3, int), np.ones(3, bool),
                               np.arange(3), np.arange(3), np.ones(3, bool))
    iv = MX.bootstrap_intervals(only_benign, 50, seed=1)
    assert all(math.isnan(x) for x in iv["AUC"] + iv["FPR_at_TPR95"] + iv["B2_R1bar"] + iv["B2_FR1"])
    assert iv["B2_R1"] == (1.0, 1.0)


def test_paired_difference_is_narrower_than_either_interval_and_zero_against_itself() -> None:
    a = _random_run(30, seed=3)
    same = MX.paired_difference_intervals(a, a, 500, seed=4)
    assert all(lo == hi == 0.0 for lo, hi in same.values() if not math.isnan(lo))
    # b: a with every benign pair 3 bits closer, so its AUC is higher on every resample that has both kinds
    b = MX.Clustered(a.n_refs, a.b1_scores, a.query_ref, a.query_rank, a.query_benign, a.pair_ref,
                     np.where(a.pair_benign, np.maximum(a.pair_dist - 3, 0), a.pair_dist), a.pair_benign)
    d = MX.paired_difference_intervals(b, a, 500, seed=4)
    lo, hi = d["AUC"]
    assert 0 < lo <= hi
    own_a, own_b = MX.bootstrap_intervals(a, 500, seed=4)["AUC"], MX.bootstrap_intervals(b, 500, seed=4)["AUC"]
    assert hi - lo < min(own_a[1] - own_a[0], own_b[1] - own_b[0])
    with pytest.raises(ValueError):
        MX.paired_difference_intervals(a, _random_run(7, seed=1), 10)


def test_wilson_interval() -> None:
    wilson = MX.wilson
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and abs(hi - 0.2775) < 1e-4  # the textbook value for 0 of 10
    lo, hi = wilson(6, 1511)
    assert abs(lo - 0.00182) < 1e-5 and abs(hi - 0.00864) < 1e-5
    a, b = wilson(3, 20)
    c, d = wilson(17, 20)
    assert abs(a - (1 - d)) < 1e-12 and abs(b - (1 - c)) < 1e-12  # symmetric in k <-> n - k
