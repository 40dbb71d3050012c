"""Restoration-audit measurement throughput vs a plain loop over the same metric libraries.

The same work on both sides: PSNR, SSIM and LPIPS-Alex of K restored versions of N clean faces
(K degradations from the audit's grid of ``builtin:lfw-subset`` at 64 px; "restored" = the
degraded image, which is what ``builtin:none`` measures).

- **plain loop** — what a restoration paper's script does: for every (restored, clean) pair,
  ``skimage.metrics.peak_signal_noise_ratio``, ``skimage.metrics.structural_similarity``
  (``channel_axis=-1``) and ``lpips.LPIPS(net="alex")`` on the pair (batch of 1);
- **gan-eval** — the audit's path (:mod:`gan_eval.restoration.measures`): batched
  :func:`gan_eval.metrics.psnr` / :func:`gan_eval.metrics.ssim` (float64 torch) and LPIPS with
  the clean faces' normalised activations computed once and reused for every degradation.

Both use the same AlexNet trunk (random weights in torchvision's format: the real file is not
installable offline; the cost does not depend on the values) and lpips' own heads. The values
are checked equal first (PSNR/SSIM to 1e-9, LPIPS to 1e-5), then the two run alternately
(A B A B …) after a warm-up; medians; the ratio is plain / gan-eval.

Usage: python benchmarks/restoration.py [--faces 100] [--degradations 6] [--repeats 5]
       [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lpips_fixture import lpips_reference, write_random_alexnet
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan_eval.features.lpips_alex import load_lpips_alex
from gan_eval.metrics import lpips_distance, psnr, ssim
from gan_eval.restoration.degradations import degrade
from gan_eval.restoration.plan import default_grid
from gan_eval.sources import open_source


def plain_loop(restored: list[torch.Tensor], clean: torch.Tensor, model: torch.nn.Module
               ) -> np.ndarray:
    """(K, N, 3) psnr, ssim, lpips, one pair at a time with the reference libraries."""
    out = np.zeros((len(restored), clean.shape[0], 3))
    cl = [c.permute(1, 2, 0).numpy() for c in clean]
    cl_t = [c[None].float() / 127.5 - 1 for c in clean]
    with torch.no_grad():
        for k, batch in enumerate(restored):
            for i in range(clean.shape[0]):
                r = batch[i].permute(1, 2, 0).numpy()
                out[k, i, 0] = peak_signal_noise_ratio(cl[i], r, data_range=255)
                out[k, i, 1] = structural_similarity(cl[i], r, data_range=255, channel_axis=-1)
                out[k, i, 2] = float(model(batch[i][None].float() / 127.5 - 1, cl_t[i]))
    return out


def gan_eval_path(restored: list[torch.Tensor], clean: torch.Tensor, net: torch.nn.Module,
                  batch: int = 32) -> np.ndarray:
    """The same numbers the way the audit computes them (clean activations once)."""
    clean_acts = [torch.cat(parts) for parts in zip(*[
        net.activations(clean[s : s + batch]) for s in range(0, clean.shape[0], batch)],
        strict=True)]
    heads = list(net.heads)
    out = np.zeros((len(restored), clean.shape[0], 3))
    for k, images in enumerate(restored):
        out[k, :, 0] = psnr(images, clean).numpy()
        out[k, :, 1] = ssim(images, clean).numpy()
        for s in range(0, images.shape[0], batch):
            mine = net.activations(images[s : s + batch])
            out[k, s : s + batch, 2] = lpips_distance(
                mine, [a[s : s + batch] for a in clean_acts], heads).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=100)
    parser.add_argument("--degradations", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)  # torchvision's 'pretrained' deprecation

    clean = open_source("builtin:lfw-subset", resolution=64).head(args.faces).load()
    grid = default_grid()[:: max(1, len(default_grid()) // args.degradations)]
    grid = grid[: args.degradations]
    restored = [degrade(clean, c, seed=0, indices=range(clean.shape[0])).at_size for c in grid]
    with tempfile.TemporaryDirectory() as folder:
        path = write_random_alexnet(Path(folder) / "alexnet-owt-7be5be79.pth")
        net, _ = load_lpips_alex(path)
        model = lpips_reference(path)

    a = plain_loop([r[:16] for r in restored], clean[:16], model)
    b = gan_eval_path([r[:16] for r in restored], clean[:16], net)
    diff = np.abs(a - b).max(axis=(0, 1))
    assert diff[0] < 1e-9 and diff[1] < 1e-9 and diff[2] < 1e-5, diff

    times: dict[str, list[float]] = {"plain loop (skimage + lpips per pair)": [],
                                     "gan-eval (batched, clean activations reused)": []}
    runs = [lambda: plain_loop(restored, clean, model), lambda: gan_eval_path(restored, clean, net)]
    for fn in runs:  # warm-up
        fn()
    for _ in range(args.repeats):
        for name, fn in zip(times, runs, strict=True):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    pairs = len(restored) * clean.shape[0]
    print(f"PSNR + SSIM + LPIPS-Alex of {pairs} restored/clean pairs ({len(restored)} "
          f"degradations × {clean.shape[0]} faces, 64×64), torch threads "
          f"{torch.get_num_threads()}; max |difference| psnr {diff[0]:.1e} ssim {diff[1]:.1e} "
          f"lpips {diff[2]:.1e}")
    print(f"{'path':<48}{'median s':>10}{'pairs/s':>10}")
    medians = {}
    for name, values in times.items():
        medians[name] = statistics.median(values)
        print(f"{name:<48}{medians[name]:>10.3f}{pairs / medians[name]:>10.1f}")
    first, second = medians.values()
    print(f"ratio (plain / gan-eval): {first / second:.2f}×")


if __name__ == "__main__":
    main()
