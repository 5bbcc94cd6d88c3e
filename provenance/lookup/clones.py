"""The copy-move tell-tale: a region of the query that matches a *second* place in the original.

A copy-move edit (a region of the photo pasted elsewhere in it) can be nearly invisible to the aligned comparison
when the pasted texture resembles what it covers (grass on grass, sky on sky). It leaves a trace in the local
features instead: keypoints of the pasted region match the original where the region was copied *from*, at a place
the verified homography does not predict, and all of them are displaced the same way (by the copy's own move).
Repetitive structure does not fake it: two windows of a facade make the ratio test ambiguous in the original, so
neither is matched, while a pasted copy is a duplicate only in the query.

``find_clone`` matches every query keypoint to the original (ratio test, not one-to-one: the source and its copy both
match the same original keypoint), keeps the matches the homography sends far from their partner, and looks for a
group of at least ``MIN_CLONE_MATCHES`` of them that one similarity transform (the move) explains.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from provenance.lookup.features import MAX_SIDE, LocalFeatures
from provenance.lookup.geometry import RATIO_TEST, REPROJ_THRESHOLD, QueryFeatures

__all__ = ["CloneEvidence", "MIN_CLONE_MATCHES", "find_clone"]

MIN_CLONE_MATCHES = 5  # keypoints moved alike: fewer is what chance and repetitive texture give
OFF_MODEL = 4.0  # a match is off the homography when it lands this many thresholds from its partner
MIN_MOVE = 0.04  # the move must shift the copy by at least this share of the query's long side
MOVE_TOLERANCE = 2.0  # thresholds (query pixels at feature scale) within which the move must explain a match
STRONG_QUANTILE = 0.75  # a copy's matches are as close as this quantile of the photo's own (inlier) matches
CONFIRM = 2.0  # what the original shows where the copy is must be this much farther from it than its source


@dataclass(frozen=True)
class CloneEvidence:
    """``matches``: query keypoints explained by one move from another place of the original; ``box`` the copy's
    bounding box in the original's pixels (x, y, width, height); ``move`` (dx, dy) in query pixels."""

    matches: int
    box: tuple[int, int, int, int]
    move: tuple[float, float]

    def to_obj(self) -> dict[str, object]:
        return {"matches": self.matches, "box": list(self.box), "move": [round(v, 1) for v in self.move]}


def _transform(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def _sift_octave(size: float) -> int:
    """OpenCV's packed ``KeyPoint.octave`` (octave, layer) of a SIFT keypoint of this diameter, so that a descriptor
    computed at a given place is taken from the pyramid level detection would have used."""
    level = np.log2(max(size, 1e-3) / (2 * 1.6))  # size = 2 * sigma0 * 2 ** (octave + layer / 3)
    octave = int(np.floor(level))
    layer = int(np.clip(round(3 * (level - octave)), 1, 3))
    if octave < -1:  # finer than SIFT's first (doubled) octave: describe it there
        octave, layer = -1, 1
    return (octave & 255) | (layer << 8)


def descriptors_at(rgb: np.ndarray, points: np.ndarray, sizes: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """RootSIFT descriptors of ``rgb`` at given places (its pixel frame), diameters and angles, computed at the
    scale ``extract_features`` works at. Rows of NaN where SIFT could not describe a place."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    scale = min(1.0, MAX_SIDE / max(height, width))
    if scale != 1.0:
        grey = cv2.resize(grey, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    sx, sy = width / grey.shape[1], height / grey.shape[0]
    kps = []
    for (x, y), size, angle in zip(points, sizes, angles, strict=True):
        s = float(size) / np.sqrt(sx * sy)
        kps.append(cv2.KeyPoint(float((x + 0.5) / sx - 0.5), float((y + 0.5) / sy - 0.5), s, float(angle) % 360.0,
                                0.0, _sift_octave(s)))
    out = np.full((len(kps), 128), np.nan, np.float32)
    if not kps:
        return out
    try:
        got, desc = cv2.SIFT_create().compute(grey, kps)
    except cv2.error:  # a place SIFT cannot describe: unknown, so no member is confirmed by it
        return out
    if desc is None:
        return out
    index = {(round(k.pt[0], 3), round(k.pt[1], 3)): i for i, k in enumerate(kps)}
    desc = desc.astype(np.float32)
    desc /= desc.sum(axis=1, keepdims=True) + 1e-7
    for k, d in zip(got, np.sqrt(desc), strict=True):
        i = index.get((round(k.pt[0], 3), round(k.pt[1], 3)))
        if i is not None:
            out[i] = d
    return out


def _circular_median_deg(values: np.ndarray) -> float:
    a = np.deg2rad(values)
    return float(np.rad2deg(np.arctan2(np.median(np.sin(a)), np.median(np.cos(a)))))


def find_clone(query: QueryFeatures, reference: LocalFeatures, homography: np.ndarray, mirrored: bool,
               original: np.ndarray | None = None) -> CloneEvidence | None:
    """The largest group of query keypoints copied from another place of the original (see the module), or None.
    ``homography`` maps the query's own pixels to the original's (``GeometryResult.homography``); ``mirrored`` says
    the verified orientation was the mirrored query's. With ``original`` (its pixels), each member must also
    differ from what the original shows where the copy now is: the copy covered something else there."""
    feats = query.mirrored if mirrored else query.straight
    if len(feats) < MIN_CLONE_MATCHES or len(reference) < 2:
        return None
    h = np.asarray(homography, np.float64)
    if mirrored:  # feature coordinates are the mirror's: unflip them before the homography
        h = h @ np.array([[-1.0, 0.0, feats.width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    try:
        hinv = np.linalg.inv(h)
    except np.linalg.LinAlgError:
        return None
    sim = feats.descriptors @ reference.descriptors.T
    rows = np.arange(len(sim))
    best = sim.argmax(axis=1)
    s1 = sim[rows, best]
    sim[rows, best] = -np.inf
    s2 = sim.max(axis=1)
    d1 = np.sqrt(np.maximum(2.0 - 2.0 * s1, 0.0))
    d2 = np.sqrt(np.maximum(2.0 - 2.0 * s2, 0.0))
    good = np.flatnonzero(d1 < RATIO_TEST * d2)
    q = feats.points[good].astype(np.float64)
    r_idx = best[good]
    r = reference.points[r_idx].astype(np.float64)
    dist = d1[good]
    thr = REPROJ_THRESHOLD * max(1.0, max(reference.width, reference.height) / MAX_SIDE)
    err = np.linalg.norm(_transform(h, q) - r, axis=1)
    inl = err <= thr
    if int(inl.sum()) < 2 * MIN_CLONE_MATCHES:
        return None
    # A copy is a pixel copy: its keypoints match their source about as closely as the photo's own matches do.
    cand = np.flatnonzero((err > OFF_MODEL * thr) & (dist <= np.quantile(dist[inl], STRONG_QUANTILE)))
    if len(cand) < MIN_CLONE_MATCHES:
        return None
    dst = q[cand]  # where the copy is, in the query
    src = _transform(hinv, r[cand])  # where its content comes from, in the query's frame
    w, hgt = feats.width, feats.height
    inside = (src[:, 0] >= 0) & (src[:, 0] < w) & (src[:, 1] >= 0) & (src[:, 1] < hgt)
    cand, dst, src = cand[inside], dst[inside], src[inside]
    if len(cand) < MIN_CLONE_MATCHES:
        return None
    q_thr = MOVE_TOLERANCE * REPROJ_THRESHOLD * max(1.0, max(w, hgt) / MAX_SIDE)
    move, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=q_thr,
                                             maxIters=2000, confidence=0.99)
    if move is None or mask is None:
        return None
    keep = mask.ravel().astype(bool)
    shift = np.median(dst[keep] - src[keep], axis=0) if keep.any() else np.zeros(2)
    scale = float(np.sqrt(abs(np.linalg.det(move[:, :2]))))
    if int(keep.sum()) < MIN_CLONE_MATCHES or np.hypot(*shift) < MIN_MOVE * max(w, hgt) or not 0.5 <= scale <= 2.0:
        return None
    members = cand[keep]
    if original is not None:
        i_q = good[members]
        zoom = float(np.median(reference.sizes[r_idx[inl]] / np.maximum(feats.sizes[good[inl]], 1e-3)))
        turn = _circular_median_deg(reference.angles[r_idx[inl]] - feats.angles[good[inl]])
        here = descriptors_at(original, _transform(h, q[members]), feats.sizes[i_q] * zoom,
                              feats.angles[i_q] + turn)
        d_here = np.sqrt(np.maximum(2.0 - 2.0 * np.einsum("ij,ij->i", here, feats.descriptors[i_q]), 0.0))
        covered = np.nan_to_num(d_here, nan=0.0) > np.maximum(CONFIRM * dist[members], np.median(dist[inl]))
        members = members[covered]
        if len(members) < MIN_CLONE_MATCHES:
            return None
    where = _transform(h, q[members])
    x1, y1 = np.floor(where.min(axis=0)).astype(int)
    x2, y2 = np.ceil(where.max(axis=0)).astype(int)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(reference.width, x2 + 1), min(reference.height, y2 + 1)
    return CloneEvidence(len(members), (int(x1), int(y1), int(x2 - x1), int(y2 - y1)),
                         (float(shift[0]), float(shift[1])))
