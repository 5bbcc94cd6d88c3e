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

from provenance.lookup.compare import ChangeAnalysis
from provenance.lookup.features import MAX_SIDE, LocalFeatures
from provenance.lookup.geometry import RATIO_TEST, REPROJ_THRESHOLD, QueryFeatures

__all__ = ["CloneEvidence", "MIN_CLONE_MATCHES", "find_clone"]

MIN_CLONE_MATCHES = 5  # keypoints moved alike: fewer is what chance and repetitive texture give
OFF_MODEL = 4.0  # a match is off the homography when it lands this many thresholds from its partner
MIN_MOVE = 0.04  # the move must shift the copy by at least this share of the query's long side
MOVE_TOLERANCE = 2.0  # thresholds (query pixels at feature scale) within which the move must explain a match
STRONG_QUANTILE = 0.75  # a copy's matches are as close as this quantile of the photo's own (inlier) matches
# The pixel test (``find_pixel_clone``), on the comparison's grid:
BLOCK_SHARE = 0.05  # block side, as a share of the grid's long side (8-32 px)
CANDIDATE_BLOCKS = 6  # the most changed blocks that are searched for elsewhere in the original
MIN_BLOCK_STD = 8.0  # grey levels of texture (beyond a plane): flatter blocks are not searched
MIN_BLOCK_HEAT = 8.0  # mean heat of a block searched: below it, it differs no more than re-shares do
BLOCK_NCC = 0.9  # the original shows the block this faithfully elsewhere...
BLOCK_GAP = 0.25  # ...and this much less faithfully at the block's own place
CONFIRM = 2.0  # what the original shows where the copy is must be this much farther from it than its source


@dataclass(frozen=True)
class CloneEvidence:
    """``matches``: query keypoints explained by one move from another place of the original (1 for the pixel
    test); ``box`` the copy's bounding box and ``move`` (dx, dy) from source to copy, both in the original's pixels
    (the move approximately)."""

    matches: int
    box: tuple[int, int, int, int]
    move: tuple[float, float]
    gap: float | None = None  # pixel test: how much better the original matches the block elsewhere than in place

    def to_obj(self) -> dict[str, object]:
        return {"matches": self.matches, "box": list(self.box), "move": [round(v, 1) for v in self.move],
                "gap": None if self.gap is None else round(self.gap, 3)}


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
    zoom = float(np.median(reference.sizes[r_idx[inl]] / np.maximum(feats.sizes[good[inl]], 1e-3)))
    if original is not None:
        i_q = good[members]
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
                         (float(shift[0] * zoom), float(shift[1] * zoom)))


def _texture(block: np.ndarray) -> float:
    """Standard deviation of what a plane (a flat patch or a smooth ramp) does not explain in ``block``."""
    h, w = block.shape
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.column_stack([xx.ravel(), yy.ravel(), np.ones(h * w)])
    coef, *_ = np.linalg.lstsq(a, block.ravel().astype(np.float64), rcond=None)
    return float(np.std(block.ravel() - a @ coef))


def find_pixel_clone(analysis: ChangeAnalysis) -> CloneEvidence | None:
    """The copy-move tell-tale in pixels, for copies too small for keypoints: among the blocks of the registered
    query that differ most from the original (even below the altered threshold), one that the original shows, nearly
    exactly, somewhere else, while at the block's own place it shows something else."""
    if analysis.grid is None:
        return None
    q, r, heat, compared = analysis.grid
    h, w = q.shape
    b = int(np.clip(round(BLOCK_SHARE * max(h, w)), 8, 32))
    if min(h, w) < 3 * b:
        return None
    inside = cv2.erode(compared.astype(np.uint8), np.ones((b, b), np.uint8)) > 0  # block centres fully compared
    level = cv2.blur(heat, (b, b))
    level[~inside] = -1.0
    ref = np.ascontiguousarray(r, np.float32)
    for _ in range(CANDIDATE_BLOCKS):
        cy, cx = np.unravel_index(int(np.argmax(level)), level.shape)
        if level[cy, cx] <= 0.0:
            break
        level[max(0, cy - b): cy + b + 1, max(0, cx - b): cx + b + 1] = -1.0  # next candidate elsewhere
        y0, x0 = int(cy) - b // 2, int(cx) - b // 2
        if y0 < 0 or x0 < 0 or y0 + b > h or x0 + b > w:
            continue
        if float(heat[y0: y0 + b, x0: x0 + b].mean()) < MIN_BLOCK_HEAT:
            break  # the rest differ from the original no more than a re-share does
        patch = np.ascontiguousarray(q[y0: y0 + b, x0: x0 + b], np.float32)
        if _texture(patch) < MIN_BLOCK_STD:
            continue  # a flat block, or a smooth ramp (sky), matches such places anywhere
        ncc = cv2.matchTemplate(ref, patch, cv2.TM_CCOEFF_NORMED)
        own = float(ncc[y0, x0])
        ncc[max(0, y0 - b): y0 + b + 1, max(0, x0 - b): x0 + b + 1] = -1.0  # elsewhere: at least a block away
        sy, sx = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
        best = float(ncc[sy, sx])
        if best >= BLOCK_NCC and best - own >= BLOCK_GAP:
            sx_ref, sy_ref = analysis.reference_size[0] / w, analysis.reference_size[1] / h
            box = (int(x0 * sx_ref), int(y0 * sy_ref), max(1, int(b * sx_ref)), max(1, int(b * sy_ref)))
            return CloneEvidence(1, box, (float(x0 - sx) * sx_ref, float(y0 - sy) * sy_ref), best - own)
    return None
