"""bfloat16 first pass: its error bound holds, the probe catches partial rounding, and the
k-NN search and precision/recall built on it give exactly the float32 path's answers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_eval.errors import InputError
from gan_eval.metrics import bf16_tiles
from gan_eval.metrics.bf16_tiles import (
    Bf16Error,
    Bf16Rows,
    Bf16SelfProducts,
    bf16_products_sound,
    use_bf16,
)
from gan_eval.metrics.neighbors import Centred, blocked_mean, self_search_squared


def _data(n: int, d: int, seed: int, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + offset


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 400),
    scale=st.floats(1e-3, 1e3),
    offset=st.floats(-100, 100),
    fold=st.floats(0.0, 1.5),
    seed=st.integers(0, 2**16),
    f32=st.booleans(),
)
def test_bf16_bound_holds(
    d: int, scale: float, offset: float, fold: float, seed: int, f32: bool
) -> None:
    # rows of very different norms; the folds subtract part of each squared norm (as radii do)
    a = _data(40, d, seed, scale, offset) * torch.logspace(-1, 1, 40, dtype=torch.float64)[:, None]
    b = _data(50, d, seed + 1, scale, offset)
    if f32:
        a, b = a.float(), b.float()
    center = blocked_mean(b)
    pa, pb = Centred(a, center), Centred(b, center)
    qa, rb = Bf16Rows(pa), Bf16Rows(pb, cache=False)
    alpha = pa.sqnorm * (1 - fold)
    beta = pb.sqnorm * (1 - fold) - 3.0
    shift = 3.0
    out = (qa.query_block(0, 40, alpha) @ rb.ref_block(0, 50, beta).T).double()
    exact_d2 = torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    exact = exact_d2 - fold * (pa.sqnorm[:, None] + pb.sqnorm[None, :]) - shift
    error = Bf16Error(qa, alpha, rb, beta, shift)
    rows, cols = torch.arange(40)[:, None], torch.arange(50)[None, :]
    bound = error.pair(rows, cols, out + shift)
    assert bool(((out - exact).abs() <= bound).all())
    # the per-row form (here without its output-rounding part) holds against every column
    inner = error.row(torch.arange(40), torch.full((40,), shift, dtype=torch.float64))
    excess = (out - exact).abs() - bf16_tiles.OUTPUT_UNIT * out.abs()
    assert bool((excess.amax(1) <= inner).all())
    # and is a useful bound: a few percent of the squared norms, not more
    scale2 = pa.sqnorm[:, None] + pb.sqnorm[None, :] + alpha.abs()[:, None] + beta.abs()[None, :]
    assert bool((bound <= 0.05 * scale2 + 1e-30).all())


def test_probe_accepts_this_build_and_catches_partial_rounding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert bf16_products_sound.__wrapped__(2052), "this torch build rounds bfloat16 partial sums"
    real_mm = torch.mm

    def blocked(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # a library that rounds the partial sum of each K half to bfloat16
        h = a.shape[1] // 2
        return real_mm(a[:, :h], b[:h]) + real_mm(a[:, h:], b[h:])

    monkeypatch.setattr(torch, "mm", blocked)
    assert not bf16_products_sound.__wrapped__(2052)
    assert not bf16_products_sound.__wrapped__(132)


def test_use_bf16_resolution() -> None:
    cpu = torch.device("cpu")
    assert use_bf16("float32", cpu, 64) is False
    assert use_bf16("bfloat16", cpu, 64) is True  # forced on any CPU whose probe passes
    assert use_bf16("bfloat16", torch.device("cuda"), 64) is False  # CUDA keeps float32
    native = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert use_bf16("auto", cpu, 2048) is bool(native)
    assert use_bf16("auto", cpu, 128) is False  # dlib-face features: float32 is faster
    with pytest.raises(InputError, match="products must be"):
        use_bf16("half", cpu, 64)  # type: ignore[arg-type]


def _lattice(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (n, d), generator=g).float()


@pytest.mark.parametrize(
    ("x", "k", "budget"),
    [
        (_data(700, 96, 1).float(), 3, 512 * 2**20),
        (_data(700, 96, 1).float(), 5, 2**20),  # uncached reference blocks
        (_lattice(500, 3, 2), 3, 512 * 2**20),  # more exact ties than the margin
        (torch.cat([_data(150, 40, 3)] * 3).float(), 2, 512 * 2**20),  # exact duplicates
        (_data(300, 2048, 4, offset=5.0).relu().float(), 4, 512 * 2**20),  # wide, non-negative
    ],
)
def test_bf16_self_search_equals_float32(x: torch.Tensor, k: int, budget: int) -> None:
    prep = Centred(x, blocked_mean(x))
    d_ref, i_ref = self_search_squared(x, k, None, budget)
    sp = Bf16SelfProducts(Bf16Rows(prep, cache=budget > 2**20), k, budget)
    d16, i16 = self_search_squared(x, k, None, budget, exact_cols=(k - 1,), prep=prep, products=sp)
    assert torch.equal(i16, i_ref)
    assert torch.equal(d16[:, k - 1], d_ref[:, k - 1])
