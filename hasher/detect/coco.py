"""COCO class names, in the 0-based order of the 80 "things" classes every COCO detector here reports.

Mask R-CNN (torchvision) numbers classes by the original 91 COCO category ids (1-based, with 11 unused ids), so
``COCO91_TO_80`` maps those ids onto the same 0-based index CenterNet uses: one label space for all detectors.
"""

from __future__ import annotations

COCO80_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)

#: COCO category ids (1..90) that no annotation uses; torchvision keeps their logits ("N/A").
_UNUSED_COCO_IDS = frozenset({12, 26, 29, 30, 45, 66, 68, 69, 71, 83})

#: 91-way label (0 = background) -> 0-based index into ``COCO80_CLASSES``; unused ids are absent.
COCO91_TO_80: dict[int, int] = {
    cid: i for i, cid in enumerate(c for c in range(1, 91) if c not in _UNUSED_COCO_IDS)
}

assert len(COCO80_CLASSES) == 80 and len(COCO91_TO_80) == 80
