"""Object detection and instance masks for the scene graph: one ``ObjectDetector`` interface, two detectors.

* ``centernet`` (default): CenterNet MobileNetV3 COCO-80, weights bundled in ``hasher/weights`` (MIT).
* ``maskrcnn``: torchvision Mask R-CNN R50-FPN, the paper's detector; COCO weights from a local file only.

Masks for box-only detectors come from ``hasher.detect.masks.segment`` (GrabCut seeded by the boxes).
"""

from __future__ import annotations

from typing import Any

from hasher.detect.base import DEFAULT_MAX_OBJECTS, DEFAULT_MIN_SCORE, ObjectDetector
from hasher.errors import HasherError

DETECTORS = ("centernet", "maskrcnn")


def create_detector(name: str = "centernet", **kwargs: Any) -> ObjectDetector:
    """Build a detector by name; ``kwargs`` go to its constructor (``device``, ``weights_path``, ...).

    Imports are deferred so that choosing one detector does not load the other's dependencies.
    """
    if name == "centernet":
        from hasher.detect.centernet import CenterNetDetector

        return CenterNetDetector(**kwargs)
    if name == "maskrcnn":
        from hasher.detect.maskrcnn import MaskRCNNDetector

        return MaskRCNNDetector(**kwargs)
    raise HasherError(f"unknown detector {name!r}; known: {', '.join(DETECTORS)}")


__all__ = ["DEFAULT_MAX_OBJECTS", "DEFAULT_MIN_SCORE", "DETECTORS", "ObjectDetector", "create_detector"]
