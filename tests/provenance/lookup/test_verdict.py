"""The verdict policy on plain values: every branch, the choice of source, and the JSON shape lookup --json prints."""

from __future__ import annotations

from provenance.lookup.verdict import ALTERED, MATCH, NO_MATCH, Candidate, Policy, Region, decide

POLICY = Policy(hash_threshold=8, hash_altered=12, change_threshold=0.5)


def cand(cid: str, *, passed: bool = True, inliers: int = 100, distance: int | None = 3,
         change: float | None = 0.1, regions: tuple[Region, ...] = ()) -> Candidate:
    return Candidate(cid, ("oscar-net",), distance, 10, inliers, 0.5 if passed else 0.0, passed, False,
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


def test_local_change_or_a_far_hash_give_altered_with_regions():
    box = (Region(1, 2, 30, 40),)
    v = decide([cand("a", change=0.9, regions=box)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == ALTERED and v.regions == box and "local change score 0.900 >= 0.5" in v.explanation
    v = decide([cand("a", distance=20)], POLICY, query_hash="ab" * 8, model="m")
    assert v.verdict == ALTERED and "hash distance 20 > 12" in v.explanation


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
    assert obj["thresholds"] == {"hash_threshold": 8, "hash_altered": 12, "change_threshold": 0.5, "identity_gate": None}
