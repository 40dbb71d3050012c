"""What differs between the two things :func:`gan_eval.gan.training.train` trains.

The loop, the step (:class:`gan_eval.gan.training.GanStep`), the EMA, checkpoints, resume, the
NaN guard, signals and torchrun are shared; a task supplies only:

- the generator's input for a batch of real images: latents z for ``generation`` (a DCGAN);
  the same images degraded at random (:func:`gan_eval.data.degrade.random_degradations`) for
  ``restoration`` (a pix2pix-style conditional GAN whose discriminator also sees that input);
- the sample grid written every ``sample_every`` steps: 8×8 faces of the EMA generator on fixed
  latents, or 8 fixed training faces as rows degraded / restored by the EMA generator / clean;
- what the checkpoint records beyond the shared fields (the degradations trained on).

Randomness: every draw of a step comes from the step's generator (seeded by seed, step and
rank, :mod:`gan_eval.seeding`), in a fixed order: flips (the loop), then the task's draws, then
the WGAN-GP mix weights (the loop); grids use their own seed ("grid").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from gan_eval.data.convert import to_uint8
from gan_eval.data.degrade import (
    DegradationPlan,
    SeverityRange,
    apply_plan,
    random_degradations,
)
from gan_eval.data.pictures import image_grid
from gan_eval.gan.models import ModelSpec
from gan_eval.gan.pix2pix import RestorationSpec
from gan_eval.gan.task_names import TaskName
from gan_eval.seeding import derive_seed

GRID_FACES = 8
"""Faces in a restoration grid (one column each)."""


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 B×C×H×W → float32 in [-1, 1] (x / 127.5 − 1), the networks' input range."""
    return images.float().div_(127.5).sub_(1.0)


class GenerationTask:
    """A DCGAN: G maps latents z (float b×nz×1×1, standard normal) to images; D sees images."""

    name = TaskName.GENERATION
    conditional = False  # D does not see G's input

    def __init__(self, spec: ModelSpec, *, seed: int, device: torch.device) -> None:
        self.spec = spec
        grid_rng = torch.Generator().manual_seed(derive_seed(seed, "grid"))
        self.grid_z = torch.randn(64, spec.nz, 1, 1, generator=grid_rng).to(device)

    def inputs(self, real: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """G's input for the uint8 b×C×R×R batch ``real``: latents drawn from ``generator``."""
        return torch.randn(real.shape[0], self.spec.nz, 1, 1, generator=generator,
                           device=generator.device)

    def grid(self, ema: nn.Module) -> np.ndarray:
        """An 8×8 grid of the EMA generator on the fixed grid latents (uint8 picture)."""
        with torch.no_grad():
            return image_grid(to_uint8(ema(self.grid_z)), nrow=8)

    def meta(self) -> dict[str, Any]:
        """Checkpoint fields of this task besides the shared ones."""
        return {"task": self.name.value}


class RestorationTask:
    """A restoration GAN: G maps degraded images to restored ones; D sees (degraded, image)."""

    name = TaskName.RESTORATION
    conditional = True  # D sees G's input (the degraded image) beside the real or restored one

    def __init__(self, spec: RestorationSpec, ranges: Sequence[SeverityRange], *, seed: int,
                 grid_faces: torch.Tensor, device: torch.device) -> None:
        """``grid_faces``: uint8 N×3×R×R training faces, the first :data:`GRID_FACES` of which
        the grids show, each degraded by the ranges in turn at a severity seeded by ("grid")."""
        self.spec = spec
        self.ranges = tuple(ranges)
        clean = grid_faces[:GRID_FACES].cpu()
        rng = torch.Generator().manual_seed(derive_seed(seed, "grid"))
        kinds = torch.arange(clean.shape[0]) % len(self.ranges)  # every kind is shown
        u = torch.rand(clean.shape[0], generator=rng, dtype=torch.float64)
        severities = torch.cat([self.ranges[k].draw(u[i : i + 1])
                                for i, k in enumerate(kinds.tolist())])
        plan = DegradationPlan(kinds, severities)
        self.grid_clean = clean.to(device)
        self.grid_degraded = apply_plan(clean, self.ranges, plan, generator=rng).to(device)

    def inputs(self, real: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """G's input for the uint8 b×3×R×R batch ``real``: each image degraded by a random kind
        at a random severity (float in [-1, 1]), all drawn from ``generator``."""
        degraded, _ = random_degradations(real, self.ranges, generator)
        return to_unit_range(degraded)

    def grid(self, ema: nn.Module) -> np.ndarray:
        """Rows degraded / restored by the EMA generator / clean, one column per grid face."""
        with torch.no_grad():
            restored = to_uint8(ema(to_unit_range(self.grid_degraded)))
        rows = torch.cat([self.grid_degraded, restored, self.grid_clean])
        return image_grid(rows, nrow=self.grid_clean.shape[0])

    def meta(self) -> dict[str, Any]:
        """Checkpoint fields: the task, and what :func:`gan_eval.gan.load_restorer`'s users need
        to know: resolution, value range and the degradations (with severity ranges) trained on."""
        return {"task": self.name.value,
                "restoration": {"resolution": self.spec.resolution, "channels": 3,
                                "value_range": [-1.0, 1.0],
                                "degradations": [r.to_json() for r in self.ranges]}}
