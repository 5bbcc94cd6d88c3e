"""The verdict policy on plain values: every branch, the choice of source, and the JSON shape lookup --json prints."""

from __future__ import annotations

from provenance.lookup.verdict import ALTERED, MATCH, NO_MATCH, Candidate, Policy, Region, decide

POLICY = Policy(hash_threshold=8, hash_altered=12, change_threshold=0.5)


def cand(cid: str, *, passed: bool = True, inliers: int = 100, distance: int | None = 3,
         change: float | None = 0.1, regions: tuple[Region, ...] = ()) -> Candidate:
    return Candidate(cid, ("oscar-net",), distance, 10, inliers, 0.9 if passed else 0.0, passed, False,
                     "" if passed else "too few inliers", change if passed else None, regions)


def test_no_candidates_and_no_verified_candidate_give_no_match():
    v = decide([], POLICY, query_hash="00" * 8, model="m")
    assert v.verdict == NO_MATCH and v.record_cid is None and "no candidate" in v.explanation
    v = decide([cand("a", passed=False), cand("b", passed=False)], POLICY, query_hash="00" * 8, model="m")
    assert v.verdict == NO_MATCH and "none of 2" in v.explanation


def test_match_needs_geometry_a_close_hash_and_no_local_change():
    v = decide([cand("a", distance=3)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == MATCH and v.record_cid == "a" and "within" in v.explanation
    v = decide([cand("a", distance=11)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == MATCH and "above the model's threshold 8" in v.explanation


def test_local_change_or_a_far_hash_where_nothing_was_compared_give_altered():
    box = (Region(1, 2, 30, 40),)
    v = decide([cand("a", change=0.9, regions=box)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == ALTERED and v.regions == box and "local change score 0.900 >= 0.5" in v.explanation
    v = decide([cand("a", distance=20, change=None)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == ALTERED and "hash distance 20 > 12 (the pixels could not be compared)" in v.explanation
    v = decide([cand("a", distance=12, change=None)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == MATCH  # at hash_altered itself: not beyond it


def test_a_clean_comparison_outranks_a_far_hash():
    # a screenshot of a texture photo moves the object-graph code 27-35 bits while its pixels compare clean
    v = decide([cand("a", distance=20, change=0.1)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == MATCH and v.record_cid == "a"
    assert "hash distance 20 (above the model's threshold 8; the hash alone would say edited" in v.explanation
    v = decide([cand("a", distance=20, change=0.6)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == ALTERED and "hash distance" not in v.explanation  # the comparison's own reason only


def test_the_source_is_the_verified_candidate_with_most_inliers():
    cands = [cand("weak", inliers=30, distance=1), cand("strong", inliers=300, distance=5), cand("x", passed=False)]
    v = decide(cands, POLICY, query_hash="ab" * 8, model="m")
    assert v.record_cid == "strong"
    tie = decide([cand("b", inliers=50, distance=4), cand("a", inliers=50, distance=4)], POLICY, query_hash="", model="")
    assert tie.record_cid == "a"


def test_json_shape_has_the_documented_keys():
    obj = decide([cand("a"), cand("b", passed=False)], POLICY, query_hash="ab" * 8, model="oscar-v1-1234").to_obj()
    assert {"verdict", "record_cid", "hash", "model", "candidates", "change_map", "thresholds"} <= set(obj)
    assert obj["candidates"][1] | {} == obj["candidates"][1]
    assert {"record_cid", "distance", "inliers", "passed"} <= set(obj["candidates"][0])
    assert {"hash_threshold": 8, "hash_altered": 12, "change_threshold": 0.5,
            "identity_gate": None}.items() <= obj["thresholds"].items()
    assert {"scene_off_plane", "scene_min_inlier_ratio", "scene_changed", "scene_min_inliers"} <= set(obj["thresholds"])


def test_the_first_registrant_is_the_source_and_later_ones_are_listed():
    from dataclasses import replace

    alpha = replace(cand("alpha-photo", inliers=400), leaf_index=3, publisher="alpha")
    beta = replace(cand("beta-copy", inliers=420), leaf_index=9, publisher="beta")  # registered later, as good
    v = decide([beta, alpha], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == MATCH and v.record_cid == "alpha-photo"
    assert [c.record_cid for c in v.also_registered] == ["beta-copy"]
    assert v.to_obj()["also_registered_by"] == [{"record_cid": "beta-copy", "publisher": "beta", "leaf_index": 9}]
    assert "registered first (log leaf 3)" in v.explanation
    # A much better source (over twice the inliers) is not displaced by an earlier, weaker one...
    weak = replace(cand("early-crop", inliers=150), leaf_index=1, publisher="gamma")
    v = decide([weak, beta], POLICY, query_hash="ab" * 8, model="m")
    assert v.record_cid == "beta-copy" and v.also_registered == ()
    # ...and an earlier record that the query *alters* is not an equal of a clean match.
    edited = replace(cand("edited", inliers=300, change=0.9), leaf_index=0, publisher="delta")
    assert decide([edited, alpha], POLICY, query_hash="ab" * 8, model="m").record_cid == "alpha-photo"
