"""Mask R-CNN loads operator-provided weights strictly from a local file (random weights here: none ship)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from hasher.detect import ObjectDetector, create_detector
from hasher.detect.maskrcnn import MaskRCNNDetector, build_maskrcnn, load_strict
from hasher.errors import BackboneWeightsError, WeightsIntegrityError

# Tiny inputs and few proposals keep the test fast (the architecture and the weights are the full ones).
SMALL = {"min_size": 160, "max_size": 160, "box_score_thresh": 0.0, "detections_per_img": 10, "rpn_proposals": 50}


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO-shaped state dict with random values, saved as an operator's file would be."""
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path_factory.mktemp("maskrcnn") / "maskrcnn_random.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def detector(random_weights: Path) -> MaskRCNNDetector:
    return MaskRCNNDetector(random_weights, **SMALL)


def test_loads_and_detects(detector: MaskRCNNDetector, random_weights: Path) -> None:
    assert isinstance(detector, ObjectDetector)
    digest = hashlib.sha256(random_weights.read_bytes()).hexdigest()
    assert detector.model_id == f"maskrcnn-resnet50-fpn-coco@{digest[:12]}"
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    dets = detector.detect(image, max_objects=5, min_score=0.0)
    assert 0 < len(dets) <= 5
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    for d in dets:
        assert 0 <= d.label < 80 and d.label_name
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 120
    objects = detector.segment(image, max_objects=5, min_score=0.0)
    assert [o.detection for o in objects] == dets
    assert all(o.mask.shape == (120, 160) and o.mask.dtype == bool for o in objects)


def test_factory_builds_it(random_weights: Path) -> None:
    assert isinstance(create_detector("maskrcnn", weights_path=random_weights, **SMALL), MaskRCNNDetector)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError, match="not bundled"):
        MaskRCNNDetector(tmp_path / "maskrcnn_coco.pth")


def test_wrong_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(BackboneWeightsError, match=r"missing keys .*unexpected keys \['fc.weight'\]"):
        MaskRCNNDetector(path)


def test_wrong_shapes_are_refused(random_weights: Path) -> None:
    state = torch.load(random_weights, weights_only=True)
    state["roi_heads.box_predictor.cls_score.weight"] = torch.zeros(2, 1024)  # a 2-class head
    with pytest.raises(BackboneWeightsError, match="does not fit"):
        load_strict(build_maskrcnn(), state, random_weights)


def test_pinned_sha256_and_unreadable_files(tmp_path: Path, random_weights: Path) -> None:
    with pytest.raises(WeightsIntegrityError):
        MaskRCNNDetector(random_weights, expected_sha256="0" * 64)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneWeightsError):
        MaskRCNNDetector(junk)
