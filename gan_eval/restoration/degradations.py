"""The four degradations of a restoration audit, seeded per image (uint8 in, uint8 out).

Every function takes clean uint8 B×3×H×W images and returns a :class:`Degraded`: the
*observation* (what a camera or channel would deliver: uint8, B×3×H×W, or B×3×⌊H/s⌋×⌊W/s⌋ after
downsampling by s) and ``at_size``, the observation at the clean size (the input of a
restoration model that keeps the size: a downsampled image is upsampled back with antialiased
bicubic interpolation; other observations are already at size).

- ``blur``, σ in pixels: a separable Gaussian kernel cut at 4σ (``int(4σ + 0.5)`` taps each
  side, normalised to sum 1; ``scipy.ndimage.gaussian_filter``'s default), edges repeated.
- ``downsample``, integer factor s: antialiased bicubic resizing (a = −0.75, torch's bicubic)
  to ⌊H/s⌋×⌊W/s⌋, rounded to uint8.
- ``noise``, sd in pixel levels of 0..255: N(0, sd²) added to every pixel and channel
  independently, then rounded and clipped. Image i's noise is drawn from its own generator,
  seeded with ``derive_seed(seed, "restoration/noise", severity, i)``: the same whatever the
  batch it is in.
- ``jpeg``, quality 1..100: PIL's encoder at that quality (its defaults: 4:2:0 chroma
  subsampling, baseline), decoded again.

Rounding is to the nearest level (ties to even), then clipping to 0..255.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gan_eval.data.convert import check_image_batch
from gan_eval.errors import InputError
from gan_eval.restoration.plan import Condition
from gan_eval.seeding import torch_generator

__all__ = ["Degraded", "degrade", "gaussian_kernel", "upsample"]

TRUNCATE = 4.0
"""Kernel radius in σ (``int(TRUNCATE·σ + 0.5)`` taps each side)."""


@dataclass(frozen=True)
class Degraded:
    """A degraded batch: ``observed`` (uint8, smaller after downsampling) and ``at_size``
    (uint8 at the clean size)."""

    observed: torch.Tensor
    at_size: torch.Tensor


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round().clamp_(0, 255).to(torch.uint8)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The 1-D float64 blur kernel: ``exp(−x²/2σ²)`` for x = −r..r, r = int(4σ + 0.5),
    normalised to sum 1."""
    radius = max(1, int(TRUNCATE * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    b, c, h, w = images.shape
    k = gaussian_kernel(sigma).to(images.device)
    r = k.numel() // 2
    x = images.double().reshape(b * c, 1, h, w)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return _to_uint8(x.reshape(b, c, h, w))


def upsample(images: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """uint8 B×3×h×w → uint8 B×3×H×W with ``mode`` ``"bicubic"`` (antialiased, torch's a = −0.75)
    or ``"nearest"`` (pixel replication)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if mode == "nearest":
        return F.interpolate(images.float(), size=size, mode="nearest-exact").to(torch.uint8)
    x = F.interpolate(images.double(), size=size, mode="bicubic", antialias=True,
                      align_corners=False)
    return _to_uint8(x)


def _downsample(images: torch.Tensor, scale: int) -> torch.Tensor:
    h, w = images.shape[-2:]
    x = F.interpolate(images.double(), size=(h // scale, w // scale), mode="bicubic",
                      antialias=True, align_corners=False)
    return _to_uint8(x)


def _noise(images: torch.Tensor, sd: float, seed: int, indices: Sequence[int]) -> torch.Tensor:
    draws = torch.stack([
        torch.randn(images.shape[1:], generator=torch_generator(seed, "restoration/noise",
                                                                round(sd * 1000), int(i)),
                    dtype=torch.float64)
        for i in indices
    ]).to(images.device)
    return _to_uint8(images.double() + sd * draws)


def _jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    host = images.cpu().permute(0, 2, 3, 1).numpy()
    out = np.empty_like(host)
    for i in range(host.shape[0]):
        buffer = io.BytesIO()
        Image.fromarray(host[i]).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)


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
        out = _blur(images, severity)
    elif kind == "downsample":
        scale = int(severity)
        if scale > min(size):
            raise InputError(f"--degradation downsample:{scale}: leaves no pixel of "
                             f"{size[0]}×{size[1]} images")
        small = _downsample(images, scale)
        return Degraded(observed=small, at_size=upsample(small, size))
    elif kind == "noise":
        out = _noise(images, severity, seed, indices)
    elif kind == "jpeg":
        out = _jpeg(images, int(severity))
    else:
        raise InputError(f"--degradation: unknown kind {kind!r}")
    return Degraded(observed=out, at_size=out)
