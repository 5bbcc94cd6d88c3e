"""Verdicts: the pure decision at the end of a lookup, with the evidence that led to it.

Inputs are plain values (distances, inlier counts, a change score), so the policy can be tested exhaustively
without images, and calibrated on one dataset split and reported on another (``benchmarks/attribution_system.py``).

* **match**: a candidate passes geometric verification and the aligned comparison finds no local change (or, where
  the pixels could not be compared, its tamper-sensitive hash is within ``hash_altered``).
* **altered**: a candidate passes geometric verification (it is the same source scene) but the content differs:
  the aligned comparison finds a concentrated change (at the threshold for the resolution it ran at, or a compact
  spot, or a colour change in its chroma heat), a copy-move leaves its tell-tale (``provenance.lookup.clones``), or,
  only where the comparison could not run, the sensitive hash is beyond ``hash_altered``. Where the pixels were
  compared, they outrank the code: a clean comparison with a far hash is a *match* (the distance is reported). On
  every query of both 1M-code system runs (4,884 copies and edits), the hash beside a clean comparison caught no
  edit and called two genuine copies *altered* (screenshots of texture photos, 27 and 35 bits away).
  The evidence carries the changed regions and the change map.
* **same_scene**: a candidate passes geometric verification, but the query is another photo of the same scene,
  not a copy of the registered one: a homography explains only part of what a fundamental matrix explains
  (parallax: ``off_plane_share``), or too few of the matches (``inlier_ratio``), or the aligned comparison finds
  differences over much of the picture (``changed_fraction``), where an edit changes a minority of it, while few of
  the original's keypoints match (``inlier_density``: a copy keeps the original's pixels, a new capture does not).
  The record is a lead ("another photo of the same scene"), never a claim that the query was edited. Such a tie
  with fewer than ``scene_min_inliers`` inliers is too weak to be a lead (the same object or pattern in two
  photos) and gives **no_match**.
* **no_match**: no candidate passes geometric verification (or only as another photo, weakly tied).

A candidate verified by dense alignment (``dense``: a low-texture copy keypoints could not tie,
``provenance.lookup.dense``) has no correspondences to test for parallax, so nothing tells an edit from another
photo of the scene: it supports *match* when the copy is clean, and gives **no_match** when it is not.

Precedence: when several records are equally good sources (each would give the same verdict, with at least
``EQUAL_INLIER_SHARE`` of the best one's inliers: typically the same picture registered by two publishers), the one
first appended to the log (lowest leaf index) is the source and the others are listed in ``also_registered``. A
later registrant of someone else's photo never displaces the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MATCH, ALTERED, NO_MATCH, SAME_SCENE = "match", "altered", "no_match", "same_scene"
#: A passing candidate with at least this share of the best one's inliers, and the same verdict, is as good a source.
EQUAL_INLIER_SHARE = 0.5


def _by_resolution(ladder: tuple[tuple[int, float], ...], resolution: int | None) -> float | None:
    """The value of the first (side, value) step of an ascending ``ladder`` whose side is at or above
    ``resolution`` (long side, px); None when the resolution is unknown or beyond the last step."""
    if resolution is not None:
        for side, value in ladder:
            if resolution <= side:
                return value
    return None


@dataclass(frozen=True)
class Policy:
    """Thresholds of the decision. ``hash_threshold`` comes with the model's weights (calibrated at 99 % of benign
    pairs) and is reported; ``hash_altered`` (>= it) is the distance beyond which the hash alone says "edited" once
    geometry holds and the comparison could not run; ``change_threshold`` is the aligned comparison's score
    threshold (``provenance.lookup.compare``); ``identity_gate`` is the global-id distance beyond which a candidate
    is a different photo and is not verified (None: every candidate is verified). The ``scene_*`` thresholds tell
    another photo of the scene from a copy (see the module docstring; calibrated by ``benchmarks/bench_geometry.py``).
    """

    hash_threshold: int
    hash_altered: int
    change_threshold: float
    identity_gate: int | None = None
    scene_off_plane: float = 0.3  # off_plane_share at or above which the pair shows parallax
    scene_min_inlier_ratio: float = 0.6  # homography inlier ratios below this are not a copy's
    scene_changed: float = 0.25  # changed_fraction at or above which the difference is not a local edit...
    scene_max_density: float = 0.15  # ...when fewer inliers than this per keypoint say it is a new capture
    scene_min_inliers: int = 40  # a same-scene tie needs this many inliers to be a lead (else no_match)
    clone_min_matches: int = 5  # keypoints copied from another place of the original that make a copy-move
    clone_min_gap: float = 0.25  # pixel test: how much better a changed block matches elsewhere than in place
    # The altered threshold by comparison resolution: (up to this many pixels on the long side, threshold) pairs,
    # ascending; a comparison at a higher resolution than the last uses ``change_threshold``. Coarse comparisons
    # (small or pixelated copies) leave more benign difference (aliasing, JPEG at low resolution).
    change_thresholds: tuple[tuple[int, float], ...] = ()
    region_threshold: float | None = None  # the comparison's region score at or above which it is altered
    # A compact change: the comparison's peak score at or above ``peak_threshold`` and at least
    # ``peak_min_contrast`` times its score (the picture's own level of difference); None: not used.
    peak_threshold: float | None = None
    peak_min_contrast: float = 1.0
    # A colour change: the comparison's chroma score at or above this (None: not used).
    chroma_threshold: float | None = None
    # The query goes on past the original's edge (``provenance.lookup.frame``): a seam there of at most
    # ``scene_beyond_seam`` times (1 + the detail's continuity across it), with ``scene_beyond_texture`` to its
    # inverse of the inside's variation beyond it, measured along at least ``scene_beyond_min_edge`` query pixels
    # of edge (None: not used).
    scene_beyond_seam: float | None = None
    scene_beyond_texture: float = 0.4
    scene_beyond_min_edge: int = 200
    # What a *match* cannot vouch for: (up to this many pixels on the long side, share) pairs, ascending. A match
    # whose comparison ran at that resolution or below cannot rule out an edit that visibly changes under ``share``
    # of the picture (on the calibration split, smaller edits shown that small passed as matches). Reported, not
    # decided on: the verdict stays *match*, and says so.
    match_floor: tuple[tuple[int, float], ...] = ()

    def unseen_share_at(self, resolution: int | None) -> float | None:
        """The edit share a match compared at ``resolution`` cannot rule out (None: no floor applies)."""
        return _by_resolution(self.match_floor, resolution)

    def change_threshold_at(self, resolution: int | None) -> float:
        """The altered threshold for a comparison that ran at ``resolution`` (long side, px; None: unknown)."""
        found = _by_resolution(self.change_thresholds, resolution)
        return self.change_threshold if found is None else found

    def to_obj(self) -> dict[str, Any]:
        return {"hash_threshold": self.hash_threshold, "hash_altered": self.hash_altered,
                "change_threshold": self.change_threshold, "identity_gate": self.identity_gate,
                "scene_off_plane": self.scene_off_plane, "scene_min_inlier_ratio": self.scene_min_inlier_ratio,
                "scene_changed": self.scene_changed, "scene_max_density": self.scene_max_density,
                "scene_min_inliers": self.scene_min_inliers,
                "clone_min_matches": self.clone_min_matches, "clone_min_gap": self.clone_min_gap,
                "change_thresholds": [list(t) for t in self.change_thresholds],
                "region_threshold": self.region_threshold, "peak_threshold": self.peak_threshold,
                "peak_min_contrast": self.peak_min_contrast, "chroma_threshold": self.chroma_threshold,
                "scene_beyond_seam": self.scene_beyond_seam, "scene_beyond_texture": self.scene_beyond_texture,
                "scene_beyond_min_edge": self.scene_beyond_min_edge,
                "match_floor": [list(t) for t in self.match_floor]}


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
    leaf_index: int | None = None  # the record's place in the log: who registered first
    publisher: str | None = None
    # Copy or another photo of the scene (``provenance.lookup.scene``), for candidates that passed:
    fundamental_inliers: int | None = None  # matches a fundamental matrix (depth allowed) explains
    off_plane_share: float | None = None  # share of those the homography does not explain (parallax)
    inlier_density: float | None = None  # inliers per original keypoint inside the query's view (a copy: high)
    changed_fraction: float | None = None  # share of the compared area the aligned comparison found changed
    clone_matches: int | None = None  # query keypoints copied from another place of the original (copy-move)
    comparison_side: int | None = None  # long side (px) of the grid the aligned comparison ran on
    clone_gap: float | None = None  # a copy found in pixels: NCC elsewhere in the original minus in place
    region_score: float | None = None  # the comparison's most changed region (heat pooled over 2 % of the side)
    peak_score: float | None = None  # the comparison's most changed spot (heat pooled over 0.3 % of the side)
    dense: bool = False  # verified by dense alignment, not keypoints (no inliers; ``provenance.lookup.dense``)
    chroma_score: float | None = None  # the comparison's most recoloured spot (chroma heat, pooled)
    chroma_box: Region | None = None  # where that spot is (reference pixels)
    beyond_continuity: float | None = None  # detail continuing past the original's edge (None: no edge inside)
    beyond_seam: float | None = None  # the jump across that edge / within the picture (about 1: no seam)
    beyond_texture: float | None = None  # variation past the original's edge / inside it
    beyond_edge: int | None = None  # query pixels of the original's edge those were measured along

    def to_obj(self) -> dict[str, Any]:
        return {"record_cid": self.record_cid, "publisher": self.publisher, "leaf_index": self.leaf_index,
                "channels": list(self.channels), "distance": self.distance,
                "tolerant_distance": self.tolerant_distance, "tolerant_distances": dict(self.tolerant_distances),
                "inliers": self.inliers,
                "inlier_ratio": round(self.inlier_ratio, 4), "passed": self.passed, "mirrored": self.mirrored,
                "reason": self.reason,
                "change_score": None if self.change_score is None else round(self.change_score, 4),
                "regions": [r.to_obj() for r in self.regions],
                "fundamental_inliers": self.fundamental_inliers,
                "off_plane_share": None if self.off_plane_share is None else round(self.off_plane_share, 4),
                "inlier_density": None if self.inlier_density is None else round(self.inlier_density, 4),
                "changed_fraction": None if self.changed_fraction is None else round(self.changed_fraction, 4),
                "clone_matches": self.clone_matches,
                "clone_gap": None if self.clone_gap is None else round(self.clone_gap, 4),
                "region_score": None if self.region_score is None else round(self.region_score, 4),
                "peak_score": None if self.peak_score is None else round(self.peak_score, 4), "dense": self.dense,
                "chroma_score": None if self.chroma_score is None else round(self.chroma_score, 4),
                "chroma_box": None if self.chroma_box is None else self.chroma_box.to_obj(),
                "beyond_continuity": None if self.beyond_continuity is None else round(self.beyond_continuity, 4),
                "beyond_seam": None if self.beyond_seam is None else round(self.beyond_seam, 4),
                "beyond_texture": None if self.beyond_texture is None else round(self.beyond_texture, 4),
                "beyond_edge": self.beyond_edge,
                "comparison_side": self.comparison_side}


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
    also_registered: tuple[Candidate, ...] = ()  # equally good sources registered after ``record_cid``
    # The calibrated probability that ``verdict`` is right (``provenance.lookup.confidence``), and whether it
    # reaches the shipped minimum: False means the evidence is weak either way and a person should look.
    confidence: float | None = None
    confident: bool | None = None
    # For a *match* compared at a small size: the share of the picture under which an edit could go unseen there
    # (``Policy.match_floor``); None where no floor applies.
    unseen_below: float | None = None

    def to_obj(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "record_cid": self.record_cid,
                "confidence": None if self.confidence is None else round(self.confidence, 4),
                "confident": self.confident, "unseen_below": self.unseen_below,
                "also_registered_by": [{"record_cid": c.record_cid, "publisher": c.publisher,
                                        "leaf_index": c.leaf_index} for c in self.also_registered],
                "hash": self.hash, "model": self.model,
                "hashes": dict(self.hashes), "candidates": [c.to_obj() for c in self.candidates],
                "change_map": self.change_map, "regions": [r.to_obj() for r in self.regions],
                "object_changes": [c.to_obj() for c in self.object_changes],
                "thresholds": self.policy.to_obj(), "explanation": self.explanation,
                "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()}}


def is_cloned(c: Candidate, policy: Policy) -> bool:
    """The copy-move tell-tale: keypoints, or a block of pixels, copied from another place of the original."""
    by_keypoints = c.clone_matches is not None and c.clone_matches >= policy.clone_min_matches
    return by_keypoints or (c.clone_gap is not None and c.clone_gap >= policy.clone_min_gap)


def change_threshold(c: Candidate, policy: Policy) -> float:
    """The altered threshold that applies to this candidate's comparison (it depends on its resolution)."""
    return policy.change_threshold_at(c.comparison_side)


def is_region_changed(c: Candidate, policy: Policy) -> bool:
    return (policy.region_threshold is not None and c.region_score is not None
            and c.region_score >= policy.region_threshold)


def is_peak_changed(c: Candidate, policy: Policy) -> bool:
    """A compact change: one spot of the comparison stands above the peak threshold, and well above the picture's
    own level of difference (its score)."""
    if policy.peak_threshold is None or c.peak_score is None or c.change_score is None:
        return False
    return c.peak_score >= policy.peak_threshold and c.peak_score >= policy.peak_min_contrast * c.change_score


def is_chroma_changed(c: Candidate, policy: Policy) -> bool:
    """A colour change: the comparison's chroma score reaches the chroma threshold."""
    return (policy.chroma_threshold is not None and c.chroma_score is not None
            and c.chroma_score >= policy.chroma_threshold)


def goes_beyond_frame(c: Candidate, policy: Policy) -> bool:
    """The query shows the scene past the original's edge: as much variation beyond the edge as inside it, and no
    seam there, the more so where the detail visibly continues across it (structures crossing the edge allow a
    larger jump). A copy, however padded, framed or set beside another picture, holds only the original's
    pixels: flat beyond the edge, or a seam at it."""
    if policy.scene_beyond_seam is None or None in (c.beyond_continuity, c.beyond_seam, c.beyond_texture):
        return False
    if (c.beyond_edge or 0) < policy.scene_beyond_min_edge:  # a short edge: a chance alignment is too likely
        return False
    if c.inliers < policy.scene_min_inliers:  # a weak tie's homography is not sure where the original's edge is
        return False
    allowed = policy.scene_beyond_seam * (1.0 + max(0.0, c.beyond_continuity or 0.0))
    lo = policy.scene_beyond_texture
    return (c.beyond_seam or 0.0) <= allowed and lo <= (c.beyond_texture or 0.0) <= 1.0 / lo


def _beyond_hash_altered(c: Candidate, policy: Policy) -> bool:
    return c.distance is not None and c.distance > policy.hash_altered


def is_hash_far(c: Candidate, policy: Policy) -> bool:
    """The sensitive hash alone says "edited": beyond ``hash_altered``, and no aligned comparison to outrank it."""
    return c.change_score is None and _beyond_hash_altered(c, policy)


def is_altered(c: Candidate, policy: Policy) -> bool:
    changed = c.change_score is not None and c.change_score >= change_threshold(c, policy)
    far = is_hash_far(c, policy)
    return (changed or far or is_cloned(c, policy) or is_region_changed(c, policy)
            or is_peak_changed(c, policy) or is_chroma_changed(c, policy))


def other_photo_reasons(c: Candidate, policy: Policy) -> list[str]:
    """Why a verified candidate is another photo of its scene rather than a copy of it; empty when it is a copy.
    A pair that compares clean after registration is a copy whatever its matches look like, so only a pair that
    would otherwise be *altered*, or one the comparison could not judge (too little overlap), is asked."""
    if c.change_score is not None and not is_altered(c, policy):
        return []
    if c.dense:  # pixels alone tie it: no correspondences to tell an edit from another photo with
        return ["only a dense alignment ties it (no keypoints), and it is not a clean copy (the comparison or the "
                "hash sees a change): too weak to tell an edit from another photo"]
    reasons = []
    if c.off_plane_share is not None and c.off_plane_share >= policy.scene_off_plane:
        reasons.append(f"parallax: {c.off_plane_share:.0%} of the {c.fundamental_inliers} matches a fundamental "
                       f"matrix explains lie off the homography")
    if c.inlier_ratio < policy.scene_min_inlier_ratio:
        reasons.append(f"a homography explains only {c.inlier_ratio:.0%} of the matches")
    new_capture = c.inlier_density is None or c.inlier_density < policy.scene_max_density
    if c.changed_fraction is not None and c.changed_fraction >= policy.scene_changed and new_capture:
        density = "" if c.inlier_density is None else (f", and only {c.inlier_density:.0%} of the original's "
                                                        f"keypoints match (a copy keeps most)")
        reasons.append(f"differences over {c.changed_fraction:.0%} of the compared area, not a local edit{density}")
    if goes_beyond_frame(c, policy):
        reasons.append(f"it shows the scene past the registered photo's edge (no seam there: {c.beyond_seam:.2f}; "
                       f"the detail continues across it: {c.beyond_continuity:.2f}): a copy holds only the "
                       f"original's pixels")
    return reasons


def classify(c: Candidate, policy: Policy) -> str:
    """What one verified candidate alone would make of the query: MATCH, ALTERED or SAME_SCENE."""
    if other_photo_reasons(c, policy):
        return SAME_SCENE
    return ALTERED if is_altered(c, policy) else MATCH


def _first_registered(passed: list[Candidate], policy: Policy) -> tuple[Candidate, tuple[Candidate, ...]]:
    """Among the candidates as good as the best (same verdict, at least EQUAL_INLIER_SHARE of its inliers), the
    earliest in the log, and the others in log order."""
    best = passed[0]
    peers = [c for c in passed if is_altered(c, policy) == is_altered(best, policy)
             and c.inliers >= EQUAL_INLIER_SHARE * best.inliers]
    order = sorted(range(len(peers)), key=lambda i: (peers[i].leaf_index is None, peers[i].leaf_index or 0, i))
    ranked = [peers[i] for i in order]
    return ranked[0], tuple(ranked[1:])


def decide(candidates: Sequence[Candidate], policy: Policy, *, query_hash: str, model: str) -> Verdict:
    """Pick the verdict and the record it is about. Among candidates that passed geometric verification and are
    copies of the query (not other photos of its scene), the one with the most inliers is the best (ties: smaller
    sensitive distance, then CID, for a stable answer); among those as good as it, the first registered is the
    source (see the module docstring). When every verified candidate is another photo of the scene, the one with the
    most inliers is the lead of a *same_scene* verdict."""
    passed = sorted((c for c in candidates if c.passed),
                    key=lambda c: (-c.inliers, c.distance if c.distance is not None else 1 << 30, c.record_cid))
    common: dict[str, Any] = {"hash": query_hash, "model": model, "candidates": tuple(candidates), "policy": policy}
    if not passed:
        why = ("no candidate in the index" if not candidates
               else f"none of {len(candidates)} candidates passed geometric verification")
        return Verdict(NO_MATCH, None, explanation=why, **common)
    copies = [c for c in passed if classify(c, policy) != SAME_SCENE]
    if not copies:  # every verified candidate is another photo of its scene: the best tied one is a lead
        lead = passed[0]
        why = "; ".join(other_photo_reasons(lead, policy))
        if lead.dense:
            return Verdict(NO_MATCH, None, explanation=why, **common)
        if lead.inliers < policy.scene_min_inliers:
            return Verdict(NO_MATCH, None, explanation=(
                f"only another photo, weakly tied ({lead.inliers} inliers < {policy.scene_min_inliers}: the same "
                f"object or pattern, not the same picture): {why}"), **common)
        return Verdict(SAME_SCENE, lead.record_cid, explanation=(
            f"another photo of the same scene, not a copy of the registered one ({lead.inliers} inliers; {why}); "
            f"the record is a lead"), **common)
    best, also = _first_registered(copies, policy)
    common["also_registered"] = also
    first = (f"; registered first (log leaf {best.leaf_index}), {len(also)} later registration"
             f"{'s' if len(also) != 1 else ''} of it listed") if also else ""
    if is_altered(best, policy):
        reasons = []
        if best.change_score is not None and best.change_score >= change_threshold(best, policy):
            reasons.append(f"local change score {best.change_score:.3f} >= {change_threshold(best, policy)}")
        if is_hash_far(best, policy):
            reasons.append(f"hash distance {best.distance} > {policy.hash_altered} (the pixels could not be "
                           f"compared)")
        if is_region_changed(best, policy) and not reasons:
            reasons.append(f"a changed region: score {best.region_score:.3f} >= {policy.region_threshold}")
        if is_peak_changed(best, policy) and not reasons:
            reasons.append(f"a compact change: peak {best.peak_score:.3f} >= {policy.peak_threshold}, "
                           f"{best.peak_score / max(best.change_score or 0.0, 1e-6):.1f}x the picture's level")
        if is_chroma_changed(best, policy) and not reasons:
            reasons.append(f"a colour change: chroma score {best.chroma_score:.3f} >= {policy.chroma_threshold}")
        if is_cloned(best, policy):
            reasons.append(f"copy-move: {best.clone_matches} keypoints match a second place in the original"
                           if best.clone_matches else
                           "copy-move: a changed block matches another place of the original "
                           f"(correlation {best.clone_gap:.2f} better than in place)")
        regions = best.regions
        if not regions and best.chroma_box is not None and is_chroma_changed(best, policy):
            regions = (best.chroma_box,)  # only the colour changed: the most recoloured spot is the region
        return Verdict(ALTERED, best.record_cid, regions=regions,
                       explanation=f"same scene ({best.inliers} inliers) but content differs: " + "; ".join(reasons)
                       + first, **common)
    within = "within" if best.distance is None or best.distance <= policy.hash_threshold else "above"
    tie = ("a dense alignment (a low-texture copy: no keypoints tie it)" if best.dense
           else f"{best.inliers} inliers")
    outranked = ("; the hash alone would say edited, but the aligned comparison outranks it"
                 if _beyond_hash_altered(best, policy) else "")
    unseen = policy.unseen_share_at(best.comparison_side) if best.change_score is not None else None
    small = (f"; compared at {best.comparison_side} px, too small to rule out an edit changing under "
             f"{unseen:.0%} of the picture" if unseen is not None else "")
    return Verdict(MATCH, best.record_cid, unseen_below=unseen, explanation=(
        f"{tie}, hash distance {best.distance} ({within} the model's threshold "
        f"{policy.hash_threshold}{outranked}), no local change{small}{first}"), **common)
