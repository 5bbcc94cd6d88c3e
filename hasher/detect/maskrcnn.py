"""Mask R-CNN (ResNet-50 FPN, COCO), the detector the OSCAR-Net paper used, behind ``ObjectDetector``.

No Mask R-CNN weights ship with any offline package, so this never downloads: the operator provides the COCO
weights as a local file (a torchvision-style state dict, ``.pth``/``.pt`` or ``.safetensors``), optionally pinned
by sha256. The architecture is torchvision's ``maskrcnn_resnet50_fpn`` built with ``weights=None,
weights_backbone=None``; its batch norms are then frozen (``FrozenBatchNorm2d``, eps 0 like torchvision's own
COCO_V1 weights) because that is what COCO checkpoints were trained and saved with. Loading is strict: a file
whose keys or shapes differ is refused with the differences named.
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from torch import nn
from torchvision.models.detection import MaskRCNN, maskrcnn_resnet50_fpn
from torchvision.ops import FrozenBatchNorm2d

from hasher.detect.base import DEFAULT_MAX_OBJECTS, DEFAULT_MIN_SCORE, check_rgb_image
from hasher.detect.coco import COCO80_CLASSES, COCO91_TO_80
from hasher.errors import BackboneWeightsError, WeightsIntegrityError
from hasher.types import Detection, SegmentedObject

COCO_NUM_CLASSES = 91  # torchvision's COCO head: background + 90 category ids (10 of them unused)
MASK_THRESHOLD = 0.5


def _freeze_batch_norm(module: nn.Module, eps: float) -> None:
    """Swap every BatchNorm2d for a FrozenBatchNorm2d of the same width (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, FrozenBatchNorm2d(child.num_features, eps=eps))
        else:
            _freeze_batch_norm(child, eps)


def build_maskrcnn(*, min_size: int = 800, max_size: int = 1333, box_score_thresh: float = 0.05,
                   detections_per_img: int = 100, rpn_proposals: int = 1000, frozen_bn_eps: float = 0.0) -> MaskRCNN:
    """The bare architecture (no weights), as COCO checkpoints expect it. The size / threshold / proposal
    arguments are inference settings (torchvision's defaults); none changes the weights' shapes."""
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=COCO_NUM_CLASSES,
                                  min_size=min_size, max_size=max_size, box_score_thresh=box_score_thresh,
                                  box_detections_per_img=detections_per_img, rpn_post_nms_top_n_test=rpn_proposals)
    _freeze_batch_norm(model, frozen_bn_eps)
    return model


def read_state_dict(path: Path, expected_sha256: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Read a state dict (safetensors, or a torch file loaded with ``weights_only``) and its sha256."""
    if not path.is_file():
        raise BackboneWeightsError(
            f"Mask R-CNN weights not found at {path}: they are not bundled and never downloaded; "
            "an operator must provide a local COCO checkpoint (torchvision maskrcnn_resnet50_fpn state dict)")
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if expected_sha256 is not None and digest != expected_sha256.lower():
        raise WeightsIntegrityError(f"{path}: sha256 {digest} is not the pinned {expected_sha256.lower()}")
    try:
        if path.suffix == ".safetensors":
            state = load_safetensors(blob)
        else:
            state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, ValueError, EOFError, OSError) as exc:
        raise BackboneWeightsError(f"cannot read Mask R-CNN weights {path}: {exc}") from exc
    if isinstance(state, dict) and len(state) == 1 and next(iter(state)) in ("model", "state_dict"):
        state = next(iter(state.values()))  # a training checkpoint wrapping the state dict
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BackboneWeightsError(f"{path} does not hold a state dict of tensors")
    return state, digest


def load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict(strict=True)`` with an error that names what differs."""
    # BatchNorm2d checkpoints carry num_batches_tracked; FrozenBatchNorm2d drops it itself when loading.
    given = {k for k in state if not k.endswith("num_batches_tracked")}
    wanted = set(model.state_dict())
    missing, unexpected = sorted(wanted - given), sorted(given - wanted)
    if missing or unexpected:
        raise BackboneWeightsError(
            f"{path} does not fit maskrcnn_resnet50_fpn (91 COCO classes): {len(missing)} missing keys "
            f"{missing[:5]}, {len(unexpected)} unexpected keys {unexpected[:5]}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes
        raise BackboneWeightsError(f"{path} does not fit maskrcnn_resnet50_fpn: {exc}") from exc


class MaskRCNNDetector:
    """``ObjectDetector`` over torchvision's Mask R-CNN with operator-provided COCO weights; ``segment`` also
    returns its own instance masks (so GrabCut is not needed with it)."""

    name = "maskrcnn"

    def __init__(self, weights_path: Path | str, *, expected_sha256: str | None = None,
                 device: str | torch.device = "cpu", min_size: int = 800, max_size: int = 1333,
                 box_score_thresh: float = 0.05, detections_per_img: int = 100, rpn_proposals: int = 1000,
                 frozen_bn_eps: float = 0.0):
        path = Path(weights_path)
        state, digest = read_state_dict(path, expected_sha256)
        self.model = build_maskrcnn(min_size=min_size, max_size=max_size, box_score_thresh=box_score_thresh,
                                    detections_per_img=detections_per_img, rpn_proposals=rpn_proposals,
                                    frozen_bn_eps=frozen_bn_eps)
        load_strict(self.model, state, path)
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        self.model_id = f"maskrcnn-resnet50-fpn-coco@{digest[:12]}"

    def detect(self, image: np.ndarray, max_objects: int = DEFAULT_MAX_OBJECTS,
               min_score: float = DEFAULT_MIN_SCORE) -> list[Detection]:
        return [obj.detection for obj in self.segment(image, max_objects, min_score)]

    def segment(self, image: np.ndarray, max_objects: int = DEFAULT_MAX_OBJECTS,
                min_score: float = DEFAULT_MIN_SCORE) -> list[SegmentedObject]:
        """Detections with Mask R-CNN's own masks (probability >= 0.5), best first."""
        check_rgb_image(image)
        x = torch.from_numpy(np.array(image, order="C")).to(self.device).permute(2, 0, 1).float() / 255.0
        with torch.inference_mode():
            out = self.model([x])[0]
        boxes, scores = out["boxes"].cpu().numpy(), out["scores"].cpu().numpy()
        labels, masks = out["labels"].cpu().numpy(), out["masks"].cpu()
        objects: list[SegmentedObject] = []
        for i in np.argsort(-scores, kind="stable"):
            label = COCO91_TO_80.get(int(labels[i]))
            if label is None or scores[i] < min_score:  # "N/A" category ids carry no class
                continue
            det = Detection(box=tuple(float(v) for v in boxes[i]), score=float(scores[i]), label=label,
                            label_name=COCO80_CLASSES[label])
            objects.append(SegmentedObject(detection=det, mask=(masks[i, 0] >= MASK_THRESHOLD).numpy()))
            if len(objects) >= max_objects:
                break
        return objects
