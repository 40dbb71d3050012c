"""Memorization audit against brute force, and the FID of subsets (FIDResampler) against
the direct computation."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.metrics.copies import memorization
from gan_eval.metrics.frechet import FeatureStats, SmallSampleFIDWarning, frechet_distance
from gan_eval.metrics.subset_fid import FIDResampler


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


# ------------------------------------------------------------- FID of subsets (FIDResampler)


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

