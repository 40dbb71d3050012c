"""PRDCResampler(idx) equals prdc(generated[idx], real) exactly, for bootstrap-style resamples."""

from __future__ import annotations

import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.metrics import prdc_resample
from gan_eval.metrics.prc import prdc
from gan_eval.metrics.prdc_resample import PRDCResampler, resample_indices


def _sets(m: int, n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(8, d, generator=g)
    gen = torch.relu(torch.randn(m, 8, generator=g) * 1.1 @ basis + torch.randn(m, d, generator=g))
    real = torch.relu(torch.randn(n, 8, generator=g) @ basis + torch.randn(n, d, generator=g))
    return gen, real


def _check(res: PRDCResampler, gen: torch.Tensor, real: torch.Tensor, idx: torch.Tensor) -> None:
    assert res(idx) == prdc(gen[idx], real, k_pr=res.k_pr, k_dc=res.k_dc)


@pytest.mark.parametrize(
    ("m", "n", "d", "k_pr", "k_dc"), [(300, 260, 24, 3, 5), (200, 240, 6, 4, 2)]
)
def test_resamples_equal_direct_computation(m: int, n: int, d: int, k_pr: int, k_dc: int) -> None:
    gen, real = _sets(m, n, d, seed=m + d)
    res = PRDCResampler(gen, real, k_pr=k_pr, k_dc=k_dc)
    assert not res.direct
    _check(res, gen, real, torch.arange(m))  # the estimate itself
    for idx in resample_indices(m, 12, seed=1):
        _check(res, gen, real, idx)


def test_duplicates_and_ties() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.randint(0, 4, (150, 3), generator=g).double()
    base = torch.randint(0, 4, (60, 3), generator=g).double() + torch.tensor([0.5, 0.0, 0.0])
    gen = torch.cat([base, base[:20]])  # exact duplicate rows in the generated set itself
    res = PRDCResampler(gen, real)
    for idx in [
        torch.zeros(80, dtype=torch.int64),  # one row 80 times: its radius is 0
        torch.tensor([0, 0, 1, 2, 3] * 16),  # a few rows, some doubled
        torch.arange(80).flip(0),
        *resample_indices(80, 6, seed=2),
    ]:
        _check(res, gen, real, idx)


def test_fallbacks_still_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, real = _sets(120, 100, 5, seed=7)
    idx_list = list(resample_indices(120, 5, seed=4))
    # no extra neighbours: resamples often miss a listed neighbour and are recomputed
    monkeypatch.setattr(prdc_resample, "_EXTRA_NEIGHBOURS", 0)
    res = PRDCResampler(gen, real)
    assert any(res._radii(torch.bincount(i, minlength=120)) is None for i in idx_list)
    for idx in idx_list:
        _check(res, gen, real, idx)
    # too many pairs to list: every resample is recomputed
    monkeypatch.setattr(prdc_resample, "_MAX_PAIRS", 10)
    res = PRDCResampler(gen, real)
    assert res.direct
    _check(res, gen, real, idx_list[0])


def test_input_errors() -> None:
    gen, real = _sets(5, 5, 3, seed=1)
    with pytest.raises(InputError, match="k_dc=5"):
        PRDCResampler(gen, real)
