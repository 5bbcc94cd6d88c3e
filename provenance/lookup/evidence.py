"""The evidence one candidate gets in a lookup: geometry, then (when it passes) the scene test and the aligned
comparison. One function, used by ``Lookup.lookup`` and by the benchmarks that calibrate the verdict on pairs
(``benchmarks/bench_verdicts.py``), so what is calibrated is exactly what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from provenance.lookup.clones import CloneEvidence, find_clone, find_pixel_clone
from provenance.lookup.compare import ChangeAnalysis, aligned_difference
from provenance.lookup.errors import InsufficientOverlapError
from provenance.lookup.features import LocalFeatures
from provenance.lookup.geometry import GeometryResult, QueryFeatures, verify_query
from provenance.lookup.scene import SceneEvidence, scene_evidence
from provenance.lookup.verdict import Candidate, Region

__all__ = ["PairEvidence", "examine"]


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
            changed_fraction=None if a is None else float(a.changed_fraction),
            clone_matches=None if self.clone is None or self.clone.gap is not None else self.clone.matches,
            clone_gap=None if self.clone is None else self.clone.gap,
            comparison_side=None if a is None else a.resolution,
            region_score=None if a is None else float(a.region_score))

    @property
    def boxes(self) -> tuple[tuple[int, int, int, int], ...]:
        """The changed regions (reference pixels): the comparison's, then a copy-move's copy when it found one."""
        boxes = () if self.analysis is None else tuple(self.analysis.boxes)
        return boxes + ((self.clone.box,) if self.clone is not None else ())


def examine(query_rgb: np.ndarray, query: QueryFeatures, reference: LocalFeatures,
            original: Callable[[], np.ndarray]) -> PairEvidence:
    """Verify ``query`` against ``reference``; when it passes, measure parallax and compare the registered query
    with the original's pixels (``original()`` is only called then: reading it costs a block-store read)."""
    geo = verify_query(query, reference)
    if not geo.passed or geo.homography is None:
        return PairEvidence(geo)
    scene = scene_evidence(geo, reference, (query_rgb.shape[1], query_rgb.shape[0]))
    clone = find_clone(query, reference, geo.homography, geo.mirrored, original())
    try:
        analysis = aligned_difference(query_rgb, original(), geo.homography)
    except InsufficientOverlapError as exc:
        return PairEvidence(geo, scene, None, str(exc), clone)
    if clone is None:  # too few keypoints in the copy: look for it in pixels
        clone = find_pixel_clone(analysis)
    return PairEvidence(geo, scene, analysis, None, clone)
