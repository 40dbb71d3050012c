"""Small summaries of samples as pure functions (float64): a median's distribution-free rank
interval, mean and standard deviation (a binomial rate's Wilson interval is
:func:`gan_eval.estimates.wilson_interval`, beside the interval records it makes)."""

from __future__ import annotations

import math

import numpy as np

from gan_eval.estimates import Z95


def median_rank_interval(m: int, z: float = Z95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the sorted sample bracketing its median with ≈95% confidence.

    Distribution-free: the number of observations below the median is Binomial(m, 1/2).
    """
    half = z * math.sqrt(m) / 2.0
    lo = max(0, math.floor(m / 2.0 - half) - 1)
    hi = min(m - 1, math.ceil(m / 2.0 + half))
    return lo, hi


def mean_std(values: list[float] | np.ndarray) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (ddof 1) and count of finite ``values``."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": None, "std": None, "n": 0}
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size)}
