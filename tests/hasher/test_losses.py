"""Both losses against values computed by hand on tiny inputs."""

from __future__ import annotations

import math

import pytest
import torch

from hasher.losses import BIT_LOSS_WEIGHT, bit_loss, contrastive_labels, simclr_plus_loss


def test_bit_loss_by_hand():
    z = torch.tensor([[0.5, -2.0], [1.0, 0.0]], requires_grad=True)
    # row 0: |0.5 - 1|^3 + |-2 + 1|^3 = 0.125 + 1; row 1: 0 + |0 - 1|^3 (sign(0) = +1); mean over rows
    loss = bit_loss(z)
    assert loss.item() == pytest.approx((1.125 + 1.0) / 2)
    loss.backward()
    # d/dz = 3 (z - s)^2 sign(z - s) / N
    torch.testing.assert_close(z.grad, torch.tensor([[3 * 0.25 * -1, 3 * 1.0 * -1], [0.0, 3 * 1.0 * -1]]) / 2)
    assert bit_loss(torch.tensor([[1.0, -1.0, 1.0]])).item() == 0.0
    assert BIT_LOSS_WEIGHT == 1e-2


def test_simclr_plus_two_positives_one_negative():
    p = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])  # norms do not matter: cosine similarity
    labels = torch.tensor([0, 0, 1])
    # anchors 0 and 1: -log(e^1 / (e^1 + e^0)); anchor 2 has no positive and only acts as a negative
    expected = math.log(1 + math.exp(-1))
    assert simclr_plus_loss(p, labels, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    # temperature 0.5 doubles every logit
    assert simclr_plus_loss(p, labels, temperature=0.5).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_simclr_plus_several_positives_and_hard_negative():
    # 0, 1, 2: the original and two benign edits; 3: a manipulated version of the same original
    s = 1 / math.sqrt(2)
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [s, s], [0.0, 1.0]])
    labels = contrastive_labels(torch.tensor([7, 7, 7, 7]), torch.tensor([0, 0, 0, 1]))
    assert labels[0] == labels[1] == labels[2] != labels[3]
    t = 1.0
    e = math.exp

    def term(sim_pos: float, sims_all: list[float]) -> float:
        return -math.log(e(sim_pos / t) / sum(e(x / t) for x in sims_all))

    a0 = (term(1.0, [1.0, s, 0.0]) + term(s, [1.0, s, 0.0])) / 2  # anchor 0: sims to 1, 2, 3
    a1 = a0  # anchor 1 is identical to anchor 0
    a2 = (term(s, [s, s, s]) + term(s, [s, s, s])) / 2  # anchor 2: sims to 0, 1, 3 all equal 1/sqrt(2)
    expected = (a0 + a1 + a2) / 3  # anchor 3 (the manipulation) has no positive
    assert simclr_plus_loss(p, labels, temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_simclr_plus_gradient_pushes_manipulation_away():
    p = torch.tensor([[1.0, 0.1], [1.0, -0.1], [0.9, 0.3]], requires_grad=True)
    labels = contrastive_labels(torch.tensor([0, 0, 0]), torch.tensor([0, 0, 2]))
    simclr_plus_loss(p, labels, temperature=0.1).backward()
    assert p.grad[2, 1] < 0  # descent increases the manipulated sample's y, i.e. moves it away from the originals


def test_contrastive_labels_and_errors():
    labels = contrastive_labels(torch.tensor([1, 1, 2, 2, 1]), torch.tensor([0, 3, 0, 0, 3]))
    assert labels[0] != labels[1] and labels[2] == labels[3] and labels[1] == labels[4] and labels[0] != labels[2]
    assert contrastive_labels(torch.tensor([5, 5, 6])).tolist()[0:2] == [0, 0]
    with pytest.raises(ValueError):
        simclr_plus_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]))  # nobody has a positive
    with pytest.raises(ValueError):
        simclr_plus_loss(torch.randn(3, 4), torch.tensor([0, 0]))
    with pytest.raises(ValueError):
        bit_loss(torch.randn(4))
