"""The four degradations of a restoration audit, seeded per image (uint8 in, uint8 out).

The degradations themselves are :mod:`gan_eval.data.degrade`'s, the one implementation that the
restoration GAN also trains on (``gan-eval train --task restoration``): a restorer trained at
some severities is audited on exactly the images it was trained to restore. What this module
adds: each image's noise is seeded by the audit's seed, the severity and the image's index, and
a downsampled image is kept as its small observation as well.

Every function takes clean uint8 B×3×H×W images and returns a :class:`Degraded`: the
*observation* (what a camera or channel would deliver: uint8, B×3×H×W, or B×3×⌊H/s⌋×⌊W/s⌋ after
downsampling by s) and ``at_size``, the observation at the clean size (the input of a
restoration model that keeps the size: a downsampled image is upsampled back with antialiased
bicubic interpolation; other observations are already at size).

- ``blur``, σ in pixels: a separable Gaussian kernel cut at 4σ (``int(4σ + 0.5)`` taps each
  side, normalised to sum 1; ``scipy.ndimage.gaussian_filter``'s default), edges repeated
  (:func:`gan_eval.data.degrade.gaussian_blur`).
- ``downsample``, integer factor s: antialiased bicubic resizing (PIL's BICUBIC, a = −0.5) to
  ⌊H/s⌋×⌊W/s⌋, rounded to uint8 (:func:`gan_eval.data.degrade.shrink`); ``at_size`` is that
  observation upsampled the same way (:func:`gan_eval.data.degrade.upsample`), which is
  :func:`gan_eval.data.degrade.downsample`.
- ``noise``, sd in pixel levels of 0..255: N(0, sd²) added to every pixel and channel
  independently, then rounded and clipped. Image i's noise is drawn from its own generator,
  seeded with ``derive_seed(seed, "restoration/noise", round(1000·sd), i)``: the same whatever
  the batch it is in.
- ``jpeg``, quality 1..100: PIL's encoder at that quality (its defaults: 4:2:0 chroma
  subsampling, baseline), decoded again.

Computation is in float64; rounding is to the nearest level (ties to even), then clipping to
0..255.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from gan_eval.data.convert import check_image_batch
from gan_eval.data.degrade import (
    gaussian_blur,
    gaussian_kernel,
    gaussian_noise,
    jpeg,
    shrink,
    upsample,
)
from gan_eval.errors import InputError
from gan_eval.restoration.plan import Condition
from gan_eval.seeding import torch_generator

__all__ = ["Degraded", "degrade", "gaussian_kernel", "upsample"]


@dataclass(frozen=True)
class Degraded:
    """A degraded batch: ``observed`` (uint8, smaller after downsampling) and ``at_size``
    (uint8 at the clean size)."""

    observed: torch.Tensor
    at_size: torch.Tensor


def degrade(images: torch.Tensor, condition: Condition, *, seed: int,
            indices: Sequence[int]) -> Degraded:
    """Degrade clean uint8 B×3×H×W ``images`` (source indices ``indices``, which seed the
    noise) by ``condition``; see the module docstring for each kind."""
    check_image_batch(images, what="clean images")
    if len(indices) != images.shape[0]:
        raise InputError(f"degrade: {len(indices)} indices for {images.shape[0]} images")
    kind, severity = condition.kind, condition.severity
    size = (int(images.shape[-2]), int(images.shape[-1]))
    if kind == "blur":
        out = gaussian_blur(images, severity)
    elif kind == "downsample":
        scale = int(severity)
        if scale > min(size):
            raise InputError(f"--degradation downsample:{scale}: leaves no pixel of "
                             f"{size[0]}×{size[1]} images")
        small = shrink(images, scale)
        return Degraded(observed=small, at_size=upsample(small, size))
    elif kind == "noise":
        generators = [torch_generator(seed, "restoration/noise", round(severity * 1000), int(i))
                      for i in indices]
        out = gaussian_noise(images, severity, generator=generators)
    elif kind == "jpeg":
        out = jpeg(images, int(severity))
    else:
        raise InputError(f"--degradation: unknown kind {kind!r}")
    return Degraded(observed=out, at_size=out)
