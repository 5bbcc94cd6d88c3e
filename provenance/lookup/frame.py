"""Does the query show the scene past the registered photo's edge?

A copy of a photo, benign or edited, holds only that photo's pixels. It may be cropped, resized, padded or framed
in a screenshot, but it never shows more of the scene than the photo does. So wherever the verified homography puts
one of the original's edges inside the query, what lies beyond that edge in a copy is padding, an app's frame, a
caption bar or another picture. Those are flat, or unrelated to the picture, with a seam at the edge. Another photo
of the same scene framed a little wider goes on past the edge: the texture beyond is the scene's, and it continues
the texture inside.

That is the one tell a fixed-camera series leaves in its pixels (the same wall, shot again with another object on
the spot): its background agrees with the registered photo after registration, but the framing differs by a few
pixels, and on some side the query shows a strip of wall the registered photo does not.

The measure, per edge of the original that lies inside the query: two thin strips of the query along that edge,
``GAP`` to ``GAP + DEPTH`` query pixels inside and outside it (the gap skips the edge itself, where resampling and
JPEG ringing mix both sides), averaged across the strip into profiles along the edge. Detail is what is left of a
profile once its trend along the edge is removed. Then:

* ``continuity``: the correlation of the two detail profiles. Structures that cross the edge (a mortar joint, a
  branch, a shadow) appear in both. For padding it is 0, and for a frame or a neighbouring picture it is close to
  0. Only edges with at least ``MIN_EDGE`` valid query pixels count, and they are pooled.
* ``seam``: how much the picture jumps across the edge: the mean difference between the two strips' nearest
  rows (``2 * GAP`` pixels apart) over the mean difference within each strip at the same distance (its first and
  last rows). About 1 where the scene goes on; several times that at a picture's edge against a frame, and
  without bound against padding.
* ``texture``: the variation within the outside strip over that within the inside one (about 1 where the scene
  goes on, 0 for padding).

Pure: arrays in, numbers out. ``verdict.other_photo_reasons`` decides with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["DEPTH", "GAP", "MIN_EDGE", "FrameEvidence", "beyond_frame"]

#: Query pixels skipped on each side of the edge: resampling blurs the edge over about one pixel and JPEG rings
#: within its block; the measured strips start past that.
GAP = 2
#: Query pixels of strip on each side, after the gap: the query must reach ``GAP + DEPTH`` pixels past the edge
#: for that edge to be measured (7 px: the narrowest real case measured showed 8). ``2 * GAP + 1``, so that a
#: strip's first and last rows lie as far apart as the two strips' nearest rows (the seam's two differences).
DEPTH = 2 * GAP + 1
#: Valid query pixels along the edges, pooled, below which nothing is measured: too short to correlate.
MIN_EDGE = 24
#: Scale (query pixels) of the trend removed along the edge, leaving detail.
TREND_SIGMA = 8.0


@dataclass(frozen=True)
class FrameEvidence:
    """What lies past the original's edges inside the query: ``continuity`` of the detail across them (-1..1),
    the ``seam`` there (about 1: none), the ``texture`` beyond (its variation / the inside's, about 1: the same
    kind of picture) and ``edge`` (query pixels of edge measured)."""

    continuity: float
    seam: float
    texture: float
    edge: int

    def to_obj(self) -> dict[str, float | int]:
        return {"continuity": round(self.continuity, 4), "seam": round(self.seam, 4),
                "texture": round(self.texture, 4), "edge": self.edge}


def _detail(profile: np.ndarray) -> np.ndarray:
    trend = cv2.GaussianBlur(profile.reshape(1, -1).astype(np.float32), (0, 0), TREND_SIGMA,
                             borderType=cv2.BORDER_REFLECT).ravel()
    return profile - trend


def _bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``img`` (h x w x 3, any dtype) sampled at (x, y) with bilinear interpolation, as float32 (... x 3). Points
    outside are clamped to the border (the caller drops them). Only the strips are sampled: the picture itself is
    never converted as a whole."""
    h, w = img.shape[:2]
    x = np.clip(x, 0.0, w - 1.0)
    y = np.clip(y, 0.0, h - 1.0)
    x0, y0 = np.floor(x).astype(np.intp), np.floor(y).astype(np.intp)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[..., None].astype(np.float32), (y - y0)[..., None].astype(np.float32)
    top = img[y0, x0].astype(np.float32) * (1 - fx) + img[y0, x1].astype(np.float32) * fx
    bottom = img[y1, x0].astype(np.float32) * (1 - fx) + img[y1, x1].astype(np.float32) * fx
    return top * (1 - fy) + bottom * fy


def _edge_strips(img: np.ndarray, base: np.ndarray, outward: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The inside and outside strips (n x DEPTH x 3, nearest row first) of ``img`` along one edge of the original
    mapped into the query at ``base`` (n x 2 points, one per query pixel), where both lie within the query; None
    when too few do."""
    qh, qw = img.shape[:2]
    offsets = np.arange(GAP, GAP + DEPTH, dtype=np.float64)

    def sample(sign: float) -> tuple[np.ndarray, np.ndarray]:
        pts = base[:, None, :] + sign * offsets[None, :, None] * outward[None, None, :]
        ok = ((pts[..., 0] >= 0) & (pts[..., 0] <= qw - 1) & (pts[..., 1] >= 0) & (pts[..., 1] <= qh - 1)).all(1)
        return _bilinear(img, pts[..., 0], pts[..., 1]), ok

    inside, ok_in = sample(-1.0)
    outside, ok_out = sample(1.0)
    ok = ok_in & ok_out
    if ok.sum() < MIN_EDGE:
        return None
    return inside[ok], outside[ok]


def beyond_frame(query_rgb: np.ndarray, to_reference: np.ndarray,
                 reference_size: tuple[int, int]) -> FrameEvidence | None:
    """Measure what the query shows past the original's edges (see the module); None when no edge of the original
    lies far enough inside the query to measure (the query is the original's picture, or a crop of it).
    ``to_reference`` maps query pixels to the original's (the verified homography); ``reference_size`` is the
    original's (width, height) in that frame."""
    try:
        to_query = np.linalg.inv(np.asarray(to_reference, np.float64))
    except np.linalg.LinAlgError:
        return None
    w, h = reference_size
    img = np.asarray(query_rgb)
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float64)
    mapped = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), to_query).reshape(-1, 2)
    centre = cv2.perspectiveTransform(np.array([[[w / 2 - 0.5, h / 2 - 0.5]]], np.float64), to_query).reshape(2)
    if not (np.all(np.isfinite(mapped)) and np.all(np.isfinite(centre))):
        return None
    inside: list[np.ndarray] = []
    outside: list[np.ndarray] = []
    across, within_in, within_out = 0.0, 0.0, 0.0
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        qa, qb = mapped[i], mapped[(i + 1) % 4]
        n = int(np.ceil(np.linalg.norm(qb - qa)))
        if n < MIN_EDGE or n > 4 * max(img.shape[:2]):  # an edge too short, or a degenerate map
            continue
        t = np.linspace(0.0, 1.0, n)[:, None]
        base = cv2.perspectiveTransform((a + t * (b - a)).reshape(-1, 1, 2), to_query).reshape(-1, 2)
        tangent = (qb - qa) / max(float(np.linalg.norm(qb - qa)), 1e-9)
        outward = np.array([tangent[1], -tangent[0]])
        if float(np.dot(outward, 0.5 * (qa + qb) - centre)) < 0:
            outward = -outward
        strips = _edge_strips(img, base, outward)
        if strips is None:
            continue
        s_in, s_out = strips
        inside.append(_detail(s_in.mean(axis=(1, 2))))  # the grey level's profile
        outside.append(_detail(s_out.mean(axis=(1, 2))))
        across += float(np.abs(s_out[:, 0] - s_in[:, 0]).sum()) / 3  # colour differences, per channel
        within_in += float(np.abs(s_in[:, 0] - s_in[:, -1]).sum()) / 3
        within_out += float(np.abs(s_out[:, 0] - s_out[:, -1]).sum()) / 3
    if not inside:
        return None
    d_in, d_out = np.concatenate(inside), np.concatenate(outside)
    sd_in, sd_out = float(d_in.std()), float(d_out.std())
    continuity = float(np.corrcoef(d_in, d_out)[0, 1]) if sd_in > 1e-3 and sd_out > 1e-3 else 0.0
    eps = 1e-3 * d_in.size
    seam = across / max(0.5 * (within_in + within_out), eps)
    return FrameEvidence(continuity, seam, within_out / max(within_in, eps), int(d_in.size))
