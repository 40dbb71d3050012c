"""Small summaries of samples as pure functions (float64): a binomial rate's Wilson interval, a
median's distribution-free rank interval, mean and standard deviation."""

from __future__ import annotations

import math

import numpy as np

Z95 = 1.959963984540054
"""Two-sided 95% standard-normal quantile."""


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """95% Wilson score interval of a binomial proportion ``successes / n`` (None when n = 0).

    Used for rates over independent images (leakage, faceness, rank-1): it is what a bootstrap
    over the images approximates for large ``n``, and unlike the bootstrap it does not collapse
    to a single point when the rate is exactly 0 or 1.
    """
    if n <= 0:
        return None
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


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
