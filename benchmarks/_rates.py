"""The machine's matrix-multiply rate: the yardstick every benchmark here divides by.

    from _rates import sgemm_gflops       # benchmarks/ is on sys.path when a script there runs
    sgemm_gflops("cpu")                     # float32 torch.mm 2048³, median of 7, GFLOP/s
    sgemm_gflops("cpu", shape=(4096, 128, 4096))   # the rate at a workload's own (thin) shape
    sgemm_gflops("cuda", size=8192, precision="tf32")

The rate drifts on a shared machine: measure it in the same run as the workload (before and
after, or once per A/B round with ``repeats=1, warmup=0``) and report it next to the numbers.
"""

from __future__ import annotations

import statistics
import time

import torch

PRECISIONS = ("fp32", "tf32", "bf16")


def sgemm_gflops(
    device: str | torch.device = "cpu",
    *,
    size: int = 2048,
    shape: tuple[int, int, int] | None = None,
    repeats: int = 7,
    warmup: int = 2,
    precision: str = "fp32",
) -> float:
    """Median GFLOP/s of ``torch.mm`` of an (m×k) by a (k×n) matrix on ``device``.

    Args:
        device: where the matrices live (CUDA work is synchronised around each timing).
        size: m = k = n when ``shape`` is not given.
        shape: ``(m, k, n)``; 2·m·k·n FLOP per product.
        repeats: timed products; the median is reported.
        warmup: untimed products first (allocator, BLAS/cuBLAS handles, clock ramp-up).
        precision: ``fp32`` (sgemm: TF32 off on CUDA), ``tf32`` (float32 operands, TF32 on
            CUDA; the same as fp32 on CPU) or ``bf16`` (bfloat16 operands). CUDA's TF32 flag is
            restored afterwards.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    m, k, n = shape if shape is not None else (size, size, size)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    # A preallocated product: a fresh output per call measures page faults as much as the
    # matmul on large outputs (e.g. 4096 × 32768 float32 = 512 MiB).
    out = torch.empty(m, n, device=device, dtype=dtype)
    cuda = device.type == "cuda"
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    times = []
    try:
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        for _ in range(warmup):
            torch.mm(a, b, out=out)
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            if cuda:
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return 2.0 * m * k * n / statistics.median(times) / 1e9
