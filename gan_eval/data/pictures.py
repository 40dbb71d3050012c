"""Pictures of images: a grid of faces as one uint8 image, and PNG files written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_eval.fileio import atomic_path


def image_grid(images: torch.Tensor, *, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 B×C×H×W (C = 1 or 3) → one uint8 image, H'×W' (gray) or H'×W'×3, rows of ``nrow``.

    Cells are separated by ``padding`` black pixels.
    """
    b, c, h, w = images.shape
    rows = -(-b // nrow)
    grid = torch.zeros(c, rows * (h + padding) + padding, nrow * (w + padding) + padding,
                       dtype=torch.uint8)
    for i in range(b):
        y, x = divmod(i, nrow)
        top, left = padding + y * (h + padding), padding + x * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i].cpu()
    array = grid.numpy()
    return array[0] if c == 1 else np.ascontiguousarray(array.transpose(1, 2, 0))


def write_png(path: Path, pixels: np.ndarray, *, durable: bool = True) -> None:
    """Write uint8 H×W (gray) or H×W×3 pixels as a PNG, atomically (``durable``: fsynced; a
    caller writing many files into a fresh folder fsyncs the folder once instead)."""
    with atomic_path(path, durable=durable) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
