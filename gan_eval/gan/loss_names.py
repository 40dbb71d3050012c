"""The names ``gan-eval train --loss`` accepts (values are what the user types).

Kept apart from the loss functions (:mod:`gan_eval.gan.losses`) so that the CLI can list the
choices without importing torch.
"""

from __future__ import annotations

import enum


class LossName(enum.StrEnum):
    """A GAN loss: non-saturating, hinge or WGAN-GP (see :mod:`gan_eval.gan.losses`)."""

    NS = "ns"
    HINGE = "hinge"
    WGAN_GP = "wgan-gp"
