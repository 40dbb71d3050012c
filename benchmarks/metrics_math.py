"""Metric math: gan-eval vs torch-fidelity, side by side on the same features, in one process.

    python benchmarks/metrics_math.py            # the sizes of the brief (long: several minutes)
    python benchmarks/metrics_math.py --quick    # smaller sizes, same table
    python benchmarks/metrics_math.py --only fid,kid

Rows (each: warm-up, then baseline and candidate alternated A B A B, median of ``--repeats``):

* ``fid``  — Fréchet distance from statistics at D = 2048: torch-fidelity's
  ``fid_statistics_to_metric`` (numpy ``eigvals`` of Σ1Σ2) vs ``frechet_distance`` (Cholesky +
  symmetric ``eigvalsh``).
* ``kid``  — KID at N = 2,000, D = 2048, torch-fidelity defaults (100 subsets of 1,000):
  ``kid_features_to_metric`` vs ``kid`` (kernels once, subsets indexed).
* ``prc``  — precision/recall at N = 10,000, D = 2048: ``prc_features_to_metric`` vs
  ``precision_recall`` (its default first pass: bfloat16 where the CPU has it natively; the
  note gives the float32 first pass's time too, and which was used); plus the peak RSS of
  ``precision_recall`` at N = 50,000 measured in a subprocess
  (``resource.getrusage().ru_maxrss``), next to the memory formula.
* ``boot`` — prdc of 20 resamples at N = 4,000, D = 2048: a loop of ``prdc`` calls vs one
  ``PRDCResampler`` (what ``gan-eval evaluate``'s recall/coverage intervals use for subsets).
* ``nn``   — exact 1-NN of 50,000 queries in 200,000 references, 128-d, vs the matmul floor
  ``2·N1·N2·D / (measured sgemm rate)``.

Timings on a shared CPU are noisy: read the ratios, which are measured side by side.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import threadpoolctl
import torch
from _rates import sgemm_gflops
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from gan_eval.metrics.bf16_tiles import Bf16SelfProducts, use_bf16
from gan_eval.metrics.frechet import FeatureStats, SmallSampleFIDWarning, frechet_distance
from gan_eval.metrics.neighbors import DEFAULT_MEMORY_BUDGET, nearest, nearest_peak_bytes
from gan_eval.metrics.polynomial_mmd import kid
from gan_eval.metrics.prc import prdc, precision_recall
from gan_eval.metrics.prdc_resample import PRDCResampler, resample_indices


@dataclass
class Row:
    work: str
    size: str
    baseline: float | None
    ours: float
    check: str
    note: str = ""

    @property
    def ratio(self) -> str:
        return f"{self.baseline / self.ours:.2f}x" if self.baseline else "-"


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _alternate(
    base: Callable[[], object], ours: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Warm-up once each, then A B A B … ``repeats`` times; medians in seconds."""
    base()
    ours()
    tb, to = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        base()
        tb.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours()
        to.append(time.perf_counter() - t0)
    return statistics.median(tb), statistics.median(to)


def sgemm_rate(d: int, repeats: int) -> float:
    """Measured float32 matmul rate (FLOP/s) for (4096 × d) @ (d × 4096): the 1-NN's shape."""
    return sgemm_gflops("cpu", shape=(4096, d, 4096), repeats=max(repeats, 5), warmup=1) * 1e9


def _inception_like(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Non-negative, correlated features (like pool3 activations), float32.

    All sets share one 64-dimensional latent basis; ``scale`` changes the latent spread, so two
    sets overlap partially (precision and recall strictly between 0 and 1).
    """
    basis = torch.randn(64, d, generator=torch.Generator().manual_seed(0)) / 8
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 64, generator=g) * scale
    return torch.relu(z @ basis + 0.3 + 0.1 * torch.randn(n, d, generator=g))


def bench_fid(d: int, repeats: int) -> Row:
    a = _inception_like(max(2 * d, 4096), d, 1).double()
    b = _inception_like(max(2 * d, 4096), d, 2, scale=1.1).double()
    s1, s2 = FeatureStats.from_features(a), FeatureStats.from_features(b)
    tf1 = {"mu": s1.mean.numpy(), "sigma": s1.cov.numpy()}
    tf2 = {"mu": s2.mean.numpy(), "sigma": s2.cov.numpy()}

    def base() -> float:
        return fid_statistics_to_metric(tf1, tf2, verbose=False)["frechet_inception_distance"]

    def ours() -> float:
        return frechet_distance(s1, s2)

    tb, to = _alternate(base, ours, repeats)
    rel = abs(ours() - base()) / abs(base())
    return Row("FID from statistics", f"D={d}", tb, to, f"rel diff {rel:.1e}")


def bench_kid(n: int, d: int, repeats: int) -> Row:
    a = _inception_like(n, d, 3)
    b = _inception_like(n, d, 4, scale=1.1)
    base = lambda: kid_features_to_metric(a, b, verbose=False)  # noqa: E731
    ours = lambda: kid(a, b)  # noqa: E731
    tb, to = _alternate(base, ours, repeats)
    ref64 = kid_features_to_metric(a.double(), b.double(), verbose=False)
    ref32 = base()
    res = kid(a, b)
    m64 = ref64["kernel_inception_distance_mean"]
    rel64 = abs(res.mean - m64) / abs(m64)
    rel32 = abs(ref32["kernel_inception_distance_mean"] - m64) / abs(m64)
    return Row(
        "KID (100 × 1000)",
        f"N={n} D={d}",
        tb,
        to,
        f"vs tf-float64 {rel64:.1e}",
        f"tf on float32 itself is off by {rel32:.1e} (float32 kernels); ours uses {res.strategy}",
    )


def bench_prc(n: int, d: int, repeats: int) -> Row:
    gen = _inception_like(n, d, 5, scale=1.05)
    real = _inception_like(n, d, 6)
    base = lambda: prc_features_to_metric(gen, real, verbose=False)  # noqa: E731
    ours = lambda: precision_recall(gen, real)  # noqa: E731
    tb, to = _alternate(base, ours, repeats)
    ref, res = base(), ours()
    t32 = _median_time(lambda: precision_recall(gen, real, products="float32"), repeats)
    r32 = precision_recall(gen, real, products="float32")
    same = all(
        round(ref[m] * n) == round(getattr(res, m) * n) == round(getattr(r32, m) * n)
        for m in ("precision", "recall")
    )
    first = "bfloat16" if use_bf16("auto", gen.device, d) else "float32"
    return Row(
        "precision/recall k=3",
        f"N={n} D={d}",
        tb,
        to,
        f"P={res.precision:.4f} R={res.recall:.4f} {'equal' if same else 'DIFFERENT'}",
        f"first pass {first}; the float32 first pass: {t32:.3f} s ({tb / t32:.2f}x)",
    )


_MEMORY_CHILD = r"""
import resource, sys, time, torch
sys.path.insert(0, {root!r})
from gan_eval.metrics.prc import precision_recall

def rss():  # current resident set, bytes
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

n, d = {n}, {d}
torch.set_num_threads({threads})
base = rss()  # python + torch
g = torch.Generator().manual_seed(0)
gen = torch.rand(n, d, generator=g)
real = torch.rand(n, d, generator=g).mul_(1.05)
inputs = rss()
t0 = time.perf_counter()
res = precision_recall(gen, real)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(base, inputs, peak, dt, res.precision, res.recall)
"""


def bench_prdc_bootstrap(n: int, d: int, resamples: int) -> Row:
    """``resamples`` bootstrap values of prdc: a loop of ``prdc(gen[idx], real)`` (the baseline
    column here) vs one :class:`PRDCResampler` and its calls; every value compared."""
    gen = _inception_like(n, d, 7, scale=1.05)
    real = _inception_like(n, d, 8)
    idxs = list(resample_indices(n, resamples, seed=0))
    t0 = time.perf_counter()
    loop = [prdc(gen[i], real) for i in idxs]
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    resampler = PRDCResampler(gen, real)
    fast = [resampler(i) for i in idxs]
    t_fast = time.perf_counter() - t0
    same = all(a == b for a, b in zip(loop, fast, strict=True))
    return Row(
        f"prdc bootstrap, {resamples} resamples",
        f"N={n} D={d}",
        t_loop,
        t_fast,
        f"{resamples} of {resamples} equal" if same else "DIFFERENT",
        "baseline column: a loop of gan-eval prdc calls (torch-fidelity has no bootstrap)",
    )


def bench_prc_memory(n: int, d: int) -> Row:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = _MEMORY_CHILD.format(root=root, n=n, d=d, threads=torch.get_num_threads())
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    base, inputs, peak, dt = int(out[0]), int(out[1]), int(out[2]), float(out[3])
    # inputs (2·N·D float32) + the workspace bound (≈ 7/8 of the memory budget) + candidates
    # (k + margin per row: 2 beyond k for a float32 first pass, more for bfloat16)
    c = 3 + (Bf16SelfProducts.margin if use_bf16("auto", torch.device("cpu"), d) else 2)
    formula = 2 * n * d * 4 + DEFAULT_MEMORY_BUDGET * 7 // 8 + 12 * 17 * c * n
    gib = 2**30
    return Row(
        "precision/recall peak RSS",
        f"N={n} D={d}",
        None,
        dt,
        f"metric peak {(peak - base) / gib:.2f} GiB = inputs {(inputs - base) / gib:.2f} + "
        f"work {(peak - inputs) / gib:.2f} (process {peak / gib:.2f})",
        f"formula ≈ {formula / gib:.2f} GiB (inputs 8·N·D + ⅞ of the 512 MiB budget + "
        f"candidates); python+torch alone {base / gib:.2f} GiB; limit 2 GB",
    )


def bench_nn(n1: int, n2: int, d: int, repeats: int) -> Row:
    g = torch.Generator().manual_seed(7)
    q = torch.randn(n1, d, generator=g)
    r = torch.randn(n2, d, generator=g)
    rate = sgemm_rate(d, repeats)
    floor = 2 * n1 * n2 * d / rate
    small = max(1, n1 // 20)
    nearest(q[:small], r)  # warm-up
    t = _median_time(lambda: nearest(q, r, k=1), repeats)
    rate_after = sgemm_rate(d, repeats)
    floor_after = 2 * n1 * n2 * d / rate_after
    return Row(
        "exact 1-NN",
        f"{n1}x{n2} D={d}",
        None,
        t,
        f"floor {floor:.1f}-{floor_after:.1f} s → {t / max(floor, floor_after):.2f}"
        f"-{t / min(floor, floor_after):.2f}x floor",
        f"sgemm {rate / 1e9:.0f}/{rate_after / 1e9:.0f} GFLOP/s; extra memory "
        f"{nearest_peak_bytes(n1, n2, d) / 2**30:.2f} GiB by formula",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument(
        "--only", default="fid,kid,prc,mem,nn,boot", help="comma-separated rows"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for both sides (default: torch's); on a CPU shared with "
        "other jobs, 1 thread avoids stalls at every parallel operation",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        # numpy's BLAS (torch-fidelity's eigvals and KID matmuls) gets the same limit
        threadpoolctl.threadpool_limits(args.threads)
    only = set(args.only.split(","))
    warnings.simplefilter("ignore", SmallSampleFIDWarning)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, numpy {np.__version__}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    q = args.quick
    rows: list[Row] = []
    if "fid" in only:
        rows.append(bench_fid(512 if q else 2048, args.repeats))
        print(rows[-1], flush=True)
    if "kid" in only:
        rows.append(bench_kid(1200 if q else 2000, 512 if q else 2048, args.repeats))
        print(rows[-1], flush=True)
    if "prc" in only:
        rows.append(bench_prc(3000 if q else 10_000, 512 if q else 2048, args.repeats))
        print(rows[-1], flush=True)
    if "boot" in only:
        rows.append(bench_prdc_bootstrap(1500 if q else 4000, 512 if q else 2048, 20))
        print(rows[-1], flush=True)
    if "mem" in only:
        rows.append(bench_prc_memory(10_000 if q else 50_000, 2048))
        print(rows[-1], flush=True)
    if "nn" in only:
        n1, n2 = (10_000, 40_000) if q else (50_000, 200_000)
        rows.append(bench_nn(n1, n2, 128, 1 if not q else args.repeats))
        print(rows[-1], flush=True)

    print(
        f"\nload average at the end {os.getloadavg()[0]:.1f}; peak RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB\n"
    )
    header = ("work", "size", "torch-fidelity s", "gan-eval s", "speed-up", "check")
    table = [header] + [
        (
            r.work,
            r.size,
            f"{r.baseline:.3f}" if r.baseline else "-",
            f"{r.ours:.3f}",
            r.ratio,
            r.check,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        if r.note:
            print(f"- {r.work}: {r.note}")


if __name__ == "__main__":
    main()
