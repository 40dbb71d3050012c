"""Throughput of the dlib-face embedding network on CPU, against the machine's sgemm rate.

Prints a table: images per second at a given batch size for the fast form (what ``embed_faces``
uses: affine folded into the convolutions, channels_last) and for the plain form of the same
network (separate affine, contiguous NCHW), plus variants, with FLOPs per
image counted by ``torch.utils.flop_counter.FlopCounterMode`` and the fraction of the measured
float32 matmul rate reached. Variants run alternately (A B A B ...) after a warm-up, on the
same input; medians.

Usage: python benchmarks/embed.py [--batch 64] [--repeats 7] [--threads N] [--weights FILE]
       [--sgemm 2048]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch
from _rates import sgemm_gflops
from torch.utils.flop_counter import FlopCounterMode

from gan_eval.features.dlib_face import DlibFaceNet, default_weights_path
from gan_eval.features.dlib_format import read_dlib_net


def flops_per_image(net: torch.nn.Module) -> float:
    """FLOPs of one forward pass on one 150×150 image (conv, mm: 2 per multiply-add)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, 150, 150) * 255)
    return float(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--weights", default=None, help="the .dat file (default: installed one)")
    parser.add_argument("--sgemm", type=int, default=2048, help="n of the n³ reference matmul")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    path = args.weights or str(default_weights_path())
    weights = read_dlib_net(path)
    fast = DlibFaceNet(weights)  # what embed_faces uses
    plain = DlibFaceNet(weights, fold_affine=False, channels_last=False)
    folded_nchw = DlibFaceNet(weights, fold_affine=True, channels_last=False)
    flops = flops_per_image(fast)

    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, 150, 150) * 255
    x_small = x[:16]
    with torch.no_grad():
        diff = float((fast(x[:8]) - plain(x[:8])).abs().max())

    def run(net: DlibFaceNet, batch: torch.Tensor) -> Callable[[], object]:
        def call() -> object:
            with torch.no_grad():
                return net(batch)

        return call

    # torch.backends.mkldnn.flags also resets oneDNN's TF32 switch and warns about it.
    warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")

    def run_no_mkldnn() -> object:
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
            return fast(x)

    b = args.batch
    variants: list[tuple[str, Callable[[], object], int]] = [
        (f"fast: folded affine, channels_last, batch {b}", run(fast, x), b),
        (f"plain: separate affine, NCHW, batch {b}", run(plain, x), b),
        (f"folded affine, NCHW, batch {b}", run(folded_nchw, x), b),
        (f"fast, batch {len(x_small)}", run(fast, x_small), len(x_small)),
        (f"fast with oneDNN off (mkldnn flags), batch {b}", run_no_mkldnn, b),
    ]
    n = args.sgemm
    for _, fn, _ in variants:  # warm-up (oneDNN primitive creation)
        fn()
        fn()
    sgemm_gflops("cpu", size=n, repeats=1, warmup=1)
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    sgemm_rates: list[float] = []
    for _ in range(args.repeats):  # alternate A B C ... A B C ..., the matmul in every round
        for name, fn, _ in variants:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
        sgemm_rates.append(sgemm_gflops("cpu", size=n, repeats=1, warmup=0))
    peak = statistics.median(sgemm_rates) * 1e9

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
    )
    print(f"weights: {path}")
    print(f"FLOPs per image (FlopCounterMode): {flops / 1e9:.4f} GFLOP")
    print(
        f"sgemm {n}³ float32 torch.mm, median of {args.repeats} (interleaved with the variants): "
        f"{peak / 1e9:.1f} GFLOP/s"
    )
    print(f"fast vs plain: max |Δ| = {diff:.2e} on 8 images")
    print()
    header = (
        f"| {'variant':<52} | {'img/s':>7} | {'GFLOP/s':>7} | {'of sgemm':>8} | {'vs plain':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    plain_rate = args.batch / statistics.median(times[variants[1][0]])
    for name, _, batch in variants:
        img_s = batch / statistics.median(times[name])
        gflops = img_s * flops / 1e9
        print(
            f"| {name:<52} | {img_s:7.1f} | {gflops:7.1f} | {gflops * 1e9 / peak:8.1%} | "
            f"{img_s / plain_rate:7.2f}× |"
        )


if __name__ == "__main__":
    main()
