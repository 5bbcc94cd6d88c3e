"""Training machinery on tiny configs: the batch sampler's guarantees, cached features equal to the live network's,
exact resume from a checkpoint, validation metrics on hand-made codes, and the shipped head-weights format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hasher.api import _model_from_head, read_head_weights
from hasher.errors import BackboneWeightsError, HasherError
from hasher.model import OscarNet
from hasher.scene_graph import collate
from hasher.train.data import Group, GroupBatchSampler, read_groups
from hasher.train.export import write_head_weights
from hasher.train.features import CachedGraph, _strip, collate_cached
from hasher.train.loop import CHECKPOINT, TrainSettings, _auc, train, validation_metrics
from tests.hasher.test_model import TINY, _graph


def _groups(n: int, benign: int = 4, manipulated: int = 2) -> list[Group]:
    return [Group(g, Path(f"g{g}/ref"), tuple(Path(f"g{g}/b{i}") for i in range(benign)),
                  tuple(Path(f"g{g}/m{i}") for i in range(manipulated))) for g in range(n)]


def test_sampler_batches_hold_unique_originals_each_with_a_manipulated_variant():
    sampler = GroupBatchSampler(_groups(10), originals=4, benign=2, manipulated=1, seed=3)
    for step in range(6):
        batch = sampler.batch(step)
        origins = {s.origin for s in batch}
        assert len(origins) == 4 and len(batch) == 4 * (1 + 2 + 1)
        for o in origins:
            variants = [s.variant for s in batch if s.origin == o]
            assert variants.count(0) == 3 and any(v > 0 for v in variants)
    assert sampler.batch(5) == GroupBatchSampler(_groups(10), originals=4, benign=2, manipulated=1, seed=3).batch(5)
    with pytest.raises(HasherError):
        GroupBatchSampler(_groups(3), originals=1, benign=1, manipulated=1, seed=0)


def test_read_groups_from_pairs_csv(tmp_path):
    (tmp_path / "pairs.csv").write_text("reference,query,relation,kind\nr1.png,a.jpg,benign,jpeg\n"
                                        "r1.png,m.png,manipulated,splice\nr2.png,b.jpg,benign,flip\n")
    groups = read_groups([tmp_path], first_origin=7)
    assert [g.origin for g in groups] == [7, 8]
    assert groups[0].benign == (tmp_path / "a.jpg",) and groups[0].manipulated == (tmp_path / "m.png",)
    (tmp_path / "pairs.csv").write_text("reference,query,relation\nr.png,q.png,cousin\n")
    with pytest.raises(HasherError, match="cousin"):
        read_groups([tmp_path])


def test_cached_features_reproduce_the_live_network():
    torch.manual_seed(0)
    model = OscarNet(TINY.replace(global_pool="attention", d_global=16), pretrained_backbone=False).eval()
    graphs = [_graph(n, seed=n) for n in (0, 2, 5)]
    with torch.no_grad():
        live = model(collate(graphs)).z
        cached = [_strip(model.extract(collate([g]))) for g in graphs]
        replay = model.head(collate_cached(cached)).z
    assert torch.allclose(live, replay, atol=2e-2)  # float16 cache
    assert torch.equal(live >= 0, replay >= 0) or (live.abs() < 2e-2).any()


def _synthetic_features(groups: list[Group], seed: int = 0) -> dict[Path, CachedGraph]:
    rng = np.random.default_rng(seed)
    feats = {}
    for g in groups:
        base = rng.normal(size=(1280, 1, 1)).astype(np.float16)
        nodes = rng.normal(size=(2, 1280)).astype(np.float16)

        def graph(global_map, node_visual):
            return CachedGraph(global_map, node_visual, np.zeros((2, 7), np.float32), np.ones((2, 5), np.float32),
                               np.zeros((2, 7), np.float32), np.array([[0, 1], [1, 0]], np.int16))

        feats[g.reference] = graph(base, nodes)
        for p in g.benign:
            feats[p] = graph(base + rng.normal(scale=0.05, size=base.shape).astype(np.float16), nodes)
        for p in g.manipulated:
            feats[p] = graph(base + rng.normal(scale=1.0, size=base.shape).astype(np.float16), nodes[::-1].copy())
    return feats


def test_training_resumes_exactly_and_writes_history(tmp_path):
    config = TINY.replace(global_size=32, crop_size=32)
    groups, val = _groups(6), _groups(2)
    val = [Group(g.origin + 6, Path(f"v{g.origin}"), tuple(Path(f"v{g.origin}/{p.name}") for p in g.benign),
                 tuple(Path(f"v{g.origin}/{p.name}") for p in g.manipulated)) for g in val]
    feats = _synthetic_features(groups) | _synthetic_features(val, seed=1)
    settings = TrainSettings(originals=3, benign=2, manipulated=1, pretrain_steps=2, steps=4, val_every=3,
                             checkpoint_every=1, decay_every=2)
    train(config, settings, groups, val, feats, tmp_path / "straight")
    half = TrainSettings(**{**settings.__dict__, "steps": 1})
    train(config, half, groups, val, feats, tmp_path / "resumed")
    state = train(config, settings, groups, val, feats, tmp_path / "resumed")
    assert state.step == 6
    a = torch.load(tmp_path / "straight" / CHECKPOINT, weights_only=False)["head"]
    b = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=False)["head"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "straight" / "history.jsonl").read_text().splitlines()
    assert len(rows) == 6 and '"val"' in rows[2] and (tmp_path / "straight" / "best.pt").is_file()


def test_validation_metrics_on_a_perfect_and_a_useless_code():
    assert _auc(np.array([0, 1]), np.array([5, 6])) == 1.0
    assert _auc(np.array([3, 3]), np.array([3, 3])) == 0.5
    assert np.isnan(_auc(np.array([]), np.array([1])))


def test_head_weights_round_trip_and_refuse_foreign_files(tmp_path):
    torch.manual_seed(1)
    model = OscarNet(TINY, pretrained_backbone=False).eval()
    path = tmp_path / "head.safetensors"
    write_head_weights(model, path, name="oscar-test", threshold=9, validation={"auc": 0.5}, step=3)
    head = read_head_weights(path)
    assert head.threshold == 9 and head.config == TINY and head.model_id.startswith("oscar-test-")
    assert len(head.model_id) == len("oscar-test-") + 8
    assert set(head.state) == set(model.head_state_dict())
    assert not any(k.startswith(("global_cnn.", "object_cnn.")) for k in head.state)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(BackboneWeightsError, match="cannot read"):
        read_head_weights(path)


def test_a_head_file_missing_tensors_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "bad.safetensors"
    save_file({"fuse.0.weight": torch.zeros(2, 2)}, str(path),
              metadata={"format": "oscar-net-head/1", "config": '{"d_visual": 16}'})
    head = read_head_weights(path)
    with pytest.raises(BackboneWeightsError, match="do not fit"):
        _model_from_head(head)
