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
