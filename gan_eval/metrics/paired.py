"""Intervals of means over faces, and of paired differences between methods (pure functions).

A restoration audit measures every method on the *same* faces, so each face gives one value per
method and degradation. Given the faces (a sample from the population of faces the data stands
for), the mean of a per-face value has ``se = sd/√n`` exactly (faces are independent);
comparing two methods on the same faces, the per-face differences give the paired interval,
much narrower than two independent ones when the methods' values move together.

- :func:`mean_interval`: ``mean ± z·sd/√n`` (:func:`gan_eval.estimates.normal_interval`,
  method ``"paired_mean"``), estimand ``"population"`` (the mean over the face population);
- :func:`rate_interval_of_means`: a rate from per-face values in [0, 1] — indicators (then it
  is exactly the Wilson interval of ``rate_interval``), or a face's fraction of several
  conditions. Wilson at ``n`` faces is then conservative: a [0, 1] value with mean ``p`` has
  variance at most ``p(1 − p)``, which is what the Wilson interval assumes;
- :func:`paired_difference`: the interval of ``mean(a − b)`` over the same faces.
"""

from __future__ import annotations

import math

import numpy as np

from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult, normal_interval, two_sided_z, wilson_interval

__all__ = ["mean_interval", "paired_difference", "rate_interval_of_means"]


def _values(values: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size < 2:
        raise InputError(f"{what}: an interval needs values of at least 2 faces, got {x.size}")
    if not np.isfinite(x).all():
        raise InputError(f"{what}: {int((~np.isfinite(x)).sum())} per-face values are not "
                         "finite numbers")
    return x


def mean_interval(values: np.ndarray, *, level: float = 0.95,
                  what: str = "values") -> IntervalResult:
    """The mean of per-face ``values`` with ``se = sd/√n`` (ddof 1); estimand population."""
    x = _values(values, what)
    se = float(x.std(ddof=1)) / math.sqrt(x.size)
    return normal_interval(float(x.mean()), se, n=int(x.size), estimand="population",
                           method="paired_mean", level=level,
                           record={"sd": float(x.std(ddof=1))})


def rate_interval_of_means(values: np.ndarray, *, level: float = 0.95,
                           what: str = "rate") -> IntervalResult:
    """The mean of per-face values in [0, 1] with the Wilson interval at ``n`` faces (exact for
    indicators, conservative for per-face fractions; module docstring)."""
    x = _values(values, what)
    if x.min() < 0 or x.max() > 1:
        raise InputError(f"{what}: per-face rates must lie in [0, 1]")
    n = int(x.size)
    z = two_sided_z(level)
    p = float(x.mean())
    successes = p * n
    bounds = wilson_interval(successes, n, z)
    assert bounds is not None
    low, high = bounds
    if successes == 0:
        low = 0.0
    if successes == n:
        high = 1.0
    record: dict[str, object] = {"successes": round(successes, 9)}
    if not np.isin(x, (0.0, 1.0)).all():
        record["per_face_fractions"] = ("each face's fraction of several conditions; Wilson at "
                                        "n faces bounds its variance from above")
    return IntervalResult(p, low, high, (high - low) / (2 * z), "population", "wilson", n, level,
                          record)


def paired_difference(a: np.ndarray, b: np.ndarray, *, level: float = 0.95,
                      what: str = "difference") -> IntervalResult:
    """``mean(a − b)`` over the same faces (row i of both is face i) with ``se = sd(a − b)/√n``."""
    x, y = _values(a, what), _values(b, what)
    if x.shape != y.shape:
        raise InputError(f"{what}: {x.size} and {y.size} faces; a paired difference needs the "
                         "same faces")
    return mean_interval(x - y, level=level, what=what)
