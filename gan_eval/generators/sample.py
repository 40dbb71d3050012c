"""Sampling a generator to PNG files (and optionally one .npz), as one folder that never mixes
runs: the images are written into a fresh staging folder beside ``out``, which then takes
``out``'s place in one rename.

The staging folder is hidden and tagged with the writer's process id
(``.OUT.<pid>-<random>.tmp``, :func:`gan_eval.fileio.temp_dir`): a reader of ``out``'s parent
skips it (image folders skip hidden entries), and one left by a killed run is removed by the
next ``sample`` into the same parent (:func:`gan_eval.fileio.clean_stale_temps`); a live
run's is left alone."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from gan_eval.data.pictures import write_png
from gan_eval.errors import InputError
from gan_eval.fileio import check_output_dir, clean_stale_temps, fsync_dir, temp_dir
from gan_eval.generators import GeneratorOptions, open_generator
from gan_eval.generators.source import MAX_COUNT


def sample(
    generator: str | Path,
    *,
    n: int,
    out: str | Path,
    seed: int = 0,
    npz: bool = False,
    device: str | torch.device | None = None,
    batch_size: int = 256,
    overwrite: bool = False,
    options: GeneratorOptions | None = None,
) -> Path:
    """Draw ``n`` images from ``generator`` (a GENERATOR spec) into the folder ``out``.

    Files: ``000000.png``, ``000001.png``, … (gray PNGs for a 1-channel model); with ``npz``,
    also ``samples.npz`` holding ``images`` (uint8 N×H×W for gray, N×H×W×3 for color), which
    ``open_source`` reads back. Image i depends only on the generator, ``seed`` and i (not on
    ``batch_size``); see :mod:`gan_eval.generators.source`. An external generator is called with
    ``min(batch_size, images left)`` latents at a time.

    ``out`` must be new or empty unless ``overwrite``, which replaces it whole: the folder holds
    the images of one call, never a mix with an earlier one. A failure leaves ``out`` as it was.
    Returns ``out``.
    ``options`` complete an external generator's contract (:class:`GeneratorOptions`).
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_COUNT:
        raise InputError(f"--count {n!r}: expected a number of images in 1..{MAX_COUNT:,}")
    if batch_size < 1:
        raise InputError(f"--batch-size {batch_size}: expected at least 1")
    out = Path(out).expanduser()
    check_output_dir(out, "--out", create=False, empty=not overwrite)
    source = open_generator(str(generator), n=n, seed=seed, device=device, options=options,
                            batch_size=batch_size)
    channels = source.source_channels
    clean_stale_temps(out.parent, force=True)  # staging folders of killed runs
    staging = temp_dir(out)
    try:
        digits = max(6, len(str(n - 1)))
        collected: list[np.ndarray] = []
        index = 0
        for batch in source.batches(batch_size):
            for image in batch[:, :channels].numpy():
                array = np.ascontiguousarray(image[0] if channels == 1
                                             else image.transpose(1, 2, 0))
                write_png(staging / f"{index:0{digits}d}.png", array, durable=False)
                if npz:
                    collected.append(array)
                index += 1
        if npz:
            with open(staging / "samples.npz", "wb") as handle:
                np.savez(handle, images=np.stack(collected))
                handle.flush()
                os.fsync(handle.fileno())
        fsync_dir(staging)
        _replace_folder(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _replace_folder(new: Path, out: Path) -> None:
    """Put the folder ``new`` in ``out``'s place (an existing ``out`` is removed after)."""
    old = None
    if out.exists():
        old = temp_dir(out)  # a name of this process's (stale-swept if it is killed here)
        old.rmdir()
        os.replace(out, old)
    os.replace(new, out)
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
