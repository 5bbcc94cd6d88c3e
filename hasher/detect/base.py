"""The one interface every object detector implements, so the scene-graph builder does not care which it gets."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from hasher.errors import ImageDecodeError
from hasher.types import Detection

#: Scores below this are mostly clutter for both detectors here (CenterNet peaks at ~0.5 on clear objects).
DEFAULT_MIN_SCORE = 0.25
DEFAULT_MAX_OBJECTS = 16


@runtime_checkable
class ObjectDetector(Protocol):
    """Finds objects in an RGB image.

    ``name`` is the registry name (``create_detector(name)``); ``model_id`` names the exact weights (it changes
    when they do), so a stored hash can say which detector produced its objects.
    """

    name: str
    model_id: str

    def detect(self, image: np.ndarray, max_objects: int = DEFAULT_MAX_OBJECTS,
               min_score: float = DEFAULT_MIN_SCORE) -> list[Detection]:
        """``image``: H x W x 3 RGB uint8. Returns at most ``max_objects`` detections with score >= ``min_score``,
        best first, boxes (x1, y1, x2, y2) in ``image``'s pixels."""
        ...


def check_rgb_image(image: np.ndarray) -> np.ndarray:
    """Reject anything that is not an H x W x 3 uint8 array with H, W >= 1 (the contract of ``detect``)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ImageDecodeError(f"expected an H x W x 3 uint8 RGB array, got {desc}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageDecodeError(f"empty image {image.shape}")
    return image
