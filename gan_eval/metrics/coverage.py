"""Coverage simulation: how often each calibrated interval holds what it claims, on a model.

:func:`coverage_table` draws ``trials`` generated sets of ``n`` from a generated
:class:`~gan_eval.metrics.simulation.FeatureModel` against one reference set of ``n_reference``
drawn once from a reference model (the reference held fixed, as the conditional intervals
assume), computes every interval the way :func:`gan_eval.evaluate` does (same functions, same
defaults), and counts per metric how often the interval holds its estimand:

* ``"mean_at_n"`` (fid, cmmd, recall, coverage) — the mean of the estimate over the trials;
* ``"population"`` — for fid_infinity the Fréchet distance of the generated *distribution* (exact
  moments) to the reference statistics; for kid, precision and density, whose expectation does
  not depend on ``n``, the mean over the trials;
* ``"mean_at_sizes"`` (fid with both sets redrawn) — a second run of ``trials`` in which the
  reference set is redrawn too; the mean of the estimate over those.

The width ratio is the mean interval width over ``2·z·sd`` of the estimate across trials (1.0:
the interval is as wide as the true sampling spread). With ``T`` trials a coverage of 0.95 is
known to ±``1.96·√(0.95·0.05/T)`` (±2.1 % at 400, ±3 % at 200, ±4.3 % at 100): each row carries
its Wilson interval (:attr:`CoverageRow.coverage_ci`).

Used by the regime map (:mod:`gan_eval.metrics.regimes`, ``benchmarks/regime_map.py``), its
slow test (tests/test_regimes_calibration.py) and ``gan-eval calibrate`` (the same simulation
on a user's own features, :mod:`gan_eval.calibration`).
"""

from __future__ import annotations

import math
import multiprocessing
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult, two_sided_z, wilson_interval
from gan_eval.metrics.extrapolation import fid_analysis
from gan_eval.metrics.frechet import FeatureStats, frechet_distance
from gan_eval.metrics.intervals import DEFAULT_SPLITS, cmmd_interval, kid_interval, prdc_intervals
from gan_eval.metrics.regimes import refusal
from gan_eval.metrics.simulation import FeatureModel, population_stats

__all__ = ["INTERVALS", "CoverageRow", "coverage_table"]

INTERVALS: tuple[str, ...] = (
    "fid", "fid_infinity", "fid_both_sets", "kid", "cmmd", "precision", "recall", "density",
    "coverage",
)
"""The intervals a coverage table can hold, in report order; ``fid_both_sets`` is FID's interval
with both sets redrawn (``details.interval_both_sets``)."""

_ESTIMAND = {"fid": "mean_at_n", "fid_infinity": "population", "fid_both_sets": "mean_at_sizes",
             "kid": "population", "cmmd": "mean_at_n", "precision": "population",
             "recall": "mean_at_n", "density": "population", "coverage": "mean_at_n"}
_PRDC = ("precision", "recall", "density", "coverage")


@dataclass(frozen=True)
class CoverageRow:
    """One interval's coverage over the trials.

    Attributes:
        metric: a name of :data:`INTERVALS`.
        estimand: what the interval claims to hold (:data:`gan_eval.estimates.ESTIMANDS`).
        trials: simulated draws.
        covered: draws whose interval held the estimand.
        width_ratio: mean width / (2·z·sd of the estimate over the draws).
        target: the estimand's value on this model.
        reported: whether gan-eval reports this estimate at these sizes
            (:func:`gan_eval.metrics.regimes.refusal`).
        reason: why it is not reported, else None.
    """

    metric: str
    estimand: str
    trials: int
    covered: int
    width_ratio: float
    target: float
    reported: bool
    reason: str | None = None

    @property
    def coverage(self) -> float:
        """``covered / trials``."""
        return self.covered / self.trials

    @property
    def coverage_ci(self) -> tuple[float, float]:
        """95 % Wilson interval of the coverage (binomial uncertainty of ``trials`` draws)."""
        bounds = wilson_interval(self.covered, self.trials, 1.959964)
        assert bounds is not None
        return bounds

    def calibrated(self, low: float = 0.92, high: float = 0.98, max_width: float = 1.2) -> bool:
        """Coverage in ``[low, high]`` and width ratio ≤ ``max_width``."""
        return low <= self.coverage <= high and self.width_ratio <= max_width

    @property
    def width_ratio_low(self) -> float:
        """Lower 95 % bound of the width ratio: the sd over ``T`` draws is known to a relative
        ``1/√(2(T−1))`` (normal approximation), which dominates its uncertainty."""
        return self.width_ratio * (1.0 - 1.959964 / math.sqrt(2.0 * (self.trials - 1)))

    def consistent_with_calibrated(self, low: float = 0.92, high: float = 0.98,
                                   max_width: float = 1.2) -> bool:
        """Not shown uncalibrated at this number of trials: the coverage's Wilson interval
        reaches ``[low, high]`` and the width ratio's lower bound is at most ``max_width``."""
        lo, hi = self.coverage_ci
        return hi >= low and lo <= high and self.width_ratio_low <= max_width

    def to_json(self) -> dict[str, Any]:
        """Fields for ``gan-eval calibrate --json``."""
        return {"metric": self.metric, "estimand": self.estimand, "trials": self.trials,
                "covered": self.covered, "coverage": self.coverage,
                "coverage_ci95": list(self.coverage_ci), "width_ratio": self.width_ratio,
                "target": self.target, "reported": self.reported, "reason": self.reason}


# per-process state of a simulation (set once per worker by _init)
_STATE: dict[str, Any] = {}


def _init(generated: FeatureModel, reference: FeatureModel, n: int, n_reference: int,
          seed: int, wanted: tuple[str, ...], n_splits: int) -> None:
    torch.set_num_threads(1)
    ref = reference.draw(n_reference, torch.Generator().manual_seed(seed))
    _STATE.update(generated=generated, reference=reference, n=n, n_reference=n_reference,
                  seed=seed, wanted=wanted, n_splits=n_splits, ref=ref,
                  ref_stats=FeatureStats.from_features(ref))


def _intervals(gen: torch.Tensor, ref: torch.Tensor, ref_stats: FeatureStats, trial: int,
               wanted: tuple[str, ...], n_splits: int, both: bool) -> dict[str, IntervalResult]:
    """The intervals of one draw, computed as :func:`gan_eval.evaluate` computes them."""
    out: dict[str, IntervalResult] = {}
    n, n_ref = gen.shape[0], ref.shape[0]
    if both or {"fid", "fid_infinity"} & set(wanted):
        fa = fid_analysis(gen, ref_stats, reference_features=ref if both else None,
                          seed=trial, n_splits=n_splits, outside_regime=True)
        if both:
            if fa.fid_both_sets is not None:
                out["fid_both_sets"] = fa.fid_both_sets
            return out
        out["fid"] = fa.fid
        assert fa.fid_infinity is not None
        out["fid_infinity"] = fa.fid_infinity
    if "kid" in wanted:
        out["kid"] = kid_interval(gen, ref, subsets=100, subset_size=min(1000, n, n_ref),
                                  variance_seed=trial)
    if "cmmd" in wanted:
        out["cmmd"] = cmmd_interval(gen, ref)
    if set(_PRDC) & set(wanted) and min(n, n_ref) > 5 and n // 4 > 5:
        out.update(prdc_intervals(gen, ref, k_pr=3, k_dc=5, seed=trial, n_splits=n_splits))
    return out


def _trial(args: tuple[int, bool]) -> dict[str, tuple[float, float, float]]:
    trial, both = args
    warnings.simplefilter("ignore")
    s = _STATE
    g = torch.Generator().manual_seed(s["seed"] * 1_000_003 + 2 * trial + 1)
    gen = s["generated"].draw(s["n"], g)
    if both:
        ref = s["reference"].draw(s["n_reference"], g)
        ref_stats = FeatureStats.from_features(ref)
    else:
        ref, ref_stats = s["ref"], s["ref_stats"]
    ivs = _intervals(gen, ref, ref_stats, trial, s["wanted"], s["n_splits"], both)
    return {k: (v.estimate, v.low, v.high) for k, v in ivs.items()}


def coverage_table(
    generated: FeatureModel,
    reference: FeatureModel,
    *,
    n: int,
    n_reference: int,
    trials: int,
    seed: int = 0,
    workers: int = 1,
    intervals: Sequence[str] = INTERVALS,
    n_splits: int = DEFAULT_SPLITS,
    level: float = 0.95,
) -> list[CoverageRow]:
    """Coverage and width ratio of each interval of ``intervals`` (module docstring).

    Args:
        generated, reference: the two feature models (same ``D``).
        n, n_reference: set sizes (``n ≥ 16``; ``fid_both_sets`` needs ``n_reference ≥ 16``).
        trials: draws per design (``fid_both_sets`` runs its own ``trials`` draws).
        seed: seeds the reference draw and every trial.
        workers: processes (spawned; 1 runs in this process).
        intervals: names from :data:`INTERVALS`.
        level: the intervals' nominal coverage (for the width ratio's ``z``).

    Raises:
        InputError: unknown interval names, mismatched dimensions, too few samples or trials.
    """
    wanted = tuple(dict.fromkeys(intervals))
    unknown = [w for w in wanted if w not in INTERVALS]
    if unknown:
        raise InputError(f"unknown interval(s) {unknown}; known: {', '.join(INTERVALS)}")
    if generated.d != reference.d:
        raise InputError(f"models of {generated.d} and {reference.d} dimensions")
    if n < 16 or n_reference < 2 or trials < 2:
        raise InputError(f"need n >= 16, n_reference >= 2 and trials >= 2, got n={n}, "
                         f"n_reference={n_reference}, trials={trials}")
    init = (generated, reference, n, n_reference, seed, wanted, n_splits)
    jobs = [(t, False) for t in range(trials)] if set(wanted) - {"fid_both_sets"} else []
    if "fid_both_sets" in wanted and n_reference >= 16:
        jobs += [(t, True) for t in range(trials)]
    if workers > 1:
        # spawn, not fork: a forked child of a process that ran torch's OpenMP pool can hang
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, context, initializer=_init, initargs=init) as pool:
            results = list(pool.map(_trial, jobs, chunksize=max(1, len(jobs) // (8 * workers))))
    else:
        threads = torch.get_num_threads()
        try:
            _init(*init)
            results = [_trial(job) for job in jobs]
        finally:
            torch.set_num_threads(threads)
            _STATE.clear()
    ref = reference.draw(n_reference, torch.Generator().manual_seed(seed))
    population_fid = frechet_distance(population_stats(generated),
                                      FeatureStats.from_features(ref), warn=False)
    z = two_sided_z(level)
    rows = []
    for name in wanted:
        draws = [r[name] for (_, _), r in zip(jobs, results, strict=True) if name in r]
        if len(draws) < 2:
            continue
        a = np.array(draws)
        est, low, high = a[:, 0], a[:, 1], a[:, 2]
        target = population_fid if name == "fid_infinity" else float(est.mean())
        sd = float(est.std(ddof=1))
        covered = int(np.sum((low <= target) & (target <= high)))
        ratio = float(np.mean(high - low)) / (2 * z * sd) if sd > 0 else math.inf
        metric = "fid" if name == "fid_both_sets" else name
        why = refusal(metric, n=n, d=generated.d, n_reference=n_reference)
        rows.append(CoverageRow(name, _ESTIMAND[name], len(draws), covered, ratio, target,
                                why is None, why.reason if why else None))
    return rows
