"""Aligned comparison: once a query is verified as the same scene, was its content changed?

The query is registered onto the reference with the verified homography, then every change that re-sharing causes
is neutralised before the two are compared, so what remains, concentrated in a region, is an edit:

- padding and rotation wedges: only the part of the reference the warped query covers is compared, minus the
  query's uniform border bands (plain, coloured or noisy padding), minus a margin where interpolation and JPEG
  ringing mix border and content; rotation wedges and padding land outside the reference once registered;
- global colour and tone: a colour model (each output channel from R, G, B, their squares and a constant: affine
  colour mixing plus gamma-like curves) predicts the query's colours from the reference's, fitted by trimmed least
  squares so an edited region cannot drag it; predicting in that direction lets clipping (blown highlights) be
  re-applied to the prediction instead of corrupting the fit;
- blur and sharpening: the sharper side is blurred by the Gaussian that makes the two agree best;
- recompression noise and sub-pixel misregistration: the comparison runs at ``WORK_SIDE`` resolution, each query
  pixel is compared with the best of its 3x3 reference neighbours, and differences are pooled over a few pixels.

Thresholds are module constants, calibrated on one ``make-dataset`` split and reported on another by
``benchmarks/bench_geometry.py``. Coordinates follow ``geometry.py``: pixel centres at integers, reference frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from provenance.lookup.errors import AnalysisInputError, InsufficientOverlapError
from provenance.lookup.features import check_rgb

__all__ = ["ALTERED_THRESHOLD", "REGION_THRESHOLD", "Box", "ChangeAnalysis", "aligned_difference", "change_regions",
           "uniform_borders"]

Box = tuple[int, int, int, int]  # x, y, width, height in reference pixels (as ``verdict.Region``)

WORK_SIDE = 512  # long side of the reference at which the comparison runs
EDGE_MARGIN = 6  # work pixels trimmed inside the warped query's outline and along the reference's edges
MIN_OVERLAP = 0.15  # share of the reference the query must cover, or the comparison is refused
BORDER_TOLERANCE = 18.0  # grey levels: how far a "uniform" border line may stray from one colour
BORDER_MAX_SHARE = 0.3  # a band never covers more than this share of the side it grows from
BLUR_SIGMAS = (0.0, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)  # candidates for matching the blur of the two sides
POOL_SIGMA = 2.5  # work pixels: pooling of the per-pixel difference into the heat map
FIT_SAMPLES = 20000  # pixels the colour model is fitted on (spread evenly over the compared area)
TRIM = 0.8  # share of pixels the colour model is fitted on (the best-fitting ones)
# Calibrated by benchmarks/bench_geometry.py on its calibration split (half of ../shared/data/photos, seed 0):
# ALTERED_THRESHOLD keeps 99% of benign re-shares unaltered (their 99th percentile was 22.4); for
# REGION_THRESHOLD, 8 and 12 tie on box IoU there (0.82) and 20 loses (0.78): 12 keeps regions tighter.
ALTERED_THRESHOLD = 22.5  # score at or above which a verified pair is reported altered
REGION_THRESHOLD = 12.0  # heat (over the noise floor) from which a pixel belongs to a changed region
SCORE_SHARE = 0.004  # the score is the heat exceeded by this share of the compared area
MIN_REGION_SHARE = 0.002  # changed regions smaller than this share of the compared area are not boxed


@dataclass(frozen=True, eq=False)
class ChangeAnalysis:
    """What differs between a registered query and its reference, beyond what re-sharing explains.

    ``heat`` is float32 on the reference frame at work resolution (``heat.shape`` is the reference scaled so its
    long side is at most ``WORK_SIDE``; ``heat_at_reference_size()`` resamples it), in grey levels above the
    pair's noise floor, 0 where nothing was compared (``compared`` is False there). ``boxes`` are the changed
    regions in reference pixels; ``changed_fraction`` is the changed share of the compared area; ``overlap`` the
    share of the reference the comparison covered. ``blur_sigma`` > 0 means the query was blurred to match the
    reference, < 0 the reference (work pixels); ``noise_floor`` is the median difference left after neutralising.
    """

    score: float
    heat: np.ndarray
    compared: np.ndarray
    reference_size: tuple[int, int]
    boxes: tuple[Box, ...]
    changed_fraction: float
    overlap: float
    blur_sigma: float
    noise_floor: float

    def is_altered(self, threshold: float = ALTERED_THRESHOLD) -> bool:
        """True when the score reaches ``threshold`` (default: the calibrated ``ALTERED_THRESHOLD``)."""
        return self.score >= threshold

    def heat_at_reference_size(self) -> np.ndarray:
        """The heat map resampled to the reference's full pixel size (float32, H x W)."""
        w, h = self.reference_size
        return cv2.resize(self.heat, (w, h), interpolation=cv2.INTER_LINEAR)


def _scale_matrix(sx: float, sy: float) -> np.ndarray:
    """Map pixel coordinates of an image to those of its resize by (sx, sy), pixel centres at integers."""
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _check_homography(h: np.ndarray) -> np.ndarray:
    h = np.asarray(h, dtype=np.float64)
    if h.shape != (3, 3) or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
        raise AnalysisInputError(f"homography must be a finite invertible 3x3 matrix, got shape {h.shape}")
    return h


def _local_zoom(m: np.ndarray, x: float, y: float) -> float:
    """Linear scale factor of the homography ``m`` around (x, y): sqrt of its Jacobian's determinant."""
    u, v, w = m @ (x, y, 1.0)
    if abs(w) < 1e-12:
        return 1.0
    jac = (m[:2, :2] * w - np.outer((u, v), m[2, :2])) / (w * w)
    return float(np.sqrt(abs(np.linalg.det(jac))))


def _resize_long_side(rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Downscale (never up) so the long side is at most ``side``; return the image and the coordinate map."""
    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return rgb, np.eye(3)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    out = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return out, _scale_matrix(size[0] / w, size[1] / h)


def uniform_borders(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Widths (left, top, right, bottom) in pixels of uniform bands along the edges: padding, plain or noisy.

    A band is the run of rows (columns) from an edge that are each nearly one colour, and the same colour as the
    outermost one. It runs on a median-filtered copy with a long side of at most 256 px, where noise added to a
    border averages out. Rotation wedges need no detector: they lie outside the reference once registered.
    """
    h, w = rgb.shape[:2]
    small, _ = _resize_long_side(rgb, 256)
    small = cv2.medianBlur(small, 5).astype(np.float32)
    widths = []
    for lines, full in ((small.transpose(1, 0, 2), w), (small, h), (small.transpose(1, 0, 2)[::-1], w),
                        (small[::-1], h)):
        n = 0
        first = np.median(lines[0], axis=0)
        for line in lines[: int(BORDER_MAX_SHARE * len(lines))]:
            colour = np.median(line, axis=0)
            spread = np.quantile(np.abs(line - colour).max(axis=1), 0.97)
            if spread > BORDER_TOLERANCE or np.abs(colour - first).max() > BORDER_TOLERANCE:
                break
            n += 1
        widths.append(int(np.ceil(n * full / len(lines))) if n else 0)
    return widths[0], widths[1], widths[2], widths[3]


def _inside_borders(rgb: np.ndarray) -> np.ndarray:
    """uint8 mask, 255 inside the uniform borders of ``rgb`` (the content), 0 on them."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = uniform_borders(rgb)
    out = np.zeros((h, w), np.uint8)
    out[top: max(top, h - bottom), left: max(left, w - right)] = 255
    return out


def _colour_basis(img: np.ndarray) -> np.ndarray:
    """Per pixel (R, G, B, R^2, G^2, B^2, 1), channels scaled to 0..1: what the colour model combines."""
    x = img.reshape(-1, 3) / 255.0
    return np.concatenate([x, x * x, np.ones((len(x), 1))], axis=1)


def _apply_colour(img: np.ndarray, model: np.ndarray) -> np.ndarray:
    """``_colour_basis(img) @ model``, clipped to 0..255 as the re-share's own 8-bit output was (float32 RGB)."""
    x = img / np.float32(255.0)
    lin = model[:3].T.astype(np.float32)
    sq = model[3:6].T.astype(np.float32)
    out = cv2.transform(x, lin) + cv2.transform(x * x, sq) + model[6].astype(np.float32)
    return np.clip(out, 0.0, 255.0)


def _fit_colour(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Trimmed least-squares 7x3 colour model predicting ``dst`` from ``src`` (float RGB) on ``mask``."""
    # Pixels the re-share clipped (a channel at 0 or 255) say little about the curve: the clip is re-applied to
    # the prediction instead, so they are left out of the fit.
    unclipped = np.all((dst > 2.0) & (dst < 253.0), axis=2)
    idx = np.flatnonzero((mask & unclipped).ravel())
    if len(idx) < 1000:
        idx = np.flatnonzero(mask.ravel())
    if len(idx) > FIT_SAMPLES:
        idx = idx[:: len(idx) // FIT_SAMPLES + 1]
    a = _colour_basis(src.reshape(-1, 3)[idx])
    b = dst.reshape(-1, 3)[idx].astype(np.float64)
    keep = np.ones(len(idx), bool)
    model = np.zeros((7, 3))
    for _ in range(4):
        ak = a[keep]
        model = np.linalg.solve(ak.T @ ak + 1e-6 * np.eye(7), ak.T @ b[keep])
        err = np.abs(a @ model - b).sum(axis=1)
        keep = err <= np.quantile(err, TRIM)
    return model


def _trimmed_mean(values: np.ndarray, share: float = 0.9) -> float:
    k = int(share * len(values))
    return float(np.partition(values, k)[:k].mean()) if k else 0.0


def _match_blur(q: np.ndarray, r: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Blur whichever side makes the two agree best (grey-level trimmed mean difference); return both and sigma."""
    qg, rg = cv2.cvtColor(q, cv2.COLOR_RGB2GRAY), cv2.cvtColor(r, cv2.COLOR_RGB2GRAY)
    sub = mask[::2, ::2]  # the cost only ranks candidates: every other pixel is plenty
    best = (np.inf, 0.0)
    for sigma in BLUR_SIGMAS:
        for side in ((1.0, -1.0) if sigma else (1.0,)):
            qs = cv2.GaussianBlur(qg, (0, 0), sigma) if sigma and side > 0 else qg
            rs = cv2.GaussianBlur(rg, (0, 0), sigma) if sigma and side < 0 else rg
            cost = _trimmed_mean(cv2.absdiff(qs, rs)[::2, ::2][sub])
            if cost < best[0]:
                best = (cost, side * sigma)
    sigma = best[1]
    if sigma > 0:
        q = cv2.GaussianBlur(q, (0, 0), sigma)
    elif sigma < 0:
        r = cv2.GaussianBlur(r, (0, 0), -sigma)
    return q, r, sigma


def _shift_min_difference(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per-pixel colour distance from each query pixel to the closest of its 3x3 reference neighbours."""
    pad = cv2.copyMakeBorder(r, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    h, w = q.shape[:2]
    ones = np.ones((1, 3), np.float32)
    best = None
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            d = cv2.subtract(q, pad[dy: dy + h, dx: dx + w])
            d2 = cv2.transform(cv2.multiply(d, d), ones)  # sum of squares over the channels
            best = d2 if best is None else cv2.min(best, d2)
    return cv2.sqrt(best)


def change_regions(heat: np.ndarray, compared: np.ndarray, reference_size: tuple[int, int],
                   threshold: float = REGION_THRESHOLD,
                   peak: float = ALTERED_THRESHOLD) -> tuple[tuple[Box, ...], float]:
    """Changed regions of a heat map: boxes in reference pixels (largest first) and their share of the compared
    area. Hysteresis, as in edge detection: a region is the connected extent of pixels at or above ``threshold``
    (specks opened away), kept when it covers ``MIN_REGION_SHARE`` of the compared area and holds at least
    ``SCORE_SHARE`` of it at ``peak`` or more, the score's own criterion: so a pair with boxes is altered at
    ``peak``, and the boxes outline whole regions rather than only their hottest cores."""
    changed = ((heat >= threshold) & compared).astype(np.uint8)
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    area = max(int(compared.sum()), 1)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(changed, connectivity=8)
    hot = np.bincount(labels[(labels > 0) & (heat >= peak)], minlength=n)  # per region, pixels at the peak
    w, h = reference_size
    sx, sy = w / heat.shape[1], h / heat.shape[0]
    boxes: list[Box] = []
    kept = 0
    for i in range(1, n):
        x, y, bw, bh, size = (int(v) for v in stats[i])
        if size < MIN_REGION_SHARE * area or hot[i] < SCORE_SHARE * area:
            continue
        kept += size
        x1, y1 = max(0, int(np.floor(x * sx))), max(0, int(np.floor(y * sy)))
        x2, y2 = min(w, int(np.ceil((x + bw) * sx))), min(h, int(np.ceil((y + bh) * sy)))
        boxes.append((x1, y1, x2 - x1, y2 - y1))
    boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
    return tuple(boxes), kept / area


def aligned_difference(query_rgb: np.ndarray, reference_rgb: np.ndarray, homography: np.ndarray) -> ChangeAnalysis:
    """Register ``query_rgb`` onto ``reference_rgb`` with ``homography`` (query -> reference pixels, as in
    ``GeometryResult``), neutralise benign re-share changes, and measure what is left.

    Raises ``InsufficientOverlapError`` when the query covers less than ``MIN_OVERLAP`` of the reference.
    """
    query_rgb = check_rgb(query_rgb, "query")
    reference_rgb = check_rgb(reference_rgb, "reference")
    h_qr = _check_homography(homography)
    ref_h, ref_w = reference_rgb.shape[:2]
    ref, to_work = _resize_long_side(reference_rgb, WORK_SIDE)
    wh, ww = ref.shape[:2]
    m = to_work @ h_qr
    # Shrink the query first when the warp shrinks it (warpPerspective would alias instead of averaging).
    zoom = _local_zoom(m, (query_rgb.shape[1] - 1) / 2, (query_rgb.shape[0] - 1) / 2)
    query, q_scale = query_rgb, np.eye(3)
    if zoom < 0.8:
        qh, qw = query_rgb.shape[:2]
        size = (max(1, round(qw * zoom)), max(1, round(qh * zoom)))
        query = cv2.resize(query_rgb, size, interpolation=cv2.INTER_AREA)
        q_scale = _scale_matrix(size[0] / qw, size[1] / qh)
    m = m @ np.linalg.inv(q_scale)
    warped = cv2.warpPerspective(query, m, (ww, wh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    cover = cv2.warpPerspective(_inside_borders(query), m, (ww, wh), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    # The margin also runs along the reference's own edges: rotation wedges end there, with a fringe of blur and
    # JPEG ringing that would otherwise be compared.
    compared = cv2.erode((cover >= 255).astype(np.uint8), np.ones((2 * EDGE_MARGIN + 1,) * 2, np.uint8),
                         borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    overlap = float(compared.mean())
    if overlap < MIN_OVERLAP:
        raise InsufficientOverlapError(f"the registered query covers {overlap:.0%} of the reference; at least "
                                       f"{MIN_OVERLAP:.0%} is needed to compare content")

    q = warped.astype(np.float32)
    r = ref.astype(np.float32)
    soft = cv2.GaussianBlur(q, (0, 0), 1.5), cv2.GaussianBlur(r, (0, 0), 1.5)
    model = _fit_colour(soft[1], soft[0], compared)
    r = _apply_colour(r, model)
    q, r, sigma = _match_blur(q, r, compared)
    diff = _shift_min_difference(q, r)
    diff[~compared] = 0.0
    # Pool over a few pixels, normalised by how much of the window was compared (so borders are not diluted).
    weight = cv2.GaussianBlur(compared.astype(np.float32), (0, 0), POOL_SIGMA)
    pooled = cv2.GaussianBlur(diff, (0, 0), POOL_SIGMA) / np.maximum(weight, 1e-3)
    floor = float(np.median(pooled[compared]))
    heat = np.where(compared, np.maximum(pooled - floor, 0.0), 0.0).astype(np.float32)
    score = float(np.quantile(heat[compared], 1.0 - SCORE_SHARE))
    boxes, changed = change_regions(heat, compared, (ref_w, ref_h))
    heat.setflags(write=False)
    compared.setflags(write=False)
    return ChangeAnalysis(score, heat, compared, (ref_w, ref_h), boxes, changed, overlap, sigma, floor)
