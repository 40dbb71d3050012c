"""The names ``gan-eval train --task`` accepts (values are what the user types).

Kept apart from the models so that the CLI can list the choices without importing torch.
"""

from __future__ import annotations

import enum


class TaskName(enum.StrEnum):
    """What a GAN is trained to do: generate faces from latents (DCGAN) or restore degraded
    faces (a conditional pix2pix-style GAN, :mod:`gan_eval.gan.pix2pix`)."""

    GENERATION = "generation"
    RESTORATION = "restoration"
