"""Fréchet distance: reference values (scipy sqrtm, numpy eigvals, torch-fidelity), the Gram form,
mergeable sums, warnings and robustness."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

from gan_eval.errors import InputError
from gan_eval.metrics.frechet import (
    FeatureStats,
    FeatureSums,
    SmallSampleFIDWarning,
    frechet_distance,
    trace_sqrt_product,
)


def _random_spd(d: int, gen: torch.Generator, cond: float = 1e3) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=gen))
    evals = torch.logspace(0, np.log10(cond), d, dtype=torch.float64)
    return (q * evals) @ q.T


def _stats(cov: torch.Tensor, mean: torch.Tensor) -> FeatureStats:
    return FeatureStats(mean=mean, cov=cov, n=10_000)


def _features(n: int, d: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.eye(d, dtype=torch.float64) + 0.3 * torch.randn(
        d, d, dtype=torch.float64, generator=g
    )
    x = torch.randn(n, d, dtype=torch.float64, generator=g) @ mix + 0.5
    return x.to(dtype)


@pytest.mark.parametrize("d", [8, 64])
def test_trace_sqrt_matches_sqrtm_and_eigvals_on_random_spd(d: int) -> None:
    gen = torch.Generator().manual_seed(d)
    s1, s2 = _random_spd(d, gen), _random_spd(d, gen, cond=1e2)
    mean = torch.zeros(d, dtype=torch.float64)
    ours = trace_sqrt_product(_stats(s1, mean), _stats(s2, mean))
    ref_sqrtm = float(np.trace(scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())).real)
    ref_eig = float(np.sqrt(np.linalg.eigvals(s1.numpy() @ s2.numpy()).astype(complex)).real.sum())
    assert ours == pytest.approx(ref_sqrtm, rel=1e-8)
    assert ours == pytest.approx(ref_eig, rel=1e-8)
    # symmetric in its arguments
    assert trace_sqrt_product(_stats(s2, mean), _stats(s1, mean)) == pytest.approx(ours, rel=1e-10)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_singular_covariance_uses_eigh_fallback_and_stays_real() -> None:
    gen = torch.Generator().manual_seed(1)
    d = 16
    s1 = _random_spd(d, gen)
    s1[:, 0] = 0.0
    s1[0, :] = 0.0  # a dead feature: Cholesky fails
    s2 = _random_spd(d, gen)
    mean = torch.zeros(d, dtype=torch.float64)
    ours = trace_sqrt_product(_stats(s1, mean), _stats(s2, mean))
    ref = float(np.trace(scipy.linalg.sqrtm(s1.numpy() @ s2.numpy())).real)
    assert np.isfinite(ours)
    assert ours == pytest.approx(ref, rel=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_torch_fidelity_on_same_features(dtype: torch.dtype) -> None:
    a = _features(600, 32, seed=1, dtype=dtype)
    b = _features(500, 32, seed=2, dtype=dtype) * 1.2
    ref = fid_statistics_to_metric(
        fid_features_to_statistics(a), fid_features_to_statistics(b), verbose=False
    )["frechet_inception_distance"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleFIDWarning)
        ours = frechet_distance(FeatureStats.from_features(a), FeatureStats.from_features(b))
    assert ours == pytest.approx(ref, rel=1e-6)


def test_statistics_equal_numpy_cov() -> None:
    x = _features(300, 12, seed=3, dtype=torch.float32)
    st = FeatureStats.from_features(x)
    ref = fid_features_to_statistics(x)
    np.testing.assert_allclose(st.mean.numpy(), ref["mu"], rtol=1e-6)
    np.testing.assert_allclose(st.cov.numpy(), ref["sigma"], rtol=1e-10, atol=1e-12)
    assert st.mean.dtype == st.cov.dtype == torch.float64


@pytest.mark.parametrize("n", [5, 3000])
def test_identical_inputs_give_zero(n: int) -> None:
    x = _features(n, 24, seed=4)
    st = FeatureStats.from_features(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleFIDWarning)
        assert abs(frechet_distance(st, st)) < 1e-6
        assert abs(frechet_distance(st, FeatureStats.from_features(x.clone()))) < 1e-6


def test_gram_form_equals_symmetric_form_and_sqrtm() -> None:
    # Full-rank case (n > d): the Gram identity must agree with sqrtm, which is accurate here.
    a, b = _features(80, 20, seed=5), _features(90, 20, seed=6) * 0.7
    full_a = FeatureStats.from_features(a, keep_factor=False)
    full_b = FeatureStats.from_features(b, keep_factor=False)
    gram_a = FeatureStats.from_features(a, keep_factor=True)
    gram_b = FeatureStats.from_features(b, keep_factor=True)
    ref = float(np.trace(scipy.linalg.sqrtm(full_a.cov.numpy() @ full_b.cov.numpy())).real)
    for s1, s2 in [(gram_a, gram_b), (gram_a, full_b), (full_a, gram_b), (full_a, full_b)]:
        assert trace_sqrt_product(s1, s2) == pytest.approx(ref, rel=1e-8)


def test_gram_form_when_fewer_samples_than_dims() -> None:
    a, b = _features(30, 100, seed=7), _features(45, 100, seed=8) * 1.3
    sa, sb = FeatureStats.from_features(a), FeatureStats.from_features(b)
    assert sa.factor is not None and sb.factor is not None  # auto: n ≤ D keeps the factor
    both = trace_sqrt_product(sa, sb)
    # nuclear norm of X1 X2ᵀ / sqrt((n1-1)(n2-1)) with centred rows
    xa, xb = a - a.mean(0), b - b.mean(0)
    nuclear = float(torch.linalg.svdvals(xa @ xb.T).sum()) / np.sqrt(29 * 44)
    assert both == pytest.approx(nuclear, rel=1e-12)
    one = trace_sqrt_product(sa, FeatureStats.from_features(b, keep_factor=False))
    neither = trace_sqrt_product(
        FeatureStats.from_features(a, keep_factor=False),
        FeatureStats.from_features(b, keep_factor=False),
    )
    assert one == pytest.approx(both, rel=1e-9)
    # the eigh path on rank-deficient matrices loses a little to clamped noise eigenvalues
    assert neither == pytest.approx(both, rel=1e-6)
    with pytest.warns(SmallSampleFIDWarning):
        fid = frechet_distance(sa, sb)
    assert np.isfinite(fid) and fid > 0


def test_small_sample_warning_thresholds() -> None:
    big = FeatureStats.from_features(_features(2000, 4, seed=9))
    small = FeatureStats.from_features(_features(1999, 4, seed=10))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleFIDWarning)
        frechet_distance(big, big)
    with pytest.warns(SmallSampleFIDWarning, match="biased high"):
        frechet_distance(big, small)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleFIDWarning)
        frechet_distance(big, small, warn=False)


def test_sums_merge_equals_direct_statistics() -> None:
    x = _features(700, 10, seed=11, dtype=torch.float32)
    direct = FeatureStats.from_features(x)
    shards = [FeatureSums.from_features(part) for part in x.split(123)]
    total = FeatureSums.zeros(10)
    for s in shards:
        total = total + s
    merged = total.to_stats()
    assert merged.n == 700
    torch.testing.assert_close(merged.mean, direct.mean, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(merged.cov, direct.cov, rtol=1e-10, atol=1e-12)
    again = FeatureStats.from_sums(total.total, total.outer, total.n)
    torch.testing.assert_close(again.cov, direct.cov, rtol=1e-10, atol=1e-12)


def test_degenerate_features_are_finite() -> None:
    x = _features(50, 6, seed=12)
    x[:, 2] = 3.0  # constant feature
    x[:, 4] = x[:, 3]  # duplicated feature
    y = _features(60, 6, seed=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleFIDWarning)
        for keep in (True, False):
            fid = frechet_distance(
                FeatureStats.from_features(x, keep_factor=keep),
                FeatureStats.from_features(y, keep_factor=keep),
            )
            assert np.isfinite(fid)


def test_input_errors() -> None:
    with pytest.raises(InputError, match="at least 2 samples"):
        FeatureStats.from_features(torch.randn(1, 4))
    bad = torch.randn(10, 4)
    bad[3, 1] = float("nan")
    with pytest.raises(InputError, match="NaN or inf"):
        FeatureStats.from_features(bad)
    with pytest.raises(InputError, match="feature dimensions"):
        frechet_distance(
            FeatureStats.from_features(torch.randn(10, 4)),
            FeatureStats.from_features(torch.randn(10, 5)),
        )
    with pytest.raises(InputError):
        FeatureSums.from_features(torch.randn(3, 4)).merge(
            FeatureSums.from_features(torch.randn(3, 5))
        )
