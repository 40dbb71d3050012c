"""CMMD against a direct float64 NumPy transcription of google-research cmmd/distance.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_eval.errors import InputError
from gan_eval.metrics import cmmd as cm

TOL = 1e-6


def reference_mmd(x: np.ndarray, y: np.ndarray) -> float:
    """google-research cmmd/distance.py ``mmd`` line by line, jnp → np, in float64."""
    sigma, scale = 10, 1000
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x_sqnorms = np.diag(np.matmul(x, x.T))
    y_sqnorms = np.diag(np.matmul(y, y.T))
    gamma = 1 / (2 * sigma**2)
    k_xx = np.mean(np.exp(-gamma * (-2 * np.matmul(x, x.T) + np.expand_dims(x_sqnorms, 1)
                                    + np.expand_dims(x_sqnorms, 0))))
    k_xy = np.mean(np.exp(-gamma * (-2 * np.matmul(x, y.T) + np.expand_dims(x_sqnorms, 1)
                                    + np.expand_dims(y_sqnorms, 0))))
    k_yy = np.mean(np.exp(-gamma * (-2 * np.matmul(y, y.T) + np.expand_dims(y_sqnorms, 1)
                                    + np.expand_dims(y_sqnorms, 0))))
    return float(scale * (k_xx + k_yy - 2 * k_xy))


def unit_rows(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Unit-norm rows, as CMMD's CLIP embeddings are."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    x[:, 0] += shift
    return (x / x.norm(dim=1, keepdim=True)).float()


@pytest.mark.parametrize(("n", "m", "d", "shift", "scale"), [
    (200, 150, 768, 0.5, 1.0),   # CLIP-like unit embeddings
    (64, 300, 128, 0.0, 0.6),    # dlib-face-like: small distances, different set sizes
    (50, 40, 16, 3.0, 20.0),     # large distances: kernel values near 0
])
def test_equals_reference_formula(n: int, m: int, d: int, shift: float, scale: float) -> None:
    x = unit_rows(n, d, 1, shift) * scale
    y = unit_rows(m, d, 2) * scale
    ours = cm.cmmd(x, y)
    ref = reference_mmd(x.numpy(), y.numpy())
    assert ref > 0
    assert abs(ours - ref) <= TOL * abs(ref), (ours, ref)


def test_tiling_does_not_change_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = unit_rows(300, 64, 3, 0.3) * 4, unit_rows(250, 64, 4) * 4
    whole = cm.cmmd(x, y)
    monkeypatch.setattr(cm, "_TILE_BYTES", 8 * 300 * 7)  # 7-row tiles
    assert abs(cm.cmmd(x, y) - whole) <= 1e-12 * whole
    assert abs(whole - reference_mmd(x.numpy(), y.numpy())) <= TOL * whole


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), m=st.integers(1, 30), d=st.integers(1, 12),
       seed=st.integers(0, 2**16), spread=st.floats(0.01, 30.0))
def test_zero_on_itself_nonnegative_otherwise(n: int, m: int, d: int, seed: int,
                                              spread: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen) * spread
    y = torch.randn(m, d, generator=gen) * spread
    assert cm.cmmd(x, x) == 0.0
    assert cm.cmmd(x, x.clone()) == 0.0
    value = cm.cmmd(x, y)
    assert value >= 0.0
    ref = reference_mmd(x.numpy(), y.numpy())
    assert abs(value - max(ref, 0.0)) <= TOL * max(abs(ref), 1e-9) + 1e-9


def test_input_errors() -> None:
    x = torch.randn(5, 3)
    with pytest.raises(InputError, match="generated"):
        cm.cmmd(torch.full((5, 3), float("nan")), x)
    with pytest.raises(InputError):
        cm.cmmd(x, torch.randn(5, 4))
    with pytest.raises(InputError, match="sigma"):
        cm.cmmd(x, x, sigma=0.0)

