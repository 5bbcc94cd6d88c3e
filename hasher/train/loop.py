"""The training loop (paper §3.4-3.5) over cached CNN features: SimCLR+ + alpha * bit loss, two stages, Adam with
step decay, validation by pair AUC and B2 FR1 on held-out photos, checkpoints that resume exactly.

Stage 1 fits the global stream alone (the object and relation streams feed zeros into Ed) at the pretraining
learning rate; stage 2 trains every stream end to end at the lower rate. The paper's stage 1 fine-tunes the CNN
itself; here the CNNs stay frozen (see ``hasher.train``), so stage 1 trains FG's pooling, Ed and Eb.
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
from hasher.losses import BIT_LOSS_WEIGHT, bit_loss, contrastive_labels, simclr_plus_loss
from hasher.model import OscarNet
from hasher.train.data import Group, GroupBatchSampler, all_paths
from hasher.train.features import CachedGraph, FeatureCache, collate_cached

log = logging.getLogger(__name__)

CHECKPOINT = "last.pt"
BEST = "best.pt"
HISTORY = "history.jsonl"


@dataclass(frozen=True)
class TrainSettings:
    originals: int = 24  # B unique originals per batch
    benign: int = 5  # benign variants drawn per original (plus the original itself)
    manipulated: int = 3  # manipulated variants drawn per original (at least one)
    pretrain_steps: int = 300  # stage 1: global stream only
    pretrain_lr: float = 1e-3
    steps: int = 1500  # stage 2: end to end (total steps = pretrain_steps + steps)
    lr: float = 3e-4
    decay_every: int = 500  # step decay: lr *= decay_gamma every decay_every steps (per stage)
    decay_gamma: float = 0.5
    weight_decay: float = 1e-4
    bit_weight: float = BIT_LOSS_WEIGHT
    val_every: int = 50
    checkpoint_every: int = 25
    seed: int = 0
    select_on: tuple[str, ...] = ("fr1", "auc")  # model selection: sum of these validation metrics


@dataclass
class TrainState:
    step: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def head_parameters(model: OscarNet) -> list[torch.nn.Parameter]:
    return [p for n, p in model.named_parameters() if not n.startswith(("global_cnn.", "object_cnn."))]


def freeze_backbones(model: OscarNet) -> None:
    for name, p in model.named_parameters():
        if name.startswith(("global_cnn.", "object_cnn.")):
            p.requires_grad_(False)


# ------------------------------------------------------------------------------------------------- validation


def encode(model: OscarNet, feats: Sequence[CachedGraph], batch: int = 128) -> np.ndarray:
    """Bool codes ``[N, D]`` in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(feats), batch):
            out.append((model.head(collate_cached(feats[i:i + batch])).z >= 0).numpy())
    return np.concatenate(out) if out else np.zeros((0, model.config.code_bits), bool)


def _auc(benign: np.ndarray, manipulated: np.ndarray) -> float:
    if len(benign) == 0 or len(manipulated) == 0:
        return float("nan")
    b = benign[:, None]
    m = manipulated[None, :]
    return float(((b < m).sum() + 0.5 * (b == m).sum()) / (b.size * m.size))


def validation_metrics(model: OscarNet, groups: Sequence[Group], feats: dict[Path, CachedGraph]) -> dict[str, float]:
    """Pair AUC, the benign distance keeping 95 / 99 % of benign pairs and the share of edits accepted there, and
    B2 (R@1 over benign queries, R-bar@1 over manipulated ones, FR1 = R R-bar / (R + R-bar)) against the references,
    with ties at the top shared evenly (the expected value under random tie-breaking)."""
    ref_codes = encode(model, [feats[g.reference] for g in groups])
    q_codes = encode(model, [feats[p] for _, p, _ in validation_queries(groups)])
    return code_metrics(groups, ref_codes, q_codes)


def validation_queries(groups: Sequence[Group]) -> list[tuple[int, Path, bool]]:
    """(group index, path, benign?) of every variant: the order of ``code_metrics``'s query codes."""
    queries = [(gi, p, True) for gi, g in enumerate(groups) for p in g.benign]
    return queries + [(gi, p, False) for gi, g in enumerate(groups) for p in g.manipulated]


def code_metrics(groups: Sequence[Group], ref_codes: np.ndarray, q_codes: np.ndarray) -> dict[str, float]:
    """:func:`validation_metrics` from bool codes: ``ref_codes`` [R, D] in group order, ``q_codes`` [Q, D] in the
    order of :func:`validation_queries` (however they were computed: cached features, or the whole network)."""
    queries = validation_queries(groups)
    dist = (q_codes[:, None, :] != ref_codes[None, :, :]).sum(-1)  # [Q, R]
    own = np.array([gi for gi, _, _ in queries])
    benign = np.array([b for _, _, b in queries])
    d_own = dist[np.arange(len(own)), own]
    best = dist.min(axis=1)
    top1 = np.where(d_own == best, 1.0 / (dist == best[:, None]).sum(axis=1), 0.0)
    r1 = float(top1[benign].mean()) if benign.any() else float("nan")
    rbar1 = float(1.0 - top1[~benign].mean()) if (~benign).any() else float("nan")
    fr1 = r1 * rbar1 / (r1 + rbar1) if r1 + rbar1 > 0 else 0.0
    out = {"auc": _auc(d_own[benign], d_own[~benign]), "r1": r1, "rbar1": rbar1, "fr1": fr1,
           "benign_mean": float(d_own[benign].mean()), "manipulated_mean": float(d_own[~benign].mean())}
    for tpr in (0.95, 0.99):
        t = float(np.quantile(d_own[benign], tpr, method="higher"))
        out[f"threshold_{int(tpr * 100)}"] = t
        out[f"edits_accepted_{int(tpr * 100)}"] = float((d_own[~benign] <= t).mean())
    return out


# ----------------------------------------------------------------------------------------------------- training


def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_features(cache: FeatureCache, groups: Sequence[Group], shas: dict[Path, str]) -> dict[Path, CachedGraph]:
    return {p: cache.get(shas[p]) for p in all_paths(groups)}


def train(config: OscarConfig, settings: TrainSettings, train_groups: Sequence[Group], val_groups: Sequence[Group],
          feats: dict[Path, CachedGraph], out: Path) -> TrainState:
    """Train (or resume from ``out/last.pt``) and keep the best model by validation in ``out/best.pt``."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    model = OscarNet(config)
    freeze_backbones(model)
    params = head_parameters(model)
    state = TrainState()
    total = settings.pretrain_steps + settings.steps

    def optimiser_for(stage_lr: float) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.StepLR]:
        opt = torch.optim.Adam(params, lr=stage_lr, weight_decay=settings.weight_decay)
        return opt, torch.optim.lr_scheduler.StepLR(opt, settings.decay_every, settings.decay_gamma)

    stage = 1 if settings.pretrain_steps > 0 else 2
    opt, sched = optimiser_for(settings.pretrain_lr if stage == 1 else settings.lr)
    ckpt = out / CHECKPOINT
    if ckpt.is_file():
        data = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(data["head"], strict=False)
        stage = data["stage"]
        opt, sched = optimiser_for(settings.pretrain_lr if stage == 1 else settings.lr)
        opt.load_state_dict(data["optimizer"])
        sched.load_state_dict(data["scheduler"])
        state = TrainState(**data["state"])
        random.setstate(data["python_rng"])
        torch.set_rng_state(data["torch_rng"])
        log.info("resumed at step %d (stage %d)", state.step, stage)

    sampler = GroupBatchSampler(train_groups, originals=settings.originals, benign=settings.benign,
                                manipulated=settings.manipulated, seed=settings.seed)
    history = (out / HISTORY).open("a")
    started = time.monotonic() - state.seconds

    def checkpoint() -> None:
        state.seconds = time.monotonic() - started
        _save(ckpt, {"head": model.head_state_dict(), "stage": stage, "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict(), "state": asdict(state), "python_rng": random.getstate(),
                     "torch_rng": torch.get_rng_state(), "config": config.to_dict(), "settings": asdict(settings)})

    while state.step < total:
        if stage == 1 and state.step >= settings.pretrain_steps:
            stage = 2
            opt, sched = optimiser_for(settings.lr)
        model.train()
        samples = sampler.batch(state.step)
        f = collate_cached(feats[s.path] for s in samples)
        labels = contrastive_labels(torch.tensor([s.origin for s in samples]), torch.tensor([s.variant for s in samples]))
        output = model.head(f, only=("global",) if stage == 1 else None)
        con = simclr_plus_loss(output.projection, labels, config.temperature)
        bits = bit_loss(output.z)
        loss = con + settings.bit_weight * bits
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        state.step += 1
        row: dict[str, Any] = {"step": state.step, "stage": stage, "loss": round(loss.item(), 5),
                               "contrastive": round(con.item(), 5), "bit": round(bits.item(), 4),
                               "lr": opt.param_groups[0]["lr"], "seconds": round(time.monotonic() - started, 1)}
        if state.step % settings.val_every == 0 or state.step == total:
            metrics = validation_metrics(model, val_groups, feats)
            row["val"] = {k: round(v, 4) for k, v in metrics.items()}
            score = sum(metrics[k] for k in settings.select_on)
            if stage == 2 and score > state.best_score:
                state.best_score, state.best_step = score, state.step
                _save(out / BEST, {"head": model.head_state_dict(), "config": config.to_dict(), "step": state.step,
                                   "val": metrics, "settings": asdict(settings)})
            log.info("step %d stage %d loss %.4f val %s", state.step, stage, row["loss"], row["val"])
        history.write(json.dumps(row) + "\n")
        history.flush()
        if state.step % settings.checkpoint_every == 0 or state.step == total:
            checkpoint()
    history.close()
    return state
