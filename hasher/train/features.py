"""A disk cache of what the frozen CNNs make of each training image, so the head trains without re-running them.

With the backbones frozen (see ``hasher.train`` for why), everything before ``OscarNet.head`` depends only on the
image bytes and on the preprocessing part of the config. So each image goes once through decode -> CenterNet ->
GrabCut -> scene graph -> ``OscarNet.extract``, and its ``SceneFeatures`` row is stored as one ``.npz`` (float16
feature maps, float32 geometry) keyed by the image's sha256 under a folder named by the preprocessing fingerprint.
A rebuilt dataset with the same bytes reuses every entry; a changed detector size or backbone starts a new folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hasher.config import OscarConfig
from hasher.model import SceneFeatures
from hasher.scene_graph import collate

log = logging.getLogger(__name__)

#: Config fields that change what ``extract`` returns; the head's sizes do not.
PREPROCESSING_FIELDS = ("detect_size", "detect_min_score", "grabcut_size", "grabcut_iterations", "max_objects",
                        "mask_crops", "crop_size", "global_size", "backbone", "mean", "std")


def preprocessing_fingerprint(config: OscarConfig) -> str:
    data = {k: v for k, v in config.to_dict().items() if k in PREPROCESSING_FIELDS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class CachedGraph:
    """One image's ``SceneFeatures`` without the batch dimension or padding."""

    global_map: np.ndarray  # [C, h, w] float16
    node_visual: np.ndarray  # [K, C] float16
    shape: np.ndarray  # [K, 7] float32
    geometry: np.ndarray  # [K, 5] float32
    edges: np.ndarray  # [E, 7] float32
    edge_index: np.ndarray  # [E, 2] int16

    @property
    def num_nodes(self) -> int:
        return int(self.node_visual.shape[0])


class NpzStore(ABC):
    """One ``.npz`` per image, keyed by its sha256, holding the arrays of an ``entry`` dataclass. Writes are atomic,
    so an interrupted run never leaves a half-written entry behind. A subclass names its ``entry`` class and says
    how one image's entry is computed (``entry_of``)."""

    entry: type  # the dataclass of numpy arrays an entry holds

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.npz"

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def get(self, sha256: str) -> Any:
        with np.load(self.path_for(sha256)) as z:
            return self.entry(**{k: z[k] for k in self.entry.__dataclass_fields__})

    def put(self, sha256: str, graph: Any) -> None:
        path = self.path_for(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **graph.__dict__)
        tmp.replace(path)  # atomic: an interrupted run never leaves a half-written entry behind

    #: Log and leave out an image the pipeline cannot read (else the error ends the fill).
    skip_unreadable = False
    config: OscarConfig

    @abstractmethod
    def entry_of(self, model: Any, batch: Any) -> Any:
        """The entry of one image from the whole network (eval mode) and its one-image scene-graph batch."""

    def fill(self, paths: Sequence[Path], *, device: str = "cpu", progress_every: int = 50) -> dict[Path, str]:
        """Extract every image not cached yet; returns ``{path: sha256}`` for all of them (less the unreadable ones
        left out with ``skip_unreadable``). Resumable."""
        shas = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
        todo = [p for p in paths if not self.has(shas[p])]
        if not todo:
            return shas
        from hasher.api import load  # the full pipeline; import here so reading a cache needs no detector

        hasher = load(device=device, config=self.config)
        model = hasher.model.eval()
        start = time.monotonic()
        with torch.inference_mode():
            for n, path in enumerate(todo, 1):
                try:
                    graph = hasher.scene_graph(path)
                except Exception as exc:
                    if not self.skip_unreadable:
                        raise
                    log.warning("skipped %s: %s: %s", path, type(exc).__name__, exc)
                    shas.pop(path)
                    continue
                self.put(shas[path], self.entry_of(model, collate([graph]).to(hasher.device)))
                if n % progress_every == 0 or n == len(todo):
                    log.info("%s %d/%d (%.2f img/s)", type(self).__name__, n, len(todo),
                             n / (time.monotonic() - start))
        return shas


class FeatureCache(NpzStore):
    entry = CachedGraph

    def __init__(self, root: str | Path, config: OscarConfig) -> None:
        super().__init__(Path(root) / preprocessing_fingerprint(config))
        self.config = config
        (self.root / "config.json").write_text(json.dumps(config.to_dict(), sort_keys=True, indent=1))

    def get(self, sha256: str) -> CachedGraph:
        return super().get(sha256)

    def entry_of(self, model: Any, batch: Any) -> CachedGraph:
        return _strip(model.extract(batch))


def _strip(f: SceneFeatures) -> CachedGraph:
    k = int((~f.node_padding[0]).sum())
    e = int((~f.edge_padding[0]).sum())
    return CachedGraph(
        global_map=f.global_map[0].cpu().numpy().astype(np.float16),
        node_visual=f.node_visual[0, :k].cpu().numpy().astype(np.float16),
        shape=f.shape[0, :k].cpu().numpy().astype(np.float32),
        geometry=f.geometry[0, :k].cpu().numpy().astype(np.float32),
        edges=f.edges[0, :e].cpu().numpy().astype(np.float32),
        edge_index=f.edge_index[0, :e].cpu().numpy().astype(np.int16),
    )


def collate_cached(graphs: Iterable[CachedGraph]) -> SceneFeatures:
    """Pad cached graphs into one ``SceneFeatures`` batch (same conventions as ``hasher.scene_graph.collate``)."""
    graphs = list(graphs)
    b = len(graphs)
    k_max = max(g.num_nodes for g in graphs)
    e_max = max(int(g.edges.shape[0]) for g in graphs)
    c = graphs[0].node_visual.shape[1]
    node_visual = np.zeros((b, k_max, c), np.float32)
    shape = np.zeros((b, k_max, 7), np.float32)
    geometry = np.zeros((b, k_max, 5), np.float32)
    node_padding = np.ones((b, k_max), bool)
    edges = np.zeros((b, e_max, 7), np.float32)
    edge_index = np.zeros((b, e_max, 2), np.int64)
    edge_padding = np.ones((b, e_max), bool)
    for n, g in enumerate(graphs):
        k, e = g.num_nodes, int(g.edges.shape[0])
        node_visual[n, :k], shape[n, :k], geometry[n, :k] = g.node_visual, g.shape, g.geometry
        node_padding[n, :k] = False
        edges[n, :e], edge_index[n, :e] = g.edges, g.edge_index
        edge_padding[n, :e] = False
    t = torch.from_numpy
    return SceneFeatures(t(np.stack([g.global_map for g in graphs]).astype(np.float32)), t(node_visual), t(shape),
                         t(geometry), t(node_padding), t(edges), t(edge_index), t(edge_padding))
