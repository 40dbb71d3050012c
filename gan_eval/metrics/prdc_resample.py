"""Precision / recall / density / coverage of many resamples of the generated set, from one pass.

Resampling intervals need ``prdc(generated[idx], real)`` for many index vectors ``idx`` (random
subsets, or rows drawn with replacement: :func:`resample_indices`). Run one by one, each call
repeats the whole computation (2.1 s per resample at 10,000 × 10,000 × 2,048 on 2 CPU threads:
3.5 minutes for 100). But only the
generated set changes, and it changes by multiplicities:

* a generated sample's precision hit and density count do not depend on the other generated
  samples: each resample is a weighted mean of per-sample values;
* a real sample is covered when some generated sample present in the resample lies in its ball;
* recall needs each present generated sample's radius *within the resample*: the k-th nearest of
  its other copies (distance 0, a duplicate row) and of its neighbours that are present. From its
  ``K = k + 20`` nearest neighbours in the full set that is exact whenever at least ``k`` of them
  (with multiplicity) or of its copies are present; then the radius is at most the K-th
  neighbour distance ``R_i``, and every real sample it can reach is within ``R_i``.

So one pass lists, with exact float64 distances, every (generated, real) pair within
``max(R_i, real radius_j)`` (blocked float32 products, pairs within the float32 error bound of the
threshold included), and each resample is then a few vector operations over those pairs. A
resample with a sample whose K-list is too sparse (probability ~e⁻²⁰ per sample) falls back to
:func:`~gan_eval.metrics.prc.prdc` on its rows. Results equal :func:`~gan_eval.metrics.prc.prdc`
(tests/test_metrics_prdc_resample.py). Measured at 10,000 × 2,048: the pass 7.6 s, then 4 ms
per resample; ``benchmarks/metrics_math.py --only boot``: 20 resamples at 4,000 × 2,048 in
1.56 s against 15.6 s for the loop of ``prdc`` calls, all equal.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from gan_eval.metrics.neighbors import (
    DEFAULT_MEMORY_BUDGET,
    Centred,
    RefTiles,
    block_ranges,
    blocked_mean,
    exact_sqdist_pairs,
    plan_tiles,
    score_buffer,
    self_search_squared,
    squared_distance_tolerance,
    tile_product,
)
from gan_eval.metrics.prc import PRDC, _f_score, _validate, prdc

__all__ = ["PRDCResampler", "resample_indices"]

_EXTRA_NEIGHBOURS = 20
_MAX_PAIRS = 20_000_000  # beyond this (nearly every pair within a radius) resample by recomputing


def resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[torch.Tensor]:
    """Seeded draws of ``n`` rows from ``n`` with replacement: ``n_resamples`` int64 ``(n,)``
    tensors, drawn lazily with ``numpy.random.default_rng(seed).integers(0, n, n)`` (the same
    ``(n, n_resamples, seed)`` always gives the same sequence)."""
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield torch.from_numpy(rng.integers(0, n, n, dtype=np.int64))


class PRDCResampler:
    """``resampler(idx)`` equals ``prdc(generated[idx], real, k_pr=k_pr, k_dc=k_dc)``.

    Args:
        generated: ``(M, D)`` generated features.
        real: ``(N, D)`` real features.
        k_pr, k_dc: as :func:`~gan_eval.metrics.prc.prdc`.
        memory_budget: working memory of the blocked passes (bytes).
        extra_neighbours: neighbours listed per generated sample beyond ``k_pr`` (None: 20).
            Bootstrap resamples hold ~63 % of the rows; subsets of a fraction ``f`` of the rows
            need about ``(k_pr + 8)/f`` listed to avoid recomputing (60 for quarters).

    Raises:
        InputError: as :func:`~gan_eval.metrics.prc.prdc`.
    """

    def __init__(
        self,
        generated: torch.Tensor,
        real: torch.Tensor,
        *,
        k_pr: int = 3,
        k_dc: int = 5,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        extra_neighbours: int | None = None,
    ) -> None:
        gen, ref = _validate(generated, real, {"k_pr": k_pr, "k_dc": k_dc}, memory_budget)
        self.gen, self.real = gen, ref
        self.k_pr, self.k_dc, self.memory_budget = k_pr, k_dc, memory_budget
        m, n = gen.shape[0], ref.shape[0]
        dev = gen.device
        k_real = max(k_pr, k_dc)
        real_d2, _ = self_search_squared(
            ref, k_real, None, memory_budget, exact_cols=tuple(sorted({k_pr - 1, k_dc - 1}))
        )
        r_pr, r_dc = real_d2[:, k_pr - 1].contiguous(), real_d2[:, k_dc - 1].contiguous()
        extra = _EXTRA_NEIGHBOURS if extra_neighbours is None else max(0, int(extra_neighbours))
        k_nb = min(k_pr + extra, m - 1)
        self.nb_d2, self.nb_idx = self_search_squared(gen, k_nb, None, memory_budget)
        reach = self.nb_d2[:, -1]  # R_i²: no resample radius exceeds it (else: fallback)

        pairs = _pairs_within(gen, ref, reach, torch.maximum(r_pr, r_dc), memory_budget)
        self.direct = pairs is None
        if pairs is None:
            return
        ii, jj, d2 = pairs
        in_pr = d2 <= r_pr[jj]
        in_dc = d2 < r_dc[jj]  # density/coverage: open balls, as prc.prdc
        self.precision_hit = torch.zeros(m, dtype=torch.float64, device=dev)
        self.precision_hit[ii[in_pr]] = 1.0
        self.density_count = torch.bincount(ii[in_dc], minlength=m).double()
        self.dc_pairs = (ii[in_dc], jj[in_dc])
        near = d2 <= reach[ii]  # candidates for recall: within some resample's radius
        self.recall_pairs = (ii[near], jj[near], d2[near])
        self.n_real = n

    def __call__(self, idx: torch.Tensor) -> PRDC:
        """The metrics of the generated rows ``idx`` (int64, any length ≥ 2, repeats allowed).

        Equals ``prdc(generated[idx], real, ...)``: a resample with replacement, or a subset.
        """
        idx = idx.to(self.gen.device)
        count = None if self.direct else torch.bincount(idx, minlength=self.gen.shape[0])
        # None also when a present sample lacks k present neighbours in its list
        radius2 = None if count is None else self._radii(count)
        if count is None or radius2 is None:  # recompute this resample
            return prdc(
                self.gen[idx], self.real, k_pr=self.k_pr, k_dc=self.k_dc,
                memory_budget=self.memory_budget,
            )  # fmt: skip
        present = count > 0
        # integer sums divided once, as prdc's means of per-row values
        weight = count.double()
        precision = float((weight * self.precision_hit).sum() / idx.numel())
        density = float((weight * self.density_count).sum() / idx.numel()) / self.k_dc
        ci, cj = self.dc_pairs
        covered = torch.zeros(self.n_real, dtype=torch.bool, device=idx.device)
        covered[cj[present[ci]]] = True
        ri, rj, rd2 = self.recall_pairs
        recalled = torch.zeros(self.n_real, dtype=torch.bool, device=idx.device)
        recalled[rj[present[ri] & (rd2 <= radius2[ri])]] = True
        recall = float(recalled.double().mean())
        return PRDC(
            precision=precision,
            recall=recall,
            f_score=_f_score(precision, recall),
            density=density,
            coverage=float(covered.double().mean()),
            k_pr=self.k_pr,
            k_dc=self.k_dc,
        )

    def _radii(self, count: torch.Tensor) -> torch.Tensor | None:
        """Squared k_pr-th neighbour distance of each present sample within the resample.

        A sample's other copies are neighbours at distance 0; then its listed neighbours in
        order, each as many times as it is present. None if a present sample runs out of list.
        """
        k = self.k_pr
        copies = count - 1  # other copies of a present sample (-1 for absent ones)
        need = (k - copies).clamp_min(0)  # neighbours still needed beyond the copies
        have = count[self.nb_idx].cumsum(dim=1)  # present neighbours, with multiplicity
        reached = have >= need[:, None]
        present = count > 0
        if bool((present & (need > 0) & ~reached[:, -1]).any()):
            return None
        first = reached.to(torch.int8).argmax(dim=1)  # first position where enough are present
        radius2 = self.nb_d2.gather(1, first[:, None]).squeeze(1)
        return torch.where(need > 0, radius2, torch.zeros_like(radius2))


def _pairs_within(
    gen: torch.Tensor,
    real: torch.Tensor,
    row_r2: torch.Tensor,
    col_r2: torch.Tensor,
    memory_budget: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Every pair with ``D²_ij ≤ max(row_r2_i, col_r2_j)`` and its exact squared distance.

    Float32 blocked products; a pair within the float32 error bound of either threshold is kept
    too (its exact distance decides later). None when more than ``_MAX_PAIRS`` pairs qualify.
    """
    m, d = gen.shape
    n = real.shape[0]
    dev = gen.device
    center = blocked_mean(real)
    gp, rp = Centred(gen, center), Centred(real, center)
    tiles = plan_tiles(m, n, d, memory_budget)
    ref_tiles = RefTiles(rp, rp.sqnorm, tiles.cache_ref)
    tol = squared_distance_tolerance(d, dev) * (float(gp.sqnorm.max()) + float(rp.sqnorm.max()))
    up = 1.0 + 2.0**-20  # the float32 thresholds round up
    row_t = ((row_r2 + tol) * up).float()
    col_t = ((col_r2 + tol) * up).float()
    scores = score_buffer(min(tiles.rows, m), min(tiles.cols, n), dev)
    found_i, found_j = [], []
    total = 0
    for i0, i1 in block_ranges(m, tiles.rows):
        qa = gp.query_block(i0, i1, gp.sqnorm[i0:i1])
        for j0, j1 in block_ranges(n, tiles.cols):
            s = tile_product(qa, ref_tiles(j0, j1), scores)  # approximate D²
            mask = (s <= row_t[i0:i1, None]) | (s <= col_t[None, j0:j1])
            ii, jj = mask.nonzero(as_tuple=True)
            total += ii.numel()
            if total > _MAX_PAIRS:
                return None
            found_i.append(ii + i0)
            found_j.append(jj + j0)
    ii, jj = torch.cat(found_i), torch.cat(found_j)
    d2 = exact_sqdist_pairs(gen, real, ii, jj, memory_budget)
    return ii, jj, d2
