"""The CPU path of issue 17: fine-tune the last EfficientNet-Lite0 stage(s) of both CNNs with the head, on maps
cached at the cut (``hasher.train.stage_cache``), with hard-negative mining of the smallest edits.

* What trains: the head at ``lr``; the last ``stages`` stages of both CNNs, their 1x1 head convolution and its batch
  norm's affine parameters at ``backbone_lr`` (batch-norm statistics stay ImageNet's: the CNNs run in eval mode).
  With ``stages = 0`` the CNNs stay frozen and the graphs are the head-only path's cached features
  (``hasher.train.features.CachedGraph``): the same loop, mining included, at a fraction of the cost per step.
* Loss and batches as the other paths (SimCLR+ over Eb(sign(z)) + the bit loss; originals with benign and
  manipulated variants, every manipulated variant its own class).
* **Hard negatives**: every ``mine_every`` steps the current model codes every training reference and its
  manipulated variants; a batch then draws an original's manipulated variants with weight ``exp(-d / T)`` (d: the
  variant's Hamming distance to its reference), so the edits the code cannot yet tell apart (most often the ones
  that move the fewest pixels) come back until it can. ``mine_every = 0`` draws uniformly.
* Checkpoints every ``checkpoint_every`` steps hold the tuned tensors, optimiser, mined weights and RNG state: a
  killed run resumes where it stopped. ``budget_s`` ends a run cleanly (the ~2-hour CPU budget of the issue).
* Model selection: validation ``fr1 + auc`` (``hasher.train.loop.code_metrics``) every ``val_every`` steps.

Never imports ``provenance``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hasher.config import OscarConfig
from hasher.errors import HasherError
from hasher.losses import BIT_LOSS_WEIGHT, bit_loss, contrastive_labels, simclr_plus_loss
from hasher.model import OscarNet, SceneFeatures
from hasher.train.data import Group, GroupBatchSampler
from hasher.train.end_to_end import _split_parameters, _train_mode, tuned_prefixes
from hasher.train.features import CachedGraph, collate_cached
from hasher.train.loop import _save, code_metrics, validation_queries
from hasher.train.stage_cache import CutGraph, cut_block, tail_features

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"
BEST = "best.pt"
HISTORY = "history.jsonl"


@dataclass(frozen=True)
class LastStageSettings:
    steps: int = 1500
    originals: int = 24
    benign: int = 5
    manipulated: int = 3
    lr: float = 3e-4
    backbone_lr: float = 3e-5
    stages: int = 1  # EfficientNet-Lite0 stages tuned (the cache is cut before them); 0: the head only
    weight_decay: float = 1e-4
    bit_weight: float = BIT_LOSS_WEIGHT
    val_every: int = 100
    checkpoint_every: int = 25
    mine_every: int = 200  # 0: no hard-negative mining
    mine_temperature: float = 4.0  # bits
    seed: int = 0
    budget_s: float = 7200.0


@dataclass
class LastStageState:
    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    best_val: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_by: str = "steps"


class HardNegativeSampler(GroupBatchSampler):
    """:class:`GroupBatchSampler` whose manipulated variants are drawn with per-variant weights (seeded, so a
    resumed run with the same weights replays the same batches)."""

    def __init__(self, groups: Sequence[Group], **kwargs: Any) -> None:
        super().__init__(groups, **kwargs)
        self.weights: dict[Path, float] = {}

    def _pick_manipulated(self, g: Group, rng: random.Random) -> list[int]:
        if not self.weights:
            return super()._pick_manipulated(g, rng)
        # weighted sampling without replacement (Efraimidis-Spirakis keys u^(1/w))
        keys = [(rng.random() ** (1.0 / max(self.weights.get(p, 1.0), 1e-9)), k) for k, p in enumerate(g.manipulated)]
        return [k for _, k in sorted(keys, reverse=True)[:min(self.manipulated, len(g.manipulated))]]


Graph = CutGraph | CachedGraph


def first_tuned(stages: int) -> int | None:
    """The cut for ``stages`` tuned stages; ``None`` for the head only."""
    return cut_block(stages) if stages else None


def scene_features(model: OscarNet, graphs: Sequence[Graph], first: int | None) -> SceneFeatures:
    """What the head takes: the tuned tail run on cut graphs, or cached frozen features as they are."""
    if first is None:
        return collate_cached(graphs)  # type: ignore[arg-type]
    return tail_features(model, graphs, first)  # type: ignore[arg-type]


@torch.no_grad()
def encode_cut(model: OscarNet, graphs: Sequence[Graph], first: int | None, batch: int = 128) -> np.ndarray:
    """Bool codes ``[N, D]`` in eval mode from cut graphs (or cached features when ``first`` is None)."""
    model.eval()
    out = [np.zeros((0, model.config.code_bits), bool)]
    for i in range(0, len(graphs), batch):
        out.append((model.head(scene_features(model, graphs[i:i + batch], first)).z >= 0).numpy())
    return np.concatenate(out)


def evaluate_cut(model: OscarNet, groups: Sequence[Group], graphs: dict[Path, Graph],
                 first: int | None) -> dict[str, float]:
    refs = encode_cut(model, [graphs[g.reference] for g in groups], first)
    queries = encode_cut(model, [graphs[p] for _, p, _ in validation_queries(groups)], first)
    return code_metrics(groups, refs, queries)


def mine_weights(model: OscarNet, groups: Sequence[Group], graphs: dict[Path, Graph], first: int | None,
                 temperature: float) -> dict[Path, float]:
    """``exp(-d / T)`` per manipulated variant, d its Hamming distance to its reference under the current model."""
    refs = encode_cut(model, [graphs[g.reference] for g in groups], first)
    manips = [(gi, p) for gi, g in enumerate(groups) for p in g.manipulated]
    codes = encode_cut(model, [graphs[p] for _, p in manips], first)
    dist = (codes != refs[[gi for gi, _ in manips]]).sum(axis=1)
    return {p: float(math.exp(-d / temperature)) for (_, p), d in zip(manips, dist, strict=True)}


def train_last_stage(config: OscarConfig, settings: LastStageSettings, train_groups: Sequence[Group],
                     val_groups: Sequence[Group], graphs: dict[Path, Graph], out: Path, *,
                     init: dict[str, torch.Tensor] | None = None) -> tuple[OscarNet, LastStageState]:
    """Train (or resume from ``out/last.pt``); the best validation state goes to ``out/best.pt`` and is loaded into
    the returned model. ``init``: a state dict (head, and optionally tuned tensors) to start from."""
    if not train_groups or not val_groups:
        raise HasherError("last-stage training needs training and validation groups")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    first = first_tuned(settings.stages)
    model = OscarNet(config)
    if init:
        model.load_state_dict(init, strict=False)
    tuned = tuned_prefixes(model, settings.stages)
    head, backbone = _split_parameters(model, tuned)
    param_groups = [{"params": head, "lr": settings.lr}]
    if backbone:
        param_groups.append({"params": backbone, "lr": settings.backbone_lr})
    opt = torch.optim.AdamW(param_groups, weight_decay=settings.weight_decay)
    keep = tuple(k for k in model.state_dict()
                 if not k.startswith(("global_cnn.", "object_cnn.")) or (tuned and k.startswith(tuned)))

    def trained_state() -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k in keep}

    sampler = HardNegativeSampler(train_groups, originals=settings.originals, benign=settings.benign,
                                  manipulated=settings.manipulated, seed=settings.seed)
    state = LastStageState()
    ckpt = out / CHECKPOINT
    if ckpt.is_file():
        data = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(data["model"], strict=False)
        opt.load_state_dict(data["optimizer"])
        state = LastStageState(**data["state"])
        sampler.weights = {Path(k): v for k, v in data["weights"].items()}
        torch.set_rng_state(data["torch_rng"])
        log.info("resumed at step %d", state.step)
    started = time.monotonic() - state.seconds
    history = (out / HISTORY).open("a")

    def checkpoint() -> None:
        state.seconds = time.monotonic() - started
        _save(ckpt, {"model": trained_state(), "optimizer": opt.state_dict(), "state": asdict(state),
                     "weights": {str(k): v for k, v in sampler.weights.items()}, "torch_rng": torch.get_rng_state(),
                     "config": config.to_dict(), "settings": asdict(settings)})

    def validate(row: dict[str, Any]) -> None:
        metrics = evaluate_cut(model, val_groups, graphs, first)
        row["val"] = {k: round(v, 4) for k, v in metrics.items()}
        score = metrics["fr1"] + metrics["auc"]
        if score > state.best_score:
            state.best_score, state.best_step, state.best_val = score, state.step, metrics
            _save(out / BEST, {"model": trained_state(), "config": config.to_dict(), "step": state.step,
                               "val": metrics, "settings": asdict(settings)})
        log.info("step %d loss %s val %s", state.step, row.get("loss", "-"), row["val"])

    try:
        if init and state.step == 0 and not (out / BEST).is_file():
            # a warm start is scored first: selection never returns a model worse on validation than its start
            row0: dict[str, Any] = {"step": 0, "seconds": 0.0}
            validate(row0)
            history.write(json.dumps(row0) + "\n")
            history.flush()
            checkpoint()
        while state.step < settings.steps:
            if time.monotonic() - started > settings.budget_s:
                state.stopped_by = "budget"
                break
            if settings.mine_every and state.step and state.step % settings.mine_every == 0:
                sampler.weights = mine_weights(model, train_groups, graphs, first, settings.mine_temperature)
                log.info("mined hard negatives at step %d (median weight %.3f)", state.step,
                         float(np.median(list(sampler.weights.values()))))
            _train_mode(model)
            samples = sampler.batch(state.step)
            feats = scene_features(model, [graphs[s.path] for s in samples], first)
            labels = contrastive_labels(torch.tensor([s.origin for s in samples]),
                                        torch.tensor([s.variant for s in samples]))
            output = model.head(feats)
            con = simclr_plus_loss(output.projection, labels, config.temperature)
            bits = bit_loss(output.z)
            loss = con + settings.bit_weight * bits
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head + backbone, 5.0)
            opt.step()
            state.step += 1
            row: dict[str, Any] = {"step": state.step, "loss": round(loss.item(), 5),
                                   "contrastive": round(con.item(), 5), "bit": round(bits.item(), 4),
                                   "seconds": round(time.monotonic() - started, 1)}
            if state.step % settings.val_every == 0 or state.step == settings.steps:
                validate(row)
            history.write(json.dumps(row) + "\n")
            history.flush()
            if state.step % settings.checkpoint_every == 0 or state.step == settings.steps:
                checkpoint()
    finally:
        history.close()
    checkpoint()
    if (out / BEST).is_file():
        model.load_state_dict(torch.load(out / BEST, map_location="cpu", weights_only=False)["model"], strict=False)
    return model, state


# ------------------------------------------------------------------------------------------------ CLI plumbing


def _cache_for(config: OscarConfig, stages: int, cache_root: str, stage_cache: str | None,
               cached_only: bool = False) -> Any:
    """The stage cache cut before ``stages`` stages, or for ``stages = 0`` the head-only feature cache (filled first
    from ``stage_cache`` when one is given, which saves the detector and both CNNs). ``cached_only``: extract
    nothing; train on the images already cached (a time-boxed run while extraction is unfinished)."""
    from hasher.train.features import FeatureCache
    from hasher.train.stage_cache import StageCache

    if stages:
        return _FromStage(StageCache(cache_root, config, stages), None, cached_only)
    return _FromStage(FeatureCache(cache_root, config), StageCache(stage_cache, config) if stage_cache else None,
                      cached_only)


class _FromStage:
    """A cache whose ``fill`` first derives what it can from a stage cache, and with ``cached_only`` extracts
    nothing (the images not cached are left out)."""

    def __init__(self, features: Any, stage: Any, cached_only: bool = False) -> None:
        self.features, self.stage, self.cached_only = features, stage, cached_only

    def fill(self, paths: Sequence[Path]) -> dict[Path, str]:
        if self.stage is not None:
            from hasher.train.stage_cache import features_from_stage

            features_from_stage(self.stage, self.features, paths)
        if self.cached_only:
            import hashlib

            shas = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
            return {p: s for p, s in shas.items() if self.features.has(s)}
        return self.features.fill(paths)

    def get(self, sha256: str) -> CachedGraph:
        return self.features.get(sha256)


def load_cut_graphs(cache: Any, groups: Sequence[Group]) -> tuple[list[Group], dict[Path, Graph]]:
    """Fill ``cache`` for every image of ``groups`` and read them into memory; groups lose the images that could
    not be read (a group without its reference is dropped)."""
    from hasher.train.data import all_paths

    shas = cache.fill(all_paths(groups))
    graphs = {p: cache.get(s) for p, s in shas.items()}
    kept = [Group(g.origin, g.reference, tuple(p for p in g.benign if p in graphs),
                  tuple(p for p in g.manipulated if p in graphs)) for g in groups if g.reference in graphs]
    return kept, graphs


def fit_last_stage_cli(config: OscarConfig, settings: LastStageSettings, train: Sequence[str], val: Sequence[str],
                       cache_root: str, out: Path, init: str | None, subsets: Sequence[str] | None = None,
                       stage_cache: str | None = None, cached_only: bool = False) -> LastStageState:
    from hasher.api import read_head_weights
    from hasher.train.data import read_groups

    start = read_head_weights(init).state if init else None  # a bad file fails before any image is read
    cache = _cache_for(config, settings.stages, cache_root, stage_cache, cached_only)
    train_groups, graphs = load_cut_graphs(cache, read_groups(train, subsets=subsets))
    val_groups, val_graphs = load_cut_graphs(cache, read_groups(val, first_origin=len(train_groups) + 10**6))
    graphs.update(val_graphs)
    log.info("%d training originals (%d images), %d validation originals", len(train_groups),
             sum(1 + len(g.benign) + len(g.manipulated) for g in train_groups), len(val_groups))
    _, state = train_last_stage(config, settings, train_groups, val_groups, graphs, out, init=start)
    return state


def export_last_stage(run: Path, out: Path, val: Sequence[str], cache_root: str, *, name: str,
                      stage_cache: str | None = None) -> dict[str, str]:
    """Round the run's best state to float16 (what ships), calibrate the threshold keeping 99 % of benign pairs on
    ``val`` at that precision, and write the weights: ``oscar-net-head/2`` with the tuned CNN tensors, or
    ``oscar-net-head/1`` for a head-only run."""
    from hasher.train.data import read_groups
    from hasher.train.export import write_head_weights

    best = torch.load(run / BEST, map_location="cpu", weights_only=False)
    config = OscarConfig.from_dict(best["config"])
    stages = int(best["settings"]["stages"])
    model = OscarNet(config)
    model.load_state_dict(best["model"], strict=False)
    tuned = tuned_prefixes(model, stages)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if t.is_floating_point() and (not k.startswith(("global_cnn.", "object_cnn.")) or
                                          (tuned and k.startswith(tuned))):
                t.copy_(t.half().float())
    groups, graphs = load_cut_graphs(_cache_for(config, stages, cache_root, stage_cache), read_groups(val))
    metrics = evaluate_cut(model, groups, graphs, first_tuned(stages))
    return write_head_weights(model, out, name=name, threshold=int(metrics["threshold_99"]), validation=metrics,
                              step=int(best["step"]), tuned=tuned)
