"""Calibrated intervals: what each metric would read on another draw of generated samples.

Every interval here is ``estimate ± z·se`` with ``se`` an estimate of the standard deviation of
the metric across fresh generated sets of the same size ``n`` (the reference set held fixed, as
given), and says what it is an interval *of* (:data:`ESTIMANDS`):

* ``"mean_at_n"`` — ``E[metric]`` over generated sets of this ``n``. FID, CMMD, recall, coverage
  depend on ``n`` (FID is biased high at small ``n``): such a number is comparable only with
  the same metric at the same ``n``.
* ``"population"`` — the value as ``n → ∞`` (FID∞ of :mod:`gan_eval.metrics.extrapolation`;
  KID, precision, density and rates, whose expectation does not depend on ``n``).

How ``se`` is obtained (chosen by simulation, tests/test_metrics_interval_calibration.py):

* **Means of per-sample values** (precision, density, copy/leakage rates): given the reference,
  each generated sample contributes an independent value, so ``se = sd/√n`` exactly; binary
  ones (precision, rates) use the Wilson interval (no collapse at 0 or 1).
* **KID, CMMD**: with the real set fixed, U-statistics of the generated rows (plus a constant
  for CMMD's RBF diagonal); se from the jackknife, all ``n`` leave-one-out values from one
  kernel pass (:func:`kid_interval`, :func:`cmmd_interval`). The exact Hoeffding variance
  ``4ζ₁/n + 2ζ_deg/(n(n−1))`` with estimated ``ζ`` was right on average but under-covered on
  the clustered face pool (0.915, 400 draws): its se is low when the estimate is low
  (correlation 0.89); the jackknife counts the degenerate part about twice, which restores
  coverage: 400 draws, KID / CMMD coverage 0.960 / 0.963 at width 1.10 / 1.09× (Gaussian),
  0.950 / 0.950 at 1.05 / 1.05× (face pool).
* **Coverage**: the jackknife, exact and cheap for an occupancy count (:func:`prdc_intervals`).
* **Recall**: ``se² = max(1/N², min(V_jack, V_dd))`` (:func:`prdc_intervals`, N real samples):

  - ``V_jack``: the jackknife (Efron–Stein) variance from all ``n`` leave-one-out recalls,
    exact and vectorised (leaving out sample ``i`` removes its ball and grows the balls of the
    samples that had ``i`` among their ``k`` nearest), *trimmed*: without the largest 1 % of
    the squared changes. Untrimmed it is 1.36× the true spread on Gaussian features
    (higher-order terms, which Efron–Stein counts several times), and on the clustered face
    pool it is 0 in three draws of four and 20–130 real samples in the draws where a person
    has few generated samples (removing one of 4 lets a k = 3 ball swallow another person's
    20 real samples), while fresh draws move recall by 2 real samples (sd): mean width 1.9×.
  - ``V_dd``: the delete-d jackknife, ``m/(n−m)`` · the variance of recall over 50 random
    subsets of ``m = 3n/4`` rows (exact for a mean; 1.05× on Gaussian features; 7.6× on the
    face pool, where subsets thin people out).
  - ``1/N²``: recall is a count of real samples; below one count of spread the normal interval
    would claim recall cannot move, which a draw in which no single sample is pivotal cannot
    show (on the face pool 92.5 % of fresh draws give the same count, their mean 0.36 counts
    above it).

  Measured over 400 draws (n = 1,000, D = 128, reference 2,000; the face pool of
  tests/test_metrics_interval_calibration.py): coverage / width ratio 0.970 / 1.07 (Gaussian)
  and 0.963 / 0.62 (face pool, where the floor sets the width); the split extrapolation below
  gave 0.91 / 0.90 and 1.00 / ~9 (100 draws). Each alone: untrimmed jackknife 0.988 / 1.36
  and 0.996 / 2.3 (with the floor); delete-d 0.964 / 1.05 and 1.00 / 7.6 (250 draws).
* **FID, IS∞** (no per-sample form): *split-variance extrapolation* (:func:`split_variance`).
  Random splits of the generated set into disjoint halves and quarters give unbiased
  estimates of the metric's variance at ``n/2`` and ``n/4`` (independent parts:
  ``E[(T_A − T_B)²]/2 = Var T_{n/2}``); ``Var T_m = a/m + b/m²`` (``a, b ≥ 0``) through both
  is read at ``n``: for a smooth statistic of i.i.d. samples these are the first- and
  second-order Hoeffding terms, exact to that order. A power law ``Var T_m ∝ m^−γ`` through
  the same points reads up to 12 % lower in between; measured for FID (Gaussian, 120 draws)
  its coverage was 0.925 (FID) and 0.908 (FID∞, of the closed-form value) at width 0.99×, the
  Hoeffding form's 0.942 and 0.925 at 1.03×. The plain bootstrap overstates FID's spread
  ~2×: the second-order term (FID's bias fluctuation) dominates at n = 1,000, D = 128, and
  resamples with repeated rows inflate it (issue 18: width 1.97× the real spread). k-NN
  statistics such as recall decay slower than ``1/m`` (their radii shrink with ``m``) and, on
  clustered data, not as a power law at all; the power-law extrapolation serves them only on
  the slow path of :func:`prdc_intervals` (data where nearly every pair lies within some
  radius).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.estimates import (
    Estimand,
    IntervalResult,
    normal_interval,
    two_sided_z,
    wilson_interval,
)
from gan_eval.metrics.cmmd import (
    CMMD_SCALE,
    CMMD_SIGMA,
    _kernel_tile,
    _prepare,
    kernel_mean,
    kernel_row_sums,
)
from gan_eval.metrics.polynomial_mmd import (
    _kernel,
    _subset_counts,
    check_kid_args,
    kid,
    kid_subset_indices,
)
from gan_eval.metrics.prc import _validate
from gan_eval.metrics.prdc_resample import PRDCResampler

__all__ = [
    "JACKKNIFE_MIN_SAMPLES",
    "SplitVariance",
    "cmmd_interval",
    "kid_interval",
    "prdc_intervals",
    "rate_interval",
    "split_variance",
]

DEFAULT_SPLITS = 50
#: Fewest generated rows for the KID and CMMD jackknife intervals: leaving one row out must
#: leave a pair, and KID's ζ estimates need distinct triples.
JACKKNIFE_MIN_SAMPLES = 3
#: Recall's delete-d jackknife: random subsets of this fraction of the generated rows ...
RECALL_FRACTION = 0.75
#: ... and this many of them (:func:`prdc_intervals`).
RECALL_SUBSETS = 50
#: Recall's jackknife leaves out this fraction of the largest squared leave-one-out changes.
RECALL_TRIM = 0.01
#: KID's and CMMD's jackknife se is capped at this multiple of their Hoeffding se: where the
#: degenerate part dominates (small n) the jackknife counts it twice (width up to 1.8×).
MMD_SE_CAP = 1.15
#: cmmd_interval computes the Hoeffding variance (an n × n kernel) up to this many rows; the
#: cap matters only at small n.
CMMD_HOEFFDING_ROWS = 4000


def rate_interval(
    successes: int, n: int, *, level: float = 0.95, estimand: Estimand = "population"
) -> IntervalResult:
    """Wilson interval of a rate of independent per-sample outcomes (copy/leakage rates).

    ``se`` is the Wilson half-width divided by ``z`` (positive even at 0 or n successes, so a
    two-sample test stays defined). Estimand: the per-sample probability, which does not
    depend on ``n``.
    """
    if n <= 0 or not 0 <= successes <= n:
        raise InputError(f"rate needs 0 ≤ successes ≤ n and n ≥ 1, got {successes} of {n}")
    z = two_sided_z(level)
    bounds = wilson_interval(successes, n, z)
    assert bounds is not None  # n ≥ 1 was checked
    low, high = bounds
    return IntervalResult(successes / n, low, high, (high - low) / (2 * z), estimand, "wilson",
                          n, level, {"successes": int(successes)})


@dataclass(frozen=True)
class SplitVariance:
    """Variance of a metric at ``n`` from disjoint halves and quarters (see module docstring).

    Attributes:
        variance: estimated ``Var T_n`` (metric units²).
        var_half, var_quarter: unbiased estimates of ``Var T_{m}`` at ``m = n//2``, ``n//4``.
        gamma: fitted decay exponent of ``Var T_m ∝ m^−γ`` (clamped to [0, 2]).
        half_values, quarter_values: float64 ``(n_splits, 2)`` and ``(n_splits, 4)`` metric
            values of the halves and quarters (for bias extrapolation).
        n_splits, seed: the splits drawn.
        model: ``"hoeffding"`` or ``"power"`` (:func:`split_variance`).
    """

    variance: float
    var_half: float
    var_quarter: float
    gamma: float
    half_values: np.ndarray = field(repr=False)
    quarter_values: np.ndarray = field(repr=False)
    n_splits: int
    seed: int
    model: str = "hoeffding"

    def record(self) -> dict[str, Any]:
        """JSON fields: splits, seed and the variance components."""
        return {"n_splits": self.n_splits, "seed": self.seed, "var_half": self.var_half,
                "var_quarter": self.var_quarter, "variance_decay_exponent": self.gamma,
                "variance_model": self.model}


def split_variance(
    evaluate: Callable[[torch.Tensor], torch.Tensor | np.ndarray],
    n: int,
    *,
    seed: int,
    n_splits: int = DEFAULT_SPLITS,
    model: Literal["hoeffding", "power"] = "hoeffding",
) -> SplitVariance:
    """Estimate ``Var T_n`` of a statistic of ``n`` i.i.d. generated samples from its subsets.

    Args:
        evaluate: maps int64 ``(P, m)`` row indices (disjoint subsets of ``0 … n−1``) to the
            ``P`` metric values of those subsets; called once with halves (``m = n//2``), once
            with quarters (``m = n//4``).
        n: number of generated samples (≥ 16).
        seed: ``numpy.random.default_rng`` seed of the random permutations.
        n_splits: random splits (each gives one half pair and one quarter quadruple).
        model: ``"hoeffding"`` — ``Var T_m = a/m + b/m²`` with ``a, b ≥ 0`` through both
            estimates (exact to second order for a smooth statistic: FID, IS), i.e.
            ``Var T_n = (6·var_half − var_quarter)/8`` (``n`` divisible by 4) with
            ``var_quarter`` clamped to ``[2, 4]·var_half``; ``"power"`` — ``Var T_m ∝ m^−γ``,
            ``0 ≤ γ ≤ 2``, which also follows statistics that decay slower than ``1/m``
            (k-NN ones). Module docstring.
    """
    if n < 16:
        raise InputError(f"split variance needs at least 16 generated samples, got {n}")
    if n_splits < 2:
        raise InputError(f"n_splits must be ≥ 2, got {n_splits}")
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(n) for _ in range(n_splits)])
    mh, mq = n // 2, n // 4
    halves = torch.from_numpy(perms[:, : 2 * mh].reshape(n_splits * 2, mh).copy())
    quarters = torch.from_numpy(perms[:, : 4 * mq].reshape(n_splits * 4, mq).copy())
    vh = np.asarray(evaluate(halves), dtype=np.float64).reshape(n_splits, 2)
    vq = np.asarray(evaluate(quarters), dtype=np.float64).reshape(n_splits, 4)
    if not (np.isfinite(vh).all() and np.isfinite(vq).all()):
        raise InputError("the metric returned NaN or inf on a subset of the generated set")
    var_h = float(vh.var(axis=1, ddof=1).mean())
    var_q = float(vq.var(axis=1, ddof=1).mean())
    # Var T_m = C m^-γ through both points, γ clamped to [0, 2] (between "no decay" and a pure
    # second-order statistic): Var T_n = var_h (mh/n)^γ
    if var_h <= 0.0 or var_q <= 0.0:
        gamma = 1.0
    else:
        gamma = min(2.0, max(0.0, math.log(var_q / var_h) / math.log(mh / mq)))
    if model == "hoeffding":
        # a/m + b/m² through (mh, var_h), (mq, var_q) with a, b ≥ 0 (var_q clamped between
        # the pure 1/m and pure 1/m² decays), read at n; (6·var_h − var_q)/8 for n = 4·mq
        ratio = mh / mq
        var_qc = min(ratio * ratio * var_h, max(ratio * var_h, var_q))
        b = (var_qc * mq - var_h * mh) / (1.0 / mq - 1.0 / mh)
        a = var_h * mh - b / mh
        variance = max(0.0, a / n + b / (n * n))
    elif model == "power":
        variance = var_h * (mh / n) ** gamma
    else:
        raise InputError(f"split variance model must be 'hoeffding' or 'power', got {model!r}")
    return SplitVariance(
        variance=variance, var_half=var_h, var_quarter=var_q, gamma=gamma,
        half_values=vh, quarter_values=vq, n_splits=n_splits, seed=seed, model=model,
    )  # fmt: skip


def prdc_intervals(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    k_pr: int = 3,
    k_dc: int = 5,
    seed: int = 0,
    n_splits: int = DEFAULT_SPLITS,
    recall_subsets: int = RECALL_SUBSETS,
    level: float = 0.95,
) -> dict[str, IntervalResult]:
    """Intervals of precision, recall, density and coverage (keys of the returned dict).

    Estimates equal :func:`~gan_eval.metrics.prc.prdc`. Given the real set, precision and
    density average independent per-generated-sample values: Wilson (precision) and
    ``sd/√n`` (density), estimand ``"population"`` (their expectation does not depend on
    ``n``). Recall and coverage depend on the generated set jointly and on ``n`` (estimand
    ``"mean_at_n"``): coverage by the jackknife, recall by the trimmed jackknife capped by the
    delete-d jackknife over ``recall_subsets`` subsets of 3/4 of the rows (seeded with
    ``seed``), floored at one real sample (module docstring); one
    :class:`~gan_eval.metrics.prdc_resample.PRDCResampler` pass serves every subset. Data where
    nearly every pair lies within some radius take a slow path: all four by split-variance
    extrapolation over ``n_splits`` splits, subsets computed by ``prdc``.

    Raises:
        InputError: as :func:`~gan_eval.metrics.prc.prdc`; fewer than 16 generated samples,
            too few for ``k`` in a quarter of them, or ``recall_subsets`` < 2.
    """
    gen, ref = _validate(generated, real, {"k_pr": k_pr, "k_dc": k_dc}, 2**26)
    n = gen.shape[0]
    if recall_subsets < 2:
        raise InputError(f"recall_subsets must be ≥ 2, got {recall_subsets}")
    if n // 4 <= max(k_pr, k_dc):
        raise InputError(f"prdc intervals need more than {4 * max(k_pr, k_dc) + 3} generated "
                         f"samples (k-NN in quarters of the set), got {n}")
    # neighbour lists deep enough for subsets of 3/4 of the rows ((k + 8)/f listed, f = 3/4)
    resampler = PRDCResampler(gen, ref, k_pr=k_pr, k_dc=k_dc,
                              extra_neighbours=max(20, math.ceil((k_pr + 8) / RECALL_FRACTION)))
    full = resampler(torch.arange(n))
    names = ("precision", "recall", "density", "coverage")
    if resampler.direct:  # too many pairs to keep (nearly all within a radius): subsets by call
        return _prdc_split_intervals(resampler, full, n, seed, n_splits, level)
    out = {
        "precision": rate_interval(round(float(resampler.precision_hit.sum())), n, level=level),
        "density": normal_interval(
            full.density, float((resampler.density_count / k_dc).std()) / math.sqrt(n), n=n,
            estimand="population", method="per_sample_mean", level=level,
        ),
        "coverage": _coverage_jackknife(resampler, full.coverage, n, level),
        "recall": _recall_interval(resampler, full.recall, n, seed, recall_subsets, level),
    }  # fmt: skip
    return {name: out[name] for name in names}


def _prdc_split_intervals(
    resampler: PRDCResampler, full: Any, n: int, seed: int, n_splits: int, level: float
) -> dict[str, IntervalResult]:
    """All four by split-variance extrapolation, each subset computed by ``prdc`` (slow path)."""
    cache: dict[int, np.ndarray] = {}

    def metric(col: int) -> Callable[[torch.Tensor], np.ndarray]:
        def evaluate(idx: torch.Tensor) -> np.ndarray:
            if idx.shape[1] not in cache:  # same seed: the same subsets for every metric
                rows = [resampler(i) for i in idx]
                cache[idx.shape[1]] = np.array(
                    [[r.precision, r.recall, r.density, r.coverage] for r in rows])
            return cache[idx.shape[1]][:, col]

        return evaluate

    out = {}
    for col, name in enumerate(("precision", "recall", "density", "coverage")):
        sv = split_variance(metric(col), n, seed=seed, n_splits=n_splits, model="power")
        estimand: Estimand = "mean_at_n" if name in ("recall", "coverage") else "population"
        out[name] = normal_interval(
            getattr(full, name), math.sqrt(sv.variance), n=n, estimand=estimand,
            method="split_extrapolation", level=level, record=sv.record(),
        )  # fmt: skip
    return out


def _recall_of_subsets(resampler: PRDCResampler, idx: torch.Tensor) -> np.ndarray:
    """Recall of each row of ``idx`` (``(P, m)`` distinct generated rows), from the resampler's
    pair list cut once to the largest radius any present sample reaches in these subsets."""
    n = resampler.gen.shape[0]
    counts = torch.zeros(idx.shape[0], n, dtype=torch.int64)
    counts.scatter_(1, idx, 1)
    radii = [resampler._radii(c) for c in counts]
    out = np.empty(idx.shape[0])
    ri, rj, rd2 = resampler.recall_pairs
    known = [r for r in radii if r is not None]
    if known:
        reach = torch.stack([torch.where(c > 0, r, 0.0) for c, r in zip(counts, radii, strict=True)
                             if r is not None]).amax(0)
        keep = rd2 <= reach[ri]
        ri, rj, rd2 = ri[keep], rj[keep], rd2[keep]
    good = [p for p, r in enumerate(radii) if r is not None]
    for p in set(range(idx.shape[0])) - set(good):  # a sample short of listed neighbours
        out[p] = resampler(idx[p]).recall
    step = max(1, 2**24 // max(1, ri.numel()))  # subsets per vectorised chunk
    for c0 in range(0, len(good), step):
        rows = good[c0 : c0 + step]
        rad = torch.stack([radii[p] for p in rows])  # type: ignore[misc]
        hit = (counts[rows] > 0)[:, ri] & (rd2[None, :] <= rad[:, ri])
        recalled = torch.zeros(len(rows), resampler.n_real, dtype=torch.bool)
        pp, qq = hit.nonzero(as_tuple=True)
        recalled[pp, rj[qq]] = True
        out[rows] = recalled.double().mean(1).numpy()
    return out


def _recall_leave_one_out(resampler: PRDCResampler) -> np.ndarray:
    """Recall of the generated set without row ``i``, for every ``i`` (float64 ``(n,)``).

    Leaving out ``i`` removes its ball, and every sample ``l`` that had ``i`` among its
    ``k`` nearest generated neighbours gets the radius of its ``(k+1)``-th (listed by the
    resampler). So a real sample is lost if ``i``'s ball was the only one holding it and none
    of those grown balls reaches it; one no ball held is gained if a grown ball reaches it.
    Equals ``prdc(generated[rows ≠ i], real).recall`` (tests/test_metrics_intervals.py).
    """
    k, n, n_real = resampler.k_pr, resampler.gen.shape[0], resampler.n_real
    dev = resampler.gen.device
    r2, r2_grown = resampler.nb_d2[:, k - 1], resampler.nb_d2[:, k]
    ri, rj, rd2 = resampler.recall_pairs  # every pair within the k+1-th radius is listed
    inside = rd2 <= r2[ri]
    holders = torch.bincount(rj[inside], minlength=n_real)
    sole = inside & (holders[rj] == 1)
    sole_of = torch.full((n_real,), -1, dtype=torch.int64, device=dev)
    sole_of[rj[sole]] = ri[sole]
    lost = torch.bincount(ri[sole], minlength=n)
    # shells (l, j): j enters l's ball when it grows; only reals held by at most one ball matter
    shell = (rd2 > r2[ri]) & (rd2 <= r2_grown[ri]) & (holders[rj] <= 1)
    sl, sj = ri[shell], rj[shell]
    order = torch.argsort(sl, stable=True)
    sl, sj = sl[order], sj[order]
    per_l = torch.bincount(sl, minlength=n)
    first = torch.cumsum(per_l, 0) - per_l
    # (i, l) with i among l's k nearest, joined with l's shell pairs
    ll = torch.arange(n, device=dev).repeat_interleave(k)
    ii = resampler.nb_idx[:, :k].reshape(-1)
    reps = per_l[ll]
    pair_i = ii.repeat_interleave(reps)
    offset = torch.arange(int(reps.sum()), device=dev) - (torch.cumsum(reps, 0) - reps
                                                           ).repeat_interleave(reps)
    pair_j = sj[first[ll].repeat_interleave(reps) + offset]
    useful = (holders[pair_j] == 0) | (sole_of[pair_j] == pair_i)
    key = torch.unique(pair_i[useful] * n_real + pair_j[useful])  # each (i, j) once
    ki, kj = key // n_real, key % n_real
    gained = torch.bincount(ki[holders[kj] == 0], minlength=n)
    kept = torch.bincount(ki[holders[kj] == 1], minlength=n)
    held = int((holders > 0).sum())
    return ((held - lost + kept + gained).double() / n_real).cpu().numpy()


def _recall_interval(
    resampler: PRDCResampler, recall: float, n: int, seed: int, subsets: int, level: float
) -> IntervalResult:
    """Recall with ``se² = max(1/N², min(jackknife, delete-d))`` (module docstring)."""
    loo = _recall_leave_one_out(resampler)
    # trimmed: without the largest RECALL_TRIM·n squared changes (rare pivotal samples)
    sq = np.sort(np.square(loo - loo.mean()))
    var_jack = (n - 1) / n * float(sq[: n - int(RECALL_TRIM * n)].sum())
    m = round(RECALL_FRACTION * n)
    rng = np.random.default_rng(seed)
    idx = torch.from_numpy(np.stack([rng.permutation(n)[:m] for _ in range(subsets)]))
    values = _recall_of_subsets(resampler, idx)
    var_dd = m / (n - m) * float(values.var(ddof=1))
    floor = 1.0 / resampler.n_real**2
    var = max(floor, min(var_jack, var_dd))
    return normal_interval(
        recall, math.sqrt(var), n=n, estimand="mean_at_n", method="min_jackknife_delete_d",
        level=level,
        record={"var_jackknife_trimmed": var_jack, "trim": RECALL_TRIM, "var_delete_d": var_dd,
                "var_floor": floor, "subset_size": m, "subsets": subsets, "seed": seed},
    )  # fmt: skip


def _coverage_jackknife(
    resampler: PRDCResampler, coverage: float, n: int, level: float
) -> IntervalResult:
    """Coverage with the jackknife se: leaving out generated sample ``i`` uncovers exactly the
    real balls that only ``i`` covers, so all ``n`` leave-one-out values come from one count.

    Coverage's variance grows with ``n`` (it is an occupancy count), which defeats the
    ``a/m + b/m²`` extrapolation (simulated width 0.6× the true spread); the jackknife
    estimates the variance at ``n − 1`` directly (Efron–Stein: not below it in expectation).
    """
    ci, cj = resampler.dc_pairs
    n_real = resampler.n_real
    per_ball = torch.bincount(cj, minlength=n_real)
    only = per_ball[cj] == 1  # pairs whose ball has this one generated sample inside
    sole = torch.bincount(ci[only], minlength=n).double()  # balls only sample i covers
    loo = coverage - sole / n_real
    var = (n - 1) / n * float((loo - loo.mean()).square().sum())
    return normal_interval(coverage, math.sqrt(var), n=n, estimand="mean_at_n",
                           method="jackknife", level=level)


def _zeta_estimates(g: torch.Tensor) -> tuple[float, float, float]:
    """Unbiased-ish ``θ``, ``ζ₁`` and ``ζ_deg`` of a symmetric kernel from its ``r × r`` matrix.

    ``g``: float64 kernel values ``g(x_i, x_j)`` (diagonal ignored). ``ζ₁ = Var E[g(X, X')|X]``
    from the distinct-triple mean of ``g(x_i, x_j) g(x_i, x_l)``; ``ζ₂ = Var g(X, X')``;
    ``ζ_deg = ζ₂ − 2ζ₁``, the variance of the degenerate (second-order) part.
    """
    r = g.shape[0]
    g = g.clone()
    g.fill_diagonal_(0.0)
    rows = g.sum(1)
    total = float(rows.sum())
    sq = float(g.square().sum())
    theta = total / (r * (r - 1))
    triple = (float(rows.square().sum()) - sq) / (r * (r - 1) * (r - 2))
    zeta1 = max(0.0, triple - theta * theta)
    zeta2 = max(0.0, sq / (r * (r - 1)) - theta * theta)
    return theta, zeta1, max(0.0, zeta2 - 2.0 * zeta1)


def kid_interval(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 2020,
    level: float = 0.95,
    variance_rows: int = 2000,
    variance_seed: int = 0,
) -> IntervalResult:
    """KID (equal to :func:`~gan_eval.metrics.polynomial_mmd.kid`, torch-fidelity's) with the
    jackknife se.

    Given the real subsets, KID is ``Σ_{i≠j} α_ij g(x_i, x_j) + const`` in the generated rows,
    with ``g(x, x') = k(x, x') − h(x) − h(x')``, ``h(x)`` the kernel mean of ``x`` over the real
    subset rows, and ``α_ij = C_ij / (S·m(m−1))`` (``C_ij``: subsets holding both). The se is
    the jackknife of that form: without row ``i`` it reads ``(T − 2a_i)/(1 − c_i)``
    (``a_i = Σ_j α_ij g_ij``, ``c_i = 2 Σ_j α_ij``), all ``n`` values from one ``g`` matrix.
    Exact in form when every subset holds all generated rows (``subset_size = n``) and
    ``n ≤ variance_rows``; otherwise ``h`` is averaged over the subsets and the jackknife runs
    on ``variance_rows`` rows (drawn with ``variance_seed``), its variance scaled by
    ``rows/n`` (approximations). The exact Hoeffding variance ``ζ₁ Σ_i c_i² + 2 ζ_deg
    Σ_{i≠j} α_ij²`` (recorded as ``var_hoeffding``) under-covered on the clustered face pool
    (0.915 at width 0.95×, n = 1,000: its se is low exactly when the estimate is, ζ₁ growing
    with the discrepancy); the jackknife, which counts the degenerate part about twice, is
    calibrated there and on Gaussian features (tests/test_metrics_interval_calibration.py).
    Estimand ``"population"``: the generated side of KID is unbiased, its expectation does
    not depend on ``n``.

    Raises:
        InputError: as :func:`~gan_eval.metrics.polynomial_mmd.kid`; fewer than
            :data:`JACKKNIFE_MIN_SAMPLES` generated rows.
    """
    x, y = check_kid_args(generated, real, subsets, subset_size, degree)
    if x.shape[0] < JACKKNIFE_MIN_SAMPLES:
        raise InputError(f"kid interval needs at least {JACKKNIFE_MIN_SAMPLES} generated "
                         f"samples, got {x.shape[0]}")
    est = kid(x, y, subsets=subsets, subset_size=subset_size, degree=degree, gamma=gamma,
              coef0=coef0, seed=seed)
    n1, d = x.shape
    n2 = y.shape[0]
    gam = 1.0 / d if gamma is None else float(gamma)
    m = subset_size
    pos1, pos2 = kid_subset_indices(n1, n2, subsets, m, seed)
    w_gen = _subset_counts(pos1, n1, torch.device("cpu"))  # (n1, S) indicators
    w_real = _subset_counts(pos2, n2, torch.device("cpu")).sum(1) / (subsets * m)  # (n2,)
    rng = np.random.default_rng(variance_seed)
    rows = torch.from_numpy(np.sort(rng.choice(n1, min(n1, variance_rows), replace=False)))
    xs = x[rows.to(x.device)].double()
    h = (_kernel(xs, y.double(), degree, gam, coef0) @ w_real.to(x.device)).cpu()
    g = _kernel(xs, xs, degree, gam, coef0).cpu() - h[:, None] - h[None, :]
    _, zeta1, zeta_deg = _zeta_estimates(g)
    scale = 1.0 / (subsets * m * (m - 1))
    n_i = w_gen.sum(1)  # subsets holding each generated row
    c = 2.0 * scale * (n_i * (m - 1))  # 2 Σ_j α_ij: each of its subsets pairs it with m − 1
    gram = w_gen.T @ w_gen
    pair_sq = float(gram.square().sum() - n_i.square().sum())  # Σ_{i≠j} C_ij²
    var_hoeffding = zeta1 * float(c.square().sum()) + 2.0 * zeta_deg * pair_sq * scale * scale
    # jackknife of the quadratic form Σ α_ij g_ij over the variance rows (weights renormalised
    # to sum to 1 there): without row i, (T − 2a_i)/(1 − c_i), a_i = Σ_j α_ij g_ij
    w_rows = w_gen[rows].double()
    alpha = w_rows @ w_rows.T
    alpha.fill_diagonal_(0.0)
    alpha /= alpha.sum()
    g.fill_diagonal_(0.0)
    a = (alpha * g).sum(1)
    total = float(a.sum())
    loo = ((total - 2.0 * a) / (1.0 - 2.0 * alpha.sum(1))).numpy()
    r = loo.shape[0]
    var_jack = (r - 1) / r * float(np.square(loo - loo.mean()).sum()) * r / n1
    var = _capped(var_jack, var_hoeffding)
    return normal_interval(
        est.mean, math.sqrt(var), n=n1, estimand="population", method="jackknife",
        level=level,
        record={"var_hoeffding": var_hoeffding, "var_jackknife": var_jack,
                "se_cap": MMD_SE_CAP, "zeta1": zeta1, "zeta_deg": zeta_deg,
                "variance_rows": r, "subsets": subsets, "subset_size": m,
                "std_over_subsets": est.std},
    )  # fmt: skip


def _capped(var_jack: float, var_hoeffding: float | None) -> float:
    """The jackknife variance, capped at ``MMD_SE_CAP²`` × the Hoeffding variance (when that
    is known and positive)."""
    if var_hoeffding is None or not var_hoeffding > 0.0:
        return var_jack
    return min(var_jack, MMD_SE_CAP**2 * var_hoeffding)


def cmmd_interval(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
    level: float = 0.95,
) -> IntervalResult:
    """CMMD (equal to :func:`~gan_eval.metrics.cmmd.cmmd`) with the jackknife se.

    All ``n`` leave-one-generated-row-out values of CMMD come from the row sums of ``K_gg`` and
    ``K_gr`` (one pass over the kernel tiles, ``n² + n·m`` kernel values): without row ``i``,
    ``mean K_gg = (ΣK_gg − 2 r_i + k_ii)/(n−1)²`` and ``mean K_gr = (ΣK_gr − s_i)/((n−1)m)``
    (``K_rr`` is a constant). With the real set fixed CMMD is a U-statistic of the generated
    rows plus a constant (the RBF diagonal), and the jackknife counts its first-order
    (Hoeffding) variance once and its degenerate part about twice. Measured (n = 1,000,
    D = 128, tests/test_metrics_interval_calibration.py): the exact Hoeffding variance
    ``4ζ₁/n + 2ζ_deg/(n(n−1))`` gave width 0.95× and coverage 0.915 on the face pool — its
    se is low exactly when the estimate is (correlation 0.89: ζ₁ grows with the discrepancy)
    — the jackknife 1.05× and 0.950 (Gaussian: 1.05×, 0.957). Estimand ``"mean_at_n"``:
    the diagonal makes ``E[CMMD]`` depend on ``n`` (it adds ``scale · (1 − E k(X, X'))/n``).

    Raises:
        InputError: as :func:`~gan_eval.metrics.cmmd.cmmd`; fewer than
            :data:`JACKKNIFE_MIN_SAMPLES` generated rows.
    """
    gen, ref = _prepare(generated, real, sigma)
    n, m = gen.shape[0], ref.shape[0]
    if n < JACKKNIFE_MIN_SAMPLES:
        raise InputError(f"cmmd interval needs at least {JACKKNIFE_MIN_SAMPLES} generated "
                         f"samples, got {n}")
    # one pass over K_gg and K_gr gives the estimate (as cmmd() sums it: same bits) and every
    # leave-one-out value
    row_gg, diag = kernel_row_sums(gen, gen, sigma)
    assert diag is not None  # a set with itself
    row_gr, _ = kernel_row_sums(gen, ref, sigma)
    k_gg = float(row_gg.sum()) / (n * n)
    k_gr = float(row_gr.sum()) / (n * m)
    est = max(0.0, scale * (k_gg + kernel_mean(ref, ref, sigma) - 2.0 * k_gr))
    loo_gg = (row_gg.sum() - 2.0 * row_gg + diag) / ((n - 1) ** 2)
    loo_gr = (row_gr.sum() - row_gr) / ((n - 1) * m)
    loo = (scale * (loo_gg - 2.0 * loo_gr)).cpu().numpy()  # minus the constant scale·mean K_rr
    var_jack = (n - 1) / n * float(np.square(loo - loo.mean()).sum())
    var_hoeffding = None
    if n <= CMMD_HOEFFDING_ROWS:
        # U-statistic part of the generated side, kernel g = k(x, x') − h(x) − h(x'), h the
        # kernel mean over the real rows; weight (n − 1)/n of the V-statistic
        h = row_gr / m
        sq = (gen * gen).sum(1)
        kernel = _kernel_tile(gen, sq, gen, sq, 1.0 / (2.0 * sigma * sigma))
        _, zeta1, zeta_deg = _zeta_estimates(kernel - h[:, None] - h[None, :])
        var_hoeffding = (scale * (n - 1) / n) ** 2 * (4 * zeta1 / n
                                                      + 2 * zeta_deg / (n * (n - 1)))
    var = _capped(var_jack, var_hoeffding)
    return normal_interval(est, math.sqrt(var), n=n, estimand="mean_at_n", method="jackknife",
                           level=level, record={"sigma": sigma, "scale": scale,
                                                "var_jackknife": var_jack,
                                                "var_hoeffding": var_hoeffding,
                                                "se_cap": MMD_SE_CAP})
