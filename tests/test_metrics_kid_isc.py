"""KID and Inception Score equal torch-fidelity on the same features."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from gan_eval.errors import InputError
from gan_eval.metrics.isc import inception_score
from gan_eval.metrics.polynomial_mmd import kid, kid_subset_indices


def _pair(n1: int, n2: int, d: int, seed: int, dtype: torch.dtype = torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n1, d, generator=g, dtype=torch.float64).to(dtype)
    b = (torch.rand(n2, d, generator=g, dtype=torch.float64) * 1.1 + 0.02).to(dtype)
    return a, b


@pytest.mark.parametrize("strategy", ["full", "subsets"])
def test_kid_equals_torch_fidelity(strategy: str) -> None:
    a, b = _pair(150, 130, 16, seed=0)
    ref = kid_features_to_metric(a, b, kid_subsets=12, kid_subset_size=60, verbose=False)
    ours = kid(a, b, subsets=12, subset_size=60, strategy=strategy)  # type: ignore[arg-type]
    assert ours.strategy == strategy
    assert ours.mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-6)
    assert ours.std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-6)


def test_kid_defaults_equal_torch_fidelity_defaults() -> None:
    # torch-fidelity's defaults: 100 subsets of 1000, degree 3, gamma 1/D, coef0 1, seed 2020.
    sig = inspect.signature(kid).parameters
    assert sig["subsets"].default == DEFAULTS["kid_subsets"] == 100
    assert sig["subset_size"].default == DEFAULTS["kid_subset_size"] == 1000
    assert sig["degree"].default == DEFAULTS["kid_kernel_poly_degree"]
    assert sig["gamma"].default is DEFAULTS["kid_kernel_poly_gamma"] is None
    assert sig["coef0"].default == DEFAULTS["kid_kernel_poly_coef0"]
    assert sig["seed"].default == DEFAULTS["rng_seed"]
    # all 100 default subsets (smaller ones, to stay fast), default kernel
    a, b = _pair(130, 120, 5, seed=1)
    ref = kid_features_to_metric(a, b, kid_subset_size=100, verbose=False)
    ours = kid(a, b, subset_size=100)
    assert ours.mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-6)
    assert ours.std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-6)


def test_kid_kernel_parameters_and_subset_sequence() -> None:
    a, b = _pair(90, 80, 6, seed=2)
    kw = {"kid_kernel_poly_degree": 2, "kid_kernel_poly_gamma": 0.3, "kid_kernel_poly_coef0": 0.5}
    ref = kid_features_to_metric(
        a, b, kid_subsets=7, kid_subset_size=40, rng_seed=5, verbose=False, **kw
    )
    ours = kid(a, b, subsets=7, subset_size=40, seed=5, degree=2, gamma=0.3, coef0=0.5)
    assert ours.mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-6)
    # the sequence is RandomState(seed).choice(n1), then choice(n2), subset after subset
    i1, i2 = kid_subset_indices(90, 80, 2, 40, seed=5)
    rng = np.random.RandomState(5)
    np.testing.assert_array_equal(i1[0], rng.choice(90, 40, replace=False))
    np.testing.assert_array_equal(i2[0], rng.choice(80, 40, replace=False))
    np.testing.assert_array_equal(i1[1], rng.choice(90, 40, replace=False))


def test_kid_float32_features_are_computed_in_float64() -> None:
    # torch-fidelity computes the kernels in the features' dtype; we always use float64, so on
    # float32 input we equal torch-fidelity run on the float64 copy of the same values.
    a, b = _pair(120, 110, 8, seed=3, dtype=torch.float32)
    ref64 = kid_features_to_metric(
        a.double(), b.double(), kid_subsets=5, kid_subset_size=50, verbose=False
    )
    ours = kid(a, b, subsets=5, subset_size=50)
    assert ours.mean == pytest.approx(ref64["kernel_inception_distance_mean"], rel=1e-9)


def test_kid_identical_sets_near_zero_and_errors() -> None:
    a, _ = _pair(100, 100, 8, seed=4)
    same = kid(a, a, subsets=5, subset_size=50).mean  # differs from 0 only by subset noise
    shifted = kid(a, a + 0.3, subsets=5, subset_size=50).mean
    assert abs(same) < 0.02 < shifted
    with pytest.raises(InputError, match="subset_size"):
        kid(a, a[:40], subsets=5, subset_size=50)
    with pytest.raises(InputError, match="feature dimensions"):
        kid(a, a[:, :4], subsets=5, subset_size=50)


@pytest.mark.parametrize("shuffle", [True, False])
def test_inception_score_equals_torch_fidelity(shuffle: bool) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(503, 20, generator=g) * 3.0
    ref = isc_features_to_metric(logits, splits=10, shuffle=shuffle, rng_seed=2020)
    ours = inception_score(logits, splits=10, shuffle=shuffle, seed=2020)
    assert ours.mean == pytest.approx(ref["inception_score_mean"], rel=1e-6)
    assert ours.std == pytest.approx(ref["inception_score_std"], rel=1e-6)
    assert 1.0 <= ours.mean <= 20.0


def test_inception_score_bounds_and_errors() -> None:
    # confident, uniformly spread predictions: IS = number of classes
    logits = torch.eye(8).repeat(10, 1) * 100.0
    assert inception_score(logits, splits=2, shuffle=False).mean == pytest.approx(8.0, rel=1e-6)
    with pytest.raises(InputError, match="splits"):
        inception_score(torch.randn(5, 4), splits=10)
    with pytest.raises(InputError, match="NaN or inf"):
        inception_score(torch.full((20, 4), float("inf")))
