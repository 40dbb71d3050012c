"""PIL's bicubic resize on uint8 image batches: the resize the DINOv2 and CLIP reference
evaluations use.

dgm-eval (DINOv2) resizes with ``torchvision.transforms.Resize((224, 224), BICUBIC)`` applied to
a PIL image, i.e. ``PIL.Image.resize((224, 224), Image.BICUBIC)``; google-research cmmd crops
the central square and calls the same PIL resize. PIL's bicubic (a = −0.5, antialiased when
shrinking, 8-bit fixed-point coefficients, horizontal pass then vertical, each rounded to uint8)
is not reproduced bit for bit by ``torch.nn.functional.interpolate(..., antialias=True)`` (off
by 1–17 levels on some pixels in our checks), so this module calls PIL itself: same pixels as the
references by construction. PIL releases the GIL while resizing, so a batch is spread over a few
threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

#: Images per batch below which the resize runs in the calling thread.
_THREAD_MIN = 8


def _resize_one(hwc: np.ndarray, size: int, center_crop: bool) -> np.ndarray:
    image = Image.fromarray(hwc)
    if center_crop:  # cmmd io_util._center_crop_and_resize: the largest central square
        w, h = image.size
        side = min(w, h)
        top, left = (h - side) // 2, (w - side) // 2
        image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), resample=Image.Resampling.BICUBIC))


def pil_bicubic(images: torch.Tensor, size: int, *, center_crop: bool = False,
                threads: int | None = None) -> torch.Tensor:
    """Resize uint8 ``B×3×H×W`` images to ``B×3×size×size`` (uint8, CPU) with PIL's bicubic.

    Args:
        images: uint8 RGB batch, any device (copied to the CPU).
        size: output side, pixels.
        center_crop: first crop each image to its central ``min(H, W)`` square (cmmd's
            ``_center_crop_and_resize``); otherwise the aspect ratio is not kept (dgm-eval's
            ``Resize((224, 224))``).
        threads: worker threads (default: up to 4, fewer on small machines).

    Returns:
        uint8 ``B×3×size×size`` on the CPU: exactly PIL's pixels.
    """
    hwc = images.detach().to("cpu").permute(0, 2, 3, 1).contiguous().numpy()
    if len(hwc) < _THREAD_MIN:
        out = [_resize_one(im, size, center_crop) for im in hwc]
    else:
        workers = threads or max(1, min(4, os.cpu_count() or 1))
        with ThreadPoolExecutor(workers) as pool:
            out = list(pool.map(lambda im: _resize_one(im, size, center_crop), hwc))
    stacked = np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()
