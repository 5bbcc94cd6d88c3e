"""Image + segmented objects -> fully connected scene graph (OSCAR-Net paper §3.2). numpy / OpenCV / torch, no network.

Nodes are the (at most ``max_objects``) detected objects plus the *background* as one more object: its mask is every
pixel no object covers, its box the whole image. The background always sits at node index 0, so an image with no
detections still has a one-node graph. Each node carries

* ``crops``: the box crop resized to ``crop_size`` (pixels outside the mask blanked when ``mask_crops``), already
  normalised for the backbone -> visual embedding ``Ev``;
* ``shape``: the 7 Hu moments of the mask, log-scaled as ``sign(h) * log10|h|`` (0 where ``h == 0``) -> ``Es``;
* ``geometry``: eq. 1, ``[x1/W, y1/H, x2/W, y2/H, w*h/(W*H)]`` -> ``Eg``.

Every ordered pair ``(i, j), i != j`` is an edge with the 7 features of eq. 4 (see ``edge_features``) -> ``Er``.
``collate`` pads graphs with different node counts into one batch plus key-padding masks (True = padding, the
``torch.nn.MultiheadAttention`` convention).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from hasher.config import OscarConfig
from hasher.errors import SceneGraphError
from hasher.types import SegmentedObject

__all__ = ["SceneGraph", "SceneGraphBatch", "build_scene_graph", "collate", "edge_features", "geometry_features",
           "hu_moments", "log_hu", "mask_iou_matrix", "pair_index"]

_MIN_SIDE = 1.0  # boxes are at least one pixel wide/high, so eq. 4's divisions stay finite


@dataclass(frozen=True)
class SceneGraph:
    """One image's graph. ``K = objects + 1`` nodes (background first); ``E = K * (K - 1)`` ordered edges."""

    image: torch.Tensor  # [3, G, G] whole image for FG, normalised
    crops: torch.Tensor  # [K, 3, S, S] normalised object crops
    shape: torch.Tensor  # [K, 7] log-scaled Hu moments
    geometry: torch.Tensor  # [K, 5] eq. 1
    edges: torch.Tensor  # [E, 7] eq. 4
    edge_index: torch.Tensor  # [E, 2] long, (i, j) node indices of each edge

    @property
    def num_nodes(self) -> int:
        return int(self.crops.shape[0])


@dataclass(frozen=True)
class SceneGraphBatch:
    """Padded batch of ``B`` graphs. Padding masks are True where a slot is padding (ignored by attention)."""

    images: torch.Tensor  # [B, 3, G, G]
    crops: torch.Tensor  # [B, Kmax, 3, S, S]
    shape: torch.Tensor  # [B, Kmax, 7]
    geometry: torch.Tensor  # [B, Kmax, 5]
    node_padding: torch.Tensor  # [B, Kmax] bool
    edges: torch.Tensor  # [B, Emax, 7]
    edge_index: torch.Tensor  # [B, Emax, 2] long; padded edges point at node 0 (valid, then masked out)
    edge_padding: torch.Tensor  # [B, Emax] bool

    def to(self, device: torch.device | str) -> SceneGraphBatch:
        return SceneGraphBatch(**{k: v.to(device) for k, v in self.__dict__.items()})


# ------------------------------------------------------------------------------------------------ node features


def hu_moments(mask: np.ndarray) -> np.ndarray:
    """The 7 Hu invariant moments of a binary mask (float64), as defined by Hu (1962), via ``cv2.HuMoments``.

    Computed on the mask's tight bounding region only: central moments do not depend on the offset, this keeps the
    cost proportional to the object instead of the image, and the same shape anywhere gives bit-identical values.
    An empty mask gives zeros.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return np.zeros(7)
    region = np.ascontiguousarray(mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]).view(np.uint8)
    return cv2.HuMoments(cv2.moments(region, binaryImage=True)).ravel().astype(np.float64)


def log_hu(hu: np.ndarray) -> np.ndarray:
    """``sign(h) * log10|h|`` with 0 for ``h == 0``: Hu moments span ~30 orders of magnitude, logs make them usable.

    ``|h|`` is floored at 1e-30 so float noise around zero (symmetric shapes) cannot produce -inf.
    """
    hu = np.asarray(hu, dtype=np.float64)
    return np.sign(hu) * np.log10(np.maximum(np.abs(hu), 1e-30))


def _clip_box(box: Sequence[float], width: int, height: int) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
    y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
    return x1, y1, x2, y2


def geometry_features(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Eq. 1: ``[x1/W, y1/H, x2/W, y2/H, w*h/(W*H)]`` for boxes ``[K, 4]`` (x1, y1, x2, y2) in pixels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return np.stack([boxes[:, 0] / width, boxes[:, 1] / height, boxes[:, 2] / width, boxes[:, 3] / height,
                     w * h / (width * height)], axis=1)


# ------------------------------------------------------------------------------------------------ edge features


def pair_index(k: int) -> np.ndarray:
    """All ordered pairs ``(i, j), i != j`` of ``k`` nodes, row-major: ``[k*(k-1), 2]``."""
    i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    keep = i != j
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)


def mask_iou_matrix(masks: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``[K, H, W]`` bool masks, exact, on bit-packed masks (8x less memory than a float matmul)."""
    k = masks.shape[0]
    packed = np.packbits(masks.reshape(k, -1), axis=1)
    areas = np.bitwise_count(packed).sum(axis=1, dtype=np.int64)
    iou = np.zeros((k, k))
    for a in range(k):
        inter = np.bitwise_count(packed[a] & packed[a + 1:]).sum(axis=1, dtype=np.int64)
        union = areas[a] + areas[a + 1:] - inter
        row = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        iou[a, a + 1:] = row
        iou[a + 1:, a] = row
    np.fill_diagonal(iou, np.where(areas > 0, 1.0, 0.0))
    return iou


def edge_features(boxes: np.ndarray, iou: np.ndarray, width: int, height: int, pairs: np.ndarray) -> np.ndarray:
    """Eq. 4 for each ordered pair (i, j): relation of object j seen from object i.

    ``[dx/sqrt(A_i), dy/sqrt(A_i), sqrt(dx^2 + dy^2)/sqrt(W^2 + H^2), w_j/w_i, h_j/h_i, atan2(dy, dx), IoU(m_i, m_j)]``
    with ``dx, dy`` the offset from box i's centre to box j's centre and ``A_i = w_i * h_i``; widths/heights are
    floored at one pixel. The angle is in radians, image coordinates (y down).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(pairs) == 0:
        return np.zeros((0, 7))
    w = np.maximum(boxes[:, 2] - boxes[:, 0], _MIN_SIDE)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], _MIN_SIDE)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    i, j = pairs[:, 0], pairs[:, 1]
    dx, dy = cx[j] - cx[i], cy[j] - cy[i]
    root_area = np.sqrt(w[i] * h[i])
    return np.stack([
        dx / root_area,
        dy / root_area,
        np.hypot(dx, dy) / math.hypot(width, height),
        w[j] / w[i],
        h[j] / h[i],
        np.arctan2(dy, dx),
        iou[i, j],
    ], axis=1)


# ------------------------------------------------------------------------------------------------ the graph


def _resize(chw: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(chw[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def _select(objects: Sequence[SegmentedObject], limit: int) -> list[SegmentedObject]:
    # Highest scores first, box as tie-break: the graph must not depend on the detector's output order.
    ranked = sorted(objects, key=lambda o: (-o.detection.score, tuple(o.detection.box)))
    return ranked[:limit]


def build_scene_graph(image: np.ndarray, objects: Sequence[SegmentedObject], config: OscarConfig) -> SceneGraph:
    """Build the scene graph of an ``[H, W, 3]`` uint8 RGB image and its segmented objects."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SceneGraphError(f"expected an [H, W, 3] uint8 RGB array, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    kept = _select(objects, config.max_objects)
    for obj in kept:
        if obj.mask.shape != (height, width):
            raise SceneGraphError(f"mask shape {obj.mask.shape} differs from the image's {(height, width)}")

    object_masks = [np.asarray(o.mask, dtype=bool) for o in kept]
    covered = np.logical_or.reduce(object_masks) if object_masks else np.zeros((height, width), dtype=bool)
    masks = np.stack([~covered, *object_masks])  # background first
    boxes = np.array([(0.0, 0.0, float(width), float(height))]
                     + [_clip_box(o.detection.box, width, height) for o in kept])

    # One contiguous CHW float copy, normalised in place: (p / 255 - mean) / std == (p - 255 mean) / (255 std).
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous().float()
    mean = torch.tensor(config.mean, dtype=torch.float32).view(-1, 1, 1) * 255.0
    std = torch.tensor(config.std, dtype=torch.float32).view(-1, 1, 1) * 255.0
    normalised = pixels.sub_(mean).div_(std)
    crops = []
    for box, mask in zip(boxes, masks):
        x1, y1 = int(math.floor(box[0])), int(math.floor(box[1]))
        x2, y2 = max(int(math.ceil(box[2])), x1 + 1), max(int(math.ceil(box[3])), y1 + 1)
        x2, y2 = min(x2, width), min(y2, height)
        x1, y1 = min(x1, x2 - 1), min(y1, y2 - 1)
        crop = normalised[:, y1:y2, x1:x2]
        if config.mask_crops:  # blanked pixels become 0 = the mean colour after normalisation
            crop = crop * torch.from_numpy(mask[y1:y2, x1:x2]).to(crop.dtype)
        crops.append(_resize(crop, config.crop_size))

    pairs = pair_index(len(boxes))
    iou = mask_iou_matrix(masks) if len(pairs) else np.zeros((len(boxes),) * 2)
    return SceneGraph(
        image=_resize(normalised, config.global_size),
        crops=torch.stack(crops),
        shape=torch.from_numpy(np.stack([log_hu(hu_moments(m)) for m in masks])).float(),
        geometry=torch.from_numpy(geometry_features(boxes, width, height)).float(),
        edges=torch.from_numpy(edge_features(boxes, iou, width, height, pairs)).float(),
        edge_index=torch.from_numpy(pairs),
    )


def collate(graphs: Sequence[SceneGraph]) -> SceneGraphBatch:
    """Pad graphs to the batch's largest node / edge count; padding slots are zero and flagged in the masks."""
    if not graphs:
        raise SceneGraphError("cannot collate an empty list of scene graphs")
    b = len(graphs)
    k_max = max(g.num_nodes for g in graphs)
    e_max = max(int(g.edges.shape[0]) for g in graphs)
    first = graphs[0]
    crops = first.crops.new_zeros((b, k_max, *first.crops.shape[1:]))
    shape = first.shape.new_zeros((b, k_max, first.shape.shape[1]))
    geometry = first.geometry.new_zeros((b, k_max, first.geometry.shape[1]))
    node_padding = torch.ones((b, k_max), dtype=torch.bool)
    edges = first.edges.new_zeros((b, e_max, first.edges.shape[1]))
    edge_index = torch.zeros((b, e_max, 2), dtype=torch.long)
    edge_padding = torch.ones((b, e_max), dtype=torch.bool)
    for n, g in enumerate(graphs):
        k, e = g.num_nodes, int(g.edges.shape[0])
        crops[n, :k], shape[n, :k], geometry[n, :k] = g.crops, g.shape, g.geometry
        node_padding[n, :k] = False
        edges[n, :e], edge_index[n, :e] = g.edges, g.edge_index
        edge_padding[n, :e] = False
    return SceneGraphBatch(torch.stack([g.image for g in graphs]), crops, shape, geometry, node_padding,
                           edges, edge_index, edge_padding)
