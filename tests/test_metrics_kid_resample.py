"""kid_resample_means: KID of many bootstrap resamples from one pass equals a kid() call each."""

from __future__ import annotations

import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.metrics import bootstrap_ci, kid, kid_resample_means
from gan_eval.metrics.bootstrap import interval_from_values, resample_indices


def features(n1: int, n2: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(n1, d, generator=gen) * 1.1 + 0.2
    r = torch.randn(n2, d, generator=gen)
    return g, r


@pytest.mark.parametrize(("n1", "n2", "d", "m"), [(120, 150, 8, 40), (300, 200, 64, 200),
                                                  (64, 64, 3, 64)])
@pytest.mark.parametrize("strategy", ["shared", "auto"])
def test_equals_one_kid_call_per_resample(n1: int, n2: int, d: int, m: int,
                                          strategy: str) -> None:
    g, r = features(n1, n2, d)
    resamples = list(resample_indices(n1, 7, seed=5))
    got = kid_resample_means(g, r, resamples, subsets=6, subset_size=m,
                             strategy=strategy)  # type: ignore[arg-type]
    want = torch.tensor([kid(g[idx], r, subsets=6, subset_size=m).mean for idx in resamples],
                        dtype=torch.float64)
    # same float64 terms summed in another order; MMD² values here are ~1e-2..1
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert len(set(got.tolist())) > 1  # the resamples differ: a constant would not pass


def test_kernel_options_and_seed_are_honoured() -> None:
    g, r = features(90, 80, 5, seed=1)
    resamples = list(resample_indices(90, 4, seed=2))
    options = dict(subsets=3, subset_size=30, degree=2, gamma=0.3, coef0=0.5, seed=7)
    got = kid_resample_means(g, r, resamples, strategy="shared", **options)  # type: ignore[arg-type]
    want = [kid(g[idx], r, **options).mean for idx in resamples]  # type: ignore[arg-type]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-10,
                               atol=1e-12)


def test_interval_equals_the_bootstrap_loop() -> None:
    """What evaluate records: the same interval as bootstrap_ci over kid() calls."""
    g, r = features(150, 160, 16, seed=3)
    loop = bootstrap_ci(lambda idx: kid(g[idx], r, subsets=10, subset_size=100).mean, 150,
                        n_resamples=20, seed=4)
    values = kid_resample_means(g, r, list(resample_indices(150, 20, 4)), subsets=10,
                                subset_size=100)
    shared = interval_from_values(values, kid(g, r, subsets=10, subset_size=100).mean, 20, 4,
                                  0.95, "percentile")
    assert shared.interval == pytest.approx(loop.interval, rel=1e-9, abs=1e-12)
    assert shared.record == loop.record


def test_bad_input_is_named() -> None:
    g, r = features(50, 40, 4)
    with pytest.raises(InputError, match="row indices of the generated set"):
        kid_resample_means(g, r, [torch.arange(49)], subsets=2, subset_size=10)
    with pytest.raises(InputError, match="row indices of the generated set"):
        kid_resample_means(g, r, [torch.full((50,), 50)], subsets=2, subset_size=10)
    with pytest.raises(InputError, match="subset_size=41 is larger than a feature set"):
        kid_resample_means(g, r, [torch.arange(50)], subsets=2, subset_size=41)
    with pytest.raises(InputError, match="strategy"):
        kid_resample_means(g, r, [torch.arange(50)], subsets=2, subset_size=10,
                           strategy="fast")  # type: ignore[arg-type]
    assert kid_resample_means(g, r, [], subsets=2, subset_size=10).shape == (0,)
