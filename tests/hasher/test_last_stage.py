"""Issue 17's CPU path: maps cached at the cut before the last EfficientNet-Lite0 stage reproduce the live network,
the cache fills resumably and skips unreadable images, hard-negative sampling follows its weights, training tunes
the head and the last stage only and resumes exactly, and the export loads as oscar-net-head/2 weights."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import hasher
from hasher.errors import ConfigError
from hasher.model import OscarNet
from hasher.scene_graph import collate
from hasher.train.data import Group
from hasher.train.last_stage import (
    HISTORY,
    HardNegativeSampler,
    LastStageSettings,
    encode_cut,
    export_last_stage,
    mine_weights,
    train_last_stage,
)
from hasher.train.recipe import RECIPE
from hasher.train.stage_cache import CutGraph, StageCache, cut_block, cut_graph, tail_features
from tests.hasher.test_model import TINY, _graph

SMALL = RECIPE.replace(layers=1, d_ff=64, d_fuse=64, proj_dim=32)


def test_cut_points_are_stage_boundaries_and_bad_cuts_are_refused(tmp_path: Path) -> None:
    assert cut_block(1) == 15 and cut_block(2) == 11 and cut_block(7) == 0
    for bad in (0, 8):
        with pytest.raises(ConfigError):
            cut_block(bad)
    with pytest.raises(ConfigError, match="share_backbone"):
        StageCache(tmp_path, RECIPE.replace(share_backbone=True))
    with pytest.raises(ConfigError, match="EfficientNet-Lite0"):
        StageCache(tmp_path, RECIPE.for_backbone("resnet50"))


@pytest.mark.parametrize("stages", [1, 2])
def test_cut_maps_and_the_tail_reproduce_the_live_network(stages: int) -> None:
    torch.manual_seed(0)
    model = OscarNet(TINY.replace(global_pool="attention", d_global=16)).eval()
    graphs = [_graph(n, seed=n) for n in (0, 2, 5)]
    first = cut_block(stages)
    with torch.no_grad():
        live = model.extract(collate(graphs))
        cuts = [cut_graph(model, collate([g]), first) for g in graphs]
        replay = tail_features(model, cuts, first)
        assert [c.num_nodes for c in cuts] == [1, 3, 6]  # the objects and the background node
        assert torch.equal(live.node_padding, replay.node_padding)
        assert torch.allclose(live.global_map, replay.global_map, atol=2e-2)  # float16 at the cut
        assert torch.allclose(live.node_visual, replay.node_visual, atol=2e-2)
        assert torch.allclose(model.head(live).z, model.head(replay).z, atol=2e-2)


def test_the_cache_fills_resumably_and_leaves_out_unreadable_images(tmp_path: Path, shared_photos: Path,
                                                                     monkeypatch, caplog) -> None:
    photos = sorted(shared_photos.rglob("*.jpg"))[:2]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    cache = StageCache(tmp_path / "cache", RECIPE)
    with caplog.at_level(logging.WARNING):
        shas = cache.fill([*photos, broken])
    assert set(shas) == set(photos) and "broken.jpg" in caplog.text
    entry = cache.get(shas[photos[0]])
    assert entry.global_in.shape == (192, 7, 7) and entry.global_in.dtype == np.float16
    assert entry.node_in.shape[1:] == (192, 2, 2) and entry.node_in.shape[0] == entry.shape.shape[0]

    def no_pipeline(*a, **k):
        raise AssertionError("a filled cache must not run the pipeline again")

    monkeypatch.setattr(hasher.api, "load", no_pipeline)
    assert StageCache(tmp_path / "cache", RECIPE).fill(photos) == {p: shas[p] for p in photos}


def _groups(n: int) -> list[Group]:
    return [Group(g, Path(f"g{g}/ref"), tuple(Path(f"g{g}/b{i}") for i in range(3)),
                  tuple(Path(f"g{g}/m{i}") for i in range(3))) for g in range(n)]


def test_hard_negative_sampler_draws_by_weight_and_replays() -> None:
    groups = _groups(6)
    sampler = HardNegativeSampler(groups, originals=3, benign=1, manipulated=1, seed=1)
    uniform = [s.path.name for step in range(40) for s in sampler.batch(step) if s.variant]
    assert {"m0", "m1", "m2"} <= set(uniform)
    sampler.weights = {p: (1.0 if p.name == "m2" else 1e-4) for g in groups for p in g.manipulated}
    picked = [s.path.name for step in range(40) for s in sampler.batch(step) if s.variant]
    assert picked.count("m2") >= 0.9 * len(picked)
    again = HardNegativeSampler(groups, originals=3, benign=1, manipulated=1, seed=1)
    again.weights = dict(sampler.weights)
    assert again.batch(7) == sampler.batch(7)


def _synthetic(groups: list[Group], seed: int = 0) -> dict[Path, CutGraph]:
    rng = np.random.default_rng(seed)

    def graph(g_in: np.ndarray, n_in: np.ndarray) -> CutGraph:
        k = n_in.shape[0]
        return CutGraph(g_in.astype(np.float16), n_in.astype(np.float16), np.zeros((k, 7), np.float32),
                        np.ones((k, 5), np.float32), np.zeros((0, 7), np.float32), np.zeros((0, 2), np.int16))

    out = {}
    for g in groups:
        base, nodes = rng.normal(size=(192, 7, 7)), rng.normal(size=(2, 192, 2, 2))
        out[g.reference] = graph(base, nodes)
        for p in g.benign:
            out[p] = graph(base + rng.normal(scale=0.05, size=base.shape), nodes)
        for p in g.manipulated:
            edited = base.copy()
            edited[:, :2, :2] += rng.normal(scale=2.0, size=(192, 2, 2))  # a local edit
            out[p] = graph(edited, nodes[:1])
    return out


def test_training_tunes_the_head_and_last_stage_only_and_resumes_exactly(tmp_path: Path) -> None:
    train_g, val_g = _groups(6), [Group(100 + g.origin, *(_rename(g, "v"))) for g in _groups(3)]
    graphs = _synthetic(train_g) | _synthetic(val_g, seed=1)
    settings = LastStageSettings(steps=4, originals=3, benign=2, manipulated=2, val_every=2, checkpoint_every=2,
                                 mine_every=2, lr=1e-3, backbone_lr=1e-3)
    before = OscarNet(SMALL).state_dict()
    model, state = train_last_stage(SMALL, settings, train_g, val_g, graphs, tmp_path / "a")
    after = model.state_dict()
    assert state.step == 4 and state.best_step in (2, 4)
    assert not torch.equal(before["global_cnn._blocks.15._project_conv.weight"],
                           after["global_cnn._blocks.15._project_conv.weight"])
    assert not torch.equal(before["object_cnn._conv_head.weight"], after["object_cnn._conv_head.weight"])
    assert torch.equal(before["global_cnn._blocks.14._project_conv.weight"],
                       after["global_cnn._blocks.14._project_conv.weight"])
    assert torch.equal(before["global_cnn._bn1.running_mean"], after["global_cnn._bn1.running_mean"])
    weights = mine_weights(model, train_g, graphs, cut_block(1), 4.0)
    assert len(weights) == 18 and all(0 < w <= 1 for w in weights.values())

    # 4 steps in one go == 2 steps, stop, resume for 2 more (optimizer, mined weights and RNG restored)
    train_last_stage(SMALL, LastStageSettings(**{**settings.__dict__, "steps": 2}), train_g, val_g, graphs,
                     tmp_path / "b")
    resumed, _ = train_last_stage(SMALL, settings, train_g, val_g, graphs, tmp_path / "b")
    straight = torch.load(tmp_path / "a" / "last.pt", weights_only=False)["model"]
    again = torch.load(tmp_path / "b" / "last.pt", weights_only=False)["model"]
    for k in straight:
        assert torch.allclose(straight[k], again[k], atol=1e-6), k
    rows = [json.loads(line) for line in (tmp_path / "b" / HISTORY).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    codes = encode_cut(resumed, [graphs[g.reference] for g in val_g], cut_block(1))
    assert codes.shape == (3, SMALL.code_bits)


def test_a_warm_start_is_validated_first_and_kept_unless_training_beats_it(tmp_path: Path) -> None:
    train_g, val_g = _groups(6), [Group(100 + g.origin, *(_rename(g, "v"))) for g in _groups(3)]
    graphs = _synthetic(train_g) | _synthetic(val_g, seed=1)
    torch.manual_seed(3)
    start = {k: v.clone() for k, v in OscarNet(SMALL).state_dict().items() if not k.startswith(("global_cnn.",
                                                                                                 "object_cnn."))}
    # no learning: every later validation only ties the start, so the start must stay the selected model
    frozen = LastStageSettings(steps=2, originals=3, benign=2, manipulated=2, val_every=1, mine_every=0, lr=0.0,
                               backbone_lr=0.0, weight_decay=0.0)
    model, state = train_last_stage(SMALL, LastStageSettings(**{**frozen.__dict__, "steps": 1}), train_g, val_g,
                                    graphs, tmp_path / "w", init=start)
    model, state = train_last_stage(SMALL, frozen, train_g, val_g, graphs, tmp_path / "w", init=start)  # resumed
    rows = [json.loads(line) for line in (tmp_path / "w" / HISTORY).read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]  # the start is scored once, not again on resume
    assert all("val" in r for r in rows) and state.best_step == 0
    best = torch.load(tmp_path / "w" / "best.pt", weights_only=False)
    assert best["step"] == 0 and all(torch.equal(best["model"][k], start[k]) for k in start)
    # a cold start has nothing to keep: its first row is a training step
    train_last_stage(SMALL, frozen, train_g, val_g, graphs, tmp_path / "c")
    rows = [json.loads(line) for line in (tmp_path / "c" / HISTORY).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]


def _rename(g: Group, prefix: str) -> tuple[Path, tuple[Path, ...], tuple[Path, ...]]:
    return (Path(prefix) / g.reference, tuple(Path(prefix) / p for p in g.benign),
            tuple(Path(prefix) / p for p in g.manipulated))


def test_export_writes_tuned_weights_the_hasher_loads(tmp_path: Path, shared_photos: Path) -> None:
    photos = sorted(shared_photos.rglob("*.jpg"))[:3]
    ds = tmp_path / "val"
    ds.mkdir()
    rows = ["reference,query,relation"] + [f"{photos[0]},{photos[1]},benign", f"{photos[0]},{photos[2]},manipulated",
                                           f"{photos[1]},{photos[0]},benign", f"{photos[1]},{photos[2]},manipulated"]
    (ds / "pairs.csv").write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    model = OscarNet(SMALL)
    with torch.no_grad():
        model.global_cnn._conv_head.weight.mul_(1.25)
    torch.save({"model": {k: v for k, v in model.state_dict().items() if not k.startswith("object_cnn._blocks.1.")},
                "config": SMALL.to_dict(), "step": 7, "settings": {"stages": 1}}, _mkdir(run) / "best.pt")
    meta = export_last_stage(run, tmp_path / "v2.safetensors", [str(ds)], str(tmp_path / "cache"), name="oscar-test")
    assert meta["format"] == "oscar-net-head/2" and int(meta["threshold"]) >= 0 and meta["step"] == "7"
    loaded = hasher.load(tmp_path / "v2.safetensors", device="cpu")
    assert loaded.model_id.startswith("oscar-test-")
    assert torch.allclose(loaded.model.global_cnn._conv_head.weight,
                          model.global_cnn._conv_head.weight.half().float())
    assert loaded.hash(photos[0]).bits == loaded.hash(photos[0]).bits


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def test_features_from_the_stage_cache_equal_a_direct_extraction(tmp_path: Path, shared_photos: Path) -> None:
    from hasher.train.features import FeatureCache
    from hasher.train.stage_cache import features_from_stage

    photos = sorted(shared_photos.rglob("*.jpg"))[2:4]
    stage = StageCache(tmp_path / "stage", RECIPE)
    shas = stage.fill(photos)
    derived = FeatureCache(tmp_path / "derived", RECIPE)
    assert features_from_stage(stage, derived, photos) == 2
    assert features_from_stage(stage, derived, photos) == 0  # already there
    direct = FeatureCache(tmp_path / "direct", RECIPE)
    direct.fill(photos)
    for p in photos:
        a, b = derived.get(shas[p]), direct.get(shas[p])
        assert a.global_map.shape == b.global_map.shape == (1280, 7, 7)
        assert a.node_visual.shape == b.node_visual.shape
        assert np.allclose(a.global_map.astype(np.float32), b.global_map.astype(np.float32), atol=0.05)
        assert np.allclose(a.node_visual.astype(np.float32), b.node_visual.astype(np.float32), atol=0.05)
    with pytest.raises(ConfigError, match="preprocessing"):
        features_from_stage(stage, FeatureCache(tmp_path / "other", RECIPE.replace(detect_size=512)), photos)


def test_stages_zero_trains_the_head_alone_on_cached_features(tmp_path: Path) -> None:
    from hasher.train.features import CachedGraph

    groups = _groups(6)
    val = [Group(100 + g.origin, *_rename(g, "v")) for g in _groups(3)]
    rng = np.random.default_rng(0)
    graphs = {}
    for g in [*groups, *val]:
        base = rng.normal(size=(1280, 2, 2))
        for p in (g.reference, *g.benign, *g.manipulated):
            noise = 0.05 if p in (g.reference, *g.benign) else 1.5
            graphs[p] = CachedGraph((base + rng.normal(scale=noise, size=base.shape)).astype(np.float16),
                                    rng.normal(size=(1, 1280)).astype(np.float16), np.zeros((1, 7), np.float32),
                                    np.ones((1, 5), np.float32), np.zeros((0, 7), np.float32),
                                    np.zeros((0, 2), np.int16))
    settings = LastStageSettings(steps=3, originals=3, benign=2, manipulated=2, val_every=3, mine_every=2, stages=0)
    before = OscarNet(SMALL).state_dict()
    model, state = train_last_stage(SMALL, settings, groups, val, graphs, tmp_path)
    after = model.state_dict()
    assert state.step == 3 and state.best_step == 3
    assert not torch.equal(before["fuse.0.weight"], after["fuse.0.weight"])
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("global_cnn.", "object_cnn.")))
    saved = torch.load(tmp_path / "best.pt", weights_only=False)["model"]
    assert not any(k.startswith(("global_cnn.", "object_cnn.")) for k in saved)


def test_cached_only_trains_on_what_is_cached_and_extracts_nothing(tmp_path: Path, monkeypatch) -> None:
    import hashlib

    from hasher.train.features import CachedGraph
    from hasher.train.last_stage import _cache_for, load_cut_graphs

    def no_pipeline(*a, **k):
        raise AssertionError("--cached-only must not extract")

    import hasher.api

    monkeypatch.setattr(hasher.api, "load", no_pipeline)
    files = [tmp_path / f"{n}.png" for n in range(3)]
    for n, f in enumerate(files):
        f.write_bytes(bytes([n]) * 10)
    cache = _cache_for(SMALL, 0, str(tmp_path / "features"), None, cached_only=True)
    entry = CachedGraph(np.zeros((1280, 1, 1), np.float16), np.zeros((1, 1280), np.float16),
                        np.zeros((1, 7), np.float32), np.zeros((1, 5), np.float32), np.zeros((0, 7), np.float32),
                        np.zeros((0, 2), np.int16))
    for f in files[:2]:
        cache.features.put(hashlib.sha256(f.read_bytes()).hexdigest(), entry)
    groups, graphs = load_cut_graphs(cache, [Group(0, files[0], (files[1],), (files[2],)),
                                             Group(1, files[2], (files[0],), ())])
    assert set(graphs) == set(files[:2])
    assert groups == [Group(0, files[0], (files[1],), ())]  # the uncached edit left out; group 1 lost its reference


def test_the_cli_refuses_an_unreadable_init_file_in_one_line(tmp_path: Path, capsys) -> None:
    from hasher.train.__main__ import main

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    rc = main(["fit-last", "--stages", "1", "--init", str(bad), "--cache", str(tmp_path / "cache"), "--train",
               str(tmp_path / "no-train"), "--val", str(tmp_path / "no-val"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
