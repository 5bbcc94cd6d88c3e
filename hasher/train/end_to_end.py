"""End-to-end training with the CNNs' last stages unfrozen: the GPU path of issue 17 (``scripts/gpu-train-oscar.sh``).

The CPU path (``hasher.train.loop``) caches what the frozen CNNs make of each image and trains the head alone. Here
the last ``unfreeze_stages`` stages of both EfficientNet-Lite0 CNNs (and their 1x1 head convolution) train with the
head, so CNN features cannot be cached: what is cached instead is each image's *scene graph* (decode, CenterNet,
GrabCut, crops: ``hasher.api.image_scene_graph``, the hasher's own steps), built once in parallel worker processes on
the CPU cores and kept in memory as float16; every step runs both CNNs and the head on the device.

* Batch-norm statistics stay at their ImageNet values (the CNNs run in eval mode; their affine parameters and the
  convolutions of the unfrozen stages train). The head learns at ``lr``, the unfrozen stages at ``backbone_lr``.
* Loss, sampler and model selection are the CPU path's: SimCLR+ over Eb(sign(z)) + the bit loss, batches of
  originals each with benign and manipulated variants, best validation FR1 + AUC (``code_metrics``).
* bf16 autocast on CUDA (``amp``); codes for validation and calibration are computed in float32.
* A wall-clock ``deadline`` ends training early (the GPU script has one 10-minute command); the best state so far
  is kept in memory and exported as ``oscar-net-head/2`` (head + the tuned backbone tensors, float16).

Never imports ``provenance``: datasets are read through ``hasher.train.data``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hasher.config import OscarConfig
from hasher.errors import ConfigError
from hasher.losses import BIT_LOSS_WEIGHT, bit_loss, contrastive_labels, simclr_plus_loss
from hasher.model import OscarNet
from hasher.scene_graph import SceneGraph, SceneGraphBatch, collate
from hasher.train.data import Group, GroupBatchSampler
from hasher.train.loop import code_metrics, validation_queries

__all__ = ["EndToEndResult", "EndToEndSettings", "build_graphs", "encode_graphs", "evaluate", "export_tuned",
           "result_summary", "train_end_to_end", "tuned_prefixes", "usable"]

log = logging.getLogger(__name__)

#: EfficientNet-Lite0's blocks per stage (``hasher.backbone._LITE0_STAGES``): stage i holds the next repeats[i].
_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)


@dataclass(frozen=True)
class EndToEndSettings:
    steps: int = 3000
    originals: int = 24
    benign: int = 5
    manipulated: int = 3
    lr: float = 3e-4
    backbone_lr: float = 3e-5
    unfreeze_stages: int = 2  # of the 7 (the last two: 5 blocks, 192 and 320 channels), plus the head conv
    weight_decay: float = 1e-4
    bit_weight: float = BIT_LOSS_WEIGHT
    val_every: int = 100
    seed: int = 0
    amp: bool = True


@dataclass
class EndToEndResult:
    steps: int = 0
    best_step: int = -1
    best_score: float = -float("inf")
    best_val: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    images_per_s: float = 0.0  # training images through both CNNs and the head, per second
    stopped_by: str = "steps"
    best_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def tuned_prefixes(model: OscarNet, stages: int) -> tuple[str, ...]:
    """State-dict prefixes of the last ``stages`` stages of both CNNs and their head convolution (none for 0)."""
    if stages <= 0:
        return ()
    if model.config.backbone != "efficientnet_lite0":
        raise ConfigError(f"end-to-end tuning knows EfficientNet-Lite0's stages, not {model.config.backbone}'s")
    if stages > len(_LITE0_REPEATS):
        raise ConfigError(f"EfficientNet-Lite0 has {len(_LITE0_REPEATS)} stages, not {stages}")
    first = sum(_LITE0_REPEATS[:-stages])
    blocks = range(first, sum(_LITE0_REPEATS))
    cnns = ("global_cnn",) if model.config.share_backbone else ("global_cnn", "object_cnn")
    return tuple(f"{cnn}.{part}" for cnn in cnns for part in
                 [*(f"_blocks.{b}." for b in blocks), "_conv_head.", "_bn1."])


def _split_parameters(model: OscarNet, tuned: tuple[str, ...]) -> tuple[list[torch.nn.Parameter],
                                                                          list[torch.nn.Parameter]]:
    """(head parameters, tuned backbone parameters); every other backbone parameter is frozen."""
    head, backbone = [], []
    for name, p in model.named_parameters():
        if name.startswith(("global_cnn.", "object_cnn.")):
            p.requires_grad_(name.startswith(tuned) if tuned else False)
            if p.requires_grad:
                backbone.append(p)
        else:
            head.append(p)
    return head, backbone


def _train_mode(model: OscarNet) -> None:
    model.train()
    model.global_cnn.eval()  # batch-norm statistics stay ImageNet's
    model.object_cnn.eval()


def _to_device(batch: SceneGraphBatch, device: torch.device) -> SceneGraphBatch:
    return SceneGraphBatch(**{k: (v.to(device, non_blocking=True).float() if v.is_floating_point()
                                  else v.to(device, non_blocking=True)) for k, v in batch.__dict__.items()})


# ------------------------------------------------------------------------------------------------ scene graphs

_WORKER: dict[str, Any] = {}


def _worker_init(config_obj: dict[str, Any]) -> None:
    import cv2

    from hasher.api import _create_detector

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    config = OscarConfig.from_dict(config_obj)
    _WORKER["config"] = config
    _WORKER["detector"] = _create_detector("centernet", torch.device("cpu"), config)


def _half(g: SceneGraph) -> SceneGraph:
    return SceneGraph(g.image.half(), g.crops.half(), g.shape, g.geometry, g.edges, g.edge_index)


def _graph_of(path: str) -> tuple[str, SceneGraph | None, str]:
    from hasher.api import image_scene_graph

    try:
        return path, _half(image_scene_graph(path, _WORKER["detector"], _WORKER["config"])), ""
    except Exception as exc:  # noqa: BLE001 - an unreadable image is left out and reported, not fatal
        return path, None, f"{type(exc).__name__}: {exc}"


def _graphs_of(paths: list[str]) -> list[tuple[str, SceneGraph | None, str]]:
    return [_graph_of(p) for p in paths]


def build_graphs(paths: Sequence[Path], config: OscarConfig, *, workers: int = 1, deadline: float | None = None,
                 progress: Callable[[int, int], None] | None = None) -> tuple[dict[Path, SceneGraph], dict[Path, str]]:
    """Every image's scene graph (float16 image and crops), built in ``workers`` processes on the CPU; and the
    images that failed, with why. Past ``deadline`` (``time.monotonic()``) the images not started are skipped
    (reported as failed), so a time-boxed run trains on what it has."""
    graphs: dict[Path, SceneGraph] = {}
    failed: dict[Path, str] = {}
    names = [str(p) for p in paths]
    chunks = [names[i:i + 16] for i in range(0, len(names), 16)]
    done = 0

    def take(rows: list[tuple[str, SceneGraph | None, str]]) -> None:
        nonlocal done
        for name, graph, why in rows:
            if graph is None:
                failed[Path(name)] = why
            else:
                graphs[Path(name)] = graph
        done += len(rows)
        if progress:
            progress(done, len(names))

    if workers <= 1:
        _worker_init(config.to_dict())
        for chunk in chunks:
            if deadline is not None and time.monotonic() > deadline:
                break
            take(_graphs_of(chunk))
    else:
        import multiprocessing as mp
        from concurrent.futures import FIRST_COMPLETED, wait

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                 initargs=(config.to_dict(),)) as pool:
            pending = {pool.submit(_graphs_of, chunk) for chunk in chunks}
            while pending:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                finished, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
                for f in finished:
                    take(f.result())
                if deadline is not None and time.monotonic() > deadline:
                    for f in pending:
                        f.cancel()
                    break
    for name in names:
        if Path(name) not in graphs and Path(name) not in failed:
            failed[Path(name)] = "skipped: the extraction deadline passed"
    return graphs, failed


# ------------------------------------------------------------------------------------------------ codes, metrics


@torch.no_grad()
def encode_graphs(model: OscarNet, graphs: Sequence[SceneGraph], device: torch.device, batch: int = 64) -> np.ndarray:
    """Bool codes [N, D] of whole-network forwards in eval mode, float32."""
    model.eval()
    out = [np.zeros((0, model.config.code_bits), bool)]
    for i in range(0, len(graphs), batch):
        out.append((model(_to_device(collate(graphs[i:i + batch]), device)).z >= 0).cpu().numpy())
    return np.concatenate(out)


def evaluate(model: OscarNet, groups: Sequence[Group], graphs: dict[Path, SceneGraph],
             device: torch.device) -> dict[str, float]:
    """The CPU path's validation metrics (pair AUC, R@1, R-bar@1, FR1, thresholds, edits accepted), end to end."""
    refs = encode_graphs(model, [graphs[g.reference] for g in groups], device)
    queries = encode_graphs(model, [graphs[p] for _, p, _ in validation_queries(groups)], device)
    return code_metrics(groups, refs, queries)


def usable(groups: Sequence[Group], graphs: dict[Path, SceneGraph]) -> list[Group]:
    """Groups restricted to images that have a graph (a group without its reference is dropped)."""
    out = []
    for g in groups:
        if g.reference in graphs:
            out.append(Group(g.origin, g.reference, tuple(p for p in g.benign if p in graphs),
                             tuple(p for p in g.manipulated if p in graphs)))
    return out


# ------------------------------------------------------------------------------------------------------ training


def train_end_to_end(config: OscarConfig, settings: EndToEndSettings, train_groups: Sequence[Group],
                     val_groups: Sequence[Group], graphs: dict[Path, SceneGraph], *, device: torch.device,
                     init: OscarNet | None = None, deadline: float | None = None,
                     history: Path | None = None) -> tuple[OscarNet, EndToEndResult]:
    """Train (from ``init``'s head when given, else a fresh seeded head) until ``settings.steps`` or ``deadline``
    (``time.monotonic()``); the returned model holds the best validation state."""
    torch.manual_seed(settings.seed)
    model = OscarNet(config) if init is None else init
    model.to(device)
    tuned = tuned_prefixes(model, settings.unfreeze_stages)
    head, backbone = _split_parameters(model, tuned)
    groups_ = [{"params": head, "lr": settings.lr}]
    if backbone:
        groups_.append({"params": backbone, "lr": settings.backbone_lr})
    opt = torch.optim.AdamW(groups_, weight_decay=settings.weight_decay)
    sampler = GroupBatchSampler(train_groups, originals=settings.originals, benign=settings.benign,
                                manipulated=settings.manipulated, seed=settings.seed)
    amp = settings.amp and device.type == "cuda"
    result = EndToEndResult()
    keep = tuple(k for k in model.state_dict() if not k.startswith(("global_cnn.", "object_cnn.")) or
                 (tuned and k.startswith(tuned)))
    log_file = history.open("a") if history is not None else None
    started = time.monotonic()
    images = 0
    try:
        while result.steps < settings.steps:
            if deadline is not None and time.monotonic() > deadline:
                result.stopped_by = "deadline"
                break
            _train_mode(model)
            samples = sampler.batch(result.steps)
            batch = _to_device(collate([graphs[s.path] for s in samples]), device)
            labels = contrastive_labels(torch.tensor([s.origin for s in samples]),
                                        torch.tensor([s.variant for s in samples])).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(batch)
            con = simclr_plus_loss(out.projection.float(), labels, config.temperature)
            loss = con + settings.bit_weight * bit_loss(out.z.float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head + backbone, 5.0)
            opt.step()
            result.steps += 1
            images += len(samples)
            row: dict[str, Any] = {"step": result.steps, "loss": round(loss.item(), 5),
                                   "seconds": round(time.monotonic() - started, 2)}
            last = result.steps == settings.steps or (deadline is not None and time.monotonic() > deadline)
            if result.steps % settings.val_every == 0 or last:
                metrics = evaluate(model, val_groups, graphs, device)
                row["val"] = {k: round(v, 4) for k, v in metrics.items()}
                score = metrics["fr1"] + metrics["auc"]
                if score > result.best_score:
                    result.best_score, result.best_step, result.best_val = score, result.steps, metrics
                    result.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                                         if k in keep}
                log.info("step %d loss %.4f val %s", result.steps, row["loss"], row["val"])
            if log_file is not None:
                log_file.write(json.dumps(row) + "\n")
                log_file.flush()
    finally:
        if log_file is not None:
            log_file.close()
    result.seconds = time.monotonic() - started
    result.images_per_s = images / result.seconds if result.seconds > 0 else 0.0
    if result.best_state:
        model.load_state_dict(result.best_state, strict=False)
    return model, result


def export_tuned(model: OscarNet, out: Path, val_groups: Sequence[Group], graphs: dict[Path, SceneGraph], *,
                 device: torch.device, name: str, unfreeze_stages: int, step: int) -> dict[str, str]:
    """Round what ships to float16, calibrate the threshold on ``val_groups`` at that precision, write the file."""
    from hasher.train.export import write_head_weights

    tuned = tuned_prefixes(model, unfreeze_stages)
    with torch.no_grad():
        for k, t in model.state_dict().items():
            if t.is_floating_point() and (not k.startswith(("global_cnn.", "object_cnn.")) or
                                          (tuned and k.startswith(tuned))):
                t.copy_(t.half().float())
    metrics = evaluate(model, val_groups, graphs, device)
    return write_head_weights(model.cpu(), out, name=name, threshold=int(metrics["threshold_99"]),
                              validation=metrics, step=step, tuned=tuned)


def result_summary(result: EndToEndResult) -> dict[str, Any]:
    """The result as JSON-ready values (without the state tensors)."""
    return {f.name: getattr(result, f.name) for f in fields(result) if f.name != "best_state"}
