"""The verdict policy's newer branches on plain values (issue 13): another photo of the same scene, the copy-move
tell-tale, the altered threshold by comparison resolution, and calibrated confidence."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from provenance.errors import ConfigError
from provenance.lookup.calibration import FORMAT, parse_calibration
from provenance.lookup.confidence import ConfidenceModel, Logistic, evidence_features, fit_logistic
from provenance.lookup.verdict import (ALTERED, MATCH, NO_MATCH, SAME_SCENE, Candidate, Policy, Region, classify,
                                       decide)

POLICY = Policy(hash_threshold=22, hash_altered=22, change_threshold=12.7, scene_off_plane=0.3,
                scene_min_inlier_ratio=0.6, scene_changed=0.25, scene_min_inliers=40, clone_min_matches=5,
                change_thresholds=((160, 16.0), (230, 14.0)))


def cand(cid: str = "a", *, inliers: int = 300, ratio: float = 0.95, score: float | None = 4.0,
         off_plane: float | None = 0.02, changed: float | None = 0.0, clone: int | None = None,
         side: int | None = 512, distance: int | None = 5, density: float | None = 0.05,
         region: float | None = None, peak: float | None = None, chroma: float | None = None,
         chroma_box: Region | None = None) -> Candidate:
    return Candidate(cid, ("global-id",), distance, 3, inliers, ratio, True, False, "verified", score, (), {},
                     fundamental_inliers=inliers, off_plane_share=off_plane, changed_fraction=changed,
                     clone_matches=clone, comparison_side=side, inlier_density=density, region_score=region,
                     peak_score=peak, chroma_score=chroma, chroma_box=chroma_box)


def verdict(*cands: Candidate):  # type: ignore[no-untyped-def]
    return decide(list(cands), POLICY, query_hash="00", model="m")


def test_parallax_turns_a_would_be_altered_pair_into_same_scene_with_the_record_as_lead():
    v = verdict(cand(score=230.0, off_plane=0.46, ratio=0.52, changed=0.34))  # the motorcycle stereo pair's figures
    assert v.verdict == SAME_SCENE and v.record_cid == "a"
    assert "parallax" in v.explanation and "lead" in v.explanation and v.regions == ()


@pytest.mark.parametrize("kw", [{"off_plane": 0.31}, {"ratio": 0.55}, {"changed": 0.3}])
def test_each_other_photo_cue_alone_is_enough(kw):
    assert classify(cand(score=50.0, **kw), POLICY) == SAME_SCENE


def test_a_local_edit_stays_altered_and_a_clean_comparison_stays_match_whatever_the_matches_look_like():
    assert verdict(cand(score=80.0, changed=0.12)).verdict == ALTERED  # a 10 % edit: local
    # a large edit of a copy keeps most of the original's keypoints: still altered; a burst shot keeps few
    assert verdict(cand(score=200.0, changed=0.33, density=0.47)).verdict == ALTERED
    assert verdict(cand(score=200.0, changed=0.33, density=0.06)).verdict == SAME_SCENE
    # a low inlier ratio or some parallax on a pair that compares clean is still a copy (only a would-be altered
    # pair, or one the comparison could not judge, is asked whether it is another photo)
    assert verdict(cand(score=3.0, ratio=0.4, off_plane=0.5)).verdict == MATCH


def test_an_uncompared_pair_with_parallax_is_not_certified_as_a_match():
    v = verdict(cand(score=None, changed=None, off_plane=0.5, ratio=0.3, inliers=60))
    assert v.verdict == SAME_SCENE
    assert verdict(cand(score=None, changed=None)).verdict == MATCH  # a small crop of the photo itself


def test_a_weak_same_scene_tie_is_no_match():
    v = verdict(cand(score=150.0, inliers=31, ratio=0.46, changed=0.38))  # two monarch butterflies
    assert v.verdict == NO_MATCH and v.record_cid is None and "weakly tied" in v.explanation


def test_a_copy_is_preferred_over_another_photo_of_the_scene():
    other = cand("burst-sibling", inliers=900, score=190.0, changed=0.35)
    copy = cand("original", inliers=200, score=4.0)
    v = verdict(other, copy)
    assert v.verdict == MATCH and v.record_cid == "original"


def test_the_copy_move_tell_tale_makes_altered_even_when_the_comparison_is_quiet():
    v = verdict(cand(score=6.0, clone=9))
    assert v.verdict == ALTERED and "copy-move: 9 keypoints" in v.explanation
    assert verdict(cand(score=6.0, clone=4)).verdict == MATCH  # below the minimum: chance or texture


def test_a_changed_region_makes_altered_when_the_score_alone_does_not():
    regional = replace(POLICY, region_threshold=20.0)
    v = decide([cand(score=8.0, region=26.0)], regional, query_hash="", model="")
    assert v.verdict == ALTERED and "a changed region: score 26.000 >= 20.0" in v.explanation
    assert decide([cand(score=8.0, region=12.0)], regional, query_hash="", model="").verdict == MATCH
    assert verdict(cand(score=8.0, region=26.0)).verdict == MATCH  # no region threshold: the cue is off


def test_a_compact_change_that_stands_out_makes_altered():
    peaked = replace(POLICY, peak_threshold=20.0, peak_min_contrast=2.5)
    v = decide([cand(score=6.0, peak=30.0)], peaked, query_hash="", model="")
    assert v.verdict == ALTERED and "a compact change: peak 30.000 >= 20.0, 5.0x the picture's level" in v.explanation
    # below the threshold, or not standing out from the picture's own level of difference: match
    assert decide([cand(score=6.0, peak=19.0)], peaked, query_hash="", model="").verdict == MATCH
    assert decide([cand(score=10.0, peak=24.0)], peaked, query_hash="", model="").verdict == MATCH
    assert decide([cand(score=None, peak=40.0)], peaked, query_hash="", model="").verdict == MATCH  # not compared
    assert verdict(cand(score=6.0, peak=30.0)).verdict == MATCH  # no peak threshold: the cue is off
    assert peaked.to_obj()["peak_threshold"] == 20.0 and peaked.to_obj()["peak_min_contrast"] == 2.5


def test_a_spot_near_the_peak_threshold_lowers_a_match_s_confidence():
    peaked = replace(POLICY, peak_threshold=20.0, peak_min_contrast=2.5)
    clear = evidence_features(MATCH, cand(score=6.0, peak=16.0), (), peaked)
    close = evidence_features(MATCH, cand(score=6.0, peak=19.5), (), peaked)
    flat = evidence_features(MATCH, cand(score=6.0, peak=9.0), (), peaked)  # no spot stands out: score decides
    assert close[0] < clear[0] < flat[0]


def test_a_colour_change_makes_altered_with_its_spot_as_the_region():
    tinted = replace(POLICY, chroma_threshold=14.0)
    spot = Region(40, 60, 18, 12)
    v = decide([cand(score=6.0, chroma=16.5, chroma_box=spot)], tinted, query_hash="", model="")
    assert v.verdict == ALTERED and "a colour change: chroma score 16.500 >= 14.0" in v.explanation
    assert v.regions == (spot,)  # the comparison boxed nothing: the recoloured spot is the region
    boxed = replace(cand(score=6.0, chroma=16.5, chroma_box=spot), regions=(Region(1, 2, 3, 4),))
    assert decide([boxed], tinted, query_hash="", model="").regions == (Region(1, 2, 3, 4),)
    assert decide([cand(score=6.0, chroma=13.9, chroma_box=spot)], tinted, query_hash="", model="").verdict == MATCH
    assert decide([cand(score=6.0, chroma=None)], tinted, query_hash="", model="").verdict == MATCH  # not compared
    assert verdict(cand(score=6.0, chroma=30.0)).verdict == MATCH  # no chroma threshold: the cue is off
    obj = decide([cand(score=6.0, chroma=16.5, chroma_box=spot)], tinted, query_hash="", model="").to_obj()
    assert obj["thresholds"]["chroma_threshold"] == 14.0
    assert obj["candidates"][0]["chroma_score"] == 16.5 and obj["candidates"][0]["chroma_box"]["width"] == 18
    # the confidence: a match whose colour came close to the threshold is a closer call; an altered one far above
    # it is firmer than one the chroma barely made
    close = evidence_features(MATCH, cand(score=3.0, chroma=13.0), (), tinted)[0]
    clear = evidence_features(MATCH, cand(score=3.0, chroma=5.0), (), tinted)[0]
    assert close < clear
    assert (evidence_features(ALTERED, cand(score=3.0, chroma=40.0), (), tinted)[0]
            > evidence_features(ALTERED, cand(score=3.0, chroma=15.0), (), tinted)[0])


def test_the_altered_threshold_rises_for_coarse_comparisons():
    assert POLICY.change_threshold_at(120) == 16.0 and POLICY.change_threshold_at(200) == 14.0
    assert POLICY.change_threshold_at(512) == 12.7 and POLICY.change_threshold_at(None) == 12.7
    assert verdict(cand(score=13.5, side=512)).verdict == ALTERED
    assert verdict(cand(score=13.5, side=200)).verdict == MATCH
    assert "14.0" in verdict(cand(score=15.0, side=200)).explanation


def test_the_thresholds_and_new_evidence_are_in_the_json():
    obj = verdict(cand(score=6.0, clone=9)).to_obj()
    assert obj["thresholds"]["change_thresholds"] == [[160, 16.0], [230, 14.0]]
    c = obj["candidates"][0]
    assert (c["clone_matches"], c["comparison_side"], c["off_plane_share"], c["changed_fraction"]) == (9, 512, 0.02,
                                                                                                       0.0)
    assert obj["confidence"] is None and obj["confident"] is None  # no model applied
    json.dumps(obj)


# --- confidence -------------------------------------------------------------------------------------------------

MODEL = ConfidenceModel({MATCH: Logistic((2.0, 0.5), 0.0), ALTERED: Logistic((2.0, 0.5), 0.0)}, min_confidence=0.9)


def test_confidence_grows_with_the_margin_and_weak_evidence_needs_a_human_look():
    clear = MODEL.apply(verdict(cand(score=1.0)))
    close = MODEL.apply(verdict(cand(score=11.0, inliers=20)))
    assert clear.verdict == close.verdict == MATCH
    assert clear.confidence > 0.99 and clear.confident is True
    assert close.confidence < clear.confidence and close.confident is False
    assert "needs a human look" in close.explanation and "needs a human look" not in clear.explanation
    obj = close.to_obj()
    assert obj["confident"] is False and 0 < obj["confidence"] < 0.9


def test_a_verdict_without_a_model_gets_no_confidence():
    v = MODEL.apply(verdict(cand(score=230.0, off_plane=0.46)))
    assert v.verdict == SAME_SCENE and v.confidence is None and v.confident is None


def test_evidence_features_are_oriented_towards_the_verdict():
    m_close = evidence_features(MATCH, cand(score=12.0), [], POLICY)[0]
    m_far = evidence_features(MATCH, cand(score=1.0), [], POLICY)[0]
    a_close = evidence_features(ALTERED, cand(score=13.0), [], POLICY)[0]
    a_far = evidence_features(ALTERED, cand(score=130.0), [], POLICY)[0]
    assert m_far > m_close > 0 and a_far > a_close > 0
    assert evidence_features(ALTERED, cand(score=6.0, clone=20), [], POLICY)[0] > 0  # the clone supports it
    near = evidence_features(NO_MATCH, None, [cand(inliers=9)], POLICY)[1]
    assert near < evidence_features(NO_MATCH, None, [], POLICY)[1]  # a candidate that nearly verified weakens it


def test_fit_logistic_recovers_a_known_model():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < 1 / (1 + np.exp(-(1.5 * x[:, 0] - 0.5 * x[:, 1] + 0.3)))).astype(int)
    m = fit_logistic(x.tolist(), y.tolist(), l2=0.01)
    assert m.weights == pytest.approx((1.5, -0.5), abs=0.15) and m.bias == pytest.approx(0.3, abs=0.1)
    # non-negative: the feature that came out negative is dropped and the other refitted alone
    n = fit_logistic(x.tolist(), y.tolist(), l2=0.01, nonnegative=True)
    alone = fit_logistic(x[:, :1].tolist(), y.tolist(), l2=0.01)
    assert n.weights[1] == 0.0 and n.weights[0] == pytest.approx(alone.weights[0]) and n.bias == pytest.approx(alone.bias)


def test_a_calibration_file_round_trips_and_bad_ones_are_refused():
    obj = {"format": FORMAT, "made_by": {"command": "x"},
           "thresholds": {"change_threshold": 12.7, "change_thresholds": [[160, 16.0], [230, 14.0]],
                          "scene_min_inliers": 40},
           "confidence": MODEL.to_obj()}
    cal = parse_calibration(json.loads(json.dumps(obj)))
    policy = cal.policy(hash_threshold=22, hash_altered=22, identity_gate=112)
    assert policy.change_thresholds == ((160, 16.0), (230, 14.0)) and policy.identity_gate == 112
    assert cal.confidence == MODEL
    for bad, why in [({**obj, "format": "x"}, "format"),
                     ({**obj, "thresholds": {"hash_threshold": 3}}, "unknown thresholds"),
                     ({**obj, "thresholds": {"change_thresholds": [[230, 14.0], [160, 16.0]]}}, "ascending"),
                     ({**obj, "confidence": {**MODEL.to_obj(), "min_confidence": 2}}, "probability"),
                     ({**obj, "confidence": {**MODEL.to_obj(), "features": ["margin"]}}, "features"),
                     ({**obj, "hash_altered": [22]}, "model id -> distance"),
                     ({**obj, "hash_altered": {"oscar-v2-x": 0}}, "positive whole number"),
                     ({**obj, "hash_altered": {"oscar-v2-x": 20.5}}, "positive whole number")]:
        with pytest.raises(ConfigError, match=why):
            parse_calibration(bad)


def test_the_hash_alone_altered_distance_is_per_model_and_falls_back_to_the_match_threshold():
    obj = {"format": FORMAT, "thresholds": {"change_threshold": 12.7}, "hash_altered": {"oscar-v2-x": 29}}
    cal = parse_calibration(obj)
    assert cal.hash_altered_for("oscar-v2-x", 16) == 29
    assert cal.hash_altered_for("oscar-v1-y", 22) == 22  # not fitted: its own threshold
    policy = cal.policy(hash_threshold=16, hash_altered=cal.hash_altered_for("oscar-v2-x", 16), identity_gate=None)
    # where the pixels could not be compared, a genuine copy 24 bits away (v2's benign copies reach 28) is no longer
    # altered on the hash alone, and one 30 bits away is
    assert classify(cand(distance=24, score=None), policy) == MATCH
    assert classify(cand(distance=30, score=None), policy) == ALTERED
    assert classify(cand(distance=30), policy) == MATCH  # compared clean: the pixels outrank the code


def test_the_shipped_calibration_loads_and_says_how_it_was_made():
    from provenance.lookup.calibration import CALIBRATION_FILE, load_calibration

    raw = json.loads(CALIBRATION_FILE.read_text())
    cal = load_calibration()
    policy = cal.policy(hash_threshold=22, hash_altered=22, identity_gate=None)
    assert policy.change_threshold == raw["thresholds"]["change_threshold"] > 0
    assert policy.change_thresholds == tuple(tuple(p) for p in raw["thresholds"]["change_thresholds"])
    assert cal.confidence is not None and 0.5 <= cal.confidence.min_confidence < 1.0
    assert {MATCH, ALTERED} <= set(cal.confidence.models)
    assert "calibrate_verdicts.py" in cal.made_by["command"] and cal.made_by["pairs"]["benign"] > 0
    assert replace(policy, identity_gate=1).identity_gate == 1


def test_the_cli_names_a_lead_and_a_weak_verdict(capsys):
    from provenance.cli import print_verdict

    print_verdict(verdict(cand(score=230.0, off_plane=0.46, ratio=0.52, changed=0.34)).to_obj())
    out = capsys.readouterr().out
    assert out.startswith("verdict: same_scene  lead: record a") and "parallax" in out and "confidence" not in out
    print_verdict(MODEL.apply(verdict(cand(score=11.0, inliers=20))).to_obj())
    out = capsys.readouterr().out
    assert out.startswith("verdict: match  record a") and "(weak evidence: needs a human look)" in out


def test_the_chroma_threshold_is_fitted_on_benign_copies_within_its_budget():
    """``calibrate_verdicts.fit_chroma``: just above the benign copies it may not lose, reported only when it
    catches an edit the other thresholds let through; evidence without chroma scores is refused."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "calibrate_verdicts.py"
    spec = importlib.util.spec_from_file_location("calibrate_verdicts", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def row(rel: str, chroma: float | None, score: float = 4.0) -> dict:
        return {"relation": rel, "inliers": 300, "inlier_ratio": 0.95, "passed": True, "score": score,
                "resolution": 512, "reference_side": 512, "chroma_score": chroma}

    benign = [row("benign", float(v)) for v in range(1, 1001)]  # chroma scores 1..1000 / 100 below
    for r in benign:
        r["chroma_score"] /= 100.0  # 0.01 .. 10.0
    edits = [row("manipulated", 9.995), row("manipulated", 14.0), row("manipulated", 3.0),
             row("manipulated", 50.0, score=40.0)]  # the last is altered by its score already
    # budget 0.002 of 1,000 benign copies: two may be lost, so the threshold sits just above the third highest
    t = mod.fit_chroma(benign + edits, POLICY, 0.002)
    assert t == round(9.98 + 0.01, 2)
    assert mod.fit_chroma(benign + edits, POLICY, 0.0) == 10.01  # loses none: above the highest
    assert mod.fit_chroma(benign + [row("manipulated", 2.0)], POLICY, 0.0) is None  # catches nothing
    with pytest.raises(SystemExit):
        mod.fit_chroma(benign + [row("manipulated", None)], POLICY, 0.0)


def test_a_small_match_says_which_edits_its_size_cannot_rule_out():
    """``Policy.match_floor``: a match compared at or below a floor's side carries ``unseen_below`` and says so; a
    larger comparison, an uncompared match and an altered verdict carry none; the verdict itself never changes."""
    floored = replace(POLICY, match_floor=((230, 0.02),))
    small = decide([cand(side=180)], floored, query_hash="00", model="m")
    assert small.verdict == MATCH and small.unseen_below == 0.02
    assert "compared at 180 px, too small to rule out an edit changing under 2% of the picture" in small.explanation
    assert small.to_obj()["unseen_below"] == 0.02 and small.to_obj()["thresholds"]["match_floor"] == [[230, 0.02]]
    large = decide([cand(side=231)], floored, query_hash="00", model="m")
    assert large.verdict == MATCH and large.unseen_below is None and "rule out" not in large.explanation
    assert decide([cand(side=180, score=None)], floored, query_hash="00", model="m").unseen_below is None
    edited = decide([cand(side=180, score=40.0)], floored, query_hash="00", model="m")
    assert edited.verdict == ALTERED and edited.unseen_below is None
    assert verdict(cand(side=180)).unseen_below is None  # no floor in force: nothing claimed either way
    assert floored.unseen_share_at(None) is None and floored.unseen_share_at(230) == 0.02


@pytest.mark.parametrize("floor", [[[230, 1.5]], [[230, 0.0]], [[300, 0.02], [230, 0.05]], [[230, 0.02], [230, 0.05]],
                                   [[0, 0.02]], "230", [[230]]])
def test_a_malformed_match_floor_is_refused(floor):
    with pytest.raises(ConfigError, match="match_floor|calibration"):
        parse_calibration({"format": FORMAT, "thresholds": {"change_threshold": 12.0, "match_floor": floor}})


def test_the_match_floor_is_the_smallest_share_above_which_edits_are_caught():
    """``calibrate_verdicts.fit_match_floor``: per resolution bin, edits visibly changing at least the floor are
    called match at most ``max_pass`` of the time; a bin that holds every perceptible edit to it gets no floor."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "calibrate_verdicts.py"
    spec = importlib.util.spec_from_file_location("calibrate_verdicts", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def edit(visible: float, score: float, side: int) -> dict:
        return {"relation": "manipulated", "inliers": 300, "inlier_ratio": 0.95, "passed": True, "score": score,
                "resolution": side, "reference_side": 512, "visible_share": visible,
                "visible_bucket": "imperceptible" if visible < 0.0025 else "x"}

    rows = ([edit(0.005, 5.0, 150)] * 3 + [edit(0.015, 5.0, 150)] + [edit(0.03, 40.0, 150)] * 10  # small: 1-2 % pass
            + [edit(0.001, 1.0, 150)] * 5  # imperceptible: never counted
            + [edit(0.005, 40.0, 400)] * 20 + [edit(0.05, 40.0, 400)] * 20)  # large: every edit caught
    assert mod.fit_match_floor(rows, POLICY, [230, 4096], 0.0) == [[230, 0.02]]
    assert mod.fit_match_floor(rows, POLICY, [230, 4096], 0.1) == [[230, 0.01]]  # 1 of 11 at >= 1 %: within 10 %
    assert mod.fit_match_floor(rows, POLICY, [230, 4096], 0.5) == []  # 4 of 14: every perceptible edit within 50 %
    missed_large = rows + [edit(0.15, 5.0, 400)]  # a missed edit larger than every share: the largest is named
    assert mod.fit_match_floor(missed_large, POLICY, [230, 4096], 0.0) == [[230, 0.02], [4096, 0.1]]
