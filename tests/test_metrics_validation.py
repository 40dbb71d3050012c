"""Every public metric function rejects unusable features with an InputError naming the argument."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.metrics import (
    FeatureStats,
    density_coverage,
    inception_score,
    kid,
    memorization,
    nearest,
    prdc,
    precision_recall,
)

PAIR_FUNCTIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
    "precision_recall": lambda a, b: precision_recall(a, b, k=1),
    "density_coverage": lambda a, b: density_coverage(a, b, k=1),
    "prdc": lambda a, b: prdc(a, b, k_pr=1, k_dc=1),
    "kid": lambda a, b: kid(a, b, subsets=2, subset_size=2),
    "memorization": lambda a, b: memorization(a, b),
    "nearest": lambda a, b: nearest(a, b),
}


def _ok(n: int = 6, d: int = 3) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(n * 10 + d))


@pytest.mark.parametrize("name", sorted(PAIR_FUNCTIONS))
def test_nan_and_inf_rejected(name: str) -> None:
    fn = PAIR_FUNCTIONS[name]
    for value in (float("nan"), float("inf"), -float("inf")):
        bad = _ok()
        bad[2, 1] = value
        with pytest.raises(InputError, match="NaN or inf"):
            fn(bad, _ok())
        with pytest.raises(InputError, match="NaN or inf"):
            fn(_ok(), bad)


@pytest.mark.parametrize("name", sorted(PAIR_FUNCTIONS))
def test_mismatched_dims_rejected(name: str) -> None:
    with pytest.raises(InputError, match="feature dimensions"):
        PAIR_FUNCTIONS[name](_ok(d=3), _ok(d=4))


@pytest.mark.parametrize("name", sorted(set(PAIR_FUNCTIONS) - {"nearest", "memorization"}))
def test_single_sample_rejected(name: str) -> None:
    with pytest.raises(InputError, match="at least 2 samples"):
        PAIR_FUNCTIONS[name](_ok(n=1), _ok())


def test_shapes_and_types_rejected() -> None:
    with pytest.raises(InputError, match="2-D"):
        FeatureStats.from_features(torch.randn(5))
    with pytest.raises(InputError, match="floating-point"):
        precision_recall(torch.ones(5, 2, dtype=torch.int64), _ok(d=2))
    with pytest.raises(InputError, match=r"torch\.Tensor"):
        kid([[0.0, 1.0]], _ok(d=2))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="logits"):
        inception_score(torch.randn(4, 3, 2))


def test_half_precision_is_accepted() -> None:
    a = _ok(20, 4).half()
    b = _ok(30, 4).bfloat16()
    assert 0.0 <= precision_recall(a, b, k=2).precision <= 1.0
