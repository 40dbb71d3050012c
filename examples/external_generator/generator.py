"""A small generator defined in a file: what gan-eval's external-generator support expects.

gan-eval reads this file as ``examples/external_generator/generator.py:make_generator`` (a
``file.py:attr`` spec, which imports and runs this code) or, after ``export.py``, as a
``torch.export`` archive, a TorchScript archive or an ONNX model (no code of yours runs then).

The contract: ``make_generator()`` returns an ``nn.Module`` that maps latents float32 B×z_dim
(z ~ N(0, I)) to images float B×3×H×W in [-1, 1] (NCHW). It states its latent size as the
attribute ``z_dim``, so no ``--z-dim`` is needed. A real project would load its trained weights
in ``make_generator`` (e.g. ``safetensors.torch.load_file``, or StyleGAN's own loader); this one
is initialised from a fixed seed, so that the example runs anywhere without a download.
"""

from __future__ import annotations

import torch
from torch import nn


class SmallGenerator(nn.Module):
    """z (B×z_dim) → 32×32 RGB images in [-1, 1]: a 4×4 seed doubled three times."""

    z_dim = 64

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Linear(self.z_dim, width * 4 * 4 * 4)
        blocks: list[nn.Module] = []
        channels = width * 4
        for _ in range(3):  # 4 → 8 → 16 → 32 px
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv2d(channels, channels // 2, 3, padding=1), nn.LeakyReLU(0.2)]
            channels //= 2
        blocks += [nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], self.width * 4, 4, 4)
        return self.body(x)


def make_generator() -> SmallGenerator:
    """The example generator, its weights drawn from a fixed seed (load trained ones here)."""
    generator = torch.Generator().manual_seed(2024)
    model = SmallGenerator()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model.eval()
