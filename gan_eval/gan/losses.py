"""GAN losses as pure functions of discriminator logits, plus a registry the CLI lists.

Every function takes float logits of shape B (the discriminator's raw outputs, no sigmoid) and
returns a float scalar to *minimize*; a batch mean is used throughout.

- ``ns`` (non-saturating, Goodfellow et al. 2014): D minimizes BCE with real = 1, fake = 0, written
  with softplus for stability (``-log σ(x) = softplus(-x)``, ``-log(1 - σ(x)) = softplus(x)``);
  G maximizes ``log D(G(z))``, i.e. minimizes ``softplus(-D(G(z)))``.
- ``hinge`` (Lim & Ye 2017; Miyato et al. 2018): D minimizes ``relu(1 - D(x)) + relu(1 + D(G(z)))``,
  G minimizes ``-D(G(z))``.
- ``wgan-gp`` (Gulrajani et al. 2017): D minimizes ``D(G(z)) - D(x) + λ (‖∇D(x̂)‖₂ - 1)²`` with
  x̂ = ε x + (1 - ε) G(z), ε ~ U[0, 1] per sample, λ = 10; G minimizes ``-D(G(z))``; D takes
  ``n_critic = 5`` steps per G step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from gan_eval.gan.loss_names import LossName


def ns_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating D loss: mean softplus(-D(x)) + mean softplus(D(G(z)))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def ns_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss: mean softplus(-D(G(z))) = -mean log σ(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Hinge D loss: mean relu(1 - D(x)) + mean relu(1 + D(G(z)))."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def wasserstein_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Critic loss without the penalty: mean D(G(z)) - mean D(x)."""
    return fake_logits.mean() - real_logits.mean()


def generator_logit_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G loss of hinge and WGAN: -mean D(G(z))."""
    return -fake_logits.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    eps: torch.Tensor,
) -> torch.Tensor:
    """WGAN-GP penalty mean (‖∇ₓ̂ D(x̂)‖₂ - 1)², x̂ = eps·real + (1 - eps)·fake.

    ``real``, ``fake``: float B×C×H×W; ``eps``: float B in [0, 1] (one mix weight per sample).
    The graph is kept (``create_graph``) so that the penalty trains the critic. Without the λ.
    """
    mix = eps.view(-1, 1, 1, 1).to(real.dtype)
    x_hat = (mix * real.detach() + (1.0 - mix) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    # float32 norm even under bf16 autocast: the penalty is a small difference of numbers near 1
    norms = grad.float().flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


@dataclass(frozen=True)
class GanLoss:
    """One registered loss: D and G objectives on logits, penalty weight and critic steps."""

    name: LossName
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    gp_weight: float = 0.0  # λ of the gradient penalty; 0 = no penalty
    n_critic: int = 1  # D steps per G step (on the same batch clock: G steps every n_critic-th)
    needs_per_sample_d: bool = False  # True: D must not use BatchNorm (the penalty is per sample)


LOSSES: dict[LossName, GanLoss] = {
    LossName.NS: GanLoss(LossName.NS, ns_d_loss, ns_g_loss),
    LossName.HINGE: GanLoss(LossName.HINGE, hinge_d_loss, generator_logit_loss),
    LossName.WGAN_GP: GanLoss(
        LossName.WGAN_GP, wasserstein_d_loss, generator_logit_loss,
        gp_weight=10.0, n_critic=5, needs_per_sample_d=True,
    ),
}


def get_loss(name: str | LossName) -> GanLoss:
    """The registered loss called ``name``; ValueError listing the choices otherwise."""
    try:
        return LOSSES[LossName(name)]
    except ValueError:
        choices = ", ".join(n.value for n in LossName)
        raise ValueError(f"unknown loss {name!r}; choose one of {choices}") from None
