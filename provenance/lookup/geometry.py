"""Geometric verification: is a candidate found by hash the same scene as the query?

A hash match says two images *look* alike; local features matched under one geometric model say the same physical
content sits in both, arranged consistently. Matches come from nearest neighbours with Lowe's ratio test (kept
one-to-one), the model is fitted robustly with MAGSAC++ (``cv2.USAC_MAGSAC``), and the pair passes on inlier count
and inlier ratio. Two models:

- ``homography``: re-shares of one photo (resize, crop, pad, small rotation) are related by a plane-to-plane map;
  the map is what the aligned comparison (``compare.py``) registers with, so it is also sanity-checked.
- ``fundamental``: the same scene from another viewpoint (parallax); looser, and it gives no map to compare with.

Coordinate convention (used everywhere in ``provenance.lookup``): pixel coordinates in the *original* images, x to
the right and y down, with (0, 0) the centre of the top-left pixel (OpenCV's). ``GeometryResult.homography`` H maps
query to reference: a query point (x, y) lands at reference (u/w, v/w) with (u, v, w) = H @ (x, y, 1). When
``mirrored`` is True the query is a horizontal flip of the reference's content and H already includes that flip: it
still takes points of the query *as given* (unflipped), so its upper-left 2x2 block has a negative determinant.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np

from provenance.lookup.errors import AnalysisInputError
from provenance.lookup.features import MAX_SIDE, LocalFeatures, extract_features

__all__ = ["GeometryResult", "Model", "QueryFeatures", "match_features", "query_features", "verify",
           "verify_image", "verify_query"]

Model = Literal["homography", "fundamental"]

RATIO_TEST = 0.8  # Lowe's ratio: best distance < RATIO_TEST * second best
REPROJ_THRESHOLD = 3.0  # MAGSAC threshold in pixels at feature-extraction scale (long side MAX_SIDE)
MAX_ITERS = 5000
CONFIDENCE = 0.999
# Pass criteria, checked with benchmarks/bench_geometry.py: over 98 unrelated pairs the most inliers seen were 6
# (homography) and 0 (fundamental); over 588 re-shared or edited pairs the fewest were 31 and 36.
MIN_INLIERS: dict[str, int] = {"homography": 15, "fundamental": 30}
MIN_INLIER_RATIO: dict[str, float] = {"homography": 0.15, "fundamental": 0.25}
MIN_MATCHES: dict[str, int] = {"homography": 4, "fundamental": 8}  # what the model fit needs at all
AREA_RATIO_RANGE = (1 / 50, 50.0)  # area of the reference outline warped into the query, over the query's area
MIN_INLIER_HULL = 0.005  # inliers must span at least this share of the reference, or the map is extrapolated


@dataclass(frozen=True)
class GeometryResult:
    """The verdict of one (query, reference) verification; ``reason`` says why it passed or failed."""

    passed: bool
    inliers: int
    matches: int
    inlier_ratio: float
    model: str
    homography: np.ndarray | None = field(default=None, compare=False)  # 3x3 query -> reference (see module)
    mirrored: bool = False
    reason: str = ""
    # The correspondences the model was fitted on (query points in the query's own frame, unflipped when
    # ``mirrored``, so ``homography`` maps them), and which of them are inliers: the scene and copy-move evidence
    # (``provenance.lookup.scene``) reuses them.
    query_points: np.ndarray | None = field(default=None, compare=False, repr=False)
    reference_points: np.ndarray | None = field(default=None, compare=False, repr=False)
    inlier_mask: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class QueryFeatures:
    """Features of a query as given and of its horizontal mirror (flips are benign re-share edits).

    Extract once per query with ``query_features`` and reuse for every candidate reference.
    """

    straight: LocalFeatures
    mirrored: LocalFeatures


#: Queries smaller than this (long side) are enlarged before SIFT: thumbnails otherwise match too few keypoints.
QUERY_UPSCALE_TO = 512


def query_features(rgb: np.ndarray, pool: Executor | None = None) -> QueryFeatures:
    """Extract from the query and from its horizontally flipped copy (small queries enlarged first); with ``pool``,
    the two extractions run side by side on it (OpenCV releases the GIL), giving the same features."""
    views = (rgb, np.ascontiguousarray(rgb[:, ::-1]))
    if pool is None:
        return QueryFeatures(*(extract_features(v, upscale_to=QUERY_UPSCALE_TO) for v in views))
    jobs = [pool.submit(extract_features, v, upscale_to=QUERY_UPSCALE_TO) for v in views]
    return QueryFeatures(*(j.result() for j in jobs))


def match_features(query: LocalFeatures, reference: LocalFeatures) -> tuple[np.ndarray, np.ndarray]:
    """Indices (query, reference) of matches passing Lowe's ratio test, one-to-one (best distance wins).

    Brute force as one matrix product: RootSIFT descriptors have unit L2 norm, so squared distances are
    ``2 - 2 * similarity`` (twice as fast here as OpenCV's brute-force matcher, and exact).
    """
    empty = np.zeros(0, np.intp)
    if len(query) < 1 or len(reference) < 2:
        return empty, empty
    sim = query.descriptors @ reference.descriptors.T
    rows = np.arange(len(sim))
    best = sim.argmax(axis=1)
    s1 = sim[rows, best]
    sim[rows, best] = -np.inf
    s2 = sim.max(axis=1)
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * s1, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * s2, 0.0))
    q_idx = np.flatnonzero(d1 < RATIO_TEST * d2)
    q_idx = q_idx[np.argsort(d1[q_idx], kind="stable")]
    _, first = np.unique(best[q_idx], return_index=True)  # per reference keypoint, its closest query match
    q_idx = np.sort(q_idx[first])
    return q_idx, best[q_idx]


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # signed: > 0 keeps orientation


def _homography_problem(h: np.ndarray, query: LocalFeatures, reference: LocalFeatures,
                        ref_inliers: np.ndarray) -> str | None:
    """Why this query -> reference homography is implausible, or None when it is sane."""
    if not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
        return "homography is singular"
    hinv = np.linalg.inv(h)
    w, hgt = reference.width, reference.height
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, hgt - 0.5, 1], [-0.5, hgt - 0.5, 1]])
    warped = corners @ hinv.T
    if not (np.all(warped[:, 2] > 1e-9) or np.all(warped[:, 2] < -1e-9)):
        return "homography sends part of the reference to infinity"
    poly = warped[:, :2] / warped[:, 2:]
    edges = np.roll(poly, -1, axis=0) - poly
    cross = edges[:, 0] * np.roll(edges[:, 1], -1) - edges[:, 1] * np.roll(edges[:, 0], -1)
    if not np.all(cross > 0):  # image axes point y-down, so a kept orientation gives positive cross products
        return "reference outline warped into the query is not convex (or is flipped)"
    ratio = _polygon_area(poly) / (query.width * query.height)
    lo, hi = AREA_RATIO_RANGE
    if not lo <= ratio <= hi:
        return f"implausible scale: reference outline covers {ratio:.3g} x the query's area"
    hull = cv2.convexHull(ref_inliers.astype(np.float32))
    if cv2.contourArea(hull) < MIN_INLIER_HULL * w * hgt:
        return "inliers are bunched in a tiny part of the reference (degenerate fit)"
    return None


def _failed(model: str, reason: str, matches: int = 0, inliers: int = 0) -> GeometryResult:
    ratio = inliers / matches if matches else 0.0
    return GeometryResult(False, inliers, matches, ratio, model, None, False, reason)


def verify(query: LocalFeatures, reference: LocalFeatures, model: Model = "homography") -> GeometryResult:
    """Match ``query`` to ``reference`` and fit ``model`` robustly; the result says whether they are one scene."""
    if model not in MIN_INLIERS:
        raise AnalysisInputError(f"unknown geometric model {model!r}; use 'homography' or 'fundamental'")
    for name, feats in (("query", query), ("reference", reference)):
        if len(feats) < MIN_MATCHES[model]:
            return _failed(model, f"too few keypoints in the {name} ({len(feats)}): tiny or featureless image")
    q_idx, r_idx = match_features(query, reference)
    n = len(q_idx)
    if n < max(MIN_MATCHES[model], MIN_INLIERS[model]):
        return _failed(model, f"too few matches ({n}) for {model} verification", n)
    qp = query.points[q_idx].astype(np.float64)
    rp = reference.points[r_idx].astype(np.float64)
    thr = REPROJ_THRESHOLD * max(1.0, max(reference.width, reference.height) / MAX_SIDE)
    try:
        if model == "homography":
            mat, mask = cv2.findHomography(qp, rp, method=cv2.USAC_MAGSAC, ransacReprojThreshold=thr,
                                           maxIters=MAX_ITERS, confidence=CONFIDENCE)
        else:
            mat, mask = cv2.findFundamentalMat(qp, rp, method=cv2.USAC_MAGSAC, ransacReprojThreshold=thr,
                                               confidence=CONFIDENCE, maxIters=MAX_ITERS)
    except cv2.error as exc:  # degenerate point sets can make the estimator give up
        return _failed(model, f"{model} fit failed: {str(exc).strip().splitlines()[-1]}", n)
    if mat is None or mask is None or mat.shape != (3, 3):
        return _failed(model, f"no {model} found among {n} matches", n)
    inl = mask.ravel().astype(bool)
    k = int(inl.sum())
    ratio = k / n
    if k < MIN_INLIERS[model]:
        return _failed(model, f"too few inliers ({k} of {n} matches, need {MIN_INLIERS[model]})", n, k)
    if ratio < MIN_INLIER_RATIO[model]:
        return _failed(model, f"inlier ratio too low ({k}/{n} = {ratio:.2f}, need "
                              f"{MIN_INLIER_RATIO[model]:.2f})", n, k)
    homography = None
    if model == "homography":
        problem = _homography_problem(mat, query, reference, rp[inl])
        if problem:
            return _failed(model, problem, n, k)
        homography = mat / mat[2, 2] if abs(mat[2, 2]) > 1e-12 else mat
        homography.setflags(write=False)
    return GeometryResult(True, k, n, ratio, model, homography, False,
                          f"{model} verified: {k} inliers of {n} matches ({ratio:.0%})", qp, rp, inl)


def _unflip(result: GeometryResult, query_width: int) -> GeometryResult:
    """Re-express a result computed on the flipped query so its homography takes unflipped query pixels."""
    h = None
    if result.homography is not None:
        flip = np.array([[-1.0, 0.0, query_width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        h = result.homography @ flip
        h.setflags(write=False)
    points = result.query_points
    if points is not None:
        points = points.copy()
        points[:, 0] = query_width - 1.0 - points[:, 0]
    return replace(result, homography=h, mirrored=True, reason=f"mirrored query: {result.reason}",
                   query_points=points)


def verify_query(query: QueryFeatures, reference: LocalFeatures, model: Model = "homography") -> GeometryResult:
    """Verify the query as given and mirrored; return the better: a pass over a failure, then more inliers.

    When both fail, the result (and its reason) is the one for the query as given."""
    straight = verify(query.straight, reference, model)
    flipped = verify(query.mirrored, reference, model)
    if flipped.passed and (not straight.passed or flipped.inliers > straight.inliers):
        return _unflip(flipped, query.mirrored.width)
    return straight


def verify_image(query_rgb: np.ndarray, reference: LocalFeatures, model: Model = "homography") -> GeometryResult:
    """``verify_query`` from pixels: extracts the query (and its mirror) first. For many candidates, extract once
    with ``query_features`` and call ``verify_query``."""
    return verify_query(query_features(query_rgb), reference, model)
