"""A generator of pure noise (a ``file.py:attr`` spec for tests): every pixel is a latent."""

from __future__ import annotations

import torch
from torch import nn


class NoiseGenerator(nn.Module):
    """z (B×3072, N(0, I)) → 32×32 RGB images in [-1, 1]: the latents themselves, halved."""

    z_dim = 3 * 32 * 32

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z * 0.5).clamp(-1.0, 1.0).view(z.shape[0], 3, 32, 32)


def make_noise() -> NoiseGenerator:
    """The noise generator (no weights)."""
    return NoiseGenerator()
