"""Estimates with their uncertainty, and the test a regression gate runs on two of them.

:class:`IntervalResult` is the record every calibrated interval of gan-eval returns (bounds,
standard error, what it is an interval *of*, method, n) with its results-JSON form;
:func:`compare_to_baseline` is ``gan-eval gate --baseline``'s two-sample test on two of them.
Pure Python (no torch, no numpy): the gate rebuilds intervals from results files and tests them
without loading a tensor library. How each metric's ``se`` is obtained is
:mod:`gan_eval.metrics.intervals`.

**The gate's test**: is this run worse than the baseline, at a stated false-alarm rate?

Both runs' estimates carry a standard error of the metric across fresh generated sets
(:attr:`IntervalResult.se`). With independent generated draws
the difference ``now − baseline`` has standard error ``√(se_now² + se_base²)``, and under "no
change" ``z = (now − baseline)/that`` is ≈ N(0, 1), so a one-sided test at level ``α`` raises a
false alarm with probability ``α``. A window test ("is now outside the baseline's interval")
ignores the current run's own noise and has no stated false-alarm rate.

Like with like: a ``"mean_at_n"`` estimand (FID, recall, coverage, CMMD, IS) depends on ``n``,
so two such runs are compared only at equal ``n`` (:class:`~gan_eval.errors.InputError`
otherwise — compare FID∞ instead); ``"population"`` estimands compare at any ``n``.

Effect size: ``effect`` in metric units (positive = worse), and ``effect_in_spreads`` — the
effect divided by the baseline's interval width (``high − low``, its "spread": one spread is
≈ 3.9 baseline standard errors at 95%).

**A record agrees with itself or is refused.** Each ``method`` fixes how an interval's bounds,
``se`` and estimate relate (:data:`NORMAL_METHODS`: ``estimate ± z·se``; :data:`WILSON`: the
Wilson score bounds of ``successes/n`` with ``se = (high − low)/(2z)``), so a record read from
a file is checked against its own method (:meth:`IntervalResult.inconsistency`) before a gate
trusts its ``se``: a record whose ``se`` contradicts its bounds would let a gate pass a run
that is worse by many spreads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal, cast

from gan_eval.errors import InputError

__all__ = [
    "AGREEMENT",
    "ESTIMANDS",
    "NORMAL_METHODS",
    "WILSON",
    "Estimand",
    "GateTest",
    "IntervalResult",
    "agree",
    "compare_to_baseline",
    "estimand_label",
    "normal_interval",
    "two_sided_z",
    "wilson_interval",
]

Estimand = Literal["mean_at_n", "population", "mean_at_sizes"]
ESTIMANDS: dict[str, str] = {
    "mean_at_n": "expected value over generated sets of this n (reference set fixed as given)",
    "population": "value as n_generated → ∞ (reference set fixed as given)",
    "mean_at_sizes": "expected value over generated sets of this n and reference sets of this "
                     "n_reference (both redrawn from their distributions)",
}
"""What an interval is an interval *of*. The first two condition on the reference set as given
(``details.interval``: what comparing models against one reference, and ``gate --baseline``,
need); ``"mean_at_sizes"`` also counts the reference set's own sampling noise
(``details.interval_both_sets``: what this model's number is, beyond this reference)."""

NORMAL_METHODS: frozenset[str] = frozenset({
    "split_extrapolation",  # FID, recall, coverage, IS: variance of disjoint halves/quarters
    "extrapolation_1_over_n",  # FID∞, IS∞
    "per_sample_mean",  # density
    "jackknife",  # KID, CMMD, coverage
    "min_jackknife_delete_d",  # recall
    "split_extrapolation_both_sets",  # FID with the reference redrawn too (interval_both_sets)
    "paired_mean",  # restoration: per-face means and paired differences
    "u_statistic_variance",  # KID, CMMD in results files of earlier versions
})
"""Methods whose interval is ``estimate ± z·se`` (:func:`normal_interval`, which takes no other
method): ``high − low = 2·z·se`` and the estimate is the midpoint."""

WILSON = "wilson"
"""The method of a rate's interval (:func:`gan_eval.metrics.intervals.rate_interval`,
:func:`gan_eval.metrics.paired.rate_interval_of_means`): the Wilson score bounds of
``successes / n`` (asymmetric; ``successes`` may be a fraction of faces' fractions),
``se = (high − low)/(2z)``."""

AGREEMENT = 1e-9
"""Relative tolerance of the relations an interval record must satisfy: float rounding at the
magnitude of its numbers (a file gan-eval wrote holds them exactly; JSON round-trips floats)."""

Z95 = 1.959963984540054
"""Two-sided 95% standard-normal quantile."""


def agree(a: float, b: float, *magnitudes: float) -> bool:
    """``a`` equals ``b`` up to float rounding at the largest magnitude of ``a``, ``b`` and
    ``magnitudes`` (:data:`AGREEMENT` relative to it: a KID of 1e-4 is held to 1e-13; 1e-300
    absolute, where subnormal numbers carry no relative precision)."""
    scale = max(abs(a), abs(b), *(abs(m) for m in magnitudes))
    return abs(a - b) <= AGREEMENT * scale + 1e-300


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion ``successes / n`` at the two-sided normal
    quantile ``z`` (default: 95%); None when n = 0. ``successes`` is a count, or a sum of
    per-item fractions (then the interval bounds the variance from above).

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


def estimand_label(estimand: object, n: object, n_reference: object = None) -> str:
    """What an interval is of (or what a gate compared), for a reader: ``"at n=1000"`` (the
    metric's mean over generated sets of that size: compare only at equal n), ``"population"``
    (the value as n → ∞), ``"at n=1000, n_ref=80, both redrawn"``, or ``""`` for anything else
    (no calibrated interval)."""
    if estimand == "mean_at_n":
        return f"at n={n}"
    if estimand == "mean_at_sizes":
        return f"at n={n}, n_ref={n_reference}, both redrawn"
    return "population" if estimand == "population" else ""


@dataclass(frozen=True)
class IntervalResult:
    """A two-sided interval of one metric, and what it is an interval of.

    Attributes:
        estimate: the reported value (metric units).
        low, high: interval bounds at ``level``.
        se: standard error (metric units): the estimated sd of ``estimate`` across fresh
            generated sets of size ``n``; what a two-sample test
            (:func:`gan_eval.estimates.compare_to_baseline`) combines.
        estimand: ``"mean_at_n"`` or ``"population"`` (:data:`ESTIMANDS`).
        method: how ``se`` and the bounds were obtained (e.g. ``"split_extrapolation"``).
        n: generated samples the estimate used.
        level: nominal coverage, e.g. 0.95.
        record: method details for the results JSON (seeds, splits, variance components).
    """

    estimate: float
    low: float
    high: float
    se: float
    estimand: Estimand
    method: str
    n: int
    level: float
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def interval(self) -> tuple[float, float]:
        """``(low, high)``."""
        return (self.low, self.high)

    def inconsistency(self) -> str | None:
        """Why the bounds, ``se``, estimate and ``n`` contradict each other under ``method``
        (up to float rounding, :func:`agree`), or None when they agree.

        Every method: ``low ≤ estimate ≤ high``. :data:`NORMAL_METHODS`: ``high − low = 2·z·se``
        and the estimate is the midpoint. :data:`WILSON`: the estimate is ``successes / n``
        (``record["successes"]`` when present), the bounds are the Wilson bounds of that count
        at ``level``, and ``se = (high − low)/(2z)``. Any other method is unknown: nothing
        says how its ``se`` relates to its bounds, so it cannot be trusted either.
        """
        z = two_sided_z(self.level)
        low, high, est, se = self.low, self.high, self.estimate, self.se
        size = (low, high, est, z * se)
        if not (low <= est <= high or agree(est, low, *size) or agree(est, high, *size)):
            return f"the estimate {est!r} lies outside its own bounds [{low!r}, {high!r}]"
        if self.method in NORMAL_METHODS:
            if not agree(high - low, 2.0 * z * se, *size):
                return (f"bounds [{low!r}, {high!r}] are {high - low:.6g} wide, but a normal "
                        f"interval ({self.method}) at level {self.level:g} with se {se!r} is "
                        f"2·z·se = {2.0 * z * se:.6g} wide")
            if not agree((low + high) / 2.0, est, *size):
                return (f"a normal interval ({self.method}) is centred on its estimate "
                        f"{est!r}, but [{low!r}, {high!r}] is centred on {(low + high) / 2.0!r}")
            return None
        if self.method == WILSON:
            return self._wilson_inconsistency(z, size)
        return (f"unknown interval method {self.method!r} (known: "
                f"{', '.join(sorted(NORMAL_METHODS | {WILSON}))}): how its se relates to its "
                "bounds cannot be checked")

    def _wilson_inconsistency(self, z: float, size: tuple[float, ...]) -> str | None:
        n, est = self.n, self.estimate
        if (est < 0.0 and not agree(est, 0.0, *size)) or (est > 1.0 and not agree(est, 1.0, *size)):
            return f"a Wilson rate lies in [0, 1], not {est!r}"
        count = min(max(est * n, 0.0), float(n))  # the count the bounds are of
        raw = self.record.get("successes")
        if raw is not None:  # recorded to 9 decimals (a sum of per-face fractions may be one)
            if (isinstance(raw, bool) or not isinstance(raw, int | float)
                    or not math.isfinite(raw) or not 0 <= raw <= n):
                return f"successes must be a number in 0..n={n}, got {raw!r}"
            if abs(raw - count) > 1e-9 * max(1.0, n):
                return (f"a Wilson rate's estimate is successes/n, but {est!r} is not "
                        f"{raw!r}/{n}")
            if raw in (0, n):
                count = float(raw)
        bounds = wilson_interval(count, n, z)
        assert bounds is not None  # n ≥ 1
        if not (agree(bounds[0], self.low, *size) and agree(bounds[1], self.high, *size)):
            return (f"the Wilson bounds of {count:.9g}/{n} at level {self.level:g} are "
                    f"[{bounds[0]!r}, {bounds[1]!r}], not [{self.low!r}, {self.high!r}]")
        if not agree(self.se, (self.high - self.low) / (2.0 * z), *size):
            return (f"a Wilson interval's se is (high − low)/(2z) = "
                    f"{(self.high - self.low) / (2.0 * z):.6g}, not {self.se!r}")
        return None

    def to_json(self) -> dict[str, Any]:
        """Fields for the results JSON: ``ci``, ``se``, ``estimand`` (+ its meaning), ..."""
        return {
            "ci": [self.low, self.high],
            "level": self.level,
            "se": self.se,
            "estimand": self.estimand,
            "estimand_meaning": ESTIMANDS[self.estimand],
            "method": self.method,
            "n": self.n,
            **self.record,
        }

    @classmethod
    def from_json(cls, data: Any, *, estimate: float, where: str) -> IntervalResult:
        """The inverse of :meth:`to_json` (which does not store the estimate: pass the metric's
        value as ``estimate``).

        Keys other than the fixed ones (``ci``, ``level``, ``se``, ``estimand``,
        ``estimand_meaning``, ``method``, ``n``) become ``record``.

        Raises:
            InputError: starting with ``where`` (say which file and metric): ``data`` not an
                object, ``ci`` not two finite numbers with low ≤ high, ``se`` not a finite
                number ≥ 0, ``level`` not in (0, 1), an unknown ``estimand``, ``method`` not a
                string, ``n`` not a whole number ≥ 1, ``estimate`` not finite, or a record
                whose bounds, se, estimate and n contradict its method
                (:meth:`inconsistency`).
        """
        def number(value: Any) -> bool:
            return (isinstance(value, int | float) and not isinstance(value, bool)
                    and math.isfinite(value))

        if not isinstance(data, dict):
            raise InputError(f"{where}: expected an interval object (ci, se, estimand, n, ...), "
                             f"got {type(data).__name__}")
        missing = [k for k in ("ci", "level", "se", "estimand", "method", "n") if k not in data]
        if missing:
            raise InputError(f"{where}: interval lacks {', '.join(missing)}")
        ci, se, level, estimand = data["ci"], data["se"], data["level"], data["estimand"]
        if (not isinstance(ci, list | tuple) or len(ci) != 2 or not all(map(number, ci))
                or ci[0] > ci[1]):
            raise InputError(f"{where}: ci must be [low, high], two finite numbers with "
                             f"low <= high, got {ci!r}")
        if not number(se) or se < 0:
            raise InputError(f"{where}: se must be a finite number >= 0, got {se!r}")
        if not number(level) or not 0.0 < level < 1.0:
            raise InputError(f"{where}: level must be a number in (0, 1), got {level!r}")
        if not isinstance(estimand, str) or estimand not in ESTIMANDS:
            raise InputError(f"{where}: estimand must be one of {', '.join(ESTIMANDS)}, got "
                             f"{estimand!r}")
        if not isinstance(data["method"], str):
            raise InputError(f"{where}: method must be a string, got {data['method']!r}")
        n = data["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"{where}: n must be a whole number >= 1, got {n!r}")
        if not number(estimate):
            raise InputError(f"{where}: the estimate must be a finite number, got {estimate!r}")
        fixed = {"ci", "level", "se", "estimand", "estimand_meaning", "method", "n"}
        result = cls(float(estimate), float(ci[0]), float(ci[1]), float(se),
                     cast(Estimand, estimand), data["method"], n, float(level),
                     {k: v for k, v in data.items() if k not in fixed})
        problem = result.inconsistency()
        if problem:
            raise InputError(f"{where}: {problem}; the record contradicts itself, so its "
                             "standard error cannot be trusted")
        return result


def two_sided_z(level: float) -> float:
    """The normal quantile ``z`` with ``P(|Z| ≤ z) = level``, e.g. 1.96 at 0.95."""
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2.0)


def normal_interval(
    estimate: float,
    se: float,
    *,
    n: int,
    estimand: Estimand,
    method: str,
    level: float = 0.95,
    record: dict[str, Any] | None = None,
) -> IntervalResult:
    """``estimate ± z·se`` (``z`` the two-sided normal quantile of ``level``); ``method``
    is one of :data:`NORMAL_METHODS` (ValueError otherwise: a reader could not check it)."""
    if method not in NORMAL_METHODS:
        raise ValueError(f"{method!r} is not a normal-interval method; add it to "
                         "estimates.NORMAL_METHODS with what it is")
    if not (math.isfinite(estimate) and math.isfinite(se) and se >= 0):
        raise InputError(f"interval needs a finite estimate and se ≥ 0, got {estimate}, {se}")
    half = two_sided_z(level) * se
    return IntervalResult(estimate, estimate - half, estimate + half, se, estimand, method, n,
                          level, dict(record or {}))



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
