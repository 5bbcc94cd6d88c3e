"""Aligned comparison: once a query is verified as the same scene, was its content changed?

The query is registered onto the reference with the verified homography, then every change that re-sharing causes
is neutralised before the two are compared, so what remains, concentrated in a region, is an edit:

- padding and rotation wedges: only the part of the reference the warped query covers is compared, minus the
  query's uniform border bands (plain, coloured or noisy padding), minus a margin where interpolation and JPEG
  ringing mix border and content; rotation wedges and padding land outside the reference once registered;
- resolution: the comparison runs at ``WORK_SIDE`` resolution, or coarser when the query carries less detail than
  that: a small query blown up onto a large reference, or a pixelated one (its block grid is detected in the part
  of the query that shows the reference, and is not a grid the reference carries itself), is compared at the
  resolution of its own pixels (blocks), where it still agrees with the reference;
- noise: a query with many isolated spikes (salt and pepper, strong shot or speckle noise, hard sharpening) is
  median-filtered before it is registered; a query noisier than the reference (measured in flat areas) is compared
  with both sides blurred alike, in proportion, so the noise averages out instead of adding to the difference;
- global colour and tone: a colour model (each output channel from R, G, B, their squares and a constant: affine
  colour mixing plus gamma-like curves) predicts the query's colours from the reference's, fitted by trimmed least
  squares so an edited region cannot drag it, with the trimming judged per band of brightness so highlights and
  shadows stay in the fit; predicting in that direction lets clipping (blown highlights) be re-applied;
- blur and sharpening: the sharper side is blurred by the Gaussian that makes the two agree best, or the reference
  is given the unsharp mask (searched on a grid, then refined) that makes it agree best with a sharpened copy;
- colour alone: a second, chroma-only heat (opponent colours R - G and (R + G) / 2 - B, after the colour model and
  the blur matching), with its own re-share floor (chroma contrast and saturation: 4:2:0 subsampling bleeds colour
  across edges). Benign copies change colour globally, which the colour model takes out; a recoloured patch or an
  inpainted object a dozen pixels across leaves a compact chroma change that the luminance-dominated heat, whose
  floor is raised by sharpening halos and JPEG ringing, dilutes (``chroma_score``);
- recompression noise, sharpening halos, aliasing and sub-pixel misregistration: each query pixel is compared with
  the best of its 3x3 reference neighbours and differences are pooled over a few pixels; then the difference a
  re-share leaves is modelled per pair, as a function of local contrast (JPEG, sharpening and resampling errors grow
  on edges and texture) and of brightness (shot and speckle noise grow with it), fitted by trimmed least squares
  over the compared area, and only what exceeds that model is heat. An edit covers a minority of the area and
  departs from the model, so it neither drags the fit nor hides in it;
- moire: a query with fewer pixels than the work grid may have been downscaled without an anti-aliasing filter,
  which folds the reference's finest regular detail (a picket fence, siding, fabric) into broad bands the reference
  does not show. The re-share model then has one more term, the reference's detail finer than the query's pixels
  (``alias_detail``), fitted per pair like the others. A query that had no filter at all (nearest neighbour, or
  bilinear that reads two pixels whatever the scale) keeps all its texture as aliasing: when point samples of the
  reference explain it clearly better than the reference low-passed (``resampling.unfiltered_rendering``), the
  reference is rendered that way and warped exactly like the query, so both sides carry the same aliasing.

Thresholds are module constants, calibrated on one ``make-dataset`` split and reported on another by
``benchmarks/bench_geometry.py``. Coordinates follow ``geometry.py``: pixel centres at integers, reference frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from provenance.hashing import uniform_borders
from provenance.lookup.errors import AnalysisInputError, InsufficientOverlapError
from provenance.lookup.features import check_rgb
from provenance.lookup.resampling import unfiltered_rendering

__all__ = ["ALTERED_THRESHOLD", "REGION_THRESHOLD", "Box", "ChangeAnalysis", "aligned_difference", "change_regions",
           "chroma_heat", "content_window", "pixel_block", "query_pixelation", "uniform_borders"]

Box = tuple[int, int, int, int]  # x, y, width, height in reference pixels (as ``verdict.Region``)

WORK_SIDE = 512  # long side of the reference at which the comparison runs (at most)
EDGE_MARGIN = 6  # work pixels trimmed inside the warped query's outline and along the reference's edges
MIN_OVERLAP = 0.15  # share of the reference the query must cover, or the comparison is refused
BLUR_SIGMAS = (0.0, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0)  # candidates for matching the blur of the two sides
SHARPENINGS = ((1.0, 0.5), (1.0, 1.0), (2.0, 0.5), (2.0, 1.0))  # (sigma, amount): unsharp masks tried on the reference
SHARPEN_AFTER = (0.0, 0.7, 1.0)  # reference blurs (resampling) tried before each of them
SHARPEN_REFINE = True  # then the best sharpening's sigma and amount are refined by these factors:
SHARPEN_STEPS = (0.6, 0.8, 1.25, 1.6)
POOL_SIGMA = 2.5  # work pixels: pooling of the per-pixel difference (and of the local contrast) into the heat map
FIT_SAMPLES = 20000  # pixels the colour model is fitted on (spread evenly over the compared area)
FLOOR_SAMPLES = 8000  # pixels the re-share floor (4 or 5 coefficients) is fitted on, likewise
TRIM = 0.8  # share of pixels the colour and floor models are fitted on (the best-fitting ones)
# Chosen on the same calibration split as the thresholds below (benchmarks/bench_geometry.py, seed-0 half):
COLOUR_BANDS = 8  # bands of reference brightness in which the colour fit judges its errors (see _fit_colour)
COLOUR_ITERS = 5  # colour fits: 2 trimmed globally, then per band as well
BAND_CAP = 45.0  # a band keeps its own TRIM best pixels, but none off by more than this (summed over R, G, B)
MAX_COARSENESS = 1.3  # work pixels per query pixel (or pixelation block) above which the comparison goes coarser
COARSE_OVERSAMPLE = 1.15  # comparison pixels per query pixel then (per block when pixelated: 1), off Nyquist
PIXEL_CONTRAST = 2.0  # a block grid is pixelation when block edges are this much stronger than the rest
INHERITED_GRID_TOLERANCE = 0.15  # a query grid within this share of the reference's own grid is inherited
SPIKE_LEVEL = 60  # grey levels a pixel must stand out of its 3x3 median to count as a noise spike
SPIKE_SHARE = 0.005  # share of spike pixels above which the query is median-filtered before comparing
FLAT_SHARE = 0.3  # the flattest share of the compared area, where the noise of each side is measured
NOISE_BLUR = 0.6  # work pixels of blur, on both sides, per grey level of noise the query has beyond the reference
MAX_NOISE_BLUR = 2.5  # at most this much (work pixels)
# Calibrated by benchmarks/bench_geometry.py on its calibration split (half of ../shared/data/photos, seed 0):
# ALTERED_THRESHOLD keeps 99% of benign re-shares unaltered (their 99th percentile was 12.69); for
# REGION_THRESHOLD, 6 and 8 tie on box IoU there (0.833, 0.828), 4 and 12 lose (0.824, 0.807): 8 keeps regions
# tighter. (Before the re-share floor, with a median floor, the 99th percentile was 22.4 and the threshold 22.5.)
ALTERED_THRESHOLD = 12.7  # score at or above which a verified pair is reported altered
REGION_THRESHOLD = 8.0  # heat (over the re-share model) from which a pixel belongs to a changed region
SCORE_SHARE = 0.004  # the score is the heat exceeded by this share of the compared area
# The region score pools the heat over a Gaussian of this share of the long side: a small edit that changes a patch
# a little, all alike (an inpainted removal, a copy that blends in), stands out there, while the speckle a re-share
# leaves averages out. Its threshold is calibrated with the others (verdict_calibration.json).
REGION_POOL = 0.02
# The peak score pools the heat over a much smaller Gaussian (this share of the long side): a compact change (a
# removal a few dozen pixels across, a recoloured patch) stands far above the picture's own level of difference,
# which the score (a quantile over the whole picture) and the region score (a wider pool) dilute. Its threshold, and
# how far above the score it must stand, are calibrated with the others (verdict_calibration.json).
PEAK_POOL = 0.003
# The reference's detail finer than the query's pixels (what an unfiltered downscale folds into moire) is a term of
# the re-share floor; ALIAS_SIGMA (work pixels per query pixel) is the Gaussian that keeps what the query can hold:
# its response is about a half at the query's Nyquist frequency.
ALIAS_FLOOR = True
ALIAS_SIGMA = 0.375
# A query downscaled with no anti-aliasing filter at all (nearest neighbour, or bilinear reading two pixels whatever
# the scale) keeps far more aliasing than the term above models: when point samples of the reference explain its
# texture clearly better than a low-passed reference (``resampling.unfiltered_rendering``), they are the reference
# the query is compared with.
UNFILTERED_MODEL = True
MIN_REGION_SHARE = 0.002  # changed regions smaller than this share of the compared area are not boxed
# The chroma score pools the chroma heat over a Gaussian of this share of the long side (a recoloured patch or an
# inpainted object a few dozen pixels across at 256-512 px); its threshold is calibrated with the others.
CHROMA_POOL = 0.01


@dataclass(frozen=True, eq=False)
class ChangeAnalysis:
    """What differs between a registered query and its reference, beyond what re-sharing explains.

    ``heat`` is float32 on the reference frame at work resolution (``heat.shape`` is the reference scaled so its
    long side is at most ``WORK_SIDE``; ``heat_at_reference_size()`` resamples it), in grey levels above the
    difference the pair's re-share model expects there, 0 where nothing was compared (``compared`` is False there).
    ``boxes`` are the changed regions in reference pixels; ``changed_fraction`` is the changed share of the compared
    area; ``overlap`` the share of the reference the comparison covered. ``blur_sigma`` > 0 means the query was
    blurred to match the reference, < 0 the reference (in pixels of the comparison); ``noise_floor`` is the median,
    over the compared area, of the difference the re-share model expects (what is subtracted before it is heat).
    ``comparison_scale`` < 1 means the comparison ran coarser than the heat map's grid (a low-resolution or
    pixelated query) and the heat was resampled up.
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
    comparison_scale: float = 1.0
    # On the grid the comparison ran on: the registered query and the reference (grey, after the colour and blur
    # matching), the heat and the compared mask. The copy-move test (``clones.find_pixel_clone``) searches them.
    grid: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    sharpened: float = 0.0  # unsharp-mask amount given to the reference to match a sharpened query (0: none)
    region_score: float = 0.0  # the heat of the most changed region (pooled over REGION_POOL of the long side)
    peak_score: float = 0.0  # the heat of the most changed spot (pooled over PEAK_POOL of the long side)
    chroma_score: float = 0.0  # the chroma heat of the most recoloured spot (pooled over CHROMA_POOL of the side)
    chroma_heat: np.ndarray | None = field(default=None, repr=False)  # on the work grid, like ``heat``
    chroma_box: Box | None = None  # the most recoloured spot, in reference pixels (``spot_box``)
    unfiltered: bool = False  # compared with the reference point-sampled like a copy resized with no anti-aliasing

    @property
    def resolution(self) -> int:
        """Long side, in pixels, of the grid the comparison ran on (the work grid, or coarser for a small or
        pixelated query): what the evidence can resolve, and what the altered threshold depends on."""
        return max(1, round(max(self.heat.shape) * self.comparison_scale))

    def is_altered(self, threshold: float = ALTERED_THRESHOLD) -> bool:
        """True when the score reaches ``threshold`` (default: the calibrated ``ALTERED_THRESHOLD``)."""
        return self.score >= threshold

    def heat_at_reference_size(self) -> np.ndarray:
        """The heat map resampled to the reference's full pixel size (float32, H x W)."""
        w, h = self.reference_size
        return cv2.resize(self.heat, (w, h), interpolation=cv2.INTER_LINEAR)


def scale_matrix(sx: float, sy: float) -> np.ndarray:
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


def resize_long_side(rgb: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Downscale (never up) so the long side is at most ``side``; return the image and the coordinate map."""
    h, w = rgb.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return rgb, np.eye(3)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    out = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return out, scale_matrix(size[0] / w, size[1] / h)


def inside_borders(rgb: np.ndarray) -> np.ndarray:
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
    out = cv2.add(cv2.add(cv2.transform(x, lin), cv2.transform(cv2.multiply(x, x), sq)),
                  tuple(float(v) for v in model[6]) + (0.0,))
    return np.clip(out, 0.0, 255.0, out=out)


def _fit_colour(src: np.ndarray, dst: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Trimmed least-squares 7x3 colour model predicting ``dst`` from ``src`` (float RGB) on ``mask``."""
    # Pixels the re-share clipped (a channel at 0 or 255) say little about the curve: the clip is re-applied to
    # the prediction instead, so they are left out of the fit.
    lo, hi = float(np.nextafter(np.float32(2), np.float32(3))), float(np.nextafter(np.float32(253), np.float32(0)))
    unclipped = cv2.inRange(dst, (lo, lo, lo), (hi, hi, hi)) > 0  # every channel strictly inside (2, 253)
    idx = np.flatnonzero((mask & unclipped).ravel())
    if len(idx) < 1000:
        idx = np.flatnonzero(mask.ravel())
    if len(idx) > FIT_SAMPLES:
        idx = idx[:: len(idx) // FIT_SAMPLES + 1]
    a = _colour_basis(src.reshape(-1, 3)[idx])
    b = dst.reshape(-1, 3)[idx].astype(np.float64)
    # Trimmed globally, the few highlight (or shadow) pixels are the first to go, and the curve fitted on the
    # mid-tones then misses them on every benign pair with a tone change. So once global trimming has cut the edits
    # out (the first fits take them in), each band of reference brightness also keeps its own TRIM best pixels, up
    # to an error of BAND_CAP: a tone curve the model has not caught yet is off by a few grey levels per channel,
    # an edit that fills much of a band (a dark band is small) by far more.
    band = np.minimum((a[:, :3].mean(axis=1) * COLOUR_BANDS).astype(np.intp), COLOUR_BANDS - 1)
    keep = np.ones(len(idx), bool)
    model = np.zeros((7, 3))
    for i in range(COLOUR_ITERS):
        ak = a[keep]
        model = np.linalg.solve(ak.T @ ak + 1e-6 * np.eye(7), ak.T @ b[keep])
        err = np.abs(a @ model - b).sum(axis=1)
        limit = np.full(COLOUR_BANDS, np.quantile(err, TRIM))
        if i >= 2:
            for k in np.unique(band):
                e = err[band == k]
                kth = int(TRIM * (len(e) - 1))
                limit[k] = max(limit[k], min(float(np.partition(e, kth)[kth]), BAND_CAP))
        keep = err <= limit[band]
    return model


def _trimmed_mean(values: np.ndarray, share: float = 0.9) -> float:
    k = int(share * len(values))
    return float(np.partition(values, k)[:k].mean()) if k else 0.0


def _unsharp(img: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    """Unsharp masking, as apps sharpen: ``img + amount * (img - blur(img))`` (no clipping: float images)."""
    return cv2.addWeighted(img, 1.0 + amount, cv2.GaussianBlur(img, (0, 0), sigma), -amount, 0.0)


def _match_blur(q: np.ndarray, r: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Blur whichever side makes the two agree best (grey-level trimmed mean difference), or sharpen the reference
    the way apps sharpen a copy (unsharp masking: its halos are what a blur cannot match); return both sides, the
    blur sigma (> 0: the query was blurred, < 0: the reference) and the sharpening amount given to the reference."""
    qg, rg = cv2.cvtColor(q, cv2.COLOR_RGB2GRAY), cv2.cvtColor(r, cv2.COLOR_RGB2GRAY)
    sub = mask[::2, ::2]  # the cost only ranks candidates: every other pixel is plenty
    best = (np.inf, 0.0, 0.0, 0.0)  # cost, signed blur sigma, sharpening sigma, sharpening amount
    for sigma in BLUR_SIGMAS:
        for side in ((1.0, -1.0) if sigma else (1.0,)):
            qs = cv2.GaussianBlur(qg, (0, 0), sigma) if sigma and side > 0 else qg
            rs = cv2.GaussianBlur(rg, (0, 0), sigma) if sigma and side < 0 else rg
            cost = _trimmed_mean(cv2.absdiff(qs, rs)[::2, ::2][sub])
            if cost < best[0]:
                best = (cost, side * sigma, 0.0, 0.0)
    softened = {soften: cv2.GaussianBlur(rg, (0, 0), soften) if soften else rg for soften in SHARPEN_AFTER}

    def try_sharpening(soften: float, sigma: float, amount: float) -> None:
        nonlocal best
        cost = _trimmed_mean(cv2.absdiff(qg, _unsharp(softened[soften], sigma, amount))[::2, ::2][sub])
        if cost < best[0]:
            best = (cost, -soften, sigma, amount)

    for soften in SHARPEN_AFTER:  # a copy resampled (softened) and then sharpened: both, on the reference
        for sigma, amount in SHARPENINGS:
            try_sharpening(soften, sigma, amount)
    if best[3] and SHARPEN_REFINE:  # the sharpening the copy was given is rarely one of the few tried: refine it
        # A greedy walk: each step scales the best sigma and amount found so far (not the grid's winner).
        soften = -best[1]
        for f in SHARPEN_STEPS:
            sigma = best[2] * f
            for g in SHARPEN_STEPS:
                try_sharpening(soften, sigma, best[3] * g)
    _, blur, sharp_sigma, amount = best
    if blur > 0:
        q = cv2.GaussianBlur(q, (0, 0), blur)
    elif blur < 0:
        r = cv2.GaussianBlur(r, (0, 0), -blur)
    if amount:
        r = _unsharp(r, sharp_sigma, amount)
    return q, r, blur, amount


def _shift_min_difference(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Per-pixel colour distance from each query pixel to the closest of its 3x3 reference neighbours (any number
    of channels, float32)."""
    pad = cv2.copyMakeBorder(r, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    h, w = q.shape[:2]
    ones = np.ones((1, q.shape[2]), np.float32)
    best = None
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            d = cv2.subtract(q, pad[dy: dy + h, dx: dx + w])
            d2 = cv2.transform(cv2.multiply(d, d), ones)  # sum of squares over the channels
            best = d2 if best is None else cv2.min(best, d2)
    return cv2.sqrt(best)


def _grid_contrast(profile: np.ndarray, start: int, n: int) -> tuple[int, float]:
    """Best pixelation grid for a line of ``n`` pixels, given ``profile``, the neighbour differences (averaged
    across the image) from difference ``start`` on: the small size ``k`` whose nearest-neighbour enlargement to
    ``n`` puts block edges where ``profile`` is strongest, and how much stronger it is there than elsewhere (mean on
    block edges / mean off them). Blocks of 1.5 to 24 pixels are tried."""
    ks = np.arange(max(8, n // 24), int(n / 1.5) + 1)
    if len(ks) == 0 or len(profile) < 16:
        return n, 0.0
    # Enlarging k pixels to n by nearest neighbour, small pixel j >= 1 starts at ceil(j * n / k - 0.5): the edge
    # lies on the difference just before it. Only the j whose edge can fall in the profile's window are listed.
    first = np.maximum(np.floor(start * ks / n).astype(np.intp), 1)
    counts = np.floor((start + len(profile) + 1) * ks / n).astype(np.intp) + 2 - first
    which = np.repeat(np.arange(len(ks)), counts)
    j = np.arange(len(which)) - np.repeat(np.cumsum(counts) - counts, counts) + first[which]
    edges = np.ceil(j * (n / ks[which]) - 0.5).astype(np.intp) - 1 - start
    inside = (edges >= 0) & (edges < len(profile)) & (j < ks[which])
    which, edges = which[inside], edges[inside]
    on_sum = np.bincount(which, weights=profile[edges], minlength=len(ks))
    on_n = np.bincount(which, minlength=len(ks))
    off_mean = (float(profile.sum()) - on_sum) / np.maximum(len(profile) - on_n, 1)
    ratio = on_sum / np.maximum(on_n, 1) / (off_mean + 0.5)
    best = int(np.argmax(ratio))
    return int(ks[best]), float(ratio[best])


def pixel_block(rgb: np.ndarray) -> float:
    """Side, in pixels of ``rgb``, of the blocks it was pixelated into (enlarged by nearest neighbour from a small
    copy), or 1.0 when it shows no such grid. The grid must stand out in both directions, with square blocks.
    Looked for in a central window of at most 512 x 512 pixels (enough blocks, bounded cost)."""
    h, w = rgb.shape[:2]
    if min(h, w) < 24:
        return 1.0
    y0, x0 = max(0, h // 2 - 256), max(0, w // 2 - 256)
    g = cv2.cvtColor(rgb[y0: y0 + 512, x0: x0 + 512], cv2.COLOR_RGB2GRAY).astype(np.float32)
    kx, rx = _grid_contrast(cv2.absdiff(g[:, 1:], g[:, :-1]).mean(axis=0), x0, w)
    ky, ry = _grid_contrast(cv2.absdiff(g[1:], g[:-1]).mean(axis=1), y0, h)
    bx, by = w / kx, h / ky
    if min(rx, ry) < PIXEL_CONTRAST or abs(bx / by - 1.0) > 0.1:
        return 1.0
    return float(np.sqrt(bx * by))


def content_window(query_shape: tuple[int, ...], to_reference: np.ndarray,
                   reference_shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The query's pixels (x0, y0, x1, y1, exclusive ends) that ``to_reference`` maps inside the reference: the
    picture itself, without an app frame, padding or a caption around it; None when that is not a proper window."""
    h, w = reference_shape[:2]
    try:
        inv = np.linalg.inv(np.asarray(to_reference, np.float64))
    except np.linalg.LinAlgError:
        return None
    corners = np.array([[[-0.5, -0.5]], [[w - 0.5, -0.5]], [[w - 0.5, h - 0.5]], [[-0.5, h - 0.5]]])
    pts = cv2.perspectiveTransform(corners, inv).reshape(-1, 2)
    if not np.all(np.isfinite(pts)):
        return None
    qh, qw = query_shape[:2]
    x0, y0 = max(0, int(np.floor(pts[:, 0].min()))), max(0, int(np.floor(pts[:, 1].min())))
    x1, y1 = min(qw, int(np.ceil(pts[:, 0].max())) + 1), min(qh, int(np.ceil(pts[:, 1].max())) + 1)
    return (x0, y0, x1, y1) if x1 - x0 >= 24 and y1 - y0 >= 24 else None


def query_pixelation(query_rgb: np.ndarray, to_work: np.ndarray, reference_work: np.ndarray, zoom: float) -> float:
    """The block side (query pixels) of the query's pixelation, or 1.0 when it is not pixelated.

    The grid is looked for only in the part of the query that shows the reference (``content_window``): the
    regular bars and caption lines of an app frame around a screenshot are not pixelation. And a grid the
    reference carries itself at the same scale (the 8x8 blocks of an old, heavy JPEG, enlarged with the photo) is
    inherited content, not pixelation of the copy: comparing such a pair at the grid's resolution would hide
    edits dozens of pixels across (measured: an 11 % insertion compared at 36 px)."""
    window = content_window(query_rgb.shape, to_work, reference_work.shape)
    if window is None:
        return 1.0
    x0, y0, x1, y1 = window
    block = pixel_block(np.ascontiguousarray(query_rgb[y0:y1, x0:x1]))
    if block == 1.0:
        return 1.0
    own = pixel_block(reference_work)  # in work pixels
    if own != 1.0 and abs(block * zoom / own - 1.0) <= INHERITED_GRID_TOLERANCE:
        return 1.0
    return block


def _despiked(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` median-filtered (3x3) when more than ``SPIKE_SHARE`` of its pixels are isolated spikes (impulse noise,
    strong shot or speckle noise), else ``rgb`` itself. The share is measured on a central crop (cheap)."""
    h, w = rgb.shape[:2]
    y0, x0 = max(0, h // 2 - 128), max(0, w // 2 - 128)
    crop = np.ascontiguousarray(rgb[y0: y0 + 256, x0: x0 + 256])
    spikes = cv2.absdiff(crop, cv2.medianBlur(crop, 3)).max(axis=2) > SPIKE_LEVEL
    return cv2.medianBlur(rgb, 3) if spikes.mean() > SPIKE_SHARE else rgb


def _extra_noise(q: np.ndarray, r: np.ndarray, compared: np.ndarray) -> float:
    """Grey levels of noise the query ``q`` has beyond the reference ``r`` (both float RGB, registered): robust
    standard deviations of their high-pass residuals over the flattest ``FLAT_SHARE`` of the compared area of
    ``r``, where texture cannot pass for noise."""
    qg, rg = cv2.cvtColor(q, cv2.COLOR_RGB2GRAY), cv2.cvtColor(r, cv2.COLOR_RGB2GRAY)
    r_high = cv2.absdiff(rg, cv2.blur(rg, (3, 3)))
    q_high = cv2.absdiff(qg, cv2.blur(qg, (3, 3)))
    activity = cv2.blur(r_high, (7, 7))
    sub = compared[::2, ::2]  # every other pixel is plenty for medians
    act = activity[::2, ::2][sub]
    if len(act) < 100:
        return 0.0
    flat = act <= np.quantile(act, FLAT_SHARE)
    # MAD -> standard deviation, and the 3x3 box's own share of the pixel (1 - 1/9) undone.
    q_noise = 1.4826 * 1.125 * float(np.median(q_high[::2, ::2][sub][flat]))
    r_noise = 1.4826 * 1.125 * float(np.median(r_high[::2, ::2][sub][flat]))
    return float(np.sqrt(max(q_noise ** 2 - r_noise ** 2, 0.0)))


def alias_detail(reference_work: np.ndarray, zoom: float, size: tuple[int, int]) -> np.ndarray | None:
    """Where the reference holds detail finer than the query's own pixels: per pixel of a comparison grid of
    ``size`` (w, h), the magnitude (summed over R, G and B, pooled) of the part of ``reference_work`` above the
    Nyquist frequency of a query whose pixels span ``zoom`` work pixels; None when the query is not coarser than the
    work grid. A downscale that does not filter that detail out first (many apps resize without anti-aliasing)
    folds it into moire: a picket fence, clapboard siding or fabric comes back as broad bands the reference, filtered
    properly, does not have. That is a difference a re-share leaves, and only where such detail is."""
    if zoom <= 1.0:
        return None
    ref = reference_work.astype(np.float32)
    fine = cv2.absdiff(ref, cv2.GaussianBlur(ref, (0, 0), ALIAS_SIGMA * zoom))
    detail = cv2.transform(fine, np.ones((1, 3), np.float32))
    if (detail.shape[1], detail.shape[0]) != size:
        detail = cv2.resize(detail, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(detail, (0, 0), POOL_SIGMA)


def _reshare_floor(pooled: np.ndarray, r: np.ndarray, compared: np.ndarray,
                   alias: np.ndarray | None = None) -> np.ndarray:
    """The pooled difference this pair's re-share alone would leave, per pixel (float32).

    Modelled as c0 + c1 * contrast + c2 * brightness + c3 * brightness^2 (+ c4 * alias), where contrast is the
    pooled gradient magnitude of the (colour- and blur-matched) reference ``r``, summed over R, G and B, brightness
    its grey level (0..1), and alias the reference's detail finer than the query's pixels (``alias_detail``, when
    the query is coarser than the comparison's work grid), fitted by trimmed least squares on the compared area
    (c1, c4 >= 0), so an edit, a minority of the pixels that departs from the model, is trimmed away rather than
    fitted."""
    gx = cv2.Sobel(r, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(r, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    magnitude = cv2.transform(cv2.magnitude(gx, gy), np.ones((1, 3), np.float32))  # summed over R, G, B
    contrast = cv2.GaussianBlur(magnitude, (0, 0), POOL_SIGMA)
    grey = cv2.cvtColor(r, cv2.COLOR_RGB2GRAY) / np.float32(255.0)
    idx = np.flatnonzero(compared.ravel())
    if len(idx) > FLOOR_SAMPLES:
        idx = idx[:: len(idx) // FLOOR_SAMPLES + 1]
    g = grey.ravel()[idx].astype(np.float64)
    columns = [np.ones(len(idx)), contrast.ravel()[idx], g, g * g]
    if alias is not None:
        columns.append(alias.ravel()[idx])
    a = np.stack(columns, axis=1).astype(np.float64)
    n = a.shape[1]
    y = pooled.ravel()[idx].astype(np.float64)
    keep = np.ones(len(idx), bool)
    for _ in range(3):
        ak, yk = a[keep], y[keep]
        gram, rhs = ak.T @ ak + 1e-6 * np.eye(n), ak.T @ yk
        cols = list(range(n))
        coef = np.linalg.solve(gram, rhs)
        # More contrast (or finer detail) never means less benign difference: a term fitted negative is dropped.
        while (negative := [c for c in cols if c in (1, 4) and coef[c] < 0.0]):
            cols = [c for c in cols if c not in negative]
            coef = np.zeros(n)
            coef[cols] = np.linalg.solve(gram[np.ix_(cols, cols)], rhs[cols])
        err = np.abs(y - a @ coef)
        keep = err <= np.quantile(err, TRIM)
    floor = cv2.addWeighted(contrast, float(coef[1]), grey, float(coef[2]), float(coef[0]))
    floor = cv2.scaleAdd(cv2.multiply(grey, grey), float(coef[3]), floor)
    if alias is not None:
        floor = cv2.scaleAdd(alias, float(coef[4]), floor)
    return cv2.max(floor, 0.0)


def _opponent(img: np.ndarray) -> np.ndarray:
    """The two opponent chroma channels of float RGB, in grey levels: R - G and (R + G) / 2 - B."""
    return cv2.transform(img, np.array([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0]], np.float32))


def chroma_heat(q: np.ndarray, r: np.ndarray, compared: np.ndarray) -> np.ndarray:
    """Chroma difference beyond what this pair's re-share leaves (float32, 0 outside ``compared``).

    ``q`` and ``r`` are the registered query and the reference after the colour model and the blur matching. Each
    query pixel's chroma is compared with the closest of its 3x3 reference neighbours, pooled like the heat, and a
    floor is subtracted, modelled as c0 + c1 * chroma contrast + c2 * saturation of the reference (4:2:0 chroma
    subsampling and resampling bleed colour across coloured edges, more where colours are strong), fitted by
    trimmed least squares over the compared area so a recoloured minority is trimmed, not fitted."""
    cq, cr = _opponent(q), _opponent(r)
    diff = _shift_min_difference(cq, cr)
    diff[~compared] = 0.0
    weight = cv2.GaussianBlur(compared.astype(np.float32), (0, 0), POOL_SIGMA)
    pooled = cv2.GaussianBlur(diff, (0, 0), POOL_SIGMA) / np.maximum(weight, 1e-3)
    gx = cv2.Sobel(cr, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(cr, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    contrast = cv2.GaussianBlur(cv2.transform(cv2.magnitude(gx, gy), np.ones((1, 2), np.float32)), (0, 0), POOL_SIGMA)
    saturation = cv2.GaussianBlur(cv2.transform(np.abs(cr), np.ones((1, 2), np.float32)), (0, 0), POOL_SIGMA)
    idx = np.flatnonzero(compared.ravel())
    if len(idx) > FLOOR_SAMPLES:
        idx = idx[:: len(idx) // FLOOR_SAMPLES + 1]
    a = np.stack([np.ones(len(idx)), contrast.ravel()[idx], saturation.ravel()[idx]], axis=1).astype(np.float64)
    y = pooled.ravel()[idx].astype(np.float64)
    keep = np.ones(len(idx), bool)
    coef = np.zeros(3)
    for _ in range(3):
        coef = np.linalg.lstsq(a[keep], y[keep], rcond=None)[0]
        err = np.abs(y - a @ coef)
        keep = err <= np.quantile(err, TRIM)
    floor = cv2.addWeighted(contrast, float(coef[1]), saturation, float(coef[2]), float(coef[0]))
    return np.where(compared, np.maximum(pooled - floor, 0.0), 0.0).astype(np.float32)


def pooled_inside(heat: np.ndarray, compared: np.ndarray, share: float) -> np.ndarray:
    """The heat pooled over a Gaussian of ``share`` of the long side (normalised by how much of the window was
    compared), 0 outside the inner compared area (the compared area less its edge pixels)."""
    sigma = max(1.0, share * max(heat.shape))
    weight = cv2.GaussianBlur(compared.astype(np.float32), (0, 0), sigma)
    pooled = cv2.GaussianBlur(heat, (0, 0), sigma) / np.maximum(weight, 1e-3)
    inner = cv2.erode(compared.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    pooled[~inner] = 0.0
    return pooled


def pooled_max(heat: np.ndarray, compared: np.ndarray, share: float) -> float:
    """The largest heat pooled over a Gaussian of ``share`` of the long side, inside the compared area."""
    return float(pooled_inside(heat, compared, share).max(initial=0.0))


def spot_box(pooled: np.ndarray, reference_size: tuple[int, int]) -> Box | None:
    """The hottest spot of a pooled heat map, boxed in reference pixels: the connected extent, around its maximum,
    of what reaches half that maximum (None: nothing above 0)."""
    y, x = np.unravel_index(int(np.argmax(pooled)), pooled.shape)
    if pooled[y, x] <= 0.0:
        return None
    _, labels = cv2.connectedComponents((pooled >= 0.5 * pooled[y, x]).astype(np.uint8), connectivity=8)
    ys, xs = np.nonzero(labels == labels[y, x])
    w, h = reference_size
    sx, sy = w / pooled.shape[1], h / pooled.shape[0]
    x1, y1 = max(0, int(np.floor(xs.min() * sx))), max(0, int(np.floor(ys.min() * sy)))
    x2, y2 = min(w, int(np.ceil((xs.max() + 1) * sx))), min(h, int(np.ceil((ys.max() + 1) * sy)))
    return (x1, y1, x2 - x1, y2 - y1)


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
    ref_work, to_work = resize_long_side(reference_rgb, WORK_SIDE)
    work_h, work_w = ref_work.shape[:2]
    m = to_work @ h_qr
    # How many work pixels one query pixel (one pixelation block) spans: above MAX_COARSENESS the query holds less
    # detail than the work grid, and the comparison runs at the query's own resolution instead.
    zoom = _local_zoom(m, (query_rgb.shape[1] - 1) / 2, (query_rgb.shape[0] - 1) / 2)
    work_zoom = zoom
    block = query_pixelation(query_rgb, m, ref_work, zoom)
    coarseness = zoom * block
    ref, scale = ref_work, 1.0
    # A small query downscaled with no anti-aliasing filter is compared with the reference rendered the same way
    # (on the query's own grid, then resized and warped exactly like the query).
    unfiltered = None
    if UNFILTERED_MODEL and block == 1.0 and max(query_rgb.shape[:2]) <= WORK_SIDE:
        unfiltered = unfiltered_rendering(query_rgb, reference_rgb, h_qr, _local_zoom(
            h_qr, (query_rgb.shape[1] - 1) / 2, (query_rgb.shape[0] - 1) / 2))
    if coarseness > MAX_COARSENESS:
        fine = coarseness / (COARSE_OVERSAMPLE if block == 1.0 else 1.0)
        size = (max(8, round(work_w / fine)), max(8, round(work_h / fine)))
        ref = cv2.resize(ref_work, size, interpolation=cv2.INTER_AREA)
        scale = size[0] / work_w
        m = scale_matrix(size[0] / work_w, size[1] / work_h) @ m
        zoom *= scale
    wh, ww = ref.shape[:2]
    margin = EDGE_MARGIN if scale == 1.0 else max(3, int(np.ceil(EDGE_MARGIN * scale)))
    # Shrink the query first when the warp shrinks it (warpPerspective would alias instead of averaging).
    query, q_scale = _despiked(query_rgb), np.eye(3)
    if zoom < 0.8:
        qh, qw = query_rgb.shape[:2]
        size = (max(1, round(qw * zoom)), max(1, round(qh * zoom)))
        query = cv2.resize(query, size, interpolation=cv2.INTER_AREA)
        if unfiltered is not None:
            unfiltered = cv2.resize(unfiltered, size, interpolation=cv2.INTER_AREA)
        q_scale = scale_matrix(size[0] / qw, size[1] / qh)
    m = m @ np.linalg.inv(q_scale)
    warped = cv2.warpPerspective(query, m, (ww, wh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    if unfiltered is not None:  # the same warp for both sides: they carry the same aliasing
        ref = cv2.warpPerspective(unfiltered, m, (ww, wh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cover = cv2.warpPerspective(inside_borders(query), m, (ww, wh), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT)
    # The margin also runs along the reference's own edges: rotation wedges end there, with a fringe of blur and
    # JPEG ringing that would otherwise be compared.
    compared = cv2.erode((cover >= 255).astype(np.uint8), np.ones((2 * margin + 1,) * 2, np.uint8),
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
    # A noisy query is compared with both sides blurred alike, so the noise averages out before differences are
    # taken (pooling absolute differences would keep it as a floor that varies with the content).
    common = min(MAX_NOISE_BLUR, NOISE_BLUR * _extra_noise(q, r, compared))
    if common > 0.3:
        q, r = cv2.GaussianBlur(q, (0, 0), common), cv2.GaussianBlur(r, (0, 0), common)
    q, r, sigma, sharpened = _match_blur(q, r, compared)
    chroma = chroma_heat(q, r, compared)
    diff = _shift_min_difference(q, r)
    diff[~compared] = 0.0
    # Pool over a few pixels, normalised by how much of the window was compared (so borders are not diluted).
    weight = cv2.GaussianBlur(compared.astype(np.float32), (0, 0), POOL_SIGMA)
    pooled = cv2.GaussianBlur(diff, (0, 0), POOL_SIGMA) / np.maximum(weight, 1e-3)
    alias = alias_detail(ref_work, work_zoom, (ww, wh)) if ALIAS_FLOOR and unfiltered is None else None
    floor = _reshare_floor(pooled, r, compared, alias)
    heat = np.where(compared, np.maximum(pooled - floor, 0.0), 0.0).astype(np.float32)
    noise_floor = float(np.median(floor[compared]))
    grid = (cv2.cvtColor(q, cv2.COLOR_RGB2GRAY), cv2.cvtColor(r, cv2.COLOR_RGB2GRAY), heat.copy(), compared.copy())
    for a in grid:
        a.setflags(write=False)
    if scale != 1.0:  # back onto the work grid, which the heat map's contract (and change_regions) use
        heat = cv2.resize(heat, (work_w, work_h), interpolation=cv2.INTER_LINEAR)
        chroma = cv2.resize(chroma, (work_w, work_h), interpolation=cv2.INTER_LINEAR)
        compared = cv2.resize(compared.astype(np.uint8), (work_w, work_h), interpolation=cv2.INTER_NEAREST) > 0
        heat[~compared] = 0.0
        chroma[~compared] = 0.0
    score = float(np.quantile(heat[compared], 1.0 - SCORE_SHARE))
    region = pooled_max(heat, compared, REGION_POOL)
    peak = pooled_max(heat, compared, PEAK_POOL)
    chroma_pooled = pooled_inside(chroma, compared, CHROMA_POOL)
    chroma_score = float(chroma_pooled.max(initial=0.0))
    boxes, changed = change_regions(heat, compared, (ref_w, ref_h))
    for a in (heat, chroma, compared):
        a.setflags(write=False)
    return ChangeAnalysis(score, heat, compared, (ref_w, ref_h), boxes, changed, overlap, sigma, noise_floor, scale,
                          grid, sharpened, region, peak, chroma_score, chroma,
                          spot_box(chroma_pooled, (ref_w, ref_h)), unfiltered is not None)
