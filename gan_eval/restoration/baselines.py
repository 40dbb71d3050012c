"""The built-in restoration methods (:data:`gan_eval.restoration.plan.BUILTINS`): no weights.

Each is ``restore(degraded, condition) → uint8 B×3×H×W`` at the clean size. The classical ones
run scikit-image on each image (float in [0, 1], channels last) with the degradation's true
parameters:

- ``richardson_lucy``: ``skimage.restoration.richardson_lucy(image, psf, num_iter=30)`` per
  channel, PSF = the 2-D Gaussian of the blur (outer product of its 1-D kernel);
- ``wiener``: ``skimage.restoration.wiener(image, psf, balance=0.01)`` per channel;
- both deconvolve the image reflect-padded by twice the PSF's width and crop the result (the
  plain calls treat the outside as black, resp. periodic: on 64-px faces that cost RL 18 dB);
- ``tv``: ``denoise_tv_chambolle(image, weight=sd/255, channel_axis=-1)``;
- ``nl_means``: ``denoise_nl_means(image, h=0.8·sd/255, sigma=sd/255, patch_size=5,
  patch_distance=6, fast_mode=True, channel_axis=-1)``.

``none`` returns the observation (nearest-neighbour upsampled after downsampling) and
``bicubic`` upsamples it bicubically. An image whose three channels are equal (a gray face) is
restored once and repeated: the same result, a third of the work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gan_eval.restoration.degradations import Degraded, gaussian_kernel, upsample
from gan_eval.restoration.plan import Condition

__all__ = ["BUILTIN_FUNCTIONS", "RL_ITERATIONS", "WIENER_BALANCE"]

RL_ITERATIONS = 30
WIENER_BALANCE = 0.01
NL_MEANS_H = 0.8


def _size(degraded: Degraded) -> tuple[int, int]:
    return int(degraded.at_size.shape[-2]), int(degraded.at_size.shape[-1])


def _none(degraded: Degraded, condition: Condition) -> torch.Tensor:
    return upsample(degraded.observed, _size(degraded), "nearest")


def _bicubic(degraded: Degraded, condition: Condition) -> torch.Tensor:
    return upsample(degraded.observed, _size(degraded), "bicubic")


def _per_image(images: torch.Tensor, fn: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply ``fn`` (float64 H×W×C in [0, 1] → same, C = 3, or 1 for a gray image) to each
    image; back to uint8 B×3×H×W."""
    host = images.cpu().permute(0, 2, 3, 1).numpy().astype(np.float64) / 255.0
    out = np.stack([
        np.repeat(fn(image[..., :1]), 3, axis=-1) if _gray(image) else fn(image)
        for image in host])
    restored = torch.from_numpy(np.clip(out * 255.0, 0, 255)).round().to(torch.uint8)
    return restored.permute(0, 3, 1, 2).contiguous().to(images.device)


def _gray(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1])
                and np.array_equal(image[..., 0], image[..., 2]))


def _psf(condition: Condition) -> np.ndarray:
    k = gaussian_kernel(condition.severity).numpy()
    return np.outer(k, k)


def _deconvolve(image: np.ndarray, psf: np.ndarray,
                plane: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``plane`` (one padded H'×W' channel → same) on each channel, reflect-padded by twice the
    PSF's width and cropped back."""
    pad = 2 * psf.shape[0]
    out = []
    for c in range(image.shape[-1]):
        padded = np.pad(image[..., c], pad, mode="reflect")
        out.append(plane(padded)[pad:-pad, pad:-pad])
    return np.clip(np.stack(out, axis=-1), 0.0, 1.0)


def _richardson_lucy(degraded: Degraded, condition: Condition) -> torch.Tensor:
    from skimage.restoration import richardson_lucy

    psf = _psf(condition)
    return _per_image(degraded.at_size, lambda im: _deconvolve(
        im, psf, lambda x: richardson_lucy(x, psf, num_iter=RL_ITERATIONS, clip=True)))


def _wiener(degraded: Degraded, condition: Condition) -> torch.Tensor:
    from skimage.restoration import wiener

    psf = _psf(condition)
    return _per_image(degraded.at_size, lambda im: _deconvolve(
        im, psf, lambda x: wiener(x, psf, balance=WIENER_BALANCE, clip=True)))


def _tv(degraded: Degraded, condition: Condition) -> torch.Tensor:
    from skimage.restoration import denoise_tv_chambolle

    weight = condition.severity / 255.0
    return _per_image(degraded.at_size,
                      lambda im: denoise_tv_chambolle(im, weight=weight, channel_axis=-1))


def _nl_means(degraded: Degraded, condition: Condition) -> torch.Tensor:
    from skimage.restoration import denoise_nl_means

    sigma = condition.severity / 255.0
    return _per_image(degraded.at_size, lambda im: denoise_nl_means(
        im, h=NL_MEANS_H * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True,
        channel_axis=-1))


BUILTIN_FUNCTIONS: dict[str, Callable[[Degraded, Condition], torch.Tensor]] = {
    "builtin:none": _none,
    "builtin:bicubic": _bicubic,
    "builtin:richardson_lucy": _richardson_lucy,
    "builtin:wiener": _wiener,
    "builtin:tv": _tv,
    "builtin:nl_means": _nl_means,
}
"""Each built-in method's function, by spec (the same keys as ``plan.BUILTINS``)."""
