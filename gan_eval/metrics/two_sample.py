"""Regression gate as a test: is this run worse than the baseline, at a stated false-alarm rate?

Both runs' estimates carry a standard error of the metric across fresh generated sets
(:class:`~gan_eval.metrics.intervals.IntervalResult.se`). With independent generated draws
the difference ``now − baseline`` has standard error ``√(se_now² + se_base²)``, and under "no
change" ``z = (now − baseline)/that`` is ≈ N(0, 1), so a one-sided test at level ``α`` raises a
false alarm with probability ``α``. A window test ("is now outside the baseline's interval")
ignores the current run's own noise and has no stated false-alarm rate.

Like with like: a ``"mean_at_n"`` estimand (FID, recall, coverage) depends on ``n``, so two such
runs are compared only at equal ``n`` (:class:`~gan_eval.errors.InputError` otherwise —
compare FID∞ instead); ``"population"`` estimands compare at any ``n``.

Effect size: ``effect`` in metric units (positive = worse), and ``effect_in_spreads`` — the
effect divided by the baseline's interval width (``high − low``, its "spread": one spread is
≈ 3.9 baseline standard errors at 95%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from gan_eval.errors import InputError
from gan_eval.metrics.intervals import IntervalResult

__all__ = ["GateTest", "compare_to_baseline"]


@dataclass(frozen=True)
class GateTest:
    """Outcome of :func:`compare_to_baseline`.

    Attributes:
        worse: ``p_value < alpha``.
        p_value: one-sided p-value of "now is worse than baseline".
        z: standardized difference (positive = worse).
        effect: ``now − baseline`` signed so that positive is worse (metric units).
        effect_in_spreads: ``effect`` / baseline interval width.
        alpha: the stated false-alarm rate.
        estimand: the compared estimand.
    """

    worse: bool
    p_value: float
    z: float
    effect: float
    effect_in_spreads: float
    alpha: float
    estimand: str

    def to_json(self) -> dict[str, Any]:
        """Fields for the results JSON / JUnit message."""
        return {"test": "one-sided z-test on independent estimates", "worse": self.worse,
                "p_value": self.p_value, "z": self.z, "effect": self.effect,
                "effect_in_spreads": self.effect_in_spreads, "alpha": self.alpha,
                "estimand": self.estimand}


def compare_to_baseline(
    now: IntervalResult,
    baseline: IntervalResult,
    *,
    higher_is_better: bool,
    alpha: float = 0.05,
) -> GateTest:
    """One-sided test of "``now`` is worse than ``baseline``" at false-alarm rate ``alpha``.

    Raises:
        InputError: different estimands, a ``"mean_at_n"`` estimand at different ``n``, ``alpha``
            outside (0, 1), or both standard errors 0.
    """
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    if now.estimand != baseline.estimand:
        raise InputError(f"cannot compare an interval of {now.estimand!r} with one of "
                         f"{baseline.estimand!r}")
    if now.estimand == "mean_at_n" and now.n != baseline.n:
        raise InputError(
            f"this metric depends on the number of generated samples: the run used "
            f"n={now.n}, the baseline n={baseline.n}; re-run with n={baseline.n} (or compare "
            "a population estimate such as fid_infinity)"
        )
    se = math.hypot(now.se, baseline.se)
    if se <= 0:
        raise InputError("both standard errors are 0: nothing to test against")
    sign = -1.0 if higher_is_better else 1.0
    effect = sign * (now.estimate - baseline.estimate)
    z = effect / se
    p = 1.0 - NormalDist().cdf(z)
    width = baseline.high - baseline.low
    return GateTest(worse=p < alpha, p_value=p, z=z, effect=effect,
                    effect_in_spreads=effect / width if width > 0 else math.inf,
                    alpha=alpha, estimand=now.estimand)
