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

__all__ = ["AttentionPool", "OscarNet", "OscarOutput", "codes_to_ints", "load_checkpoint", "save_checkpoint",
           "sign_straight_through"]

CHECKPOINT_FORMAT = "oscar-net/1"


class OscarOutput(NamedTuple):
    z: torch.Tensor  # [B, D] real-valued code
    bits: torch.Tensor  # [B, D] in {-1, +1}, straight-through gradient
    projection: torch.Tensor  # [B, proj_dim] Eb(bits), for the contrastive loss


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
        widths = {"global": feat, "objects": config.d_node, "relations": config.d_relation_token}
        d_cat = sum(widths[name] for name in config.streams)
        self.fuse = nn.Sequential(nn.Linear(d_cat, config.d_fuse), nn.ReLU(), nn.Dropout(config.dropout),
                                  nn.Linear(config.d_fuse, config.code_bits))  # Ed
        self.project = _mlp(config.code_bits, config.code_bits, config.proj_dim)  # Eb

    def node_tokens(self, batch: SceneGraphBatch) -> torch.Tensor:
        """``n_i = [Ev(CNN(c_i)), Es(s_i), Eg(g_i)]`` as ``[B, K, d_node]``; padded slots are zero."""
        valid = ~batch.node_padding
        visual = batch.shape.new_zeros((*valid.shape, self.config.d_visual))
        visual[valid] = self.visual_embed(self.object_cnn(batch.crops[valid]))  # CNN only on real crops
        tokens = torch.cat([visual, self.shape_embed(batch.shape), self.geometry_embed(batch.geometry)], dim=-1)
        return tokens.masked_fill(batch.node_padding.unsqueeze(-1), 0.0)

    def relation_tokens(self, nodes: torch.Tensor, batch: SceneGraphBatch) -> torch.Tensor:
        """``e_ij = [n_i, Er(r_ij), n_j]`` as ``[B, E, d_relation_token]``."""
        d = nodes.shape[-1]
        n_i = torch.gather(nodes, 1, batch.edge_index[..., 0:1].expand(-1, -1, d))
        n_j = torch.gather(nodes, 1, batch.edge_index[..., 1:2].expand(-1, -1, d))
        return torch.cat([n_i, self.relation_embed(batch.edges), n_j], dim=-1)

    def forward(self, batch: SceneGraphBatch) -> OscarOutput:
        streams = self.config.streams
        parts = []
        if "global" in streams:
            parts.append(self.global_cnn(batch.images))  # FG
        if "objects" in streams or "relations" in streams:
            nodes = self.node_tokens(batch)
            if "objects" in streams:
                parts.append(self.object_stream(nodes, batch.node_padding))  # FO
            if "relations" in streams:
                parts.append(self.relation_stream(self.relation_tokens(nodes, batch), batch.edge_padding))  # FR
        z = self.fuse(torch.cat(parts, dim=-1))
        bits = sign_straight_through(z, self.config.straight_through)
        return OscarOutput(z, bits, self.project(bits))

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
