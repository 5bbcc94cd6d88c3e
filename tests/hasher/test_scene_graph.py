"""Scene-graph features (paper §3.2): Hu moments vs OpenCV, eq. 1 / eq. 4 on hand-made boxes, background node,
truncation, and collate's padding masks."""

from __future__ import annotations

import math

import cv2  # reference Hu moments and shape drawing (opencv-contrib-python-headless)
import numpy as np
import pytest
import torch

from hasher.config import OscarConfig
from hasher.errors import SceneGraphError
from hasher.scene_graph import (
    build_scene_graph,
    collate,
    edge_features,
    geometry_features,
    hu_moments,
    log_hu,
    mask_iou_matrix,
    pair_index,
)
from hasher.types import Detection, SegmentedObject

SMALL = OscarConfig(crop_size=16, global_size=32, max_objects=3)


def _canvas(h: int = 120, w: int = 160) -> np.ndarray:
    return np.zeros((h, w), dtype=np.uint8)


def _shapes() -> dict[str, np.ndarray]:
    rect = _canvas()
    rect[20:50, 30:90] = 1
    ellipse = cv2.ellipse(_canvas(), (80, 60), (40, 18), 30, 0, 360, 1, -1)
    triangle = cv2.fillPoly(_canvas(), [np.array([[10, 100], [70, 20], [120, 110]], dtype=np.int32)], 1)
    ell = _canvas()
    ell[10:100, 20:40] = 1
    ell[80:100, 20:110] = 1
    return {"rect": rect, "ellipse": ellipse, "triangle": triangle, "L": ell}


def _obj(box, mask, score=0.9) -> SegmentedObject:
    return SegmentedObject(Detection(tuple(float(v) for v in box), score, 0, "thing"), mask.astype(bool))


def _box_obj(h, w, box, score=0.9) -> SegmentedObject:
    mask = np.zeros((h, w), dtype=bool)
    x1, y1, x2, y2 = box
    mask[y1:y2, x1:x2] = True
    return _obj(box, mask, score)


# ------------------------------------------------------------------------------------------------ Hu moments


@pytest.mark.parametrize("name", ["rect", "ellipse", "triangle", "L"])
def test_hu_moments_match_opencv(name):
    mask = _shapes()[name]
    expected = cv2.HuMoments(cv2.moments(mask, binaryImage=True)).ravel()
    np.testing.assert_allclose(hu_moments(mask.astype(bool)), expected, rtol=1e-7, atol=1e-15)


@pytest.mark.parametrize("name", ["ellipse", "triangle", "L"])
def test_hu_moments_translation_and_scale_invariant(name):
    mask = _shapes()[name].astype(bool)
    shifted = np.zeros((200, 230), dtype=bool)
    shifted[37:37 + mask.shape[0], 61:61 + mask.shape[1]] = mask  # same shape, elsewhere on a larger image
    np.testing.assert_allclose(hu_moments(shifted), hu_moments(mask), rtol=1e-9, atol=1e-18)
    big = np.kron(mask, np.ones((3, 3), dtype=bool))  # 3x upscaled copy
    # Scale invariance holds up to pixel discretisation; compare the log-scaled values actually fed to the model.
    np.testing.assert_allclose(log_hu(hu_moments(big))[:4], log_hu(hu_moments(mask))[:4], atol=0.05)


def test_hu_moments_empty_mask_and_log_scaling():
    assert np.all(hu_moments(np.zeros((5, 5), dtype=bool)) == 0)
    np.testing.assert_allclose(log_hu(np.array([1e-3, -1e-2, 0.0, 2.0])), [-3.0, 2.0, 0.0, math.log10(2.0)])
    assert np.all(np.isfinite(log_hu(np.array([1e-300, -1e-300]))))


# ------------------------------------------------------------------------------------------------ eq. 1 and eq. 4


def test_geometry_eq1():
    g = geometry_features(np.array([[10, 20, 30, 60], [0, 0, 100, 200]]), width=100, height=200)
    np.testing.assert_allclose(g, [[0.1, 0.1, 0.3, 0.3, 20 * 40 / 20000], [0, 0, 1, 1, 1]])


def test_edge_features_eq4_by_hand():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 40, 20]], dtype=float)  # centres (5, 5) and (30, 10)
    iou = np.array([[1.0, 0.25], [0.25, 1.0]])
    pairs = pair_index(2)
    assert pairs.tolist() == [[0, 1], [1, 0]]
    e = edge_features(boxes, iou, width=100, height=100, pairs=pairs)
    dist = math.hypot(25, 5) / math.hypot(100, 100)
    np.testing.assert_allclose(e[0], [25 / 10, 5 / 10, dist, 2.0, 2.0, math.atan2(5, 25), 0.25])
    np.testing.assert_allclose(e[1], [-25 / 20, -5 / 20, dist, 0.5, 0.5, math.atan2(-5, -25), 0.25])


def test_pair_index_covers_every_ordered_pair():
    pairs = pair_index(4)
    assert len(pairs) == 12 and len({tuple(p) for p in pairs}) == 12 and all(i != j for i, j in pairs)
    assert pair_index(1).shape == (0, 2)


def test_mask_iou_matrix_exact():
    masks = np.zeros((3, 20, 20), dtype=bool)
    masks[0, 0:10, 0:10] = True
    masks[1, 0:10, 5:15] = True  # overlaps mask 0 in 50 px, union 150
    iou = mask_iou_matrix(masks)  # mask 2 is empty
    np.testing.assert_allclose(iou, [[1, 1 / 3, 0], [1 / 3, 1, 0], [0, 0, 0]])


# ------------------------------------------------------------------------------------------------ the graph


def test_graph_has_background_first_and_all_edges():
    h, w = 60, 80
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    objs = [_box_obj(h, w, (10, 10, 30, 40)), _box_obj(h, w, (40, 5, 70, 25), 0.5)]
    g = build_scene_graph(image, objs, SMALL)
    assert g.num_nodes == 3 and g.crops.shape == (3, 3, 16, 16) and g.image.shape == (3, 32, 32)
    assert g.edges.shape == (6, 7) and g.edge_index.shape == (6, 2)
    torch.testing.assert_close(g.geometry[0], torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0]))
    # background mask = pixels no object covers; its Hu moments are those of that mask
    background = np.ones((h, w), dtype=bool)
    background[10:40, 10:30] = background[5:25, 40:70] = False
    torch.testing.assert_close(g.shape[0], torch.from_numpy(log_hu(hu_moments(background))).float())
    # background and objects are disjoint, so their IoU features are 0; objects here do not overlap either
    assert torch.all(g.edges[:, 6] == 0)


def test_graph_without_objects_is_background_only():
    g = build_scene_graph(np.zeros((20, 30, 3), dtype=np.uint8), [], SMALL)
    assert g.num_nodes == 1 and g.edges.shape == (0, 7) and g.edge_index.shape == (0, 2)


def test_graph_keeps_highest_scores_and_ignores_input_order():
    h, w = 50, 50
    image = np.full((h, w, 3), 128, dtype=np.uint8)
    objs = [_box_obj(h, w, (i * 10, i * 10, i * 10 + 8, i * 10 + 8), score=s) for i, s in enumerate([.2, .9, .5, .7])]
    g = build_scene_graph(image, objs, SMALL)  # max_objects = 3: the 0.2 object is dropped
    assert g.num_nodes == 4
    kept_x1 = sorted(round(float(v) * w) for v in g.geometry[1:, 0])
    assert kept_x1 == [10, 20, 30]
    g2 = build_scene_graph(image, objs[::-1], SMALL)
    for a, b in zip(g.__dict__.values(), g2.__dict__.values()):
        assert torch.equal(a, b)


def test_masked_crops_blank_outside_the_mask():
    h, w = 40, 40
    image = np.full((h, w, 3), 255, dtype=np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    mask[0:20, 0:10] = True  # only the left half of the 20x20 box
    config = SMALL.replace(crop_size=20)
    g = build_scene_graph(image, [_obj((0, 0, 20, 20), mask)], config)
    white = (1.0 - config.mean[0]) / config.std[0]
    crop = g.crops[1, 0]
    assert torch.allclose(crop[:, :9], torch.tensor(white)) and torch.all(crop[:, 11:] == 0)
    unmasked = build_scene_graph(image, [_obj((0, 0, 20, 20), mask)], config.replace(mask_crops=False))
    assert torch.allclose(unmasked.crops[1], torch.tensor(white))


def test_bad_inputs_are_refused():
    with pytest.raises(SceneGraphError):
        build_scene_graph(np.zeros((10, 10), dtype=np.uint8), [], SMALL)
    with pytest.raises(SceneGraphError):
        build_scene_graph(np.zeros((10, 10, 3), dtype=np.uint8), [_box_obj(5, 5, (0, 0, 2, 2))], SMALL)
    with pytest.raises(SceneGraphError):
        collate([])


def test_degenerate_and_out_of_image_boxes_stay_finite():
    h, w = 30, 30
    objs = [_obj((25, 25, 60, 60), np.ones((h, w), dtype=bool)), _obj((5, 5, 5, 5), np.zeros((h, w), dtype=bool))]
    g = build_scene_graph(np.zeros((h, w, 3), dtype=np.uint8), objs, SMALL)
    for t in (g.crops, g.shape, g.geometry, g.edges):
        assert torch.all(torch.isfinite(t))
    assert float(g.geometry[:, :4].max()) <= 1.0


# ------------------------------------------------------------------------------------------------ collate


def test_collate_pads_and_masks():
    h, w = 40, 50
    image = np.zeros((h, w, 3), dtype=np.uint8)
    g0 = build_scene_graph(image, [], SMALL)
    g2 = build_scene_graph(image, [_box_obj(h, w, (0, 0, 10, 10)), _box_obj(h, w, (20, 20, 40, 30), 0.3)], SMALL)
    batch = collate([g0, g2])
    assert batch.images.shape == (2, 3, 32, 32) and batch.crops.shape == (2, 3, 3, 16, 16)
    assert batch.node_padding.tolist() == [[False, True, True], [False, False, False]]
    assert batch.edge_padding.tolist() == [[True] * 6, [False] * 6]
    assert torch.all(batch.crops[0, 1:] == 0) and torch.all(batch.shape[0, 1:] == 0)
    assert torch.all(batch.edges[0] == 0) and torch.all(batch.edge_index[0] == 0)
    torch.testing.assert_close(batch.edges[1], g2.edges)
    assert torch.equal(batch.edge_index[1], g2.edge_index)
    only_background = collate([g0])
    assert only_background.edges.shape == (1, 0, 7) and only_background.edge_padding.shape == (1, 0)
