"""Sampling a generator to PNG files (and optionally one .npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from gan_eval.data.pictures import write_png
from gan_eval.errors import InputError
from gan_eval.fileio import atomic_path
from gan_eval.generators import GeneratorOptions, open_generator


def sample(
    generator: str | Path,
    *,
    n: int,
    out: str | Path,
    seed: int = 0,
    npz: bool = False,
    device: str | torch.device | None = None,
    batch_size: int = 256,
    options: GeneratorOptions | None = None,
) -> Path:
    """Draw ``n`` images from ``generator`` (a GENERATOR spec) into ``out``; returns ``out``.

    Files: ``000000.png``, ``000001.png``, … (gray PNGs for a 1-channel model), each written
    atomically; with ``npz``, also ``samples.npz`` holding ``images`` (uint8 N×H×W for gray,
    N×H×W×3 for color), which ``open_source`` reads back. Image i depends only on the generator,
    ``seed`` and i (not on ``batch_size``); see :mod:`gan_eval.generators.source`.
    ``options`` complete an external generator's contract (:class:`GeneratorOptions`).
    """
    if n < 1:
        raise InputError(f"--n {n}: expected at least 1 image")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: expected at least 1")
    source = open_generator(str(generator), n=n, seed=seed, device=device, options=options)
    channels = source.source_channels
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
