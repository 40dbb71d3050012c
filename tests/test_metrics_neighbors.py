"""Exact blocked k-NN: equal to sklearn, tie-stable, block-size invariant, certified."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import NearestNeighbors

from gan_eval.errors import InputError
from gan_eval.metrics.neighbors import (
    Centred,
    kth_neighbor_distance,
    nearest,
    nearest_peak_bytes,
    self_neighbors,
    smallest_per_column,
    smallest_per_row,
    squared_distance_tolerance,
)


def _data(n: int, d: int, seed: int, dtype: torch.dtype = torch.float32, offset: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) + offset).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 4])
def test_nearest_equals_sklearn(dtype: torch.dtype, k: int) -> None:
    q, r = _data(230, 24, 0, dtype, offset=3.0), _data(410, 24, 1, dtype, offset=3.0)
    ours = nearest(q, r, k=k, block_rows=97)
    dist, idx = (
        NearestNeighbors(n_neighbors=k).fit(r.double().numpy()).kneighbors(q.double().numpy())
    )
    np.testing.assert_array_equal(ours.indices.numpy(), idx)
    np.testing.assert_allclose(ours.distances.numpy(), dist, rtol=1e-10, atol=1e-10)
    assert ours.distances.dtype == torch.float64 and ours.indices.dtype == torch.int64


@pytest.mark.parametrize("shape", [(64, 1024), (1024, 64), (3, 192), (100, 1000)])
@pytest.mark.parametrize("c", [1, 3])
def test_two_stage_selection_returns_the_smallest_values(shape: tuple[int, int], c: int) -> None:
    s = torch.randint(0, 40, shape, generator=torch.Generator().manual_seed(c)).float()  # ties
    v, p = smallest_per_row(s, c)
    ref = s.topk(c, dim=1, largest=False).values
    assert torch.equal(v.sort(1).values, ref.sort(1).values)
    assert torch.equal(s.gather(1, p), v)
    assert bool((p.sort(1).values.diff(dim=1) > 0).all())  # distinct positions
    vc, pc = smallest_per_column(s, c)
    refc = s.topk(c, dim=0, largest=False).values
    assert torch.equal(vc.sort(0).values, refc.sort(0).values)
    assert torch.equal(s.gather(0, pc), vc)


def test_large_blocks_use_the_two_stage_path_and_stay_exact() -> None:
    q, r = _data(300, 8, 10), _data(2048, 8, 11)
    ours = nearest(q, r, k=2, block_rows=1024)
    _, idx = NearestNeighbors(n_neighbors=2).fit(r.double().numpy()).kneighbors(q.double().numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), idx)
    x = _data(1024, 8, 12)
    sn = self_neighbors(x, 2, block_rows=512)
    _, idx = NearestNeighbors(n_neighbors=3).fit(x.double().numpy()).kneighbors(x.double().numpy())
    np.testing.assert_array_equal(sn.indices.numpy(), idx[:, 1:])


def test_small_memory_budget_tiles_narrower_than_strips() -> None:
    # 1 MiB: no cached reference, tiles of 128 columns inside strips of 512 rows
    x = _data(3000, 64, 13)
    sn = self_neighbors(x, 3, memory_budget=2**20)
    _, idx = NearestNeighbors(n_neighbors=4).fit(x.double().numpy()).kneighbors(x.double().numpy())
    np.testing.assert_array_equal(sn.indices.numpy(), idx[:, 1:])
    nb = nearest(x[:700], x, k=2, exclude_index=torch.arange(700), memory_budget=2**20)
    np.testing.assert_array_equal(nb.indices.numpy(), idx[:700, 1:3])


def test_self_neighbors_equals_sklearn_and_cross_path() -> None:
    x = _data(333, 16, 2)
    ours = self_neighbors(x, 3, block_rows=64)
    dist, idx = (
        NearestNeighbors(n_neighbors=4).fit(x.double().numpy()).kneighbors(x.double().numpy())
    )
    np.testing.assert_array_equal(ours.indices.numpy(), idx[:, 1:])
    np.testing.assert_allclose(ours.distances.numpy(), dist[:, 1:], rtol=1e-10)
    # same tensor twice → symmetric pass; a copy → cross pass with the diagonal excluded
    same = nearest(x, x, k=3, exclude_self=True, block_rows=100)
    cross = nearest(x, x.clone(), k=3, exclude_self=True, block_rows=100)
    assert torch.equal(same.indices, cross.indices)
    torch.testing.assert_close(same.distances, cross.distances, rtol=1e-12, atol=0)


def test_kth_neighbor_distance_is_kthvalue_k_plus_1_convention() -> None:
    x = _data(120, 8, 3, torch.float64)
    ref = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist").kthvalue(4, dim=1).values
    torch.testing.assert_close(kth_neighbor_distance(x, 3, block_rows=50), ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("block_rows", [7, 64, 1000])
def test_ties_go_to_lower_index_whatever_the_blocks(block_rows: int) -> None:
    base = _data(30, 5, 4)
    x = torch.cat([base, base, base])  # every row has two exact duplicates
    nb = self_neighbors(x, 2, block_rows=block_rows)
    i = torch.arange(30)
    expected = torch.stack(
        [torch.stack([i + 30, i + 60], 1), torch.stack([i, i + 60], 1), torch.stack([i, i + 30], 1)]
    ).reshape(90, 2)
    assert torch.equal(nb.indices, expected)
    assert bool((nb.distances == 0).all())
    q = nearest(base[:3], x, k=3, block_rows=block_rows)
    assert torch.equal(
        q.indices, torch.stack([torch.arange(3), torch.arange(3) + 30, torch.arange(3) + 60], 1)
    )


def test_more_ties_than_margin_fall_back_to_exact_search() -> None:
    # 12 reference points at exactly the same distance 1 from the query; the lowest index wins
    # even though it sits in the last block.
    d = 12
    ref = torch.cat([10 * torch.ones(5, d), torch.eye(d).flip(0)])  # rows 5..16 are unit vectors
    query = torch.zeros(1, d)
    for block_rows in (3, 6, 100):
        nb = nearest(query, ref, k=2, block_rows=block_rows)
        assert nb.indices.tolist() == [[5, 6]]
        assert nb.distances.tolist() == [[1.0, 1.0]]


@pytest.mark.parametrize("block_rows", [None, 48])
def test_lattice_ties_match_a_stable_brute_force(block_rows: int | None) -> None:
    # integer points: nearly every row has more exact ties than the candidate margin
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 4, (400, 3), generator=g).float()
    q = torch.randint(0, 4, (50, 3), generator=g).float()
    exact = torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    exact.fill_diagonal_(float("inf"))
    d_ref, i_ref = exact.sort(dim=1, stable=True)
    sn = self_neighbors(x, 6, block_rows=block_rows)
    assert torch.equal(sn.indices, i_ref[:, :6])
    assert torch.equal(sn.distances, d_ref[:, :6])
    cross = torch.cdist(q.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    d_ref, i_ref = cross.sort(dim=1, stable=True)
    nb = nearest(q, x, k=6, block_rows=block_rows)
    assert torch.equal(nb.indices, i_ref[:, :6])
    assert torch.equal(nb.distances, d_ref[:, :6])


def test_exclude_index() -> None:
    x = _data(50, 4, 5)
    rows = torch.tensor([3, 17, 40])
    nb = nearest(x[rows], x, k=1, exclude_index=rows)
    full = self_neighbors(x, 1)
    assert torch.equal(nb.indices[:, 0], full.indices[rows, 0])
    with pytest.raises(InputError, match="exclude_index"):
        nearest(x[rows], x, exclude_index=torch.tensor([1, 2]))


def test_large_common_offset_stays_exact() -> None:
    # float32 expansion without centring would lose everything at this offset
    q, r = _data(40, 6, 6, torch.float64, offset=1e5), _data(300, 6, 7, torch.float64, offset=1e5)
    ours = nearest(q, r, k=2, block_rows=128)
    _, idx = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(r.numpy()).kneighbors(q.numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), idx)
    d_exact = (q[:, None, :] - r[ours.indices]).norm(dim=-1)
    torch.testing.assert_close(ours.distances, d_exact, rtol=1e-12, atol=0)


@settings(max_examples=25, deadline=None)
@given(
    d=st.integers(1, 300),
    scale=st.floats(1e-3, 1e3),
    offset=st.floats(-100, 100),
    seed=st.integers(0, 2**16),
)
def test_float32_error_bound_holds(d: int, scale: float, offset: float, seed: int) -> None:
    a = _data(40, d, seed, torch.float64) * scale + offset
    b = _data(50, d, seed + 1, torch.float64) * scale + offset
    center = b.mean(0)
    pa, pb = Centred(a, center, 16), Centred(b, center, 16)
    approx = (pa.query_block(0, 40, pa.sqnorm) @ pb.ref_block(0, 50, pb.sqnorm).T).double()
    exact = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()
    bound = squared_distance_tolerance(d) * (pa.sqnorm[:, None] + pb.sqnorm[None, :])
    assert bool(((approx - exact).abs() <= bound).all())


def test_input_errors_and_memory_formula() -> None:
    x = _data(10, 3, 8)
    with pytest.raises(InputError, match="k=11"):
        nearest(x, x, k=11)
    with pytest.raises(InputError, match="k=10"):
        self_neighbors(x, 10)
    with pytest.raises(InputError, match="feature dimensions"):
        nearest(x, _data(10, 4, 9))
    with pytest.raises(InputError, match="same set"):
        nearest(x, x[:5], exclude_self=True)
    # 50,000 × 200,000 × 128-d fits in far less than 24 GiB beyond its inputs
    assert nearest_peak_bytes(50_000, 200_000, 128, k=1) < 1 * 2**30
