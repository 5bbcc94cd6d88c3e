"""GrabCut masks from boxes: follow the object inside its box, are reproducible, fall back to the box; 0 iterations
gives the boxes themselves (the detector study's box masks)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from hasher.api import image_scene_graph
from hasher.config import OscarConfig
from hasher.detect.masks import background_mask, box_mask, grabcut_mask, segment
from hasher.errors import ConfigError, SceneGraphError
from hasher.scene_graph import hu_moments, log_hu
from hasher.types import Detection, SegmentedObject


def det(box: tuple[float, float, float, float], label: int = 0) -> Detection:
    return Detection(box=box, score=0.9, label=label, label_name="person")


@pytest.fixture(scope="module")
def disk_scene() -> tuple[np.ndarray, np.ndarray]:
    """A red disk on a noisy grey-green background (noise: GrabCut needs colour statistics, not flat fields)."""
    rng = np.random.default_rng(7)
    image = (rng.normal(0, 12, (240, 320, 3)) + [90, 120, 90]).clip(0, 255).astype(np.uint8)
    truth = np.zeros((240, 320), np.uint8)
    cv2.circle(truth, (200, 110), 50, 1, thickness=-1)
    image[truth.astype(bool)] = (rng.normal(0, 12, (int(truth.sum()), 3)) + [200, 40, 40]).clip(0, 255)
    return image, truth.astype(bool)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_mask_follows_the_object(disk_scene) -> None:
    image, truth = disk_scene
    (obj,) = segment(image, [det((140, 50, 262, 172))])
    assert obj.mask.shape == truth.shape and obj.mask.dtype == bool
    assert iou(obj.mask, truth) > 0.85
    assert not obj.mask[:, :140].any() and not obj.mask[:, 262:].any()  # never outside its box


def test_masks_are_reproducible(disk_scene) -> None:
    image, _ = disk_scene
    dets = [det((140, 50, 262, 172)), det((10.5, 10.2, 120.7, 200.9))]
    first, second = segment(image, dets), segment(image, dets)
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(first, second, strict=True))
    assert [o.detection for o in first] == dets


def test_box_covering_whole_image_still_segments(disk_scene) -> None:
    image, truth = disk_scene
    crop = image[55:165, 145:255]  # the disk fills most of this crop; no pixels outside the box
    (obj,) = segment(crop, [det((0, 0, 110, 110))])
    assert obj.mask.shape == crop.shape[:2]
    assert iou(obj.mask, truth[55:165, 145:255]) > 0.7


def test_degenerate_cases_fall_back_to_the_box(disk_scene) -> None:
    image, _ = disk_scene
    tiny = det((30, 30, 32, 31))  # too small to segment
    assert grabcut_mask(image, tiny.box) is None
    flat = np.full((100, 100, 3), 128, np.uint8)  # nothing to tell apart
    for box, img in ((tiny.box, image), ((20, 20, 60, 70), flat)):
        (obj,) = segment(img, [det(box)])
        inside = box_mask(box, *img.shape[:2])
        assert not (obj.mask & ~inside).any()
        if img is flat:
            assert obj.mask.sum() >= 0.05 * inside.sum()
    (obj,) = segment(image, [det(tiny.box)])
    assert np.array_equal(obj.mask, box_mask(tiny.box, *image.shape[:2]))


def test_box_mask_clips_and_covers() -> None:
    mask = box_mask((-5.0, 2.2, 7.1, 400.0), 10, 8)
    assert mask.shape == (10, 8)
    assert mask[2:, :].all() and not mask[:2].any()


def test_background_mask() -> None:
    a = np.zeros((4, 5), bool)
    a[:2, :2] = True
    b = np.zeros((4, 5), bool)
    b[1:3, 1:4] = True
    objs = [SegmentedObject(det((0, 0, 2, 2)), a), SegmentedObject(det((1, 1, 4, 3)), b)]
    assert np.array_equal(background_mask(objs, (4, 5, 3)), ~(a | b))
    assert background_mask([], (4, 5)).all()
    with pytest.raises(SceneGraphError):
        background_mask([SegmentedObject(det((0, 0, 1, 1)), np.zeros((3, 3), bool))], (4, 5))


def test_astronaut_mask_is_a_person_not_a_box(shared_photos: Path) -> None:
    image = np.asarray(Image.open(shared_photos / "skimage" / "astronaut.png").convert("RGB"))
    box = (8.3, 8.8, 368.9, 512.0)  # CenterNet's person box
    (obj,) = segment(image, [det(box)])
    fill = obj.mask.sum() / box_mask(box, 512, 512).sum()
    assert 0.3 < fill < 0.9
    assert obj.mask[300, 150]  # the suit's chest
    assert not obj.mask[60, 40]  # the flag in the top-left corner of the box


def test_zero_iterations_gives_box_masks(disk_scene) -> None:
    """``grabcut_iterations=0``: every object keeps its filled box, where GrabCut would have cut the disk out."""
    image, truth = disk_scene
    dets = [det((140, 50, 262, 172)), det((10.5, 10.2, 120.7, 200.9)), det((30, 30, 32, 31))]
    boxes = segment(image, dets, iterations=0)
    assert [o.detection for o in boxes] == dets
    for obj, d in zip(boxes, dets, strict=True):
        assert np.array_equal(obj.mask, box_mask(d.box, *image.shape[:2]))
    grabcut = segment(image, dets[:1])[0].mask
    assert iou(grabcut, truth) > 0.85 and iou(boxes[0].mask, truth) < 0.65
    with pytest.raises(SceneGraphError, match="iterations"):
        segment(image, dets, iterations=-1)


def test_box_masks_reach_the_scene_graph(disk_scene) -> None:
    """Through ``image_scene_graph`` (what the hasher runs): the config's 0 iterations give the box's shape node."""
    image, _ = disk_scene
    box = (140.0, 50.0, 262.0, 172.0)

    class OneBox:  # the fixed box a detector would give for the disk; GrabCut and the graph builder are real
        model_id = "one-box"

        def detect(self, rgb: np.ndarray, max_objects: int = 16, min_score: float = 0.25) -> list[Detection]:
            return [det(box)]

    box_shape = log_hu(hu_moments(box_mask(box, *image.shape[:2])))
    config = OscarConfig(max_objects=8)
    assert config.grabcut_iterations == 2  # the default (what the shipped codes were made with) is unchanged
    boxed = image_scene_graph(image, OneBox(), config.replace(grabcut_iterations=0))
    cut = image_scene_graph(image, OneBox(), config)
    assert np.allclose(boxed.shape[1].numpy(), box_shape.astype(np.float32))
    assert not np.allclose(cut.shape[1].numpy(), box_shape.astype(np.float32), atol=1e-2)
    with pytest.raises(ConfigError, match="grabcut_iterations"):
        OscarConfig(grabcut_iterations=-1)
