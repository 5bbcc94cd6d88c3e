"""The bundled default detector: CenterNet (MobileNetV3, COCO-80) behind ``ObjectDetector``.

Weights ship in ``hasher/weights`` (converted from the TF.js model by ``scripts/convert_centernet.py``) and are
pinned by sha256 in the JSON beside them: a different file is refused rather than silently giving other objects.
Images are letterboxed to ``input_size`` squared, 512 x 512 by default (keep aspect, centre, black padding, as the
model's training code did) and boxes are mapped back to the caller's pixels. Runs on CPU by default and is
deterministic there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from hasher.detect.base import DEFAULT_MAX_OBJECTS, DEFAULT_MIN_SCORE, check_rgb_image
from hasher.detect.centernet_net import CenterNet
from hasher.errors import BackboneWeightsError, WeightsIntegrityError
from hasher.types import Detection

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
CONFIG_PATH = WEIGHTS_DIR / "centernet_mobilenetv3_coco.json"
INPUT_SIZE = CenterNet.input_size


@lru_cache(maxsize=4)
def load_config(path: Path = CONFIG_PATH) -> dict[str, Any]:
    """The JSON that travels with the weights: preprocessing, class names, pinned sha256."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BackboneWeightsError(f"cannot read detector config {path}: {exc}") from exc


def load_centernet(weights_path: Path | str | None = None, *, expected_sha256: str | None = None) -> CenterNet:
    """Build the network and load its weights (float16 on disk -> float32), refusing a file whose sha256 is not
    the pinned one (``expected_sha256``, default: the bundled config's)."""
    config = load_config()
    path = Path(weights_path) if weights_path is not None else WEIGHTS_DIR / config["weights"]["file"]
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise BackboneWeightsError(f"cannot read CenterNet weights {path}: {exc}") from exc
    expected = (expected_sha256 or config["weights"]["sha256"]).lower()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != expected:
        raise WeightsIntegrityError(f"{path}: sha256 {actual} is not the pinned {expected}")
    try:
        # Parse the very bytes that were hashed: no window for the file to change in between.
        state = {k: v.float() for k, v in load_safetensors(blob).items()}
    except SafetensorError as exc:
        raise BackboneWeightsError(f"{path} is not a readable safetensors file: {exc}") from exc
    model = CenterNet(num_classes=len(config["classes"]))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BackboneWeightsError(f"{path} does not fit the CenterNet architecture: {exc}") from exc
    return model.eval()


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed into the square network input: ``input = original * scale + (dx, dy)``."""

    scale: float
    dx: int
    dy: int
    width: int  # original size
    height: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map [N, 4] x1, y1, x2, y2 from network-input pixels back to the original image, clipped to it."""
        out = (boxes - np.array([self.dx, self.dy, self.dx, self.dy], dtype=np.float64)) / self.scale
        out[:, 0::2] = out[:, 0::2].clip(0, self.width)
        out[:, 1::2] = out[:, 1::2].clip(0, self.height)
        return out


def letterbox(image: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (keeping its aspect) into a black ``size`` x ``size`` square, centred."""
    h, w = image.shape[:2]
    scale = min(size / w, size / h)
    nw, nh = max(1, min(size, round(w * scale))), max(1, min(size, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR  # area: no aliasing when shrinking big photos
    resized = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    dx, dy = (size - nw) // 2, (size - nh) // 2
    canvas[dy:dy + nh, dx:dx + nw] = resized
    return canvas, Letterbox(scale=scale, dx=dx, dy=dy, width=w, height=h)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy class-agnostic NMS (indices kept, best first); stable order for equal scores."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    keep: list[int] = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(int(i))
        iw = (np.minimum(boxes[i, 2], boxes[rest, 2]) - np.maximum(boxes[i, 0], boxes[rest, 0])).clip(0)
        ih = (np.minimum(boxes[i, 3], boxes[rest, 3]) - np.maximum(boxes[i, 1], boxes[rest, 1])).clip(0)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.int64)


class CenterNetDetector:
    """``ObjectDetector`` over the bundled CenterNet. ``detect_batch`` runs several images in one forward pass,
    which pays on a GPU; on CPU it is no faster per image than ``detect`` (the network is memory-bound)."""

    name = "centernet"

    def __init__(self, weights_path: Path | str | None = None, *, expected_sha256: str | None = None,
                 device: str | torch.device = "cpu", iou_threshold: float = 0.5, input_size: int = INPUT_SIZE):
        config = load_config()
        if input_size < 32 or input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        # The network is fully convolutional: a smaller letterbox square (e.g. 384) finds the same large objects
        # in about half the time of the 512 it was trained at; the size is part of ``model_id``.
        self.input_size = int(input_size)
        self.device = torch.device(device)
        # Channels-last: the HWC input needs no transpose and oneDNN's convolutions run ~1.6x faster on CPU.
        self.model = load_centernet(weights_path, expected_sha256=expected_sha256).to(
            self.device, memory_format=torch.channels_last)
        self.class_names: tuple[str, ...] = tuple(config["classes"])
        self.iou_threshold = iou_threshold
        sha = (expected_sha256 or config["weights"]["sha256"]).lower()
        self.model_id = f"centernet-mobilenetv3-coco@{sha[:12]}" + (
            "" if self.input_size == INPUT_SIZE else f"-{self.input_size}px")

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        """Run the network on letterboxed [B, S, S, 3] uint8 inputs (S = ``input_size``, 512 by default); returns the
        graph's detections [B, 100, 6] (x1, y1, x2, y2, score, class) in input pixels. The level the TF.js reference
        is compared at."""
        batch = torch.from_numpy(np.array(inputs, dtype=np.uint8, order="C")).to(self.device)  # own, writable
        with torch.inference_mode():
            x = batch.permute(0, 3, 1, 2).float()  # NCHW view of NHWC memory: already channels-last
            detections, _, _ = self.model(x)
        return detections.cpu().numpy()

    def detect(self, image: np.ndarray, max_objects: int = DEFAULT_MAX_OBJECTS,
               min_score: float = DEFAULT_MIN_SCORE) -> list[Detection]:
        return self.detect_batch([image], max_objects, min_score)[0]

    def detect_batch(self, images: list[np.ndarray], max_objects: int = DEFAULT_MAX_OBJECTS,
                     min_score: float = DEFAULT_MIN_SCORE) -> list[list[Detection]]:
        if not images:
            return []
        boxed = [letterbox(check_rgb_image(im), self.input_size) for im in images]
        raw = self.raw(np.stack([b[0] for b in boxed]))
        return [self._postprocess(r, lb, max_objects, min_score) for r, (_, lb) in zip(raw, boxed, strict=True)]

    def _postprocess(self, raw: np.ndarray, lb: Letterbox, max_objects: int, min_score: float) -> list[Detection]:
        raw = raw.astype(np.float64)[raw[:, 4] >= max(min_score, 1e-6)]
        boxes = lb.to_original(raw[:, :4])
        valid = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)  # not all in the padding
        boxes, raw = boxes[valid], raw[valid]
        keep = nms(boxes, raw[:, 4], self.iou_threshold)[:max(0, max_objects)]
        return [
            Detection(box=tuple(float(v) for v in boxes[i]), score=float(raw[i, 4]), label=int(raw[i, 5]),
                      label_name=self.class_names[int(raw[i, 5])])
            for i in keep
        ]
