"""Memorization audit against brute force; bootstrap intervals (determinism, containment,
width vs N) and the fast FID resampler against the direct computation."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.metrics.bootstrap import FIDResampler, bootstrap_ci, fid_bootstrap_ci
from gan_eval.metrics.copies import memorization
from gan_eval.metrics.frechet import FeatureStats, SmallSampleFIDWarning, frechet_distance


def _emb(n: int, d: int, seed: int, scale: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * scale


# ----------------------------------------------------------------------------- memorization


@pytest.mark.parametrize("n_gen", [20, 300])  # few matches: query path; many: self pass
def test_memorization_equals_brute_force(n_gen: int) -> None:
    train = _emb(200, 16, 0)
    gen = torch.cat([train[:5] + 0.0, _emb(n_gen - 5, 16, 1)])  # five exact copies first
    res = memorization(gen, train, threshold=0.6, top_k=7, block_rows=64)

    dist = torch.cdist(gen.double(), train.double())
    nn_d, nn_i = dist.min(1)
    own = torch.cdist(train.double(), train.double())
    own.fill_diagonal_(float("inf"))
    own_nn = own.min(1).values
    assert torch.equal(res.nearest_index, nn_i)
    torch.testing.assert_close(res.distance, nn_d, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.train_nn_distance, own_nn[nn_i], rtol=1e-12, atol=0)
    torch.testing.assert_close(res.ratio, nn_d / own_nn[nn_i], rtol=1e-12, atol=1e-12)
    assert res.copy_rate == pytest.approx(float((nn_d <= 0.6).double().mean()))
    assert [p[0] for p in res.closest_pairs[:5]] == [0, 1, 2, 3, 4]  # copies, by index
    assert res.closest_pairs[0][2] == 0.0 and len(res.closest_pairs) == 7
    assert res.ratio[:5].tolist() == [0.0] * 5


def test_memorization_duplicate_training_rows_and_json() -> None:
    train = _emb(50, 8, 2)
    train[10] = train[11]  # duplicated training image: own nearest distance 0
    gen = torch.stack([train[10], train[11] + 0.05, _emb(1, 8, 3)[0]])
    res = memorization(gen, train, top_k=3)
    assert res.ratio[0] == 0.0 and res.ratio[1] == float("inf")
    out = res.to_json()
    text = json.dumps(out, allow_nan=False)  # strict JSON: inf became None
    assert json.loads(text)["n_generated"] == 3
    assert out["closest_pairs"][0]["distance"] == 0.0
    assert set(out) >= {"copy_rate", "threshold", "distance", "ratio", "closest_pairs"}


def test_memorization_input_errors() -> None:
    with pytest.raises(InputError, match="train"):
        memorization(_emb(3, 4, 0), _emb(1, 4, 1))
    with pytest.raises(InputError, match="threshold"):
        memorization(_emb(3, 4, 0), _emb(5, 4, 1), threshold=-1.0)


# ----------------------------------------------------------------------------- bootstrap


def _mean_metric(x: torch.Tensor):
    return lambda idx: float(x[idx].mean())


def test_bootstrap_deterministic_with_seed_and_record() -> None:
    x = torch.rand(300, dtype=torch.float64)
    a = bootstrap_ci(_mean_metric(x), 300, n_resamples=50, seed=7)
    b = bootstrap_ci(_mean_metric(x), 300, n_resamples=50, seed=7)
    c = bootstrap_ci(_mean_metric(x), 300, n_resamples=50, seed=8)
    assert torch.equal(a.values, b.values) and a.interval == b.interval
    assert not torch.equal(a.values, c.values)
    assert a.record == {
        "n_resamples": 50,
        "seed": 7,
        "level": 0.95,
        "method": "percentile",
        "resampled": "generated",
    }


def test_bootstrap_contains_estimate_and_narrows_with_n() -> None:
    widths = []
    for n in (100, 1600):
        x = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
        ci = bootstrap_ci(_mean_metric(x), n, n_resamples=200, seed=0)
        assert ci.low <= ci.estimate <= ci.high
        widths.append(ci.high - ci.low)
    assert widths[1] < widths[0] / 2  # ≈ 1/sqrt(n): a factor 4 here


def test_fid_resampler_equals_direct_fid() -> None:
    for n, d in ((120, 6), (15, 20)):  # covariance path, Gram path (n < D)
        gen = _emb(n, d, 10, scale=1.0) + 0.4
        ref = FeatureStats.from_features(_emb(500, d, 11, scale=1.0))
        res = FIDResampler(gen, ref)
        idx = torch.randint(0, n, (n,), generator=torch.Generator().manual_seed(1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallSampleFIDWarning)
            # keep_factor=None: the exact Gram/SVD form when n ≤ D (the eigh form would carry
            # ~1e-8 of sqrt-amplified noise from the zero eigenvalues)
            direct = frechet_distance(FeatureStats.from_features(gen[idx]), ref)
            point = frechet_distance(FeatureStats.from_features(gen), ref)
        assert res(idx) == pytest.approx(direct, rel=1e-9)
        assert res.point_estimate() == pytest.approx(point, rel=1e-9)


def test_fid_bootstrap_batched_equals_generic_and_intervals() -> None:
    gen = _emb(400, 8, 12, scale=1.0) + 0.8
    ref = FeatureStats.from_features(_emb(2000, 8, 13, scale=1.0))
    fast = fid_bootstrap_ci(gen, ref, n_resamples=60, seed=3, method="percentile")
    slow = bootstrap_ci(FIDResampler(gen, ref), 400, n_resamples=60, seed=3)
    torch.testing.assert_close(fast.values, slow.values, rtol=1e-9, atol=1e-12)
    assert fast.interval == pytest.approx(slow.interval, rel=1e-9)
    shifted = fid_bootstrap_ci(gen, ref, n_resamples=60, seed=3)
    assert shifted.record["method"] == "bias_shifted"
    assert shifted.low <= shifted.estimate <= shifted.high
    assert shifted.high - shifted.low == pytest.approx(fast.high - fast.low)


def test_fid_percentile_interval_reasonable_case_and_width_shrinks() -> None:
    # well separated sets, n ≫ D: the resampling bias is small next to the spread
    ref = FeatureStats.from_features(_emb(4000, 4, 14, scale=1.0))
    widths = []
    for n in (500, 4000):
        gen = _emb(n, 4, 15 + n, scale=1.0) + 1.0
        ci = fid_bootstrap_ci(gen, ref, n_resamples=200, seed=0, method="percentile")
        assert ci.low <= ci.estimate <= ci.high
        widths.append(ci.high - ci.low)
    assert widths[1] < widths[0] / 2


def test_bootstrap_argument_errors() -> None:
    with pytest.raises(InputError, match="level"):
        bootstrap_ci(lambda idx: 0.0, 10, level=1.5)
    with pytest.raises(InputError, match="method"):
        bootstrap_ci(lambda idx: 0.0, 10, method="bca")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="NaN or inf"):
        bootstrap_ci(lambda idx: float("nan"), 10, n_resamples=3)
    assert np.isfinite(bootstrap_ci(lambda idx: 1.0, 10, n_resamples=3).low)
