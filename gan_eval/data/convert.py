"""Conversions into the one image contract: ``torch.uint8``, shape B×3×H×W.

Every conversion happens here, once: gray is repeated to 3 channels, alpha is dropped, 16-bit
values are scaled to 8 bits, floats in [0, 1] are rounded to the nearest of 256 levels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gan_eval.errors import InputError

RESIZE_FILTER = "bilinear, antialiased (torch.nn.functional.interpolate, antialias=True)"
"""The filter used whenever an explicit resolution asks for resizing."""


def array_to_uint8(array: np.ndarray, *, what: str) -> np.ndarray:
    """Scale an image array to uint8 without changing its shape.

    Accepted: uint8 as is; uint16 scaled by 255/65535; bool as 0/255; float in [0, 1] rounded to
    ``round(x * 255)``. ``what`` names the file or array in error messages.
    """
    if not array.dtype.isnative:  # e.g. '>u2' written on a big-endian machine
        array = array.astype(array.dtype.newbyteorder("="))
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise InputError(
                f"{what}: {bad} value(s) are NaN or infinite; expected floats in [0, 1]"
            )
        lo, hi = float(array.min(initial=0.0)), float(array.max(initial=0.0))
        if lo < 0.0 or hi > 1.0:
            raise InputError(
                f"{what}: float values span [{lo:.4g}, {hi:.4g}]; expected floats in [0, 1] "
                "(or uint8 0..255)"
            )
        return np.rint(array * 255.0).astype(np.uint8)
    raise InputError(
        f"{what}: unsupported dtype {array.dtype}; expected uint8, uint16 or float in [0, 1]"
    )


def hwc_to_chw3(image: np.ndarray, *, what: str) -> np.ndarray:
    """One H×W or H×W×C uint8 image → 3×H×W (gray repeated, alpha dropped)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise InputError(f"{what}: image of shape {image.shape}; expected H×W or H×W×C, C in 1..4")
    channels = image.shape[2]
    if channels in (1, 2):  # gray or gray + alpha
        image = np.repeat(image[:, :, :1], 3, axis=2)
    elif channels == 4:  # RGBA
        image = image[:, :, :3]
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def batch_to_nchw3(array: np.ndarray, *, what: str) -> tuple[np.ndarray, int]:
    """An array of images in any accepted layout → (uint8 N×3×H×W, original channel count).

    Layouts: N×H×W (gray), N×H×W×C or N×C×H×W with C in {1, 3, 4}. When both the second and the
    last axis could be channels, the last axis wins (N×H×W×C), the common on-disk layout.
    """
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4 and array.shape[3] in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    elif not (array.ndim == 4 and array.shape[1] in (1, 3, 4)):
        raise InputError(
            f"{what}: array of shape {tuple(array.shape)}; expected N×H×W (gray), "
            "N×H×W×C or N×C×H×W with C in {1, 3, 4}"
        )
    if array.shape[0] == 0:
        raise InputError(f"{what}: the array holds no images (shape {tuple(array.shape)})")
    if array.shape[2] < 1 or array.shape[3] < 1:
        raise InputError(f"{what}: images of size {array.shape[2]}×{array.shape[3]} are empty")
    channels = int(array.shape[1])
    array = array_to_uint8(array, what=what)
    if channels == 1:
        array = np.repeat(array, 3, axis=1)
    elif channels == 4:
        array = array[:, :3]
    return np.ascontiguousarray(array), channels


def resize_uint8(batch: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Resize uint8 B×3×H×W to ``size`` (square int or (H, W)) with :data:`RESIZE_FILTER`."""
    target = (size, size) if isinstance(size, int) else size
    if tuple(batch.shape[-2:]) == tuple(target):
        return batch
    resized = F.interpolate(
        batch.float(), size=target, mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def check_image_batch(batch: torch.Tensor, *, what: str = "images") -> None:
    """Raise :class:`InputError` unless ``batch`` is uint8 B×3×H×W (the image contract)."""
    if not isinstance(batch, torch.Tensor):
        raise InputError(f"{what}: expected a torch.Tensor, got {type(batch).__name__}")
    if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[1] != 3:
        raise InputError(
            f"{what}: expected torch.uint8 of shape B×3×H×W, got {batch.dtype} of shape "
            f"{tuple(batch.shape)}"
        )


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float B×C×H×W in [-1, 1] → uint8 B×C×H×W, ``round((x + 1) · 127.5)`` clamped to 0..255."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
