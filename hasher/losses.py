"""Training losses of OSCAR-Net (paper §3.4): a quantisation (bit) loss and SimCLR+ (eq. 11).

The total training objective is ``simclr_plus_loss(...) + alpha * bit_loss(z)`` with ``alpha = BIT_LOSS_WEIGHT``
(1e-2); the weighting is the training loop's business, these functions return the unweighted terms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["BIT_LOSS_WEIGHT", "bit_loss", "contrastive_labels", "simclr_plus_loss"]

BIT_LOSS_WEIGHT = 1e-2  # alpha


def bit_loss(z: torch.Tensor) -> torch.Tensor:
    """Quantisation loss ``mean_n sum_d |z_nd - sign(z_nd)|^3`` for real codes ``z`` of shape ``[N, D]``.

    I.e. ``||z - sign(z)||_3^3`` per code, **summed over the D bits and averaged over the batch**. It pulls each
    coordinate towards +-1 so that binarising at inference loses little. ``sign(0)`` is taken as +1 (as in the
    binarisation) and ``sign`` is a constant for the gradient, so ``d/dz = 3 (z - s)^2 sign(z - s)``.
    """
    if z.ndim != 2:
        raise ValueError(f"expected codes of shape [N, D], got {tuple(z.shape)}")
    target = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z)).detach()
    return (z - target).abs().pow(3).sum(dim=1).mean()


def contrastive_labels(origin: torch.Tensor, variant: torch.Tensor | None = None) -> torch.Tensor:
    """Positive-pair labels for ``simclr_plus_loss``: two samples are positives iff they share ``origin`` (the id of
    the source image) **and** ``variant`` (0 = the original itself or a benign transform of it; k > 0 = the k-th
    manipulated version, itself possibly benignly transformed). So a manipulated image is never a positive of its
    original: it sits in the original's denominator as a hard negative. Returns one int64 label per sample."""
    origin = origin.reshape(-1).long()
    variant = torch.zeros_like(origin) if variant is None else variant.reshape(-1).long()
    if variant.shape != origin.shape:
        raise ValueError("origin and variant need one entry per sample")
    return torch.unique(torch.stack([origin, variant], dim=1), dim=0, return_inverse=True)[1]


def simclr_plus_loss(projections: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    r"""SimCLR+ (eq. 11): supervised contrastive loss over a batch with several positives per anchor.

    With ``p_n = Eb(b_n) / ||Eb(b_n)||`` (cosine similarity), ``P(i) = {p != i : y_p = y_i}`` and
    ``A(i) = {a != i}``::

        L = 1/|I| sum_{i in I}  -1/|P(i)| sum_{p in P(i)} log( exp(p_i.p_p / tau) / sum_{a in A(i)} exp(p_i.p_a / tau) )

    where ``I`` is the set of anchors with at least one positive (an anchor alone in its class still serves as a
    negative for the others). Everything that is not a positive is a negative, in particular the manipulated
    variants of an anchor's original (see ``contrastive_labels``): that is the "+" over plain SimCLR, which only
    contrasts two views of one image against other images.
    """
    if projections.ndim != 2 or labels.shape != projections.shape[:1]:
        raise ValueError(f"need projections [N, P] and labels [N], got {tuple(projections.shape)}, "
                         f"{tuple(labels.shape)}")
    n = projections.shape[0]
    p = F.normalize(projections, dim=1)
    self_mask = torch.eye(n, dtype=torch.bool, device=p.device)
    logits = (p @ p.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positives.sum(dim=1)
    anchors = n_pos > 0
    if not bool(anchors.any()):
        raise ValueError("no sample in the batch has a positive: SimCLR+ needs >= 2 samples of some label")
    per_anchor = -log_prob.masked_fill(~positives, 0.0).sum(dim=1)[anchors] / n_pos[anchors]
    return per_anchor.mean()
