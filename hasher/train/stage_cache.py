"""A disk cache of what the *frozen part* of both CNNs makes of each image, cut before their last stage(s), so that
the CPU path can fine-tune those last stages with the head without re-running the detector, GrabCut and the first
stages (issue 17, "fine-tune the last EfficientNet stage on cached intermediate maps").

Each image goes once through decode -> CenterNet -> GrabCut -> scene graph -> the stem and the first blocks of both
EfficientNet-Lite0 CNNs; what comes out (the global map and every real crop's map at the cut, float16) is stored as
one ``.npz`` keyed by the image's sha256, under a folder named by the preprocessing fingerprint *and* the cut. With
the default cut (the last stage: one MBConv block 192 -> 320 at 7x7) an image costs ~19 KB for the global map and
768 values per object. Extraction is resumable and shardable (``--shard I/N``: run N processes); the cache folder can
live outside the work tree, and nothing depends on it being there (a missing entry is extracted again).

:func:`tail_features` runs the rest (the tuned blocks, the head convolution and its batch norm) to give the same
``SceneFeatures`` that ``OscarNet.extract`` gives for the whole image, up to the float16 rounding of the stored map
(``tests/hasher/test_stage_cache.py`` checks it against the full network).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hasher.backbone import EfficientNetLite0
from hasher.config import OscarConfig
from hasher.errors import ConfigError
from hasher.model import OscarNet, SceneFeatures
from hasher.train.features import NpzStore, preprocessing_fingerprint

log = logging.getLogger(__name__)

#: EfficientNet-Lite0's blocks per stage (stage i holds the next LITE0_REPEATS[i] blocks).
LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)


def cut_block(stages: int) -> int:
    """Index of the first block of the last ``stages`` stages (the blocks from there on are tuned)."""
    if not 1 <= stages <= len(LITE0_REPEATS):
        raise ConfigError(f"EfficientNet-Lite0 has {len(LITE0_REPEATS)} stages; cannot cut before the last {stages}")
    return sum(LITE0_REPEATS[:-stages])


def _lite0(cnn: torch.nn.Module) -> EfficientNetLite0:
    if not isinstance(cnn, EfficientNetLite0):
        raise ConfigError(f"the stage cache knows EfficientNet-Lite0's stages, not {type(cnn).__name__}'s")
    return cnn


def head_of_cut(cnn: torch.nn.Module, x: torch.Tensor, first: int) -> torch.Tensor:
    """The frozen part: stem and blocks ``[0, first)``."""
    net = _lite0(cnn)
    x = F.relu6(net._bn0(net._conv_stem(x)))
    for block in net._blocks[:first]:
        x = block(x)
    return x


def tail_of_cut(cnn: torch.nn.Module, x: torch.Tensor, first: int) -> torch.Tensor:
    """The tuned part: blocks ``[first, end)``, the head convolution and its batch norm (the feature map)."""
    net = _lite0(cnn)
    for block in net._blocks[first:]:
        x = block(x)
    return F.relu6(net._bn1(net._conv_head(x)))


@dataclass(frozen=True)
class CutGraph:
    """One image at the cut, without batch dimension or padding."""

    global_in: np.ndarray  # [C, h, w] float16: the global CNN's map entering the tuned blocks
    node_in: np.ndarray  # [K, C, hc, wc] float16: the object CNN's map of every real crop
    shape: np.ndarray  # [K, 7] float32
    geometry: np.ndarray  # [K, 5] float32
    edges: np.ndarray  # [E, 7] float32
    edge_index: np.ndarray  # [E, 2] int16

    @property
    def num_nodes(self) -> int:
        return int(self.node_in.shape[0])


class StageCache(NpzStore):
    entry = CutGraph
    skip_unreadable = True  # one unreadable image must not end a long extraction

    def __init__(self, root: str | Path, config: OscarConfig, stages: int = 1) -> None:
        if config.backbone != "efficientnet_lite0":
            raise ConfigError(f"the stage cache knows EfficientNet-Lite0's stages, not {config.backbone}'s")
        if config.share_backbone:
            raise ConfigError("the stage cache keeps the global and the object CNN apart (share_backbone=False)")
        self.config = config
        self.stages = stages
        self.first = cut_block(stages)
        super().__init__(Path(root) / f"{preprocessing_fingerprint(config)}-cut{self.first}")
        (self.root / "config.json").write_text(json.dumps({"config": config.to_dict(), "first_tuned_block":
                                                           self.first}, sort_keys=True, indent=1))

    def get(self, sha256: str) -> CutGraph:
        return super().get(sha256)

    def entry_of(self, model: OscarNet, batch: Any) -> CutGraph:
        return cut_graph(model, batch, self.first)


def cut_graph(model: OscarNet, batch, first: int) -> CutGraph:  # batch: a SceneGraphBatch of one image
    valid = ~batch.node_padding[0]
    k = int(valid.sum())
    e = int((~batch.edge_padding[0]).sum())
    crops = batch.crops[0][valid]
    node_in = (head_of_cut(model.object_cnn, crops, first) if k else
               torch.zeros((0, 1, 1, 1)))
    return CutGraph(
        global_in=head_of_cut(model.global_cnn, batch.images, first)[0].cpu().numpy().astype(np.float16),
        node_in=node_in.cpu().numpy().astype(np.float16),
        shape=batch.shape[0, :k].cpu().numpy().astype(np.float32),
        geometry=batch.geometry[0, :k].cpu().numpy().astype(np.float32),
        edges=batch.edges[0, :e].cpu().numpy().astype(np.float32),
        edge_index=batch.edge_index[0, :e].cpu().numpy().astype(np.int16),
    )


def tail_features(model: OscarNet, graphs: Iterable[CutGraph], first: int) -> SceneFeatures:
    """Pad a batch of cut graphs and run the tuned part of both CNNs: the ``SceneFeatures`` the head takes."""
    graphs = list(graphs)
    b = len(graphs)
    k_max = max(g.num_nodes for g in graphs)
    e_max = max(int(g.edges.shape[0]) for g in graphs)
    shape = np.zeros((b, k_max, 7), np.float32)
    geometry = np.zeros((b, k_max, 5), np.float32)
    node_padding = np.ones((b, k_max), bool)
    edges = np.zeros((b, e_max, 7), np.float32)
    edge_index = np.zeros((b, e_max, 2), np.int64)
    edge_padding = np.ones((b, e_max), bool)
    for n, g in enumerate(graphs):
        k, e = g.num_nodes, int(g.edges.shape[0])
        shape[n, :k], geometry[n, :k] = g.shape, g.geometry
        node_padding[n, :k] = False
        edges[n, :e], edge_index[n, :e] = g.edges, g.edge_index
        edge_padding[n, :e] = False
    t = torch.from_numpy
    global_in = t(np.stack([g.global_in for g in graphs]).astype(np.float32))
    global_map = tail_of_cut(model.global_cnn, global_in, first)
    feat = global_map.shape[1]
    node_visual = global_map.new_zeros((b, k_max, feat))
    real = [g.node_in for g in graphs if g.num_nodes]
    if real and model.uses_objects:
        crops_in = t(np.concatenate(real).astype(np.float32))
        node_visual = node_visual.masked_scatter(
            t(~node_padding).unsqueeze(-1), tail_of_cut(model.object_cnn, crops_in, first).mean(dim=(2, 3)))
    return SceneFeatures(global_map, node_visual, t(shape), t(geometry), t(node_padding), t(edges), t(edge_index),
                         t(edge_padding))


def features_from_stage(stage: StageCache, features: Any, paths: Sequence[Path], *, batch: int = 64) -> int:
    """Fill the head-only path's ``FeatureCache`` (``hasher.train.features``) from the stage cache by running the
    frozen ImageNet tail once per image, instead of the detector and both whole CNNs again: the last stages'
    output is what ``FeatureCache.fill`` would store, up to the float16 rounding at the cut. Images missing from
    the stage cache are left for ``FeatureCache.fill``. Returns how many entries were written."""
    from hasher.train.features import CachedGraph

    if features.root.name != preprocessing_fingerprint(stage.config):
        raise ConfigError("the feature cache and the stage cache were made with different preprocessing")
    model = OscarNet(stage.config).eval()
    todo = []
    for p in paths:
        sha = hashlib.sha256(p.read_bytes()).hexdigest()
        if stage.has(sha) and not features.has(sha):
            todo.append(sha)
    written = 0
    with torch.inference_mode():
        for i in range(0, len(todo), batch):
            shas = todo[i:i + batch]
            cut = [stage.get(s) for s in shas]
            f = tail_features(model, cut, stage.first)
            for n, (sha, g) in enumerate(zip(shas, cut, strict=True)):
                k = g.num_nodes
                features.put(sha, CachedGraph(f.global_map[n].numpy().astype(np.float16),
                                              f.node_visual[n, :k].numpy().astype(np.float16), g.shape, g.geometry,
                                              g.edges, g.edge_index))
                written += 1
            log.info("features from the stage cache: %d/%d", written, len(todo))
    return written
