"""FID at this n with a calibrated interval, and the bias-free FID∞ / IS∞ (Chong & Forsyth 2020).

FID from ``N`` generated samples is biased high, and the bias is close to linear in ``1/N``
with a slope that depends on the model (Chong & Forsyth, "Effectively Unbiased FID and
Inception Score and where to find them", CVPR 2020): ``E[FID_N] ≈ FID∞ + c/N``. They fit that
line over several ``N`` (5,000 … 50,000) and read it at ``1/N = 0``. At the ``n`` of a quick
audit (1,000 at D = 128) the curvature in ``1/N`` is no longer negligible (a two-point line
left a bias of 0.7 standard errors in simulation), so the fit here is the quadratic through
``N = n``, ``n/2`` and ``n/4``, with ``FID_{n/2}``, ``FID_{n/4}`` the means over the random
disjoint halves and quarters that the interval's split variance computes anyway:
``FID∞ = 8/3·FID_n − 2·mean FID_{n/2} + 1/3·mean FID_{n/4}`` (Lagrange weights at 0).

Variance: averaged over splits, each of the three has the same first-order (linear) part and
the same off-diagonal second-order part; the weights sum to 1, so those parts are FID_n's,
while the diagonal terms that make the ``1/N`` bias cancel. Hence ``Var FID∞ ≈ Var FID_n``
(split-variance extrapolation); ``se`` adds the Monte-Carlo error of the subset means.
Estimand ``"population"``: the Fréchet distance of the generated *distribution* to the
reference statistics as given — a reference of finite size keeps its own bias (use reference
statistics from many more samples than ``D``).

Regime: the expansion in ``1/N`` holds only when ``N`` is well above ``D`` (below it the sample
covariance is rank-deficient and ``E[FID_N]`` bends at ``N ≈ D``); simulated coverage of the
population value is in [92 %, 98 %] only from ``n ≈ 6·D`` (:mod:`gan_eval.metrics.regimes`),
so :func:`fid_analysis` withholds FID∞ below that (``FIDAnalysis.refusal``).

Both sets redrawn (:func:`fid_analysis` with ``reference_features``): FID's interval above
conditions on the reference set as given (what comparing two models against one reference
needs, and what ``gate --baseline`` tests). Its estimand ``"mean_at_sizes"`` companion is the
interval of ``E[FID]`` over generated sets of ``n`` *and* reference sets of ``n_ref`` from their
distributions ("what is this model's FID at these sizes"): FID is symmetric in its two sets,
so the split variance of the reference side (halves and quarters of the reference against the
generated statistics, read at ``n_ref``) estimates ``Var(FID | generated set)``, and
``se² = Var_gen + Var_ref``. By the Hoeffding decomposition of a two-sample statistic that
counts the small interaction term (order ``1/(n·n_ref)``) twice: conservative by that much.
The reference side uses ``n_splits·n/n_ref`` splits (at least 10, at most ``n_splits``): its
share of the variance shrinks about as ``n/n_ref``, so its Monte-Carlo error matters less, and
its cost stays near the generated side's.

IS∞ is the same construction on Inception Score with a single split (``IS`` of ``N`` logits
as one chunk), whose bias is also linear in ``1/N``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult, normal_interval
from gan_eval.metrics.frechet import FeatureStats
from gan_eval.metrics.intervals import DEFAULT_SPLITS, SplitVariance, split_variance
from gan_eval.metrics.isc import inception_score
from gan_eval.metrics.neighbors import check_features
from gan_eval.metrics.regimes import Refusal, refusal
from gan_eval.metrics.subset_fid import FIDResampler

#: Fewest random splits of the reference side of the both-sets interval (:func:`fid_analysis`).
REFERENCE_MIN_SPLITS = 10

__all__ = [
    "FIDAnalysis",
    "bias_dominated",
    "fid_analysis",
    "fid_infinity",
    "fid_interval",
    "inception_score_infinity",
    "inception_score_interval",
]


@dataclass(frozen=True)
class FIDAnalysis:
    """FID at this n and FID∞, each with its interval.

    Attributes:
        fid: FID of the whole generated set; interval of ``E[FID_n]`` (``"mean_at_n"``).
        fid_infinity: FID∞; interval of the population value (``"population"``); None when
            ``refusal`` says this ``n`` is outside its regime.
        bias_dominated: ``fid − fid∞`` exceeds half of ``fid`` (:func:`bias_dominated`);
            False when FID∞ is withheld.
        note: a sentence for the report when ``bias_dominated`` or FID∞ is withheld, else None;
            it recommends FID∞ only when FID∞ is reported.
        refusal: why FID∞ is withheld (:func:`gan_eval.metrics.regimes.refusal`), else None.
        fid_both_sets: interval of ``E[FID]`` with both sets redrawn (``"mean_at_sizes"``),
            when the reference features were given and hold at least 16 rows, else None.
    """

    fid: IntervalResult
    fid_infinity: IntervalResult | None
    bias_dominated: bool
    note: str | None
    refusal: Refusal | None = None
    fid_both_sets: IntervalResult | None = None


def bias_dominated(value_at_n: float, value_infinity: float) -> bool:
    """True when more than half of a value at n is small-sample bias: ``v_n − v∞ > v_n / 2``."""
    return value_at_n - value_infinity > 0.5 * abs(value_at_n)


def fid_analysis(
    generated: torch.Tensor,
    reference: FeatureStats,
    *,
    reference_features: torch.Tensor | None = None,
    seed: int = 0,
    n_splits: int = DEFAULT_SPLITS,
    level: float = 0.95,
    outside_regime: bool = False,
) -> FIDAnalysis:
    """FID of ``generated`` against ``reference`` with its interval, FID∞ with its own.

    Args:
        generated: ``(n, D)`` generated features, ``n ≥ 16``.
        reference: statistics of the reference set (held fixed).
        reference_features: the ``(n_ref, D)`` reference rows behind ``reference``; when given
            (and ``n_ref ≥ 16``) also the interval with both sets redrawn (module docstring).
        seed: seed of the random halves/quarters (:func:`~.intervals.split_variance`).
        n_splits: random splits (``6·n_splits`` FIDs of subsets, batched).
        level: nominal coverage.
        outside_regime: compute FID∞ even where its regime refuses it (for coverage
            simulations that map the regime; ``refusal`` is still set).

    Estimates: ``fid`` equals :func:`~gan_eval.metrics.frechet.frechet_distance`; se of both
    from split-variance extrapolation (module docstrings).
    """
    resampler = FIDResampler(generated, reference)
    n = resampler.n
    fid_n = resampler.point_estimate()
    sv = split_variance(resampler.of_subsets, n, seed=seed, n_splits=n_splits)
    se = math.sqrt(sv.variance)
    fid = normal_interval(fid_n, se, n=n, estimand="mean_at_n", method="split_extrapolation",
                          level=level, record=sv.record())
    refused = refusal("fid_infinity", n=n, d=resampler.d)
    fid_inf: IntervalResult | None = None
    if refused is None or outside_regime:
        inf, mc_var = _extrapolate(fid_n, sv)
        record = {**sv.record(), "sizes": [n // 4, n // 2, n],
                  "fid_half_mean": float(sv.half_values.mean()),
                  "fid_quarter_mean": float(sv.quarter_values.mean()),
                  "extrapolation": "quadratic in 1/N through N = n/4, n/2, n (Chong & Forsyth "
                                   "2020)"}
        fid_inf = normal_interval(inf, math.sqrt(sv.variance + mc_var), n=n,
                                  estimand="population", method="extrapolation_1_over_n",
                                  level=level, record=record)
    both = None
    if reference_features is not None:
        both = _fid_both_sets(generated, reference_features, fid, seed=seed, n_splits=n_splits,
                              level=level)
    if refused is not None:
        return FIDAnalysis(
            fid=fid, fid_infinity=fid_inf, bias_dominated=False, refusal=refused,
            fid_both_sets=both,
            note=(f"FID at n={n} in D={resampler.d} dimensions carries a small-sample bias that "
                  "depends on n (and on the reference size): compare FID only at equal n and "
                  f"equal reference size; FID∞ is not reported here (it needs n ≥ "
                  f"{refused.needed_n:,})"))
    assert fid_inf is not None
    dominated = bias_dominated(fid_n, fid_inf.estimate)
    note = (
        f"FID at n={n} ({fid_n:.4g}) is dominated by small-sample bias: FID∞ is "
        f"{fid_inf.estimate:.4g}; compare FID only at equal n, or compare FID∞"
        if dominated else None
    )
    return FIDAnalysis(fid=fid, fid_infinity=fid_inf, bias_dominated=dominated, note=note,
                       fid_both_sets=both)


def _fid_both_sets(
    generated: torch.Tensor, reference_features: torch.Tensor, conditional: IntervalResult, *,
    seed: int, n_splits: int, level: float,
) -> IntervalResult | None:  # fmt: skip
    """Interval of ``E[FID]`` over both draws (module docstring); None below 16 reference rows."""
    ref = check_features(reference_features, "reference", min_rows=2).double()
    n_ref = ref.shape[0]
    if n_ref < 16:
        return None
    swapped = FIDResampler(ref, FeatureStats.from_features(generated.double()))
    # the reference side's share of the variance shrinks about as n/n_ref: fewer splits there
    # keep its cost near the generated side's (a D × D eigvalsh per subset at n_ref/4 ≥ D)
    splits = max(REFERENCE_MIN_SPLITS, min(n_splits, round(n_splits * conditional.n / n_ref)))
    sv = split_variance(swapped.of_subsets, n_ref, seed=seed + 1, n_splits=splits)
    var_gen = conditional.se**2
    return normal_interval(
        conditional.estimate, math.sqrt(var_gen + sv.variance), n=conditional.n,
        estimand="mean_at_sizes", method="split_extrapolation_both_sets", level=level,
        record={"n_reference": n_ref, "var_generated": var_gen, "var_reference": sv.variance,
                "reference_splits": sv.record()},
    )  # fmt: skip


def _extrapolate(value_n: float, sv: SplitVariance) -> tuple[float, float]:
    """Value at ``1/N = 0`` of the quadratic through ``N = n, n/2, n/4``, and its Monte-Carlo
    variance (the per-split combinations' variance over ``n_splits``)."""
    halves, quarters = sv.half_values.mean(1), sv.quarter_values.mean(1)
    per_split = (8.0 / 3.0) * value_n - 2.0 * halves + quarters / 3.0
    return float(per_split.mean()), float(per_split.var(ddof=1)) / sv.n_splits


def fid_interval(
    generated: torch.Tensor, reference: FeatureStats, *, seed: int = 0,
    n_splits: int = DEFAULT_SPLITS, level: float = 0.95,
) -> IntervalResult:  # fmt: skip
    """Interval of ``E[FID_n]`` (this ``n``): ``fid_analysis(...).fid``."""
    return fid_analysis(generated, reference, seed=seed, n_splits=n_splits, level=level).fid


def fid_infinity(
    generated: torch.Tensor, reference: FeatureStats, *, seed: int = 0,
    n_splits: int = DEFAULT_SPLITS, level: float = 0.95,
) -> IntervalResult:  # fmt: skip
    """FID∞ and its interval of the population value: ``fid_analysis(...).fid_infinity``.

    Raises:
        InputError: ``n`` outside FID∞'s regime (the message says why and the ``n`` needed).
    """
    analysis = fid_analysis(generated, reference, seed=seed, n_splits=n_splits, level=level)
    if analysis.fid_infinity is None:
        assert analysis.refusal is not None
        raise InputError(analysis.refusal.reason)
    return analysis.fid_infinity


def _is_one_chunk(log_p: torch.Tensor, p: torch.Tensor, idx: torch.Tensor) -> np.ndarray:
    """Inception Score of each row of ``idx`` (``(P, m)`` row sets) as a single chunk."""
    out = np.empty(idx.shape[0])
    for r, rows in enumerate(idx):
        pc, lp = p[rows], log_p[rows]
        log_q = pc.mean(0, keepdim=True).log()
        out[r] = math.exp(float((pc * (lp - log_q)).sum(1).mean()))
    return out


def inception_score_infinity(
    logits: torch.Tensor,
    *,
    seed: int = 0,
    n_splits: int = DEFAULT_SPLITS,
    level: float = 0.95,
) -> IntervalResult:
    """IS∞ from ``(N, C)`` classifier logits: the FID∞ extrapolation applied to IS, one chunk each.

    ``IS_N`` here is the score of all ``N`` rows as one chunk (not torch-fidelity's mean over
    10 chunks of ``N/10``, which is biased at ``N/10``). Estimand ``"population"``; se from the
    split variance plus the Monte-Carlo error of the halves' mean.
    """
    x = check_features(logits, "logits", min_rows=16).double()
    if x.shape[1] < 2:
        raise InputError(f"logits: need at least 2 classes, got {x.shape[1]}")
    p, log_p = x.softmax(1), x.log_softmax(1)
    n = x.shape[0]
    is_n = float(_is_one_chunk(log_p, p, torch.arange(n)[None])[0])

    def evaluate(idx: torch.Tensor) -> np.ndarray:
        return _is_one_chunk(log_p, p, idx)

    sv = split_variance(evaluate, n, seed=seed, n_splits=n_splits)
    value, mc_var = _extrapolate(is_n, sv)
    return normal_interval(value, math.sqrt(sv.variance + mc_var), n=n, estimand="population",
                           method="extrapolation_1_over_n", level=level,
                           record={**sv.record(), "is_one_chunk": is_n})


def inception_score_interval(
    logits: torch.Tensor,
    *,
    splits: int = 10,
    seed: int = 0,
    n_splits: int = DEFAULT_SPLITS,
    level: float = 0.95,
) -> IntervalResult:
    """Inception Score as torch-fidelity reports it (mean over ``splits`` chunks, equal to
    :func:`~gan_eval.metrics.isc.inception_score`) with the split-variance interval of its
    mean at this ``n`` (estimand ``"mean_at_n"``: the chunks hold ``n/splits`` rows, so the
    score depends on ``n``).

    Raises:
        InputError: bad logits, or fewer than ``4·splits`` rows (the quarters of the set must
            fill the chunks).
    """
    x = check_features(logits, "logits", min_rows=1).double()
    n = x.shape[0]
    if n < max(16, 4 * splits):
        raise InputError(f"an Inception Score interval with {splits} splits needs at least "
                         f"{max(16, 4 * splits)} rows (quarters of the set fill the splits), "
                         f"got {n}")
    score = inception_score(x, splits=splits)

    def evaluate(idx: torch.Tensor) -> np.ndarray:
        return np.array([inception_score(x[rows], splits=splits).mean for rows in idx])

    sv = split_variance(evaluate, n, seed=seed, n_splits=n_splits)
    return normal_interval(score.mean, math.sqrt(sv.variance), n=n, estimand="mean_at_n",
                           method="split_extrapolation", level=level,
                           record={**sv.record(), "std_over_splits": score.std,
                                   "splits": splits})
