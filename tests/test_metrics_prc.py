"""Precision/recall equal torch-fidelity; density/coverage equal a direct NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors
from torch_fidelity.metric_prc import prc_features_to_metric

from gan_eval.errors import InputError
from gan_eval.metrics.prc import density_coverage, prdc, precision_recall


def _sets(m: int, n: int, d: int, seed: int, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    gen = torch.randn(m, d, generator=g, dtype=torch.float64) * 1.15 + 0.2
    real = torch.randn(n, d, generator=g, dtype=torch.float64)
    return gen.to(dtype), real.to(dtype)


def _reference_dc(gen: torch.Tensor, real: torch.Tensor, k: int) -> tuple[float, float]:
    g, r = gen.double().numpy(), real.double().numpy()
    radii = NearestNeighbors(n_neighbors=k + 1).fit(r).kneighbors(r)[0][:, k]
    dist = np.sqrt(((g[:, None, :] - r[None, :, :]) ** 2).sum(-1))
    inside = dist < radii[None, :]  # prdc.compute_prdc's open balls
    return float(inside.sum(1).mean() / k), float(inside.any(0).mean())


PRODUCTS = ["float32", "bfloat16"]  # both first passes must give the exact answers


@pytest.mark.parametrize("products", PRODUCTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_precision_recall_equal_torch_fidelity(dtype: torch.dtype, products: str) -> None:
    gen, real = _sets(420, 510, 16, seed=0, dtype=dtype)
    ref = prc_features_to_metric(gen, real, verbose=False)
    ours = precision_recall(gen, real, block_rows=128, products=products)
    # exact counts (torch-fidelity returns float32 fractions)
    assert round(ref["precision"] * 420) == round(ours.precision * 420)
    assert round(ref["recall"] * 510) == round(ours.recall * 510)
    assert ours.precision == pytest.approx(ref["precision"], abs=1e-6)
    assert ours.recall == pytest.approx(ref["recall"], abs=1e-6)
    assert ours.f_score == pytest.approx(ref["f_score"], abs=1e-6)


def test_precision_recall_neighbourhood_parameter() -> None:
    gen, real = _sets(200, 260, 8, seed=1)
    ref = prc_features_to_metric(gen, real, prc_neighborhood=5, verbose=False)
    ours = precision_recall(gen, real, k=5)
    assert ours.precision == pytest.approx(ref["precision"], abs=1e-6)
    assert ours.recall == pytest.approx(ref["recall"], abs=1e-6)


@pytest.mark.parametrize("products", PRODUCTS)
@pytest.mark.parametrize("k", [5, 2])
def test_density_coverage_equal_direct_computation(k: int, products: str) -> None:
    gen, real = _sets(300, 350, 12, seed=2)
    ours = density_coverage(gen, real, k=k, block_rows=100, products=products)
    density, coverage = _reference_dc(gen, real, k)
    assert ours.density == pytest.approx(density, abs=1e-12)
    assert ours.coverage == pytest.approx(coverage, abs=1e-12)


@pytest.mark.parametrize("products", PRODUCTS)
def test_prdc_equals_separate_calls_and_block_invariance(products: str) -> None:
    gen, real = _sets(250, 230, 10, seed=3)
    both = prdc(gen, real, block_rows=64, products=products)
    pr = precision_recall(gen, real, block_rows=1000, products=products)
    dc = density_coverage(gen, real, block_rows=33, products=products)
    assert (both.precision, both.recall, both.f_score) == (pr.precision, pr.recall, pr.f_score)
    assert (both.density, both.coverage) == (dc.density, dc.coverage)
    small = prdc(gen, real, memory_budget=2**20, products=products)  # uncached, narrow tiles
    assert small == both
    assert set(both.to_dict()) == {
        "precision",
        "recall",
        "f_score",
        "density",
        "coverage",
        "k_pr",
        "k_dc",
    }


def test_collapsed_generator_has_high_precision_low_recall() -> None:
    _, real = _sets(10, 400, 6, seed=4)
    g = torch.Generator().manual_seed(5)
    collapsed = real[:1] + 0.01 * torch.randn(300, 6, generator=g)  # mode collapse on one sample
    res = prdc(collapsed, real)
    assert res.precision == 1.0
    assert res.recall < 0.05
    assert res.coverage < 0.05
    same = prdc(real, real.clone())
    assert same.precision == same.recall == same.coverage == 1.0


def test_ball_membership_at_exact_radius() -> None:
    # 1-D, radius of real point 0 (k=1) is exactly 1; a generated point at distance exactly 1 is
    # inside for precision (torch-fidelity's <=) and outside for density/coverage (prdc's <),
    # decided in float64 even though float32 cannot tell.
    real = torch.tensor([[0.0], [1.0], [3.0], [6.0]], dtype=torch.float64)
    gen = torch.tensor([[-1.0], [20.0]], dtype=torch.float64)
    res = precision_recall(gen, real, k=1)
    assert res.precision == 0.5
    dc = density_coverage(gen, real, k=1)
    assert dc.density == 0.0
    assert dc.coverage == 0.0
    inner = density_coverage(torch.tensor([[-0.5], [20.0]], dtype=torch.float64), real, k=1)
    assert inner.density == 0.5  # one generated point inside one ball, divided by M=2 and k=1
    assert inner.coverage == 0.25


def _brute_prdc(gen: torch.Tensor, real: torch.Tensor, k_pr: int, k_dc: int) -> tuple:
    g, r = gen.double(), real.double()
    d_rr = torch.cdist(r, r, compute_mode="donot_use_mm_for_euclid_dist")
    d_gg = torch.cdist(g, g, compute_mode="donot_use_mm_for_euclid_dist")
    d_gr = torch.cdist(g, r, compute_mode="donot_use_mm_for_euclid_dist")
    d_rr.fill_diagonal_(float("inf"))
    d_gg.fill_diagonal_(float("inf"))
    r_pr = d_rr.sort(1).values[:, k_pr - 1]
    r_dc = d_rr.sort(1).values[:, k_dc - 1]
    g_pr = d_gg.sort(1).values[:, k_pr - 1]
    precision = float((d_gr <= r_pr[None, :]).any(1).double().mean())
    recall = float((d_gr <= g_pr[:, None]).any(0).double().mean())
    inside = d_gr < r_dc[None, :]  # density/coverage: open balls (prdc.compute_prdc)
    return (
        precision,
        recall,
        float(inside.sum(1).double().mean()) / k_dc,
        float(inside.any(0).double().mean()),
    )


@pytest.mark.parametrize("products", PRODUCTS)
@pytest.mark.parametrize(("k_pr", "k_dc"), [(3, 5), (5, 2)])
def test_lattice_points_with_many_exact_ties(products: str, k_pr: int, k_dc: int) -> None:
    # integer coordinates: many distances equal a radius exactly and many rows are duplicates;
    # every such decision goes through the float64 resolution and must match closed balls
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 5, (300, 3), generator=g).float()
    gen = torch.randint(0, 5, (260, 3), generator=g).float() + torch.tensor([1.0, 0.0, 0.0])
    res = prdc(gen, real, k_pr=k_pr, k_dc=k_dc, block_rows=64, products=products)
    p, r, d, c = _brute_prdc(gen, real, k_pr, k_dc)
    assert (res.precision, res.recall, res.coverage) == (p, r, c)
    assert res.density == pytest.approx(d, abs=1e-12)


def _pool3_like(n: int, d: int, seed: int, scale: float) -> torch.Tensor:
    # non-negative, correlated, wide: where the bfloat16 bound leaves many samples undecided
    basis = torch.randn(32, d, generator=torch.Generator().manual_seed(0)) / 6
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 32, generator=g) * scale
    return torch.relu(z @ basis + 0.3 + 0.1 * torch.randn(n, d, generator=g))


@pytest.mark.parametrize("budget", [512 * 2**20, 2**20])
def test_bfloat16_first_pass_equals_brute_force_on_wide_features(budget: int) -> None:
    gen, real = _pool3_like(500, 1024, 1, 1.05), _pool3_like(450, 1024, 2, 1.0)
    expected = _brute_prdc(gen, real, 3, 5)
    for products in PRODUCTS:
        res = prdc(gen, real, memory_budget=budget, products=products)
        assert (res.precision, res.recall, res.coverage) == expected[:2] + expected[3:]
        assert res.density == pytest.approx(expected[2], abs=1e-12)
        pr = precision_recall(gen, real, memory_budget=budget, products=products)
        assert (pr.precision, pr.recall) == expected[:2]


def test_input_errors() -> None:
    gen, real = _sets(5, 5, 3, seed=6)
    with pytest.raises(InputError, match="k=5"):
        precision_recall(gen, real, k=5)
    with pytest.raises(InputError, match="feature dimensions"):
        prdc(gen, real[:, :2])
    with pytest.raises(InputError, match="at least 2 samples"):
        density_coverage(gen[:1], real, k=1)


@pytest.mark.parametrize("products", PRODUCTS)
def test_large_offset_and_mixed_scales_stay_exact(products: str) -> None:
    # a common offset far larger than the spread (centring must remove it before any rounding)
    # and dimensions whose scales differ by 10⁶ (the bound must follow the large ones)
    g = torch.Generator().manual_seed(11)
    scales = torch.logspace(-3, 3, 64, dtype=torch.float64)
    gen = torch.randn(300, 64, generator=g, dtype=torch.float64) * scales * 1.1 + 1e5
    real = torch.randn(280, 64, generator=g, dtype=torch.float64) * scales + 1e5
    res = prdc(gen, real, block_rows=96, products=products)
    p, r, d, c = _brute_prdc(gen, real, 3, 5)
    assert (res.precision, res.recall, res.coverage) == (p, r, c)
    assert res.density == pytest.approx(d, abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1
