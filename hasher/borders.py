"""Uniform borders (padding, plain, coloured or noisy) along an image's edges.

One implementation for the two places that must see through padding: the tolerant identity code
(``hasher.global_id``) hashes what lies inside them, and lookup's aligned comparison (``provenance.lookup.compare``)
leaves them out of the compared area.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["BORDER_MAX_SHARE", "BORDER_TOLERANCE", "inner_box", "uniform_borders"]

BORDER_TOLERANCE = 18.0  # grey levels: how far a "uniform" border line may stray from one colour
BORDER_MAX_SHARE = 0.3  # a band never covers more than this share of the side it grows from
WORK_SIDE = 256  # long side (at most) at which the bands are found


def uniform_borders(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Widths (left, top, right, bottom) in pixels of uniform bands along the edges: padding, plain or noisy.

    A band is the run of rows (columns) from an edge that are each nearly one colour, and the same colour as the
    outermost one. It runs on a median-filtered copy with a long side of at most 256 px, where noise added to a
    border averages out. Rotation wedges are not bands (their width changes along the edge).
    """
    h, w = rgb.shape[:2]
    s = min(1.0, WORK_SIDE / max(h, w))
    small = rgb if s >= 1.0 else cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                                            interpolation=cv2.INTER_AREA)
    small = cv2.medianBlur(np.ascontiguousarray(small), 5).astype(np.float32)
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


def inner_box(rgb: np.ndarray, min_side: int = 16) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of what lies inside the uniform borders; the whole image when too little would remain."""
    h, w = rgb.shape[:2]
    left, top, right, bottom = uniform_borders(rgb)
    if w - left - right < min_side or h - top - bottom < min_side:
        return 0, 0, w, h
    return left, top, w - right, h - bottom
