"""OSCAR-Net (paper §3.3-3.4): three streams over a scene graph, fused into a D-bit code.

* FG: the global CNN on the whole image -> ``z_g``.
* FO: a transformer encoder over node tokens ``n_i = [Ev(c_i), Es(s_i), Eg(g_i)]`` (appearance from the object CNN,
  Hu-moment shape, eq. 1 geometry) -> attention pooling (eq. 7) -> ``z_o``.
* FR: a transformer encoder over relation tokens ``e_ij = [n_i, Er(r_ij), n_j]`` (eq. 4 edge features) -> attention
  pooling -> ``z_r``.
* Ed fuses ``[z_g, z_o, z_r]`` to the real code ``z`` (D = 64); ``b = sign(z)`` with a straight-through gradient
  (DPLM style) is the hash; ``Eb(b)`` is the projection the contrastive loss (eq. 11) sees.

Neither transformer has positional encodings: a scene graph is a *set* of objects / relations, so the code must not
depend on the order the detector listed them in. Padding (images with fewer objects) is removed from attention and
pooling by key-padding masks, so batching never changes an image's code.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from hasher.backbone import create_backbone
from hasher.config import (
    BACKBONE_NORMALISATION,
    N_EDGE_FEATURES,
    N_GEOMETRY_FEATURES,
    N_SHAPE_FEATURES,
    OscarConfig,
)
from hasher.errors import BackboneWeightsError, ConfigError
from hasher.scene_graph import SceneGraphBatch

__all__ = ["AttentionPool", "OscarNet", "OscarOutput", "SceneFeatures", "codes_to_ints", "load_checkpoint",
           "save_checkpoint", "sign_straight_through"]

CHECKPOINT_FORMAT = "oscar-net/1"


class OscarOutput(NamedTuple):
    z: torch.Tensor  # [B, D] real-valued code
    bits: torch.Tensor  # [B, D] in {-1, +1}, straight-through gradient
    projection: torch.Tensor  # [B, proj_dim] Eb(bits), for the contrastive loss


class SceneFeatures(NamedTuple):
    """What the two CNNs make of a scene-graph batch: everything the trainable head needs, nothing it does not.

    Splitting here lets training cache the (frozen) CNN outputs once per image and train the head alone, and makes
    ``forward(batch) == head(extract(batch))`` exact.
    """

    global_map: torch.Tensor  # [B, C, h, w] feature map of the whole image (FG before pooling)
    node_visual: torch.Tensor  # [B, K, C] pooled object-CNN feature per node, zero at padding
    shape: torch.Tensor  # [B, K, 7]
    geometry: torch.Tensor  # [B, K, 5]
    node_padding: torch.Tensor  # [B, K] bool
    edges: torch.Tensor  # [B, E, 7]
    edge_index: torch.Tensor  # [B, E, 2] long
    edge_padding: torch.Tensor  # [B, E] bool


def sign_straight_through(z: torch.Tensor, mode: str = "identity") -> torch.Tensor:
    """Forward ``sign(z)`` in {-1, +1} (0 maps to +1, so every bit is defined); backward the identity, or with
    ``mode="clipped"`` the hardtanh gradient (zero where ``|z| > 1``), as in DPLM-style binary hashing."""
    hard = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
    soft = z.clamp(-1.0, 1.0) if mode == "clipped" else z
    return soft + (hard - soft).detach()


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


def _encoder(width: int, config: OscarConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(width, config.heads, config.d_ff, config.dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
    # Pre-norm layers for stable training from scratch; nested tensors off so padded and unpadded runs take the
    # same code path (the padding-invariance guarantee is then exact up to float rounding).
    return nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(width), enable_nested_tensor=False)


class AttentionPool(nn.Module):
    """Eq. 7: ``a_k = softmax_k(w^T tanh(W t_k))`` over the valid tokens, output ``sum_k a_k t_k``.

    A set with no valid token (an image with no relations) pools to the zero vector rather than NaN.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        scores = self.score(tokens).squeeze(-1).masked_fill(padding, float("-inf"))
        empty = padding.all(dim=1, keepdim=True)
        weights = torch.softmax(scores.masked_fill(empty, 0.0), dim=1).masked_fill(padding, 0.0)
        return torch.where(padding.unsqueeze(-1), torch.zeros_like(tokens), tokens).mul(weights.unsqueeze(-1)).sum(1)


class _SetEncoder(nn.Module):
    """Transformer over a padded set of tokens followed by attention pooling."""

    def __init__(self, width: int, config: OscarConfig) -> None:
        super().__init__()
        self.encoder = _encoder(width, config)
        self.pool = AttentionPool(width)

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] == 0:
            return tokens.new_zeros((tokens.shape[0], tokens.shape[2]))
        # A row with every slot masked would make attention NaN: let it attend to its (zero) first slot, and drop
        # the result in pooling, which still uses the true padding.
        attend = padding.clone()
        attend[padding.all(dim=1), 0] = False
        return self.pool(self.encoder(tokens, src_key_padding_mask=attend), padding)


class OscarNet(nn.Module):
    """The whole network. ``forward(batch) -> OscarOutput(z, bits, projection)``."""

    def __init__(self, config: OscarConfig, *, pretrained_backbone: bool = True,
                 backbone_weights: str | Path | None = None) -> None:
        super().__init__()
        self.config = config
        if pretrained_backbone and (config.mean, config.std) != BACKBONE_NORMALISATION[config.backbone]:
            raise ConfigError(f"config mean/std differ from those {config.backbone} was pretrained with; "
                              f"use OscarConfig.for_backbone({config.backbone!r})")
        backbone = create_backbone(config.backbone, backbone_weights, pretrained=pretrained_backbone)
        backbone.module.drop_classifier()
        self.global_cnn = backbone.module  # FG
        # The object CNN starts from the global CNN's (ImageNet) weights; sharing is optional.
        self.object_cnn = self.global_cnn if config.share_backbone else copy.deepcopy(self.global_cnn)
        feat = backbone.feature_dim
        self.visual_embed = nn.Linear(feat, config.d_visual)  # Ev
        self.shape_embed = _mlp(N_SHAPE_FEATURES, config.d_shape, config.d_shape)  # Es
        self.geometry_embed = _mlp(N_GEOMETRY_FEATURES, config.d_geom, config.d_geom)  # Eg
        self.relation_embed = _mlp(N_EDGE_FEATURES, config.d_rel, config.d_rel)  # Er
        self.object_stream = _SetEncoder(config.d_node, config)  # FO
        self.relation_stream = _SetEncoder(config.d_relation_token, config)  # FR
        if config.global_pool == "attention":
            # FG pooled by eq. 7 over the cells of its feature map instead of a plain average: a learned weighting
            # can single out the cells an edit touched, which an average dilutes by the image area.
            self.global_embed = nn.Linear(feat, config.d_global)
            self.global_pool = AttentionPool(config.d_global)
        widths = {"global": config.d_global if config.global_pool == "attention" else feat,
                  "objects": config.d_node, "relations": config.d_relation_token}
        self._widths = widths
        d_cat = sum(widths[name] for name in config.streams)
        self.fuse = nn.Sequential(nn.Linear(d_cat, config.d_fuse), nn.ReLU(), nn.Dropout(config.dropout),
                                  nn.Linear(config.d_fuse, config.code_bits))  # Ed
        self.project = _mlp(config.code_bits, config.code_bits, config.proj_dim)  # Eb

    @property
    def uses_objects(self) -> bool:
        return "objects" in self.config.streams or "relations" in self.config.streams

    def extract(self, batch: SceneGraphBatch) -> SceneFeatures:
        """Run the CNNs (FG's feature map, the object CNN on every real crop)."""
        valid = ~batch.node_padding
        feat = self.global_cnn.feature_dim
        node_visual = batch.shape.new_zeros((*valid.shape, feat))
        if self.uses_objects and bool(valid.any()):
            node_visual[valid] = self.object_cnn(batch.crops[valid])  # CNN only on real crops
        global_map = (self.global_cnn.forward_features(batch.images) if "global" in self.config.streams
                      else batch.images.new_zeros((batch.images.shape[0], feat, 1, 1)))
        return SceneFeatures(global_map, node_visual, batch.shape, batch.geometry, batch.node_padding, batch.edges,
                             batch.edge_index, batch.edge_padding)

    def node_tokens(self, f: SceneFeatures) -> torch.Tensor:
        """``n_i = [Ev(CNN(c_i)), Es(s_i), Eg(g_i)]`` as ``[B, K, d_node]``; padded slots are zero."""
        tokens = torch.cat([self.visual_embed(f.node_visual), self.shape_embed(f.shape),
                            self.geometry_embed(f.geometry)], dim=-1)
        return tokens.masked_fill(f.node_padding.unsqueeze(-1), 0.0)

    def relation_tokens(self, nodes: torch.Tensor, f: SceneFeatures) -> torch.Tensor:
        """``e_ij = [n_i, Er(r_ij), n_j]`` as ``[B, E, d_relation_token]``."""
        d = nodes.shape[-1]
        n_i = torch.gather(nodes, 1, f.edge_index[..., 0:1].expand(-1, -1, d))
        n_j = torch.gather(nodes, 1, f.edge_index[..., 1:2].expand(-1, -1, d))
        return torch.cat([n_i, self.relation_embed(f.edges), n_j], dim=-1)

    def global_feature(self, global_map: torch.Tensor) -> torch.Tensor:
        if self.config.global_pool == "attention":
            cells = self.global_embed(global_map.flatten(2).transpose(1, 2))  # [B, h*w, d_global]
            return self.global_pool(cells, cells.new_zeros(cells.shape[:2], dtype=torch.bool))
        return global_map.mean(dim=(2, 3))

    def head(self, f: SceneFeatures, *, only: tuple[str, ...] | None = None) -> OscarOutput:
        """Everything after the CNNs: the trainable part when the backbones are frozen.

        ``only`` (training): streams outside it feed zeros into Ed, as in the first training stage, which fits the
        global stream before the object and relation streams join."""
        streams = self.config.streams
        keep = streams if only is None else tuple(s for s in streams if s in only)
        batch = f.global_map.shape[0]
        parts = []
        if "global" in streams:
            g = self.global_feature(f.global_map) if "global" in keep else None  # FG
            parts.append(g if g is not None else f.global_map.new_zeros((batch, self._widths["global"])))
        if self.uses_objects:
            nodes = self.node_tokens(f) if ("objects" in keep or "relations" in keep) else None
            if "objects" in streams:
                parts.append(self.object_stream(nodes, f.node_padding) if "objects" in keep
                             else f.global_map.new_zeros((batch, self._widths["objects"])))  # FO
            if "relations" in streams:
                parts.append(self.relation_stream(self.relation_tokens(nodes, f), f.edge_padding)
                             if "relations" in keep and nodes is not None
                             else f.global_map.new_zeros((batch, self._widths["relations"])))  # FR
        z = self.fuse(torch.cat(parts, dim=-1))
        bits = sign_straight_through(z, self.config.straight_through)
        return OscarOutput(z, bits, self.project(bits))

    def forward(self, batch: SceneGraphBatch) -> OscarOutput:
        return self.head(self.extract(batch))

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters and buffers outside the two (frozen, ImageNet) CNNs: what trained weights ship."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("global_cnn.", "object_cnn."))}

    @torch.no_grad()
    def encode_bits(self, batch: SceneGraphBatch) -> torch.Tensor:
        """The hash as a bool tensor ``[B, D]`` (bit k set iff ``z_k >= 0``). Call ``eval()`` first: in training
        mode dropout and batch-norm statistics make codes depend on chance and on the rest of the batch."""
        return self.forward(batch).z >= 0


def codes_to_ints(bits: torch.Tensor) -> list[int]:
    """``[B, D]`` bool codes -> unsigned ints, first bit most significant (the convention of ``phash64``)."""
    out = []
    for row in bits.to(torch.bool).cpu().tolist():
        value = 0
        for bit in row:
            value = (value << 1) | int(bit)
        out.append(value)
    return out


def save_checkpoint(model: OscarNet, path: str | Path) -> None:
    """Weights plus the config they belong to, in one file loadable with ``torch.load(weights_only=True)``."""
    torch.save({"format": CHECKPOINT_FORMAT, "config": model.config.to_dict(), "state_dict": model.state_dict()},
               Path(path))


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> OscarNet:
    """Rebuild the exact architecture from the stored config and load the weights strictly (no ImageNet load)."""
    try:
        data = torch.load(Path(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # many unpickling error types; all mean "not a usable checkpoint"
        raise BackboneWeightsError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise BackboneWeightsError(f"{path} is not an {CHECKPOINT_FORMAT} checkpoint")
    model = OscarNet(OscarConfig.from_dict(data["config"]), pretrained_backbone=False)
    try:
        model.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as exc:
        raise BackboneWeightsError(f"checkpoint {path} does not fit its own config: {exc}") from exc
    return model
