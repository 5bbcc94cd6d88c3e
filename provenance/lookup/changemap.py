"""The change map a journalist sees: the reference, with where the query differs from it overlaid.

The heat is coloured on an absolute scale (full colour at ``2 * ALTERED_THRESHOLD``), not stretched per image, so a
benign re-share stays faint instead of having its noise blown up to look alarming. Areas the comparison could not
cover (outside the query, or its padding) are dimmed, so "no heat" is never mistaken for "checked and unchanged".
Changed regions are outlined. The output is PNG bytes: the caller decides where they go.
"""

from __future__ import annotations

import cv2
import numpy as np

from provenance.lookup.compare import ALTERED_THRESHOLD, ChangeAnalysis
from provenance.lookup.errors import AnalysisInputError, LookupAnalysisError
from provenance.lookup.features import check_rgb

__all__ = ["render_change_map"]

MAX_SIDE = 1024  # long side of the rendered map
OVERLAY_ALPHA = 0.65  # opacity of the heat colour at full heat
DIM = 0.45  # brightness left to areas that were not compared
BOX_COLOUR = (255, 40, 40)  # RGB


def render_change_map(reference_rgb: np.ndarray, analysis: ChangeAnalysis, *, max_side: int = MAX_SIDE,
                      full_scale: float = 2 * ALTERED_THRESHOLD,
                      boxes: tuple[tuple[int, int, int, int], ...] | None = None) -> bytes:
    """PNG bytes of ``reference_rgb`` with ``analysis``'s heat as a translucent overlay and its boxes drawn (or
    ``boxes``, reference pixels, when given: the lookup adds a copy-move's copy to the comparison's).

    ``reference_rgb`` must be the image ``analysis`` was computed against (its size is checked); the map is
    downscaled so its long side is at most ``max_side``; heat at ``full_scale`` or more gets the full colour.
    """
    ref = check_rgb(reference_rgb, "reference")
    if (ref.shape[1], ref.shape[0]) != analysis.reference_size:
        raise AnalysisInputError(f"reference is {ref.shape[1]}x{ref.shape[0]} but the analysis was made on "
                                 f"{analysis.reference_size[0]}x{analysis.reference_size[1]}")
    if max_side < 16 or not full_scale > 0:
        raise AnalysisInputError(f"max_side must be >= 16 and full_scale > 0, got {max_side}, {full_scale}")
    h, w = ref.shape[:2]
    s = min(1.0, max_side / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    base = cv2.resize(ref, size, interpolation=cv2.INTER_AREA) if s < 1.0 else ref.copy()
    heat = cv2.resize(analysis.heat, size, interpolation=cv2.INTER_LINEAR)
    compared = cv2.resize(analysis.compared.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0

    level = np.clip(heat / full_scale, 0.0, 1.0)
    colours = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]  # BGR -> RGB
    alpha = (OVERLAY_ALPHA * np.sqrt(level))[..., None]  # sqrt: weak but real differences stay visible
    out = base.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    out[~compared] *= DIM
    out = np.clip(out, 0, 255).astype(np.uint8)

    thickness = max(1, round(max(size) / 300))
    sx, sy = size[0] / w, size[1] / h
    for x, y, bw, bh in (analysis.boxes if boxes is None else boxes):
        x1, y1 = int(x * sx), int(y * sy)
        x2, y2 = max(x1, int((x + bw) * sx) - 1), max(y1, int((y + bh) * sy) - 1)
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, thickness)
    ok, png = cv2.imencode(".png", out[..., ::-1])
    if not ok:  # cannot happen for a valid uint8 image; kept so a failure is never silent
        raise LookupAnalysisError("PNG encoding of the change map failed")
    return png.tobytes()
