"""Is a verified query a copy of the registered photo, or another photo of the same scene?

Geometric verification (``geometry.py``) says the query and a registered photo show the same content. A re-share of
that photo (benign or edited) is derived from its pixels: one homography explains nearly every correct match, over
the whole overlap. Another photo of the same scene (a second shot of a burst, a stereo partner, another visit to a
landmark) is a new capture from another viewpoint: a homography explains only the matches on one plane, while a
fundamental matrix, which allows for depth, explains the rest too (parallax). This module measures that, on the
correspondences verification already has, so it costs one more robust fit (a few milliseconds).

The aligned comparison adds the other half of the evidence: a re-share differs from its source only where it was
edited (a minority of the picture), another photo differs over much of it (``ChangeAnalysis.changed_fraction``).
And a copy never shows more of the scene than its source: where the query goes on past the original's edge with
the scene's own texture (``frame.py``), it is another capture, however well its background agrees.
``verdict.decide`` combines them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from provenance.lookup.features import MAX_SIDE, LocalFeatures
from provenance.lookup.frame import FrameEvidence, beyond_frame
from provenance.lookup.geometry import CONFIDENCE, MAX_ITERS, REPROJ_THRESHOLD, GeometryResult

__all__ = ["MIN_PARALLAX_MATCHES", "SceneEvidence", "scene_evidence"]

#: Fewer correspondences than this and the parallax test is not run (off_plane_share 0): a fundamental matrix
#: fitted on a handful of points explains anything.
MIN_PARALLAX_MATCHES = 24


@dataclass(frozen=True)
class SceneEvidence:
    """``fundamental_inliers``: matches a fundamental matrix explains; ``off_plane_share``: the share of those the
    verified homography does not explain (0 for a re-share of one photo, large under parallax);
    ``inlier_density``: inliers per keypoint of the original that lies inside the query's view of it (a copy keeps
    the original's pixels, so most of its keypoints come back and match: 0.3-0.7; a new capture of the scene,
    even from the same tripod, matches far fewer: 0.03-0.07 on the real pairs measured); ``frame``: what the
    query shows past the original's edges (None: no edge of it lies inside the query)."""

    fundamental_inliers: int
    off_plane_share: float
    inlier_density: float | None = None
    frame: FrameEvidence | None = None

    def to_obj(self) -> dict[str, object]:
        return {"fundamental_inliers": self.fundamental_inliers, "off_plane_share": round(self.off_plane_share, 4),
                "inlier_density": None if self.inlier_density is None else round(self.inlier_density, 4),
                "frame": None if self.frame is None else self.frame.to_obj()}


def inlier_density(geo: GeometryResult, reference: LocalFeatures, query_size: tuple[int, int]) -> float | None:
    """Inliers per reference keypoint that the verified homography puts inside the query (None: no homography)."""
    if geo.homography is None or len(reference) == 0:
        return None
    try:
        inv = np.linalg.inv(np.asarray(geo.homography, np.float64))
    except np.linalg.LinAlgError:
        return None
    pts = cv2.perspectiveTransform(reference.points.reshape(-1, 1, 2).astype(np.float64), inv).reshape(-1, 2)
    w, h = query_size
    inside = int(((pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)).sum())
    return min(1.0, geo.inliers / max(inside, 1))


def scene_evidence(geo: GeometryResult, reference: LocalFeatures, query_rgb: np.ndarray) -> SceneEvidence:
    """Fit a fundamental matrix on the correspondences ``geo`` verified with a homography, and measure how many of
    its inliers lie off that homography; the inlier density; and what the query shows past the original's edges."""
    density = inlier_density(geo, reference, (query_rgb.shape[1], query_rgb.shape[0]))
    frame = None if geo.homography is None else beyond_frame(query_rgb, geo.homography,
                                                             (reference.width, reference.height))
    qp, rp, inl = geo.query_points, geo.reference_points, geo.inlier_mask
    if qp is None or rp is None or inl is None or len(qp) < MIN_PARALLAX_MATCHES:
        return SceneEvidence(int(geo.inliers), 0.0, density, frame)
    thr = REPROJ_THRESHOLD * max(1.0, max(reference.width, reference.height) / MAX_SIDE)
    try:
        f, mask = cv2.findFundamentalMat(np.asarray(qp, np.float64), np.asarray(rp, np.float64),
                                         method=cv2.USAC_MAGSAC, ransacReprojThreshold=thr, confidence=CONFIDENCE,
                                         maxIters=MAX_ITERS)
    except cv2.error:  # a degenerate point set: no evidence of parallax
        return SceneEvidence(int(geo.inliers), 0.0, density, frame)
    if f is None or mask is None:
        return SceneEvidence(int(geo.inliers), 0.0, density, frame)
    f_inl = mask.ravel().astype(bool)
    n_f = int(f_inl.sum())
    if n_f == 0:
        return SceneEvidence(0, 0.0, density, frame)
    off = int((f_inl & ~np.asarray(inl, bool)).sum())
    return SceneEvidence(n_f, off / n_f, density, frame)
