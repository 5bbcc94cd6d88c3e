"""CenterNet port: finds the obvious objects, equals the original TF.js graph, maps boxes back, is deterministic,
and refuses weights that are not the pinned file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from hasher.detect import ObjectDetector, create_detector
from hasher.detect.centernet import (
    CONFIG_PATH,
    WEIGHTS_DIR,
    CenterNetDetector,
    Letterbox,
    letterbox,
    load_centernet,
    nms,
)
from hasher.detect.centernet_net import _same_pad, upsample2x_legacy
from hasher.errors import BackboneWeightsError, HasherError, ImageDecodeError, WeightsIntegrityError

REFERENCE = Path(__file__).parent / "data" / "centernet_reference.json"
COMPARE_FROM = 0.06  # reference rows are cut at 0.05; compare rows safely above the cut


@pytest.fixture(scope="module")
def detector() -> CenterNetDetector:
    return CenterNetDetector()


def load_photo(photos: Path, rel: str) -> np.ndarray:
    return np.asarray(Image.open(photos / rel).convert("RGB"))


# --- graph-level pieces ------------------------------------------------------------------------------------------

def test_same_padding_is_tensorflows() -> None:
    assert _same_pad(512, 3, 2) == (0, 1)  # TF puts the odd pixel after; PyTorch padding=1 would not
    assert _same_pad(64, 5, 2) == (1, 2)
    assert _same_pad(128, 5, 1) == (2, 2)


def test_legacy_bilinear_upsample() -> None:
    x = torch.tensor([[0.0, 2.0], [4.0, 6.0]]).reshape(1, 1, 2, 2)
    expected = torch.tensor([[0, 1, 2, 2], [2, 3, 4, 4], [4, 5, 6, 6], [4, 5, 6, 6]], dtype=torch.float32)
    assert torch.equal(upsample2x_legacy(x)[0, 0], expected)


def test_weights_file_matches_its_config() -> None:
    config = json.loads(CONFIG_PATH.read_text())
    blob = (WEIGHTS_DIR / config["weights"]["file"]).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == config["weights"]["sha256"]
    assert len(config["classes"]) == 80 and config["classes"][41] == "cup"


# --- weights integrity -------------------------------------------------------------------------------------------

def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    src = WEIGHTS_DIR / "centernet_mobilenetv3_coco.safetensors"
    bad = tmp_path / src.name
    shutil.copyfile(src, bad)
    data = bytearray(bad.read_bytes())
    data[-10] ^= 0x01  # one bit of one weight
    bad.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError):
        load_centernet(bad)
    with pytest.raises(WeightsIntegrityError):
        CenterNetDetector(expected_sha256="0" * 64)


def test_missing_or_unfit_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BackboneWeightsError):
        load_centernet(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(BackboneWeightsError):
        load_centernet(junk, expected_sha256=hashlib.sha256(junk.read_bytes()).hexdigest())


# --- interface ---------------------------------------------------------------------------------------------------

def test_factory_and_protocol(detector: CenterNetDetector) -> None:
    assert isinstance(detector, ObjectDetector)
    assert detector.name == "centernet" and detector.model_id.startswith("centernet-mobilenetv3-coco@")
    assert isinstance(create_detector(), CenterNetDetector)
    with pytest.raises(HasherError):
        create_detector("yolo")


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32),
                                 np.zeros((0, 8, 3), np.uint8), "image.png"])
def test_rejects_non_rgb_arrays(detector: CenterNetDetector, bad) -> None:
    with pytest.raises(ImageDecodeError):
        detector.detect(bad)


def test_blank_image_has_no_objects(detector: CenterNetDetector) -> None:
    assert detector.detect(np.zeros((240, 320, 3), np.uint8)) == []


# --- real photos -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rel, label, min_score", [
    ("skimage/astronaut.png", "person", 0.5),
    ("skimage/coffee.png", "cup", 0.4),
    ("skimage/motorcycle_left.png", "motorcycle", 0.4),
])
def test_finds_the_obvious_object(detector: CenterNetDetector, shared_photos: Path, rel: str, label: str,
                                  min_score: float) -> None:
    image = load_photo(shared_photos, rel)
    dets = detector.detect(image)
    assert dets, f"nothing found in {rel}"
    top = dets[0]
    assert (top.label_name, top.label) == (label, detector.class_names.index(label))
    assert top.score >= min_score
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    h, w = image.shape[:2]
    x1, y1, x2, y2 = top.box
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
    assert (x2 - x1) * (y2 - y1) > 0.15 * w * h  # the subject, not a detail


def test_matches_tfjs_reference(detector: CenterNetDetector, shared_photos: Path) -> None:
    """Raw graph outputs of the port against TF.js 4.22 (CPU) on the same letterboxed inputs."""
    reference = json.loads(REFERENCE.read_text())
    for item in reference["images"]:
        boxed, _ = letterbox(load_photo(shared_photos, item["photo"]))
        assert hashlib.sha256(boxed.tobytes()).hexdigest() == item["input_sha256"], (
            f"{item['photo']}: preprocessing changed; regenerate the fixture (scripts/centernet_reference.mjs)")
        x = torch.from_numpy(boxed).permute(2, 0, 1)[None].float()
        with torch.inference_mode():
            det, keypoints, wh = detector.model(x)
        np.testing.assert_allclose(keypoints.amax(dim=(0, 2, 3)).numpy(), item["keypoints_max_per_class"],
                                   atol=1e-5)
        np.testing.assert_allclose(wh.mean(dim=(0, 2, 3)).numpy(), item["wh_mean"], atol=1e-3)
        ours = det[0].numpy()
        ref_rows = [r for r in item["detections"] if r[4] >= COMPARE_FROM]
        assert ref_rows
        for row in ref_rows:  # match by class and box: equal scores may come in either order
            same_class = ours[ours[:, 5] == row[5]]
            err = np.abs(same_class[:, :4] - np.array(row[:4])).max(axis=1)
            best = int(np.argmin(err))
            assert err[best] < 0.05, f"{item['photo']}: no box close to reference {row}"
            assert abs(same_class[best, 4] - row[4]) < 1e-4


def test_smaller_input_size_finds_the_same_subjects(detector: CenterNetDetector, shared_photos: Path) -> None:
    """The hasher runs CenterNet at ``OscarConfig.detect_size`` (384): same top object, box close to 512's."""
    from hasher.config import OscarConfig

    small = CenterNetDetector(input_size=OscarConfig().detect_size)
    assert small.model_id == f"{detector.model_id}-{small.input_size}px"
    for rel in ("skimage/astronaut.png", "skimage/coffee.png", "skimage/motorcycle_left.png"):
        image = load_photo(shared_photos, rel)
        full, reduced = detector.detect(image)[0], small.detect(image)[0]
        assert reduced.label == full.label
        h, w = image.shape[:2]
        np.testing.assert_allclose(reduced.box, full.box, atol=0.08 * max(h, w))
    with pytest.raises(ValueError):
        CenterNetDetector(input_size=100)


def test_boxes_follow_the_object_in_original_coordinates(detector: CenterNetDetector, shared_photos: Path) -> None:
    image = load_photo(shared_photos, "skimage/coffee.png")  # 600 x 400: letterboxed with bars top and bottom
    h, w = image.shape[:2]
    _, lb = letterbox(image)
    assert (lb.dx, lb.dy) == (0, (512 - round(h * 512 / w)) // 2)
    cup = detector.detect(image)[0]
    assert cup.label_name == "cup"
    # Same scene at twice the size: the box doubles (it is in the caller's pixels, not the network's).
    big = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    cup2 = detector.detect(big)[0]
    assert cup2.label_name == "cup"
    np.testing.assert_allclose(np.array(cup2.box) / 2, cup.box, atol=0.01 * w)
    # Same scene 100 px down in a square canvas (the network input barely changes): the box moves 100 px down.
    canvas = np.zeros((w, w, 3), np.uint8)
    canvas[100:100 + h] = image
    cup3 = detector.detect(canvas)[0]
    assert cup3.label_name == "cup"
    np.testing.assert_allclose(cup3.box, np.array(cup.box) + [0, 100, 0, 100], atol=0.01 * w)


def test_tall_image_boxes_are_the_unletterboxed_network_boxes(detector: CenterNetDetector,
                                                              shared_photos: Path) -> None:
    image = load_photo(shared_photos, "thorn_perception/image3.jpg")  # 300 x 348 portrait: bars left and right
    h, w = image.shape[:2]
    assert h > w
    boxed, lb = letterbox(image)
    assert lb.dx > 0 and lb.dy == 0
    raw = detector.raw(boxed[None])[0]
    raw = raw[raw[:, 4] >= 0.1]
    expected = (raw[:, :4] - [lb.dx, lb.dy, lb.dx, lb.dy]) / (512 / h)
    expected[:, 0::2] = expected[:, 0::2].clip(0, w)
    expected[:, 1::2] = expected[:, 1::2].clip(0, h)
    dets = detector.detect(image, max_objects=100, min_score=0.1)
    assert dets
    for det in dets:
        assert np.abs(expected - np.array(det.box)).max(axis=1).min() < 1e-3
        assert 0 <= det.box[0] < det.box[2] <= w and 0 <= det.box[1] < det.box[3] <= h


def test_letterbox_round_trip() -> None:
    lb = Letterbox(scale=0.5, dx=10, dy=0, width=1004, height=1024)
    original = np.array([[100.0, 200.0, 300.0, 400.0], [-50.0, -5.0, 2000.0, 600.0]])
    in_net = original * 0.5 + np.array([10, 0, 10, 0])
    np.testing.assert_allclose(lb.to_original(in_net), [[100, 200, 300, 400], [0, 0, 1004, 600]])


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=float)
    assert nms(boxes, np.array([0.5, 0.9, 0.4]), 0.5).tolist() == [1, 2]


def test_deterministic_and_batch_consistent(detector: CenterNetDetector, shared_photos: Path) -> None:
    a = load_photo(shared_photos, "skimage/astronaut.png")
    b = load_photo(shared_photos, "skimage/motorcycle_left.png")
    first, second = detector.detect(b), detector.detect(b)
    assert first == second  # bit-identical on CPU
    batch = detector.detect_batch([a, b])
    for single, batched in zip([detector.detect(a), first], batch, strict=True):
        assert [d.label for d in single] == [d.label for d in batched]
        np.testing.assert_allclose([d.box for d in single], [d.box for d in batched], atol=1e-2)
        np.testing.assert_allclose([d.score for d in single], [d.score for d in batched], atol=1e-5)


def test_the_config_score_threshold_reaches_the_scene_graph(shared_photos: Path) -> None:
    """``OscarConfig.detect_min_score`` is what the hasher keeps: a lower one gives the graph the detector's extra
    objects, node for node; weights files written before the field load with the shipped 0.25."""
    from hasher.api import image_scene_graph
    from hasher.config import OscarConfig
    from hasher.detect import DEFAULT_MIN_SCORE
    from hasher.errors import ConfigError

    config = OscarConfig(max_objects=16)
    assert config.detect_min_score == DEFAULT_MIN_SCORE == 0.25
    legacy = {k: v for k, v in config.to_dict().items() if k != "detect_min_score"}
    assert OscarConfig.from_dict(legacy) == config
    small = CenterNetDetector(input_size=config.detect_size)
    grew = 0
    for rel in ("skimage/coffee.png", "skimage/motorcycle_left.png", "skimage/astronaut.png"):
        image = load_photo(shared_photos, rel)
        counts = {}
        for score in (0.25, 0.1):
            graph = image_scene_graph(image, small, config.replace(detect_min_score=score))
            expected = len(small.detect(image, max_objects=16, min_score=score))
            assert graph.num_nodes == expected + 1  # + the background node
            counts[score] = expected
        assert counts[0.1] >= counts[0.25]
        grew += counts[0.1] > counts[0.25]
    assert grew >= 1
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="detect_min_score"):
            OscarConfig(detect_min_score=bad)
