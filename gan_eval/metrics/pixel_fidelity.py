"""Full-reference pixel fidelity of restored images: PSNR and SSIM, per image, batched.

Both follow scikit-image exactly (tests/test_restoration_metrics.py checks equality with
``skimage.metrics.peak_signal_noise_ratio`` and ``structural_similarity`` on the same images):

- :func:`psnr`: ``10·log10(255² / MSE)`` with the MSE over every pixel and channel of an
  image, in dB (``data_range=255``). Identical images have an infinite PSNR; it is reported as
  :data:`PSNR_CAP` (100 dB) so that a mean over images stays a number.
- :func:`ssim`: ``structural_similarity(a, b, data_range=255, channel_axis=-1)`` with its
  defaults — a 7×7 uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample covariances
  (``N/(N − 1)``), the SSIM map averaged over the pixels whose window lies inside the image,
  then over the channels. Images must be at least 7×7.

Inputs are uint8 B×3×H×W tensors (the image contract); the results are float64 tensors of B
values. Everything runs in float64 on the images' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_eval.errors import InputError

__all__ = ["PSNR_CAP", "SSIM_WINDOW", "psnr", "ssim"]

PSNR_CAP = 100.0
"""PSNR reported for identical images (whose PSNR is infinite), dB."""

SSIM_WINDOW = 7
"""Side of scikit-image's default uniform SSIM window."""

_K1, _K2, _RANGE = 0.01, 0.03, 255.0


def _pair(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    for name, x in (("restored", a), ("clean", b)):
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"{what}: {name} images must be uint8 B×3×H×W, got {x.dtype} "
                             f"{tuple(x.shape)}")
    if a.shape != b.shape:
        raise InputError(f"{what}: restored {tuple(a.shape)} and clean {tuple(b.shape)} differ")


def psnr(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB (float64 B), capped at :data:`PSNR_CAP` for identical images."""
    _pair(restored, clean, "psnr")
    mse = (restored.double() - clean.double()).square().flatten(1).mean(1)
    value = 10.0 * torch.log10(_RANGE * _RANGE / mse)
    return torch.where(mse > 0, value.clamp(max=PSNR_CAP), torch.full_like(value, PSNR_CAP))


def _box(x: torch.Tensor) -> torch.Tensor:
    """Mean over every 7×7 window lying inside the image (valid positions), per plane: two 1-D
    running means (average pooling, stride 1; 4× faster than a float64 convolution on CPU)."""
    planes = x.reshape(-1, 1, *x.shape[-2:])
    out = F.avg_pool2d(F.avg_pool2d(planes, (1, SSIM_WINDOW), stride=1), (SSIM_WINDOW, 1),
                       stride=1)
    return out.reshape(*x.shape[:-2], *out.shape[-2:])


def ssim(restored: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image mean SSIM (float64 B), scikit-image's defaults (module docstring)."""
    _pair(restored, clean, "ssim")
    if min(restored.shape[-2:]) < SSIM_WINDOW:
        raise InputError(f"ssim: images must be at least {SSIM_WINDOW}×{SSIM_WINDOW} pixels, "
                         f"got {tuple(restored.shape[-2:])}")
    x, y = restored.double(), clean.double()
    points = SSIM_WINDOW * SSIM_WINDOW
    cov_norm = points / (points - 1)
    ux, uy = _box(x), _box(y)
    vx = cov_norm * (_box(x * x) - ux * ux)
    vy = cov_norm * (_box(y * y) - uy * uy)
    vxy = cov_norm * (_box(x * y) - ux * uy)
    c1, c2 = (_K1 * _RANGE) ** 2, (_K2 * _RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(-2, -1)).mean(1)

