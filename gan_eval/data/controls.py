"""Images of the degenerate generators behind each metric's ceiling.

See :mod:`gan_eval.metrics.controls` for how they are used.

Two "generators" that know nothing about faces, as in-memory sources (their features go through
the feature cache like any other set: the key hashes their pixels):

* **uniform noise** — seeded i.i.d. uniform pixels (0..255 in every channel), at the
  reference's resolution; depends only on the seed, the count and the resolution, so it is
  extracted once per resolution and then read from the cache;
* **mean face** — the reference's mean image (a generator collapsed onto one image): one image,
  whose features the controls repeat.
"""

from __future__ import annotations

import numpy as np
import torch

from gan_eval.data.source import ArraySource, ImageSource
from gan_eval.seeding import numpy_rng, torch_generator

MEAN_FACE_IMAGES = 1000
"""The mean face averages a seeded subset of at most this many reference images."""


def uniform_noise(count: int, resolution: tuple[int, int], seed: int) -> torch.Tensor:
    """uint8 ``count``×3×H×W of i.i.d. uniform pixels, determined by ``seed`` alone."""
    h, w = resolution
    generator = torch_generator(seed, "control-noise", h, w)
    return torch.randint(0, 256, (count, 3, h, w), generator=generator, dtype=torch.uint8)


def mean_image(source: ImageSource, seed: int, max_images: int = MEAN_FACE_IMAGES,
               batch_size: int = 256) -> torch.Tensor:
    """uint8 1×3×H×W: the per-pixel mean of ``source`` (of a seeded subset of ``max_images``
    when it holds more), rounded."""
    n = len(source)
    rows = np.arange(n) if n <= max_images else np.sort(
        numpy_rng(seed, "control-mean-face").choice(n, size=max_images, replace=False))
    total = torch.zeros(3, *source.resolution, dtype=torch.float64)
    for start in range(0, rows.size, batch_size):
        total += source.read(rows[start : start + batch_size].tolist()).double().sum(0)
    return (total / rows.size).round().clamp(0, 255).to(torch.uint8)[None]


def degenerate_sources(reference: ImageSource, count: int, seed: int) -> dict[str, ArraySource]:
    """``{"uniform noise": count images, "mean face": 1 image}`` at ``reference``'s resolution
    (the keys of :data:`gan_eval.metrics.controls.DEGENERATE`)."""
    noise = uniform_noise(count, reference.resolution, seed)
    face = mean_image(reference, seed)
    return {
        "uniform noise": ArraySource(noise, data=f"control:uniform-noise(n={count})",
                                     kind="control"),
        "mean face": ArraySource(face, data=f"control:mean-face({reference.data})",
                                 kind="control"),
    }
