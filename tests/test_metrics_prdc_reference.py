"""density/coverage equal ``prdc.compute_prdc`` (clovaai), ties and duplicate rows included.

``compute_prdc`` decides ball membership with a strict ``<`` on sklearn distances. Its floating
point decides as exact arithmetic does on integer-valued features (every squared distance is an
exact integer in float64, and ``sqrt`` is monotone), so those sets test the tie rule itself:
duplicate rows, points exactly on a radius, radii of 0. On Gaussian features ties have
probability 0 and the two agree as well. Precision/recall follow torch-fidelity (``≤``), not
``compute_prdc`` (``<``): checked here on the same tie-heavy sets.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

prdc_ref = pytest.importorskip("prdc")
from torch_fidelity.metric_prc import prc_features_to_metric  # noqa: E402

from gan_eval.metrics.prc import density_coverage, prdc  # noqa: E402
from gan_eval.metrics.prdc_resample import PRDCResampler  # noqa: E402


def _reference(gen: torch.Tensor, real: torch.Tensor, k: int) -> dict[str, float]:
    out = prdc_ref.compute_prdc(real.double().numpy(), gen.double().numpy(), nearest_k=k)
    return {key: float(v) for key, v in out.items()}


def _assert_dc_equal(gen: torch.Tensor, real: torch.Tensor, k: int) -> dict[str, float]:
    ref = _reference(gen, real, k)
    ours = density_coverage(gen, real, k=k)
    # exact: the same counts divided the same way (tolerance only for the order of the mean)
    assert ours.density == pytest.approx(ref["density"], rel=1e-12, abs=0)
    assert ours.coverage == pytest.approx(ref["coverage"], rel=1e-12, abs=0)
    both = prdc(gen, real, k_pr=3, k_dc=k)
    assert (both.density, both.coverage) == (ours.density, ours.coverage)
    resampled = PRDCResampler(gen, real, k_pr=3, k_dc=k)(torch.arange(gen.shape[0]))
    assert resampled.density == pytest.approx(ours.density, rel=1e-12)
    assert resampled.coverage == ours.coverage
    return ref


def _gauss(n: int, d: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale


def _grid(n: int, d: int, seed: int, levels: int = 4) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, levels, (n, d)).astype(np.float64))


@pytest.mark.parametrize("k", [5, 3])
def test_identical_sets(k: int) -> None:
    real = _gauss(300, 16, seed=0)
    ref = _assert_dc_equal(real.clone(), real, k)
    # each real k-th neighbour lies exactly on the radius: open balls give exactly 1, not (k+1)/k
    assert ref["density"] == 1.0
    assert ref["coverage"] == 1.0
    grid = _grid(250, 5, seed=1)  # identical and full of duplicate rows and equal distances
    _assert_dc_equal(grid.clone(), grid, k)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_sets_with_copies_and_duplicate_rows(seed: int) -> None:
    real = _grid(300, 6, seed=seed)
    rng = np.random.default_rng(seed + 100)
    copies = real[torch.from_numpy(rng.integers(0, 300, 150))]  # memorized half, with repeats
    fresh = _grid(150, 6, seed=seed + 200, levels=5)
    gen = torch.cat([copies, fresh])
    ref = _assert_dc_equal(gen, real, 5)
    assert 0.0 < ref["coverage"] < 1.0
    # Gaussian real set with exact copies (float data) plus fresh samples
    real_g = _gauss(400, 12, seed=seed)
    gen_g = torch.cat([real_g[:200], _gauss(200, 12, seed=seed + 1, scale=1.1)])
    _assert_dc_equal(gen_g, real_g, 5)


def test_radius_zero_covers_nothing() -> None:
    # a real point with k exact duplicates has radius 0: nothing is strictly inside, even itself
    real = torch.cat([torch.zeros(6, 2), torch.arange(1.0, 11.0)[:, None].repeat(1, 2)])
    gen = torch.zeros(8, 2, dtype=torch.float32)
    ref = _assert_dc_equal(gen.double(), real.double(), 5)
    assert ref["density"] == 0.0 and ref["coverage"] == 0.0


@pytest.mark.parametrize(
    ("m", "n", "d", "k"), [(400, 500, 8, 5), (300, 260, 32, 3), (200, 200, 4, 7)]
)
def test_random_sets(m: int, n: int, d: int, k: int) -> None:
    gen = _gauss(m, d, seed=m + d) * 1.2 + 0.1
    real = _gauss(n, d, seed=n + 2 * d)
    _assert_dc_equal(gen, real, k)


def test_resampler_equals_reference_on_resamples() -> None:
    real = _grid(200, 5, seed=7)
    gen = torch.cat([real[:80], _grid(120, 5, seed=8)])
    resampler = PRDCResampler(gen, real)
    rng = np.random.default_rng(9)
    for _ in range(3):
        idx = torch.from_numpy(rng.integers(0, 200, 200))
        ref = _reference(gen[idx], real, 5)
        got = resampler(idx)
        assert got.density == pytest.approx(ref["density"], rel=1e-12, abs=0)
        assert got.coverage == pytest.approx(ref["coverage"], rel=1e-12, abs=0)


def test_precision_recall_follow_torch_fidelity_on_ties() -> None:
    # tie-heavy integer sets: torch-fidelity (≤) decides like exact arithmetic here too
    real = _grid(300, 4, seed=11)
    gen = _grid(280, 4, seed=12, levels=5)
    tf = prc_features_to_metric(gen.float(), real.float(), prc_neighborhood=3, verbose=False)
    ours = prdc(gen, real, k_pr=3, k_dc=5)
    assert round(ours.precision * 280) == round(tf["precision"] * 280)
    assert round(ours.recall * 300) == round(tf["recall"] * 300)
    # compute_prdc's own precision uses < and counts fewer on these ties (documented difference)
    assert _reference(gen, real, 3)["precision"] < ours.precision
