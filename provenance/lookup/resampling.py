"""Copies downscaled with no anti-aliasing filter: tell them apart, and render the reference the way they were made.

A downscale that reads each output pixel from one or two source pixels (nearest neighbour, or bilinear
interpolation that ignores the scale, as OpenCV's default resize and many thumbnailers do) does not average the
reference's finest detail away: it keeps it as aliasing. Fine texture comes back as other pixel values, regular
detail (a fence, siding, fabric) as moire, edges as jaggies. Compared with the reference low-passed to the copy's
resolution (what a proper resize gives), such a copy differs all over its textured part, and reads as edited.

Which of the two renderings of the reference explains the copy's textured pixels tells them apart: point samples of
the reference at the copy's pixel centres, or the reference low-passed first. In a probe of five test-split photos
whose nearest-neighbour copies were called *altered*, the median error over the most textured quarter of the pixels
was 17-27 grey levels against the point samples and 31-53 against a low-pass; on six of the world recipe's filtered
copies the two were within 5 % of each other. When the point samples win by ``UNFILTERED_MARGIN``, the comparison
takes them as its reference (``unfiltered_rendering``): both sides then carry the same aliasing, and what no
rendering of the reference explains, an edit, still stands out. ``benchmarks/bench_unfiltered.py`` measures the
verdicts with and without it (docs/verdicts.md).

Pure functions of pixels; coordinates as in ``geometry.py`` (pixel centres at integers).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MIN_ZOOM", "UNFILTERED_MARGIN", "unfiltered_rendering"]

#: Reference pixels per query pixel below which (close to 1:1) the two renderings barely differ: not tried.
MIN_ZOOM = 1.3
#: Offsets (reference pixels) of the sampling grid searched, on both axes: registration error, and the rounding
#: conventions of resizers (nearest neighbour picks floor or round of the mapped position).
PHASE_STEPS = (-0.5, -0.25, 0.0, 0.25, 0.5)
#: Anti-aliasing filters (Gaussian sigma, in query pixels) the low-passed rendering is given; its best one counts.
FILTER_SIGMAS = (0.3, 0.45, 0.6)
#: The point samples must explain the query's textured pixels with at most this share of the low-pass's error.
UNFILTERED_MARGIN = 0.75
TEXTURED_SHARE = 0.25  # the most textured share of the query's pixels, where the renderings differ
SAMPLES = 4000  # of those, pixels scored per rendering (spread evenly)
INSET = 2.0  # reference pixels: samples closer than this to the reference's edge are not scored
#: Around the best phase, each query pixel takes the closest of the samples at these further offsets (reference
#: pixels): what registration, even refined, leaves (about a quarter of a pixel) decides which source pixel a
#: nearest-neighbour resize read. An edit matches none of these few neighbouring samples, and still stands out.
PIXEL_STEPS = (-0.25, 0.0, 0.25)
ECC_ITERATIONS = 50  # of the registration's refinement (an affine correction, enhanced correlation)
#: A refinement that moves the registration by more than this (reference pixels at the query's corners) is not
#: trusted: verification's homography is kept.
MAX_REFINEMENT = 2.0


def _sample(img: np.ndarray, x: np.ndarray, y: np.ndarray, interpolation: int) -> np.ndarray:
    """``img`` (RGB) read at the points (x, y): an (N, 3) float32 array."""
    return cv2.remap(img, x[None, :], y[None, :], interpolation, borderMode=cv2.BORDER_REPLICATE)[0].astype(np.float32)


def _low_passed_samples(reference_rgb: np.ndarray, x: np.ndarray, y: np.ndarray, zoom: float) -> list[np.ndarray]:
    """The reference low-passed by each of ``FILTER_SIGMAS`` (query pixels) and read at the points (x, y). It is
    shrunk first (area average) to two pixels per query pixel: a finer low-pass than any of them, and cheap."""
    f = min(1.0, 2.0 / zoom)
    small = reference_rgb
    if f < 1.0:
        h, w = reference_rgb.shape[:2]
        size = (max(1, round(w * f)), max(1, round(h * f)))
        small = cv2.resize(reference_rgb, size, interpolation=cv2.INTER_AREA)
        fx, fy = size[0] / w, size[1] / h
        x, y = x * np.float32(fx) + np.float32(0.5 * fx - 0.5), y * np.float32(fy) + np.float32(0.5 * fy - 0.5)
    small = small.astype(np.float32)
    return [_sample(cv2.GaussianBlur(small, (0, 0), sigma * zoom * f), x, y, cv2.INTER_LINEAR)
            for sigma in FILTER_SIGMAS]


def _median_error(q: np.ndarray, r: np.ndarray) -> float:
    return float(np.median(np.sqrt(((q - r) ** 2).sum(axis=1))))


def _query_points(shape: tuple[int, ...], h_qr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every query pixel centre mapped onto the reference: two float32 arrays of the query's (h, w)."""
    h, w = shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pts = cv2.perspectiveTransform(np.stack([xs.ravel(), ys.ravel()], axis=1)[None], h_qr)[0]
    return pts[:, 0].reshape(h, w).astype(np.float32), pts[:, 1].reshape(h, w).astype(np.float32)


def _refined(query_rgb: np.ndarray, reference_rgb: np.ndarray, h_qr: np.ndarray) -> np.ndarray:
    """``h_qr`` refined to a fraction of a pixel: the affine correction (on the query's grid) that best aligns the
    query with the reference read at its pixel centres (``cv2.findTransformECC``). Keypoint homographies are good to
    about a third of a pixel, and which source pixel a nearest-neighbour resize read depends on less than that."""
    map_x, map_y = _query_points(query_rgb.shape, h_qr)
    rendered = cv2.remap(reference_rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    template = cv2.cvtColor(query_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    moving = cv2.cvtColor(rendered, cv2.COLOR_RGB2GRAY).astype(np.float32)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(template, moving, warp, cv2.MOTION_AFFINE,
                                       (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, 1e-5),
                                       None, 3)
    except cv2.error:  # did not converge (flat or tiny query): keep verification's registration
        return h_qr
    correction = np.vstack([warp.astype(np.float64), (0.0, 0.0, 1.0)])
    h, w = query_rgb.shape[:2]
    corners = np.array([[[0.0, 0.0], [w - 1.0, 0.0], [0.0, h - 1.0], [w - 1.0, h - 1.0]]])
    moved = cv2.perspectiveTransform(corners, h_qr @ correction) - cv2.perspectiveTransform(corners, h_qr)
    if not np.all(np.isfinite(moved)) or np.abs(moved).max() > MAX_REFINEMENT:
        return h_qr
    return h_qr @ correction


def _textured_samples(query: np.ndarray, map_x: np.ndarray, map_y: np.ndarray,
                      reference_shape: tuple[int, ...]) -> np.ndarray | None:
    """Flat indices of the query pixels the renderings are scored on: mapped well inside the reference, among the
    most textured ``TEXTURED_SHARE`` of those (3x3 standard deviation of grey), at most ``SAMPLES`` of them."""
    rh, rw = reference_shape[:2]
    inside = ((map_x >= INSET) & (map_y >= INSET) & (map_x <= rw - 1 - INSET) & (map_y <= rh - 1 - INSET)).ravel()
    grey = cv2.cvtColor(query, cv2.COLOR_RGB2GRAY)
    spread = cv2.blur(grey * grey, (3, 3)) - cv2.blur(grey, (3, 3)) ** 2
    spread = spread.ravel()
    idx = np.flatnonzero(inside)
    if len(idx) < 200:
        return None
    idx = idx[spread[idx] >= np.quantile(spread[idx], 1.0 - TEXTURED_SHARE)]
    return idx[:: len(idx) // SAMPLES + 1]


def unfiltered_rendering(query_rgb: np.ndarray, reference_rgb: np.ndarray, h_qr: np.ndarray,
                         zoom: float) -> np.ndarray | None:
    """The reference rendered on the query's own pixel grid the way a downscale with no anti-aliasing filter would
    have (uint8 RGB, the query's shape), when that explains the query's textured pixels clearly better than any
    low-passed rendering; else None (a filtered copy, or too little texture or too small a scale to tell).

    ``h_qr`` maps query pixels to reference pixels (as verification gives it) and ``zoom`` is how many reference
    pixels one query pixel spans there."""
    if zoom < MIN_ZOOM:
        return None
    q = query_rgb.astype(np.float32)
    map_x, map_y = _query_points(q.shape, _refined(query_rgb, reference_rgb, np.asarray(h_qr, np.float64)))
    idx = _textured_samples(q, map_x, map_y, reference_rgb.shape)
    if idx is None:
        return None
    qs, xs, ys = q.reshape(-1, 3)[idx], map_x.ravel()[idx], map_y.ravel()[idx]
    best = (np.inf, cv2.INTER_LINEAR, 0.0, 0.0)
    for interpolation in (cv2.INTER_NEAREST, cv2.INTER_LINEAR):
        for dy in PHASE_STEPS:
            for dx in PHASE_STEPS:
                err = _median_error(qs, _sample(reference_rgb, xs + np.float32(dx), ys + np.float32(dy),
                                                interpolation))
                if err < best[0]:
                    best = (err, interpolation, dx, dy)
    point, interpolation, dx, dy = best
    filtered = min(_median_error(qs, r) for r in _low_passed_samples(reference_rgb, xs + np.float32(dx),
                                                                        ys + np.float32(dy), zoom))
    if point >= UNFILTERED_MARGIN * filtered:
        return None
    best_error, rendered = None, None
    for ey in PIXEL_STEPS:
        for ex in PIXEL_STEPS:
            candidate = cv2.remap(reference_rgb, map_x + np.float32(dx + ex), map_y + np.float32(dy + ey),
                                  interpolation, borderMode=cv2.BORDER_REPLICATE)
            error = cv2.transform(cv2.absdiff(query_rgb, candidate).astype(np.float32) ** 2,
                                  np.ones((1, 3), np.float32))
            if rendered is None:
                best_error, rendered = error, candidate
            else:
                closer = error < best_error
                best_error = np.where(closer, error, best_error)
                rendered[closer] = candidate[closer]
    return rendered
