"""Every size of OSCAR-Net in one frozen dataclass, so trained weights travel with their own architecture and
preprocessing (timm style: a checkpoint stores ``config.to_dict()`` beside the state dict).

No torch import here: the config is read by code that only needs sizes (the scene-graph builder, the CLI).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hasher.errors import ConfigError

__all__ = ["BACKBONE_NORMALISATION", "N_EDGE_FEATURES", "N_GEOMETRY_FEATURES", "N_SHAPE_FEATURES", "OscarConfig"]

#: Preprocessing each supported backbone was trained with, as (mean, std) on pixels scaled to [0, 1].
#: EfficientNet-Lite was trained in TensorFlow on (x - 127) / 128 of 0..255 pixels; ResNet50 on torchvision's
#: ImageNet statistics. A mismatch silently costs accuracy, hence one table that both config and backbone read.
BACKBONE_NORMALISATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "efficientnet_lite0": ((127.0 / 255,) * 3, (128.0 / 255,) * 3),
    "resnet50": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

_LITE0_MEAN, _LITE0_STD = BACKBONE_NORMALISATION["efficientnet_lite0"]

#: Number of node features of each kind produced by ``hasher.scene_graph`` (fixed by the paper, not tunable).
N_SHAPE_FEATURES = 7  # Hu moments
N_GEOMETRY_FEATURES = 5  # eq. 1
N_EDGE_FEATURES = 7  # eq. 4


STREAMS = ("global", "objects", "relations")


@dataclass(frozen=True)
class OscarConfig:
    """Architecture + preprocessing of one OSCAR-Net.

    Widths: a node token is ``n_i = [Ev(c_i), Es(s_i), Eg(g_i)]`` so ``d_node = d_visual + d_shape + d_geom``;
    a relation token is ``e_ij = [n_i, Er(r_ij), n_j]`` so ``d_relation_token = 2 * d_node + d_rel``.
    Both transformer widths must be divisible by ``heads``.
    """

    # detection and masks (preprocessing: they change the codes, so they travel with the weights)
    detect_size: int = 384  # CenterNet letterbox square (trained at 512; 384 finds the same objects in ~half the time)
    grabcut_size: int = 96  # longest side of the context crop GrabCut segments each box at
    grabcut_iterations: int = 2  # 0: no GrabCut, every object's mask is its filled box
    detect_min_score: float = 0.25  # detections kept from this CenterNet score (hasher.detect.DEFAULT_MIN_SCORE)
    # scene graph
    max_objects: int = 16  # detected objects kept; the background is one more node on top
    mask_crops: bool = True  # blank pixels outside the object mask in its crop (so the background node differs from FG)
    crop_size: int = 64  # object crops are resized to crop_size x crop_size for the object CNN
    global_size: int = 224  # the whole image is resized to global_size x global_size for FG
    global_pool: str = "avg"  # FG pooling: "avg" (the paper's CNN feature) or "attention" (eq. 7 over map cells)
    d_global: int = 256  # width of FG's cell embedding when global_pool == "attention"
    # node / edge embedders
    d_visual: int = 256  # Ev output
    d_shape: int = 32  # Es output
    d_geom: int = 32  # Eg output
    d_rel: int = 64  # Er output
    # transformers FO and FR (same depth/heads/ff for both)
    layers: int = 6
    heads: int = 8
    d_ff: int = 512  # 2x the object-token width (the usual 4x costs ~40% more FO/FR time for untested gain)
    dropout: float = 0.1
    # fusion, code, contrastive head
    d_fuse: int = 512  # hidden width of Ed
    code_bits: int = 64  # D
    proj_dim: int = 64  # Eb output, where the contrastive loss is computed
    temperature: float = 0.1  # tau of eq. 11
    straight_through: str = "identity"  # "identity" or "clipped" (gradient zeroed where |z| > 1)
    # backbone
    backbone: str = "efficientnet_lite0"
    share_backbone: bool = False  # False: the object CNN is a copy of the global CNN (initialised from it)
    # which streams feed Ed: the paper's model uses all three; ablations drop some (Table 1 of the paper)
    streams: tuple[str, ...] = ("global", "objects", "relations")
    mean: tuple[float, float, float] = field(default=_LITE0_MEAN)
    std: tuple[float, float, float] = field(default=_LITE0_STD)

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalise so equality and hashing keep working.
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "streams", tuple(self.streams))
        if not self.streams or set(self.streams) - set(STREAMS) or len(set(self.streams)) != len(self.streams):
            raise ConfigError(f"streams must be a non-empty subset of {STREAMS}, got {self.streams}")
        positive = ("detect_size", "grabcut_size", "max_objects", "crop_size", "global_size", "d_visual", "d_shape",
                    "d_geom", "d_rel", "d_global", "layers", "heads", "d_ff", "d_fuse", "code_bits", "proj_dim")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < float(self.detect_min_score) <= 1.0:
            raise ConfigError(f"detect_min_score must be in (0, 1], got {self.detect_min_score}")
        if int(self.grabcut_iterations) < 0:
            raise ConfigError(f"grabcut_iterations must be >= 0 (0: box masks), got {self.grabcut_iterations}")
        if self.d_node % self.heads or self.d_relation_token % self.heads:
            raise ConfigError(
                f"heads={self.heads} must divide d_node={self.d_node} and d_relation_token={self.d_relation_token}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.global_pool not in ("avg", "attention"):
            raise ConfigError(f"global_pool must be 'avg' or 'attention', got {self.global_pool!r}")
        if self.straight_through not in ("identity", "clipped"):
            raise ConfigError(f"straight_through must be 'identity' or 'clipped', got {self.straight_through!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("mean and std need three values each, std > 0")
        if self.backbone not in BACKBONE_NORMALISATION:
            raise ConfigError(f"unknown backbone {self.backbone!r}; known: {sorted(BACKBONE_NORMALISATION)}")

    @property
    def needs_objects(self) -> bool:
        """False for the CNN-only ablation: no detector, masks or scene graph beyond the whole image."""
        return "objects" in self.streams or "relations" in self.streams

    @property
    def d_node(self) -> int:
        """Width of a node token and of the object transformer FO."""
        return self.d_visual + self.d_shape + self.d_geom

    @property
    def d_relation_token(self) -> int:
        """Width of a relation token ``[n_i, Er(r_ij), n_j]`` and of the relation transformer FR."""
        return 2 * self.d_node + self.d_rel

    @classmethod
    def for_backbone(cls, backbone: str, **overrides: Any) -> OscarConfig:
        """A config whose mean/std are the ones ``backbone`` was pretrained with."""
        if backbone not in BACKBONE_NORMALISATION:
            raise ConfigError(f"unknown backbone {backbone!r}; known: {sorted(BACKBONE_NORMALISATION)}")
        mean, std = BACKBONE_NORMALISATION[backbone]
        return cls(**{"backbone": backbone, "mean": mean, "std": std, **overrides})

    def replace(self, **changes: Any) -> OscarConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists) to store next to the weights."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OscarConfig:
        """Inverse of ``to_dict``. Unknown keys are an error: silently dropping one would load weights into a
        different architecture than the one they were trained with."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown OscarConfig keys: {unknown}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(f"bad OscarConfig: {exc}") from exc
