"""Each loss against its formula on hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from gan_eval.gan.losses import (
    LOSSES,
    LossName,
    generator_logit_loss,
    get_loss,
    gradient_penalty,
    hinge_d_loss,
    ns_d_loss,
    ns_g_loss,
    wasserstein_d_loss,
)

REAL = torch.tensor([2.0, -1.0], dtype=torch.float64)
FAKE = torch.tensor([0.5, -3.0], dtype=torch.float64)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_non_saturating_is_bce_on_logits() -> None:
    # D: -log σ(real) for real = 1, -log(1 - σ(fake)) for fake = 0, batch means
    want_d = (-math.log(sigmoid(2.0)) - math.log(sigmoid(-1.0))) / 2 + (
        -math.log(1 - sigmoid(0.5)) - math.log(1 - sigmoid(-3.0))
    ) / 2
    assert ns_d_loss(REAL, FAKE).item() == pytest.approx(want_d, rel=1e-12)
    # G maximizes log D(G(z)): minimizes -log σ(fake)
    want_g = (-math.log(sigmoid(0.5)) - math.log(sigmoid(-3.0))) / 2
    assert ns_g_loss(FAKE).item() == pytest.approx(want_g, rel=1e-12)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert ns_d_loss(REAL, FAKE).item() == pytest.approx(
        (bce(REAL, torch.ones(2, dtype=torch.float64))
         + bce(FAKE, torch.zeros(2, dtype=torch.float64))).item(), rel=1e-12)


def test_softplus_form_is_stable_for_large_logits() -> None:
    big = torch.tensor([200.0])
    assert ns_d_loss(big, -big).item() == 0.0
    assert ns_g_loss(-big).item() == pytest.approx(200.0)


def test_hinge() -> None:
    # relu(1 - [2, -1]) = [0, 2] → 1; relu(1 + [0.5, -3]) = [1.5, 0] → 0.75
    assert hinge_d_loss(REAL, FAKE).item() == pytest.approx(1.75)
    assert generator_logit_loss(FAKE).item() == pytest.approx(1.25)


def test_wasserstein() -> None:
    # mean fake - mean real = -1.25 - 0.5
    assert wasserstein_d_loss(REAL, FAKE).item() == pytest.approx(-1.75)


def test_gradient_penalty_on_a_linear_critic() -> None:
    """D(x) = <w, x>: ∇D = w for every x̂, so the penalty is (‖w‖ - 1)² whatever the mix."""
    w = torch.tensor([3.0, 4.0, 0.0, 0.0], dtype=torch.float64).view(1, 1, 2, 2)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x * w).flatten(1).sum(1)

    real = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    fake = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    eps = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    assert gradient_penalty(critic, real, fake, eps).item() == pytest.approx(16.0)  # (5 - 1)²


def test_gradient_penalty_interpolates_and_trains_the_critic() -> None:
    """D(x) = a·Σx²: ∇D(x̂) = 2a·x̂, so the penalty depends on where x̂ lies and on a."""
    a = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    real = torch.full((1, 1, 1, 2), 2.0, dtype=torch.float64)
    fake = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    eps = torch.tensor([0.25], dtype=torch.float64)  # x̂ = 0.25·real = [0.5, 0.5]

    penalty = gradient_penalty(lambda x: a * (x**2).flatten(1).sum(1), real, fake, eps)
    norm = 2 * 0.5 * math.sqrt(0.5**2 * 2)  # ‖2a·x̂‖ = ‖[0.5, 0.5]‖
    assert penalty.item() == pytest.approx((norm - 1) ** 2)
    penalty.backward()  # create_graph: the penalty has a gradient w.r.t. the critic
    assert a.grad is not None and a.grad.item() == pytest.approx(
        2 * (norm - 1) * norm / 0.5)


def test_registry_matches_the_cli_choices() -> None:
    assert set(LOSSES) == set(LossName)
    assert [n.value for n in LossName] == ["ns", "hinge", "wgan-gp"]
    wgan = get_loss("wgan-gp")
    assert (wgan.gp_weight, wgan.n_critic, wgan.needs_per_sample_d) == (10.0, 5, True)
    assert get_loss("ns").n_critic == get_loss("hinge").n_critic == 1
    with pytest.raises(ValueError, match="ns, hinge, wgan-gp"):
        get_loss("lsgan")
