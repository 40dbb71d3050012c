"""Sampling a checkpoint's EMA generator to PNG files (and optionally one .npz), and image grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_eval.errors import InputError
from gan_eval.fileio import atomic_path


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float B×C×H×W in [-1, 1] → uint8 B×C×H×W, ``round((x + 1) · 127.5)`` clamped to 0..255."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


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


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write uint8 H×W (gray) or H×W×3 pixels as a PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def sample(
    checkpoint: str | Path,
    *,
    n: int,
    out: str | Path,
    seed: int = 0,
    npz: bool = False,
    device: str | torch.device | None = None,
    batch_size: int = 256,
) -> Path:
    """Draw ``n`` images from a checkpoint's EMA generator into ``out``; returns ``out``.

    Files: ``000000.png``, ``000001.png``, … (gray PNGs for a 1-channel model), each written
    atomically; with ``npz``, also ``samples.npz`` holding ``images`` (uint8 N×H×W for gray,
    N×H×W×3 for color), which ``open_source`` reads back. Image i depends only on the checkpoint,
    ``seed`` and i (not on ``batch_size``); see :mod:`gan_eval.gan.source`.
    """
    from gan_eval.gan.source import open_checkpoint_source

    if n < 1:
        raise InputError(f"--n {n}: expected at least 1 image")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: expected at least 1")
    source = open_checkpoint_source(Path(checkpoint), n=n, seed=seed, device=device)
    channels = source.spec.channels
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    digits = max(6, len(str(n - 1)))
    collected: list[np.ndarray] = []
    index = 0
    for batch in source.batches(batch_size):
        pixels = batch[:, :channels].numpy()
        for image in pixels:
            array = image[0] if channels == 1 else image.transpose(1, 2, 0)
            write_png(out / f"{index:0{digits}d}.png", np.ascontiguousarray(array))
            if npz:
                collected.append(array)
            index += 1
    if npz:
        with atomic_path(out / "samples.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, images=np.stack(collected))
    return out
