"""Calibrated intervals: exact pieces equal their definitions; variances match fresh draws
(those statistical checks, and FID∞/IS∞ against known population values, are slow).

The full coverage/width simulation is tests/test_metrics_interval_calibration.py (slow).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.estimates import normal_interval, wilson_interval
from gan_eval.metrics.cmmd import cmmd
from gan_eval.metrics.extrapolation import bias_dominated, fid_analysis, inception_score_infinity
from gan_eval.metrics.frechet import FeatureStats, frechet_distance
from gan_eval.metrics.intervals import (
    MMD_SE_CAP,
    _recall_leave_one_out,
    _recall_of_subsets,
    cmmd_interval,
    kid_interval,
    prdc_intervals,
    rate_interval,
    split_variance,
)
from gan_eval.metrics.polynomial_mmd import kid
from gan_eval.metrics.prc import prdc
from gan_eval.metrics.prdc_resample import PRDCResampler
from gan_eval.metrics.subset_fid import FIDResampler


def _gauss(n: int, d: int, seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


def test_rate_interval_is_wilson_with_a_usable_se() -> None:
    for k, n in [(0, 50), (7, 50), (50, 50), (312, 1000)]:
        r = rate_interval(k, n)
        assert (r.low, r.high) == pytest.approx(wilson_interval(k, n), abs=1e-12)
        assert r.se > 0 and r.estimand == "population" and r.method == "wilson"
    with pytest.raises(InputError):
        rate_interval(3, 2)


def test_normal_interval_and_json_say_what_they_are_of() -> None:
    r = normal_interval(2.0, 0.5, n=10, estimand="mean_at_n", method="split_extrapolation",
                        level=0.9)
    assert r.interval == pytest.approx((2.0 - 1.644854 * 0.5, 2.0 + 1.644854 * 0.5), abs=1e-6)
    js = r.to_json()
    assert js["estimand"] == "mean_at_n" and "this n" in js["estimand_meaning"]
    assert js["ci"] == [r.low, r.high] and js["se"] == 0.5


def test_split_variance_of_a_mean_is_sigma2_over_n() -> None:
    x = _gauss(1000, 1, seed=0)[:, 0] * 3.0

    def means(idx: torch.Tensor) -> np.ndarray:
        return x[idx].mean(1).numpy()

    sv = split_variance(means, 1000, seed=1, n_splits=200)
    assert sv.variance == pytest.approx(9.0 / 1000, rel=0.25)
    assert 0.5 < sv.gamma < 1.5  # a linear statistic decays like 1/m
    with pytest.raises(InputError):
        split_variance(means, 10, seed=0)


def test_fid_of_subsets_equals_frechet_distance() -> None:
    gen, ref = _gauss(300, 24, seed=1, scale=1.1), _gauss(500, 24, seed=2)
    stats = FeatureStats.from_features(ref)
    res = FIDResampler(gen, stats)
    idx = torch.randperm(300, generator=torch.Generator().manual_seed(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in (150, 20):  # symmetric form (m > D) and Gram form (m < D)
            rows = idx[: 2 * m].view(2, m)
            got = res.of_subsets(rows)
            want = [frechet_distance(FeatureStats.from_features(gen[r]), stats) for r in rows]
            # rel 1e-7: the Gram eigenvalues of a rank-deficient m < D subset sit near 0, where
            # sqrt amplifies rounding (frechet_distance uses an SVD there)
            assert got.tolist() == pytest.approx(want, rel=1e-7)


@pytest.mark.slow
def test_fid_se_matches_spread_of_fresh_draws() -> None:
    # D = 32, n = 400: the split-variance se against the sd of 40 fresh FIDs (noise ~11 %)
    ref = FeatureStats.from_features(_gauss(1000, 32, seed=4))
    fids, ses = [], []
    for t in range(40):
        a = fid_analysis(_gauss(400, 32, seed=100 + t, scale=1.1, shift=0.03), ref, seed=t)
        fids.append(a.fid.estimate)
        ses.append(a.fid.se)
        assert a.fid.estimand == "mean_at_n"
        assert a.fid_infinity is not None and a.fid_infinity.estimand == "population"
    assert float(np.mean(ses)) == pytest.approx(float(np.std(fids, ddof=1)), rel=0.35)


@pytest.mark.slow
def test_fid_infinity_finds_the_closed_form_value() -> None:
    # population FID of N(0.05, 1.2² I) to N(0, I) in D = 64: 64·0.05² + 64·0.2² (closed form);
    # at n = 500 FID is biased far above it, FID∞ is not
    d, n = 64, 500
    target = d * 0.05**2 + d * 0.2**2
    pop = FeatureStats(mean=torch.zeros(d, dtype=torch.float64),
                       cov=torch.eye(d, dtype=torch.float64), n=10**9)
    hit_inf = hit_fid = 0
    trials = 30
    for t in range(trials):
        a = fid_analysis(_gauss(n, d, seed=200 + t, scale=1.2, shift=0.05), pop, seed=t)
        assert a.fid_infinity is not None
        hit_inf += a.fid_infinity.low <= target <= a.fid_infinity.high
        hit_fid += a.fid.low <= target <= a.fid.high
        assert a.bias_dominated == bias_dominated(a.fid.estimate, a.fid_infinity.estimate)
    assert hit_fid == 0
    assert hit_inf >= 0.8 * trials  # ≥ 90 % expected; 30 trials leave room for noise
    assert a.bias_dominated and a.note is not None and "FID∞" in a.note


@pytest.mark.slow
def test_inception_score_infinity_removes_the_small_n_bias() -> None:
    g = torch.Generator().manual_seed(5)
    centres = torch.randn(50, 20, generator=g, dtype=torch.float64) * 3.0

    def logits(n: int, seed: int) -> torch.Tensor:
        gg = torch.Generator().manual_seed(seed)
        k = torch.randint(0, 50, (n,), generator=gg)
        return centres[k] + torch.randn(n, 20, generator=gg, dtype=torch.float64) * 2.0

    big = logits(200_000, 0)
    p = big.softmax(1)
    population = math.exp(float((p * (big.log_softmax(1) - p.mean(0).log())).sum(1).mean()))
    hits, one_chunk = 0, []
    for t in range(20):
        r = inception_score_infinity(logits(500, 1 + t), seed=t)
        hits += r.low <= population <= r.high
        one_chunk.append(r.record["is_one_chunk"])
    # the sample's marginal p(y) has too little entropy: IS of N samples is biased low
    assert float(np.mean(one_chunk)) < population
    assert hits >= 16


@pytest.mark.slow
def test_kid_interval_estimate_and_se() -> None:
    ref = _gauss(400, 8, seed=6)
    values, ses = [], []
    for t in range(40):
        gen = _gauss(200, 8, seed=300 + t, scale=1.15)
        r = kid_interval(gen, ref, subsets=20, subset_size=200)
        assert r.estimate == kid(gen, ref, subsets=20, subset_size=200).mean
        values.append(r.estimate)
        ses.append(r.se)
    assert float(np.mean(ses)) == pytest.approx(float(np.std(values, ddof=1)), rel=0.3)


def test_prdc_intervals_estimates_and_exact_pieces() -> None:
    gen, real = _gauss(60, 6, seed=7, scale=1.1).float(), _gauss(80, 6, seed=8).float()
    out = prdc_intervals(gen, real, seed=0, n_splits=10)
    full = prdc(gen, real)
    for name in ("precision", "recall", "density", "coverage"):
        assert out[name].estimate == pytest.approx(getattr(full, name), abs=1e-12)
    assert out["precision"].method == "wilson"
    assert out["recall"].estimand == out["coverage"].estimand == "mean_at_n"
    rec = out["recall"].record
    assert out["recall"].se == pytest.approx(max(
        1 / 80, math.sqrt(min(rec["var_jackknife_trimmed"], rec["var_delete_d"]))), rel=1e-12)
    # coverage's jackknife: leave-one-out values equal prdc on the set without that row
    loo = []
    for i in range(60):
        keep = torch.cat([torch.arange(i), torch.arange(i + 1, 60)])
        loo.append(prdc(gen[keep], real).coverage)
    jack = math.sqrt(59 / 60 * float(((np.array(loo) - np.mean(loo)) ** 2).sum()))
    assert out["coverage"].se == pytest.approx(jack, rel=1e-9, abs=1e-12)


def test_recall_of_subsets_equals_prdc() -> None:
    gen, real = _gauss(200, 6, seed=9, scale=1.2).float(), _gauss(220, 6, seed=10).float()
    res = PRDCResampler(gen, real, extra_neighbours=64)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(11))
    for m in (100, 50):
        rows = perm[: 2 * m].view(2, m)
        got = _recall_of_subsets(res, rows)
        assert got.tolist() == [prdc(gen[r], real).recall for r in rows]


def test_recall_leave_one_out_equals_prdc() -> None:
    # clustered rows with exact duplicates and a real row on a generated one: the grown balls
    # and sole holders both occur
    g = torch.Generator().manual_seed(12)
    centres = torch.randn(6, 5, generator=g) * 3
    gen = centres[torch.randint(0, 6, (50,), generator=g)] + 0.7 * torch.randn(50, 5, generator=g)
    real = centres[torch.randint(0, 6, (70,), generator=g)] + torch.randn(70, 5, generator=g)
    gen[10], gen[20], real[5] = gen[11], gen[21], gen[3]
    res = PRDCResampler(gen, real)
    loo = _recall_leave_one_out(res)
    want = [prdc(torch.cat([gen[:i], gen[i + 1:]]), real).recall for i in range(50)]
    assert loo.tolist() == want
    assert len(set(want)) > 3  # some leave-one-outs change recall


def test_cmmd_interval_estimate_is_cmmd() -> None:
    gen, ref = _gauss(40, 8, seed=14, scale=5.0), _gauss(50, 8, seed=15) * 4.0
    r = cmmd_interval(gen, ref)
    assert r.estimate == cmmd(gen, ref) and r.low < r.estimate < r.high
    assert r.estimand == "mean_at_n" and r.method == "jackknife"
    # the jackknife over leave-one-out values of cmmd itself
    loo = np.array([cmmd(torch.cat([gen[:i], gen[i + 1:]]), ref) for i in range(40)])
    var_jack = 39 / 40 * np.square(loo - loo.mean()).sum()
    assert r.record["var_jackknife"] == pytest.approx(var_jack, rel=1e-9)
    # capped at MMD_SE_CAP × the Hoeffding se where the degenerate part dominates (issue 23)
    cap = MMD_SE_CAP**2 * r.record["var_hoeffding"]
    assert r.se == pytest.approx(math.sqrt(min(var_jack, cap)), rel=1e-9)
    with pytest.raises(InputError):
        cmmd_interval(gen[:2], ref)


@pytest.mark.slow
def test_cmmd_interval_se_matches_spread_of_fresh_draws() -> None:
    ref = _gauss(300, 8, seed=13) * 4.0  # σ = 10: kernel values well away from 0 and 1
    values, ses = [], []
    for t in range(60):
        gen = _gauss(150, 8, seed=400 + t, scale=5.0, shift=0.5)
        r = cmmd_interval(gen, ref)
        values.append(r.estimate)
        ses.append(r.se)
    # 60 draws: the sd's own noise ~9 %
    assert float(np.mean(ses)) == pytest.approx(float(np.std(values, ddof=1)), rel=0.3)


def test_inception_score_interval_is_torch_fidelitys_score_at_n() -> None:
    from gan_eval.metrics import inception_score, inception_score_interval

    logits = 3.0 * torch.randn(200, 50, generator=torch.Generator().manual_seed(3),
                               dtype=torch.float64)
    iv = inception_score_interval(logits, splits=10, seed=1, n_splits=8)
    assert iv.estimate == inception_score(logits, splits=10).mean
    assert iv.estimand == "mean_at_n" and iv.n == 200 and iv.se > 0
    assert iv.low < iv.estimate < iv.high
    with pytest.raises(InputError, match="at least 40 rows"):
        inception_score_interval(logits[:39], splits=10)
