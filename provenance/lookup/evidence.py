"""The evidence one candidate gets in a lookup: geometry, then (when it passes) the scene test and the aligned
comparison. One function, used by ``Lookup.lookup`` and by the benchmarks that calibrate the verdict on pairs
(``benchmarks/bench_verdicts.py``), so what is calibrated is exactly what runs.

When keypoints cannot verify a pair of a low-texture original or a featureless copy (``dense_worth_trying``), dense
verification (``dense.py``) aligns the pixels instead; a pair it verifies is compared like any other, with
``geometry.model == "dense"`` and no inliers (the verdict treats such a tie as weaker: ``verdict.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from provenance.lookup.clones import CloneEvidence, find_clone, find_pixel_clone
from provenance.lookup.compare import ChangeAnalysis, aligned_difference
from provenance.lookup.dense import DENSE_MODEL, verify_dense
from provenance.lookup.errors import InsufficientOverlapError
from provenance.lookup.features import LocalFeatures
from provenance.lookup.geometry import GeometryResult, QueryFeatures, verify_query
from provenance.lookup.scene import SceneEvidence, scene_evidence
from provenance.lookup.verdict import Candidate, Region

__all__ = ["DENSE_MAX_QUERY_KEYPOINTS", "DENSE_MAX_REFERENCE_KEYPOINTS", "PairEvidence", "dense_worth_trying",
           "examine"]

#: Dense verification is tried on a pair keypoints fail only when the original has fewer keypoints than this (a
#: low-texture photo: sky, water, a plain wall; textured photos have about a thousand) or the copy fewer than the
#: second (blurred featureless): the failing copies measured had originals of 34-381 keypoints or copies of 8-42
#: (noisy copies have many, all noise). A textured pair that fails is a different picture; skipping it keeps the
#: fallback's cost, and the original's block-store read, off most candidates of a lookup.
DENSE_MAX_REFERENCE_KEYPOINTS = 400
DENSE_MAX_QUERY_KEYPOINTS = 100


@dataclass(frozen=True, eq=False)
class PairEvidence:
    """``geometry`` always; for a verified pair ``scene`` too, and ``analysis`` unless the comparison was refused
    (``not_compared`` says why: a small crop covers too little of the original)."""

    geometry: GeometryResult
    scene: SceneEvidence | None = None
    analysis: ChangeAnalysis | None = None
    not_compared: str | None = None
    clone: CloneEvidence | None = None  # a copy-move's tell-tale (``clones.py``), for a verified pair

    @property
    def reason(self) -> str:
        g = self.geometry
        return g.reason if self.not_compared is None else f"{g.reason}; not compared: {self.not_compared}"

    def candidate(self, record_cid: str, channels: tuple[str, ...] = (), distance: int | None = None,
                  tolerant_distances: dict[str, int] | None = None) -> Candidate:
        """The verdict's view of this evidence, for the record ``record_cid`` found through ``channels``."""
        g, a, s = self.geometry, self.analysis, self.scene
        tols = dict(tolerant_distances or {})
        return Candidate(
            record_cid, channels, distance, next(iter(tols.values()), None), g.inliers, g.inlier_ratio, g.passed,
            g.mirrored, self.reason, None if a is None else float(a.score),
            tuple(Region(int(x), int(y), int(w), int(h)) for x, y, w, h in self.boxes), tols,
            fundamental_inliers=None if s is None else s.fundamental_inliers,
            off_plane_share=None if s is None else s.off_plane_share,
            inlier_density=None if s is None else s.inlier_density,
            beyond_continuity=None if s is None or s.frame is None else s.frame.continuity,
            beyond_seam=None if s is None or s.frame is None else s.frame.seam,
            beyond_texture=None if s is None or s.frame is None else s.frame.texture,
            beyond_edge=None if s is None or s.frame is None else s.frame.edge,
            changed_fraction=None if a is None else float(a.changed_fraction),
            clone_matches=None if self.clone is None or self.clone.gap is not None else self.clone.matches,
            clone_gap=None if self.clone is None else self.clone.gap,
            comparison_side=None if a is None else a.resolution,
            region_score=None if a is None else float(a.region_score),
            peak_score=None if a is None else float(a.peak_score), dense=g.model == DENSE_MODEL,
            chroma_score=None if a is None else float(a.chroma_score),
            chroma_box=None if a is None or a.chroma_box is None else Region(*(int(v) for v in a.chroma_box)))

    @property
    def boxes(self) -> tuple[tuple[int, int, int, int], ...]:
        """The changed regions (reference pixels): the comparison's, then a copy-move's copy when it found one."""
        boxes = () if self.analysis is None else tuple(self.analysis.boxes)
        return boxes + ((self.clone.box,) if self.clone is not None else ())


def examine(query_rgb: np.ndarray, query: QueryFeatures, reference: LocalFeatures,
            original: Callable[[], np.ndarray]) -> PairEvidence:
    """Verify ``query`` against ``reference`` (keypoints, then the dense fallback when ``dense_worth_trying``); when
    it passes, measure parallax and compare the registered query with the original's pixels (``original()`` is only
    called then, or for the fallback: reading it costs a block-store read)."""
    geo = verify_query(query, reference)
    if not geo.passed or geo.homography is None:
        geo = _dense_fallback(query_rgb, query, reference, original, geo)
        if not geo.passed or geo.homography is None:
            return PairEvidence(geo)
    if geo.model == DENSE_MODEL:  # no correspondences: no parallax test, no keypoint copy-move test
        scene, clone = None, None
    else:
        scene = scene_evidence(geo, reference, query_rgb)
        clone = find_clone(query, reference, geo.homography, geo.mirrored, original())
    try:
        analysis = aligned_difference(query_rgb, original(), geo.homography)
    except InsufficientOverlapError as exc:
        return PairEvidence(geo, scene, None, str(exc), clone)
    if clone is None:  # too few keypoints in the copy: look for it in pixels
        clone = find_pixel_clone(analysis)
    return PairEvidence(geo, scene, analysis, None, clone)


def dense_worth_trying(query: QueryFeatures, reference: LocalFeatures) -> bool:
    """Whether a pair keypoints failed is one dense verification may rescue: a low-texture original or a featureless
    copy (``DENSE_MAX_REFERENCE_KEYPOINTS``, ``DENSE_MAX_QUERY_KEYPOINTS``)."""
    return len(reference) < DENSE_MAX_REFERENCE_KEYPOINTS or len(query.straight) < DENSE_MAX_QUERY_KEYPOINTS


def _dense_fallback(query_rgb: np.ndarray, query: QueryFeatures, reference: LocalFeatures,
                    original: Callable[[], np.ndarray], failed: GeometryResult) -> GeometryResult:
    """Dense verification of a pair keypoints failed, when it is worth trying; else ``failed`` itself. The result's
    reason keeps what keypoints said."""
    if not dense_worth_trying(query, reference):
        return failed
    dense = verify_dense(query_rgb, original())
    if dense.passed:
        return replace(dense, reason=f"{dense.reason}; keypoints: {failed.reason}")
    return replace(failed, reason=f"{failed.reason}; {dense.reason}")
