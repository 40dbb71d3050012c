"""Identity-leakage search at scale: time and memory against the matrix-multiply floor.

The leakage search finds, for each of N1 generated embeddings, the nearest of N2 reference
embeddings (``gan_eval.identity.nearest_reference``: blocked, exact, constant memory). Its
floor on this machine is the matmul alone: ``2·N1·N2·d`` FLOP at the measured float32 ``torch.mm``
rate (n×n×n, median of repeats, measured before and after the search because a shared machine's
rate drifts), and at the search's own thin product shape (strip × d × tile). Prints a table
with the search time, the floors, their ratios (aim: ≤ 1.5× of the square-sgemm floor) and the
process's peak resident memory against the size a full distance matrix would need.

Inputs are random unit-norm float32 embeddings (dlib's are ≈ unit-norm as well; the search cost
does not depend on the values).

Usage: python benchmarks/recognition.py [--n-generated 50000] [--n-reference 200000] [--dim 128]
           [--threads N] [--sgemm-size 2048] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time

import torch
from _rates import sgemm_gflops

from gan_eval.identity import leakage_at, nearest_reference
from gan_eval.metrics.neighbors import DEFAULT_MEMORY_BUDGET, nearest_peak_bytes

GiB = 2**30


def sgemm_rate(n: int, repeats: int) -> float:
    """Measured float32 ``torch.mm`` rate on n×n×n, FLOP/s (median)."""
    return sgemm_gflops("cpu", size=n, repeats=repeats, warmup=1) * 1e9


def peak_rss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def unit_rows(n: int, d: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-generated", type=int, default=50_000)
    parser.add_argument("--n-reference", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--sgemm-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n1, n2, d = args.n_generated, args.n_reference, args.dim

    rate_before = sgemm_rate(args.sgemm_size, args.repeats)
    generated, reference = unit_rows(n1, d, 0), unit_rows(n2, d, 1)
    baseline = peak_rss_bytes()
    start = time.perf_counter()
    nn = nearest_reference(generated, reference)
    seconds = time.perf_counter() - start
    peak = peak_rss_bytes()
    rate_after = sgemm_rate(args.sgemm_size, args.repeats)
    leak = leakage_at(nn, 0.6)

    rate = (rate_before + rate_after) / 2.0
    flop = 2.0 * n1 * n2 * d
    floor = flop / rate
    # The search's own product shape (query strip × d × reference tile) runs slower than a square
    # sgemm: d = 128 is a thin inner dimension. Report the ratio against both rates.
    shape = (min(n1, 4096), d, min(n2, 32768))
    shape_rate = sgemm_gflops("cpu", shape=shape, repeats=args.repeats, warmup=1) * 1e9
    shape_floor = flop / shape_rate
    full_matrix = 4.0 * n1 * n2
    rows = [
        ("machine", f"{platform.processor() or platform.machine()}, torch "
                    f"{torch.__version__}, {torch.get_num_threads()} threads"),
        ("sizes", f"{n1:,} generated × {n2:,} reference × {d}-d (float32, unit norm)"),
        ("sgemm rate", f"{rate_before / 1e9:.1f} GFLOP/s before, {rate_after / 1e9:.1f} after "
                       f"(torch.mm {args.sgemm_size}³, median of {args.repeats})"),
        ("matmul floor", f"{flop / 1e12:.2f} TFLOP / {rate / 1e9:.1f} GFLOP/s = {floor:.1f} s"),
        ("leakage search", f"{seconds:.1f} s"),
        ("ratio to floor", f"{seconds / floor:.2f}×"),
        ("same-shape floor", f"{flop / 1e12:.2f} TFLOP / {shape_rate / 1e9:.1f} GFLOP/s "
                             f"(torch.mm {shape[0]}×{shape[1]}×{shape[2]}) = {shape_floor:.1f} s: "
                             f"ratio {seconds / shape_floor:.2f}×"),
        ("peak RSS", f"{peak / GiB:.2f} GiB (before the search: {baseline / GiB:.2f} GiB; "
                     f"inputs {(n1 + n2) * d * 4 / GiB:.2f} GiB)"),
        ("search memory", f"formula {nearest_peak_bytes(n1, n2, d) / GiB:.2f} GiB at the "
                          f"{DEFAULT_MEMORY_BUDGET / 2**20:.0f} MiB budget; a full distance "
                          f"matrix would be {full_matrix / GiB:.1f} GiB"),
        ("leakage at 0.6", f"{leak['rate']:.4f} (random vectors: ≈ √2 apart, so 0 expected)"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
