"""Plain data passed between the hasher's stages (detector -> masks -> scene graph -> network)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected object. ``box`` is (x1, y1, x2, y2) in pixels of the image it was detected on."""

    box: tuple[float, float, float, float]
    score: float
    label: int  # COCO class id, 0-based over the detector's 80 classes
    label_name: str


@dataclass(frozen=True)
class SegmentedObject:
    """A detection plus its instance mask: bool array of the full image's (H, W)."""

    detection: Detection
    mask: np.ndarray
