"""Generators as image sources: a GENERATOR spec is sampled on the fly, never through PNGs.

Today a GENERATOR is a gan-eval DCGAN checkpoint (:mod:`.native`); every generator becomes a
:class:`~gan_eval.generators.source.GeneratorSource` with the same seeded latents
(image i depends only on the generator, the seed and i).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gan_eval.gan.checkpoint import is_checkpoint
from gan_eval.generators.native import CheckpointSource, open_checkpoint_source
from gan_eval.generators.source import DEFAULT_N, GeneratorSource

__all__ = [
    "DEFAULT_N",
    "CheckpointSource",
    "GeneratorSource",
    "is_generator",
    "open_generator",
]


def is_generator(data: str) -> bool:
    """True when the DATA string names a generator (a gan-eval checkpoint, its folder, run
    folder, JSON or state file) rather than images."""
    return is_checkpoint(Path(data).expanduser())


def open_generator(
    data: str, *, n: int | None = None, seed: int = 0, device: str | torch.device | None = None
) -> GeneratorSource:
    """The generator ``data`` names as a source of ``n`` images (default :data:`DEFAULT_N`)
    sampled with ``seed`` on ``device``; :class:`InputError` naming it when it cannot be used."""
    return open_checkpoint_source(Path(data).expanduser(), n=n, seed=seed, device=device)
