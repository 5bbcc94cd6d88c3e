"""OscarNet on a small config (fast on CPU): shapes for 0 / 1 / 16 objects, masking, permutation invariance,
gradient flow through the sign, determinism, checkpoints, config round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hasher.config import OscarConfig
from hasher.errors import BackboneWeightsError, ConfigError
from hasher.losses import bit_loss, contrastive_labels, simclr_plus_loss
from hasher.model import OscarNet, codes_to_ints, load_checkpoint, save_checkpoint, sign_straight_through
from hasher.scene_graph import SceneGraph, build_scene_graph, collate
from hasher.types import Detection, SegmentedObject

TINY = OscarConfig(crop_size=32, global_size=32, d_visual=16, d_shape=8, d_geom=8, d_rel=8, layers=1, heads=2,
                   d_ff=32, d_fuse=32, proj_dim=16)


def _graph(n_objects: int, seed: int) -> SceneGraph:
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    objects = []
    for _ in range(n_objects):
        x1, y1 = int(rng.integers(0, w - 12)), int(rng.integers(0, h - 12))
        x2, y2 = x1 + int(rng.integers(4, 12)), y1 + int(rng.integers(4, 12))
        mask = np.zeros((h, w), dtype=bool)
        mask[y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) < 0.8
        objects.append(SegmentedObject(Detection((x1, y1, x2, y2), float(rng.random()), 0, "thing"), mask))
    return build_scene_graph(image, objects, TINY)


@pytest.fixture(scope="module")
def graphs() -> dict[int, SceneGraph]:
    return {n: _graph(n, seed=n) for n in (0, 1, 2, 16)}


@pytest.fixture(scope="module")
def model() -> OscarNet:
    torch.manual_seed(0)
    return OscarNet(TINY, pretrained_backbone=False).eval()


def test_output_shapes_for_0_1_16_objects(model, graphs):
    batch = collate([graphs[0], graphs[1], graphs[16]])
    assert batch.node_padding.shape == (3, 17) and batch.edge_padding.shape == (3, 17 * 16)
    with torch.no_grad():
        z, bits, projection = model(batch)
        only_background = model(collate([graphs[0]]))  # no edges anywhere in the batch
    assert z.shape == bits.shape == (3, 64) and projection.shape == (3, 16)
    assert set(bits.unique().tolist()) <= {-1.0, 1.0}
    assert only_background.z.shape == (1, 64)
    for t in (z, projection, only_background.z):
        assert torch.all(torch.isfinite(t))


def test_padding_does_not_change_the_code(model, graphs):
    with torch.no_grad():
        alone = [model(collate([graphs[n]])).z[0] for n in (0, 1, 2)]
        batched = model(collate([graphs[0], graphs[1], graphs[2], graphs[16]])).z
    for n, z in enumerate(alone):
        torch.testing.assert_close(batched[n], z, rtol=1e-4, atol=1e-5)


def test_code_ignores_node_order(model, graphs):
    """No positional encoding: renumbering the nodes (and the edges with them) gives the same code."""
    g = graphs[2]
    perm = torch.tensor([2, 0, 1])  # new node k is old node perm[k]
    inverse = torch.argsort(perm)
    edge_index = inverse[g.edge_index]
    order = torch.randperm(len(edge_index), generator=torch.Generator().manual_seed(1))
    shuffled = SceneGraph(g.image, g.crops[perm], g.shape[perm], g.geometry[perm], g.edges[order], edge_index[order])
    with torch.no_grad():
        torch.testing.assert_close(model(collate([shuffled])).z, model(collate([g])).z, rtol=1e-4, atol=1e-5)


def test_gradients_flow_through_sign_to_every_stream(graphs):
    torch.manual_seed(0)
    net = OscarNet(TINY, pretrained_backbone=False).train()
    batch = collate([graphs[1], graphs[16], graphs[2], graphs[1]])
    out = net(batch)
    labels = contrastive_labels(torch.tensor([0, 1, 2, 0]))
    loss = simclr_plus_loss(out.projection, labels, TINY.temperature)  # sees z only through sign(z)
    loss.backward()
    streams = ["global_cnn", "object_cnn", "visual_embed", "shape_embed", "geometry_embed", "relation_embed",
               "object_stream", "relation_stream", "fuse", "project"]
    for name in streams:
        grads = [p.grad for p in getattr(net, name).parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name
    net.zero_grad()
    bit_loss(net(batch).z).backward()
    assert float(net.fuse[-1].weight.grad.abs().sum()) > 0


def test_straight_through_modes():
    z = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    b = sign_straight_through(z)
    assert b.tolist() == [-1.0, -1.0, 1.0, 1.0, 1.0]
    b.sum().backward()
    assert z.grad.tolist() == [1.0] * 5
    z.grad = None
    sign_straight_through(z, "clipped").sum().backward()
    assert z.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_eval_is_deterministic_and_bits_follow_z(model, graphs):
    batch = collate([graphs[1], graphs[16]])
    with torch.no_grad():
        first, second = model(batch), model(batch)
    assert torch.equal(first.z, second.z) and torch.equal(first.projection, second.projection)
    bits = model.encode_bits(batch)
    assert bits.dtype == torch.bool and torch.equal(bits, first.bits > 0)
    ints = codes_to_ints(bits)
    assert all(0 <= v < 2**64 for v in ints)
    assert codes_to_ints(torch.tensor([[True] + [False] * 63])) == [1 << 63]


def test_checkpoint_round_trip_keeps_config_and_code(model, graphs, tmp_path):
    path = tmp_path / "oscar.pt"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path).eval()
    assert loaded.config == TINY
    batch = collate([graphs[2]])
    with torch.no_grad():
        assert torch.equal(loaded(batch).z, model(batch).z)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneWeightsError):
        load_checkpoint(tmp_path / "junk.pt")


def test_shared_backbone_and_mean_std_check():
    shared = OscarNet(TINY.replace(share_backbone=True), pretrained_backbone=False)
    assert shared.object_cnn is shared.global_cnn
    with pytest.raises(ConfigError):  # ResNet50 weights with Lite0's normalisation would be silently wrong
        OscarNet(TINY.replace(backbone="resnet50"), backbone_weights="unused.pth")


def test_config_dict_round_trip_and_validation():
    config = OscarConfig()
    assert (config.max_objects, config.d_visual, config.layers, config.heads, config.code_bits) == (16, 256, 6, 8, 64)
    assert config.d_node == 320 and config.d_relation_token == 704
    assert OscarConfig.from_dict(config.to_dict()) == config
    import json

    assert OscarConfig.from_dict(json.loads(json.dumps(TINY.to_dict()))) == TINY
    with pytest.raises(ConfigError):
        OscarConfig.from_dict({**config.to_dict(), "surprise": 1})
    with pytest.raises(ConfigError):
        OscarConfig(heads=7)
    with pytest.raises(ConfigError):
        OscarConfig(backbone="vgg16")
    rn = OscarConfig.for_backbone("resnet50", layers=2)
    assert rn.mean == (0.485, 0.456, 0.406) and rn.layers == 2
