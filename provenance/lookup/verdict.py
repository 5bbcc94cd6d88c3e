"""Verdicts: the pure decision at the end of a lookup, with the evidence that led to it.

Inputs are plain values (distances, inlier counts, a change score), so the policy can be tested exhaustively
without images, and calibrated on one dataset split and reported on another (``benchmarks/attribution_system.py``).

* **match**: a candidate passes geometric verification, its tamper-sensitive hash is within ``hash_altered`` (by
  default the model's calibrated threshold), and the aligned comparison finds no local change.
* **altered**: a candidate passes geometric verification (it is the same source scene) but the content differs:
  the aligned comparison finds a concentrated change, or the sensitive hash is beyond ``hash_altered``.
  The evidence carries the changed regions and the change map.
* **no_match**: no candidate passes geometric verification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MATCH, ALTERED, NO_MATCH = "match", "altered", "no_match"


@dataclass(frozen=True)
class Policy:
    """Thresholds of the decision. ``hash_threshold`` comes with the model's weights (calibrated at 99 % of benign
    pairs) and is reported; ``hash_altered`` (>= it) is the distance beyond which the hash alone says "edited" once
    geometry holds; ``change_threshold`` is the aligned comparison's score threshold (``provenance.lookup.compare``);
    ``identity_gate`` is the global-id distance beyond which a candidate is a different photo and is not verified
    (None: every candidate is verified).
    """

    hash_threshold: int
    hash_altered: int
    change_threshold: float
    identity_gate: int | None = None

    def to_obj(self) -> dict[str, Any]:
        return {"hash_threshold": self.hash_threshold, "hash_altered": self.hash_altered,
                "change_threshold": self.change_threshold, "identity_gate": self.identity_gate}


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    width: int
    height: int

    def to_obj(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class ObjectChange:
    """An edit described at object level (``provenance.lookup.objects``): ``kind`` is added / removed / replaced /
    changed, ``label`` the detector's class of the object now there (for *removed*: the one that was), ``box`` its
    box in the original's pixels (the frame of ``regions`` and the change map), ``was`` the original's label for
    *replaced*."""

    kind: str
    label: str
    box: Region
    score: float
    was: str | None = None

    @property
    def near(self) -> tuple[int, int]:
        return (self.box.x + self.box.width // 2, self.box.y + self.box.height // 2)

    @property
    def description(self) -> str:
        x, y = self.near
        what = f"{self.was} replaced by {self.label}" if self.kind == "replaced" and self.was else \
            f"{self.label} {self.kind}"
        return f"{what} near ({x}, {y})"

    def to_obj(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "was": self.was, "box": self.box.to_obj(),
                "near": list(self.near), "score": self.score, "description": self.description}


@dataclass(frozen=True)
class Candidate:
    """One record examined by a lookup: how it was found, its distances, and what verification said."""

    record_cid: str
    channels: tuple[str, ...]  # which index channels returned it
    distance: int | None  # sensitive-hash Hamming distance (None if the record has no such hash)
    tolerant_distance: int | None  # the first tolerant channel's (pHash by default); all of them below
    inliers: int = 0
    inlier_ratio: float = 0.0
    passed: bool = False  # geometric verification
    mirrored: bool = False
    reason: str = ""
    change_score: float | None = None  # aligned comparison, only for candidates that passed
    regions: tuple[Region, ...] = ()
    tolerant_distances: dict[str, int] = field(default_factory=dict)  # tolerant alg -> Hamming distance

    def to_obj(self) -> dict[str, Any]:
        return {"record_cid": self.record_cid, "channels": list(self.channels), "distance": self.distance,
                "tolerant_distance": self.tolerant_distance, "tolerant_distances": dict(self.tolerant_distances),
                "inliers": self.inliers,
                "inlier_ratio": round(self.inlier_ratio, 4), "passed": self.passed, "mirrored": self.mirrored,
                "reason": self.reason,
                "change_score": None if self.change_score is None else round(self.change_score, 4),
                "regions": [r.to_obj() for r in self.regions]}


@dataclass(frozen=True)
class Verdict:
    verdict: str
    record_cid: str | None
    hash: str  # the query's sensitive hash, hex
    model: str  # the model id that produced it
    candidates: tuple[Candidate, ...]
    policy: Policy
    explanation: str
    change_map: str | None = None  # path of the PNG, for "altered"
    regions: tuple[Region, ...] = ()
    hashes: dict[str, str] = field(default_factory=dict)  # every channel's query hash, alg -> hex
    timings_ms: dict[str, float] = field(default_factory=dict)
    object_changes: tuple[ObjectChange, ...] = ()  # for "altered", where the detector explains a changed region

    def to_obj(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "record_cid": self.record_cid, "hash": self.hash, "model": self.model,
                "hashes": dict(self.hashes), "candidates": [c.to_obj() for c in self.candidates],
                "change_map": self.change_map, "regions": [r.to_obj() for r in self.regions],
                "object_changes": [c.to_obj() for c in self.object_changes],
                "thresholds": self.policy.to_obj(), "explanation": self.explanation,
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()}}


def is_altered(c: Candidate, policy: Policy) -> bool:
    changed = c.change_score is not None and c.change_score >= policy.change_threshold
    far = c.distance is not None and c.distance > policy.hash_altered
    return changed or far


def decide(candidates: Sequence[Candidate], policy: Policy, *, query_hash: str, model: str) -> Verdict:
    """Pick the verdict and the record it is about. Among candidates that passed geometric verification, the one
    with the most inliers is the source (ties: smaller sensitive distance, then CID, for a stable answer)."""
    passed = sorted((c for c in candidates if c.passed),
                    key=lambda c: (-c.inliers, c.distance if c.distance is not None else 1 << 30, c.record_cid))
    common = {"hash": query_hash, "model": model, "candidates": tuple(candidates), "policy": policy}
    if not passed:
        why = ("no candidate in the index" if not candidates
               else f"none of {len(candidates)} candidates passed geometric verification")
        return Verdict(NO_MATCH, None, explanation=why, **common)
    best = passed[0]
    if is_altered(best, policy):
        reasons = []
        if best.change_score is not None and best.change_score >= policy.change_threshold:
            reasons.append(f"local change score {best.change_score:.3f} >= {policy.change_threshold}")
        if best.distance is not None and best.distance > policy.hash_altered:
            reasons.append(f"hash distance {best.distance} > {policy.hash_altered}")
        return Verdict(ALTERED, best.record_cid, regions=best.regions,
                       explanation=f"same scene ({best.inliers} inliers) but content differs: " + "; ".join(reasons),
                       **common)
    within = "within" if best.distance is None or best.distance <= policy.hash_threshold else "above"
    return Verdict(MATCH, best.record_cid, explanation=(
        f"{best.inliers} inliers, hash distance {best.distance} ({within} the model's threshold "
        f"{policy.hash_threshold}), no local change"), **common)
