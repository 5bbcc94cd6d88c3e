"""Calibrated confidence of a verdict: the probability that its label is right (issue 13). Pure.

Each verdict gets a few numbers that say how strongly the evidence supports it (``evidence_features``), and a
logistic model per verdict (Platt scaling, extended to those few features) maps them to a probability, fitted on a
calibration split of labelled pairs by ``benchmarks/calibrate_verdicts.py`` and shipped with the thresholds in
``verdict_calibration.json``. Below ``min_confidence`` the verdict says ``"confident": false``: the evidence is too
weak either way and a person should look (the journalist page says "needs a human look").

The features, all oriented so that larger means more support for the verdict given:

* ``margin``: how far the aligned comparison's score lies from the altered threshold, in log units
  (``log(score / threshold)`` for *altered*, its negative for *match*), and likewise its region score (the closer
  of the two for *match*, the stronger for *altered*), and its peak score where a spot stands out; a copy-move's
  tell-tale adds support to *altered*
  (``log(clone matches / their minimum)``, or its pixel gap's);
* ``tie``: ``log(inliers)`` of the verdict's candidate, how firmly geometry ties query and record;
* for *no_match*: ``tie`` is the log of the most inliers any candidate reached (1 + inliers), negated: a candidate
  that nearly verified weakens a *no_match*; for *same_scene*: ``margin`` is the strongest of its other-photo cues.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from provenance.lookup.verdict import (ALTERED, MATCH, NO_MATCH, SAME_SCENE, Candidate, Policy, Verdict,
                                       change_threshold, goes_beyond_frame, is_chroma_changed, is_cloned,
                                       is_peak_changed)

__all__ = ["FEATURES", "ConfidenceModel", "Logistic", "evidence_features", "fit_logistic"]

FEATURES = ("margin", "tie")
_EPS = 1e-3


@dataclass(frozen=True)
class Logistic:
    """p = 1 / (1 + exp(-(bias + sum(weights * features))))."""

    weights: tuple[float, ...]
    bias: float

    def probability(self, x: Sequence[float]) -> float:
        z = self.bias + sum(w * v for w, v in zip(self.weights, x, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, z))))

    def to_obj(self) -> dict[str, object]:
        return {"weights": list(self.weights), "bias": self.bias}


def _log_ratio(value: float, threshold: float) -> float:
    return math.log(max(value, _EPS) / max(threshold, _EPS))


def evidence_features(verdict: str, best: Candidate | None, candidates: Sequence[Candidate],
                      policy: Policy) -> tuple[float, float]:
    """(margin, tie) for ``verdict`` about ``best`` (its candidate; None for *no_match*), see the module."""
    if verdict == NO_MATCH or best is None:
        nearest = max((c.inliers for c in candidates), default=0)
        return 0.0, -math.log1p(nearest)
    tie = math.log(max(best.inliers, 1))
    threshold = change_threshold(best, policy)
    if verdict == SAME_SCENE:
        cues = [_log_ratio(best.off_plane_share or 0.0, policy.scene_off_plane),
                _log_ratio(policy.scene_min_inlier_ratio, max(best.inlier_ratio, _EPS)),
                _log_ratio(best.changed_fraction or 0.0, policy.scene_changed)]
        if goes_beyond_frame(best, policy):
            allowed = (policy.scene_beyond_seam or 1.0) * (1.0 + max(0.0, best.beyond_continuity or 0.0))
            cues.append(_log_ratio(allowed, max(best.beyond_seam or 0.0, _EPS)))
        return max(cues), tie
    score = best.change_score
    if verdict == ALTERED:
        margin = _log_ratio(score, threshold) if score is not None else -1.0
        if is_cloned(best, policy):
            margin = max(margin, _log_ratio(float(best.clone_matches or 0), float(policy.clone_min_matches)),
                         _log_ratio(best.clone_gap or 0.0, policy.clone_min_gap))
        if policy.region_threshold is not None and best.region_score is not None:
            margin = max(margin, _log_ratio(best.region_score, policy.region_threshold))
        if is_peak_changed(best, policy):
            margin = max(margin, _log_ratio(best.peak_score or 0.0, policy.peak_threshold or 1.0))
        if is_chroma_changed(best, policy):
            margin = max(margin, _log_ratio(best.chroma_score or 0.0, policy.chroma_threshold or 1.0))
        return margin, tie
    # MATCH: uncompared (a small crop) gets no support from the comparison; the closer call of the two scores counts
    if score is None:
        return 0.0, tie
    margin = -_log_ratio(score, threshold)
    if policy.region_threshold is not None and best.region_score is not None:
        margin = min(margin, -_log_ratio(best.region_score, policy.region_threshold))
    if (policy.peak_threshold is not None and best.peak_score is not None
            and best.peak_score >= policy.peak_min_contrast * score):  # a spot that stands out: how close a call
        margin = min(margin, -_log_ratio(best.peak_score, policy.peak_threshold))
    if policy.chroma_threshold is not None and best.chroma_score is not None:  # how close a colour change came
        margin = min(margin, -_log_ratio(best.chroma_score, policy.chroma_threshold))
    return margin, tie


@dataclass(frozen=True)
class ConfidenceModel:
    """One logistic model per verdict, and the confidence below which a verdict is not ``confident``."""

    models: Mapping[str, Logistic]
    min_confidence: float

    def assess(self, verdict: str, best: Candidate | None, candidates: Sequence[Candidate],
               policy: Policy) -> tuple[float | None, bool | None]:
        """(confidence, confident) of a verdict; (None, None) for a verdict the model does not cover."""
        model = self.models.get(verdict)
        if model is None:
            return None, None
        p = model.probability(evidence_features(verdict, best, candidates, policy))
        return p, p >= self.min_confidence

    def apply(self, verdict: Verdict) -> Verdict:
        """``verdict`` with its confidence, and "needs a human look" in its explanation when it is not confident."""
        best = next((c for c in verdict.candidates if c.record_cid == verdict.record_cid), None)
        p, sure = self.assess(verdict.verdict, best, verdict.candidates, verdict.policy)
        if p is None:
            return verdict
        why = verdict.explanation if sure else (f"{verdict.explanation}; weak evidence (confidence {p:.2f} < "
                                                 f"{self.min_confidence}): needs a human look")
        return replace(verdict, confidence=p, confident=sure, explanation=why)

    def to_obj(self) -> dict[str, object]:
        return {"features": list(FEATURES), "min_confidence": self.min_confidence,
                "models": {k: v.to_obj() for k, v in sorted(self.models.items())}}

    @classmethod
    def from_obj(cls, obj: Mapping[str, object]) -> ConfidenceModel:
        """Parse ``to_obj``'s form; raise ``ValueError`` saying what is wrong."""
        features = obj.get("features")
        if list(features or []) != list(FEATURES):  # type: ignore[call-overload]
            raise ValueError(f"confidence features {features!r} are not {list(FEATURES)!r}")
        models: dict[str, Logistic] = {}
        raw = obj.get("models")
        if not isinstance(raw, Mapping):
            raise ValueError("confidence models must be an object of verdict -> {weights, bias}")
        for verdict, m in raw.items():
            if verdict not in (MATCH, ALTERED, SAME_SCENE, NO_MATCH):
                raise ValueError(f"confidence model for unknown verdict {verdict!r}")
            try:
                weights = tuple(float(w) for w in m["weights"])
                bias = float(m["bias"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"confidence model for {verdict!r} is malformed: {exc}") from None
            if len(weights) != len(FEATURES) or not all(map(math.isfinite, (*weights, bias))):
                raise ValueError(f"confidence model for {verdict!r} needs {len(FEATURES)} finite weights and a bias")
            models[verdict] = Logistic(weights, bias)
        min_confidence = float(obj.get("min_confidence", 0.0))  # type: ignore[arg-type]
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence {min_confidence} is not a probability")
        return cls(models, min_confidence)


def fit_logistic(x: Sequence[Sequence[float]], y: Sequence[int], *, l2: float = 1.0, iters: int = 100,
                 nonnegative: bool = False) -> Logistic:
    """Maximum-likelihood logistic regression with an L2 penalty on the weights (not the bias), by Newton's method
    (a few thousand pairs and two features: no fitting library needed).

    ``nonnegative``: the features are oriented so that larger means more support (``evidence_features``); a weight
    that comes out negative says more about the handful of errors it was fitted on (a verdict right 1,850 times in
    1,852) than about the evidence, so that feature is dropped (weight 0) and the rest refitted."""
    import numpy as np

    xs = np.asarray(x, np.float64).reshape(len(y), -1)
    if nonnegative:
        active = list(range(xs.shape[1]))
        while True:
            sub = _fit(xs[:, active], y, l2, iters)
            negative = [i for i, wt in zip(active, sub.weights, strict=True) if wt < 0.0]
            if not negative:
                weights = [0.0] * xs.shape[1]
                for i, wt in zip(active, sub.weights, strict=True):
                    weights[i] = wt
                return Logistic(tuple(weights), sub.bias)
            active = [i for i in active if i not in negative]
    return _fit(xs, y, l2, iters)


def _fit(xs: Any, y: Sequence[int], l2: float, iters: int) -> Logistic:
    import numpy as np

    a = np.column_stack([xs, np.ones(len(y))])
    t = np.asarray(y, np.float64)
    w = np.zeros(a.shape[1])
    penalty = np.full(a.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -40.0, 40.0)))
        grad = a.T @ (p - t) + penalty * w
        hess = (a * np.maximum(p * (1 - p), 1e-9)[:, None]).T @ a + np.diag(penalty)
        step = np.linalg.solve(hess + 1e-9 * np.eye(len(w)), grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return Logistic(tuple(float(v) for v in w[:-1]), float(w[-1]))
