"""Bootstrap confidence intervals over the generated set, with a fast path for FID.

:func:`bootstrap_ci` resamples the generated set's row indices with replacement (``n`` draws from
``n``), evaluates a metric on each resample and returns the percentile interval. The reference
set is held fixed: the interval describes the sampling noise of the *generated* side, which is
what changes between checkpoints.

:class:`FIDResampler` makes FID bootstrap cheap: a resample is a vector of counts ``w``, and its
mean and covariance are weighted sums of the original rows, so no resampled feature matrix is
built. With ``Σ_ref = G Gᵀ`` fixed, ``tr√(Σ_w Σ_ref)`` is the sum of square roots of the
eigenvalues of ``Gᵀ Σ_w G = Ycᵀ diag(w) Yc / (n − 1)`` with ``Y = X G`` precomputed once — one
``n·D²`` product and one ``D × D`` ``eigvalsh`` per resample; when ``n < D`` the same eigenvalues
come from the ``n_unique × n_unique`` weighted Gram matrix of ``Y`` instead.

Bias and ``method``: a resample has only ≈ 63% distinct rows, and FID is biased upward at small
effective sample size, so FID bootstrap values sit *above* the point estimate — at n = 1,000,
D = 128 the whole percentile interval can lie above it. ``method="percentile"`` (the classic
interval, default of :func:`bootstrap_ci`) reports that as is; ``method="bias_shifted"`` (default
of :func:`fid_bootstrap_ci`) subtracts the bootstrap bias ``mean(values) − estimate`` from both
percentiles, giving the spread of the statistic around the point estimate — the question "how much
would FID at this n move with another draw of generated samples".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.metrics.frechet import FeatureStats, psd_factor
from gan_eval.metrics.neighbors import check_features

__all__ = [
    "BootstrapCI",
    "FIDResampler",
    "Method",
    "bootstrap_ci",
    "fid_bootstrap_ci",
    "interval_from_values",
    "resample_indices",
]

Method = Literal["percentile", "bias_shifted"]
_BATCH_BYTES = 64 * 2**20


@dataclass(frozen=True)
class BootstrapCI:
    """A percentile bootstrap interval.

    Attributes:
        low, high: interval bounds at ``record["level"]``.
        estimate: the metric on the generated set itself (indices ``0 … n−1``).
        values: float64 ``(n_resamples,)`` metric values on the resamples, in draw order.
        record: ``{"n_resamples", "seed", "level", "method", "resampled": "generated"}`` for the
            results JSON (``method`` is ``"percentile"`` or ``"bias_shifted"``).
    """

    low: float
    high: float
    estimate: float
    values: torch.Tensor = field(repr=False)
    record: dict[str, Any]

    @property
    def interval(self) -> tuple[float, float]:
        """``(low, high)``."""
        return (self.low, self.high)


def resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[torch.Tensor]:
    """The index vectors a seeded bootstrap uses: ``n_resamples`` int64 ``(n,)`` tensors.

    Drawn lazily with ``numpy.random.default_rng(seed).integers(0, n, n)`` one resample after
    another, so the same ``(n, n_resamples, seed)`` always gives the same sequence.
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_resamples):
        yield torch.from_numpy(rng.integers(0, n, n, dtype=np.int64))


def _check_args(n_generated: int, n_resamples: int, level: float, method: str) -> None:
    if method not in ("percentile", "bias_shifted"):
        raise InputError(f"method must be 'percentile' or 'bias_shifted', got {method!r}")
    if n_generated < 2:
        raise InputError(f"bootstrap needs at least 2 generated samples, got {n_generated}")
    if n_resamples < 2:
        raise InputError(f"n_resamples must be ≥ 2, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    metric_fn: Callable[[torch.Tensor], float],
    n_generated: int,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "percentile",
) -> BootstrapCI:
    """Bootstrap interval of ``metric_fn`` over resamples of the generated set.

    Args:
        metric_fn: maps an int64 ``(n_generated,)`` tensor of generated-row indices (drawn
            with replacement) to the metric value on those rows, e.g.
            ``lambda idx: precision_recall(gen[idx], real).precision``.
        n_generated: size of the generated set (≥ 2).
        n_resamples: number of resamples (≥ 2; 1,000 is customary for 95% intervals).
        seed: seed of the index stream (see :func:`resample_indices`); same seed, same interval.
        level: coverage of the interval, e.g. 0.95 → 2.5th and 97.5th percentiles (linear
            interpolation, as ``numpy.percentile``).
        method: ``"percentile"`` (classic) or ``"bias_shifted"`` (percentiles minus the
            bootstrap bias, for biased statistics such as FID; see the module docstring).

    Raises:
        InputError: bad arguments, or ``metric_fn`` returned NaN/inf.
    """
    _check_args(n_generated, n_resamples, level, method)
    estimate = float(metric_fn(torch.arange(n_generated)))
    values = torch.empty(n_resamples, dtype=torch.float64)
    for r, idx in enumerate(resample_indices(n_generated, n_resamples, seed)):
        values[r] = float(metric_fn(idx))
    return interval_from_values(values, estimate, n_resamples, seed, level, method)


def interval_from_values(
    values: torch.Tensor, estimate: float, n_resamples: int, seed: int, level: float, method: str
) -> BootstrapCI:
    """The interval of float64 resample ``values`` around ``estimate`` (see ``method`` above).

    For callers that compute several metrics per resample themselves (same index stream:
    :func:`resample_indices`). Raises :class:`InputError` on NaN/inf.
    """
    if not (bool(torch.isfinite(values).all()) and math.isfinite(estimate)):
        raise InputError("the metric returned NaN or inf on the generated set or a resample")
    alpha = (1.0 - level) / 2.0
    q = torch.quantile(values, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    shift = float(values.mean()) - estimate if method == "bias_shifted" else 0.0
    return BootstrapCI(
        low=float(q[0]) - shift,
        high=float(q[1]) - shift,
        estimate=estimate,
        values=values,
        record={
            "n_resamples": n_resamples,
            "seed": seed,
            "level": level,
            "method": method,
            "resampled": "generated",
        },
    )


class FIDResampler:
    """FID of weighted resamples of generated features against fixed reference statistics.

    ``resampler(idx)`` equals ``frechet_distance(FeatureStats.from_features(generated[idx]),
    reference)`` (up to float64 rounding) without building ``generated[idx]``.

    Args:
        generated: ``(n, D)`` float generated features (``n ≥ 2``).
        reference: :class:`FeatureStats` of the reference set (same ``D``).
    """

    def __init__(self, generated: torch.Tensor, reference: FeatureStats) -> None:
        x = check_features(generated, "generated", min_rows=2).double()
        if x.shape[1] != reference.d:
            raise InputError(
                f"generated has {x.shape[1]} feature dimensions but the reference statistics "
                f"have {reference.d}"
            )
        self.n, self.d = x.shape
        self.device = x.device
        shift = x.mean(0)
        self._x0 = x - shift  # rows centred on the unweighted mean (shift-invariant quantities)
        self._mu_ref = reference.mean.to(x.device) - shift
        self._tr_ref = float(torch.trace(reference.cov))
        self._sq = self._x0.square().sum(1)
        # any G with G Gᵀ = Σ_ref serves; the stored (n_ref, D) factor of a small reference
        # gives the narrower (n, n_ref) product
        factor = (reference.factor.T if reference.factor is not None
                  else psd_factor(reference.cov.to(x.device)))
        y0 = self._x0 @ factor.to(x.device)
        self._width = y0.shape[1]
        self._use_gram = self.n < self._width
        self._y0 = y0
        self._gram = y0 @ y0.T if self._use_gram else None

    def counts(self, idx: torch.Tensor) -> torch.Tensor:
        """float64 ``(n,)`` multiplicities of each generated row in ``idx``."""
        if idx.dim() != 1 or idx.numel() < 2:
            raise InputError("resample indices must be a 1-D tensor with at least 2 entries")
        return torch.bincount(idx.to(self._x0.device), minlength=self.n).double()

    def from_counts(self, w: torch.Tensor) -> float:
        """FID of the resample with row multiplicities ``w`` (float64 ``(n,)``, sum ≥ 2)."""
        m = float(w.sum())
        mu = (w @ self._x0) / m
        diff = mu - self._mu_ref
        tr_gen = (float(w @ self._sq) - m * float(mu @ mu)) / (m - 1.0)
        if self._gram is not None:
            u = w.nonzero().flatten()
            wu = w[u]
            hu = self._gram[u][:, u]
            h = (hu @ wu) / m
            c = float(wu @ h) / m
            centred = hu - h[:, None] - h[None, :] + c
            s = wu.sqrt()
            mat = centred * s[:, None] * s[None, :] / (m - 1.0)
        else:
            mu_y = (w @ self._y0) / m
            mat = (self._y0.T @ (self._y0 * w[:, None]) - m * torch.outer(mu_y, mu_y)) / (m - 1.0)
        mat = (mat + mat.T) * 0.5
        tr_sqrt = float(torch.linalg.eigvalsh(mat).clamp_(min=0.0).sqrt_().sum())
        return float(diff @ diff) + tr_gen + self._tr_ref - 2.0 * tr_sqrt

    def from_counts_batch(self, w: torch.Tensor) -> torch.Tensor:
        """float64 ``(R,)`` FIDs for a batch of multiplicity rows ``w`` (float64 ``(R, n)``).

        Batched matmuls and ``eigvalsh`` in chunks of 64 MiB; equal to :meth:`from_counts` row
        by row up to rounding. Uses the Gram form row by row when ``n < D``.
        """
        if self._gram is not None:
            return torch.tensor([self.from_counts(row) for row in w], dtype=torch.float64)
        out = torch.empty(w.shape[0], dtype=torch.float64)
        step = max(1, _BATCH_BYTES // (8 * self.n * max(self.d, self._width)))
        for r0 in range(0, w.shape[0], step):
            wb = w[r0 : r0 + step]
            m = wb.sum(1)
            mu = (wb @ self._x0) / m[:, None]
            diff = mu - self._mu_ref
            tr_gen = (wb @ self._sq - m * mu.square().sum(1)) / (m - 1.0)
            mu_y = (wb @ self._y0) / m[:, None]
            mat = (self._y0.T[None] * wb[:, None, :]) @ self._y0
            mat -= m[:, None, None] * (mu_y[:, :, None] * mu_y[:, None, :])
            mat /= (m - 1.0)[:, None, None]
            mat = (mat + mat.transpose(1, 2)) * 0.5
            tr_sqrt = torch.linalg.eigvalsh(mat).clamp_(min=0.0).sqrt_().sum(1)
            fid = diff.square().sum(1) + tr_gen + self._tr_ref - 2.0 * tr_sqrt
            out[r0 : r0 + step] = fid.cpu()
        return out

    def of_subsets(self, idx: torch.Tensor) -> torch.Tensor:
        """float64 ``(P,)``: FID of each row of ``idx`` (int64 ``(P, m)``, distinct rows each).

        Each subset's statistics come from its own ``m`` rows (``m·D²`` per subset instead of
        ``n·D²`` through :meth:`from_counts_batch`): the disjoint halves and quarters that
        :mod:`gan_eval.metrics.intervals` uses. ``tr√`` from the ``m × m`` Gram matrix when
        ``m < D``. Equal to ``frechet_distance`` of ``generated[idx[p]]`` up to rounding.
        """
        if idx.dim() != 2 or idx.shape[1] < 2:
            raise InputError("subset indices must be a (P, m) tensor with m ≥ 2")
        idx = idx.to(self.device)
        out = torch.empty(idx.shape[0], dtype=torch.float64)
        p_count, m = idx.shape
        step = max(1, _BATCH_BYTES // (8 * m * max(self.d, self._width, m)))
        for r0 in range(0, p_count, step):
            rows = idx[r0 : r0 + step]
            x = self._x0[rows]  # (p, m, D)
            mu = x.mean(1)
            diff = mu - self._mu_ref
            xc = x - mu[:, None, :]
            tr_gen = xc.square().sum((1, 2)) / (m - 1.0)
            y = self._y0[rows]
            y = y - y.mean(1, keepdim=True)
            mat = y @ y.transpose(1, 2) if m < self._width else y.transpose(1, 2) @ y
            mat = (mat + mat.transpose(1, 2)) * (0.5 / (m - 1.0))
            tr_sqrt = torch.linalg.eigvalsh(mat).clamp_(min=0.0).sqrt_().sum(1)
            fid = diff.square().sum(1) + tr_gen + self._tr_ref - 2.0 * tr_sqrt
            out[r0 : r0 + rows.shape[0]] = fid.cpu()
        return out

    def __call__(self, idx: torch.Tensor) -> float:
        return self.from_counts(self.counts(idx))

    def point_estimate(self) -> float:
        """FID of the generated set itself (all multiplicities 1)."""
        return self.from_counts(torch.ones(self.n, dtype=torch.float64, device=self._x0.device))


def fid_bootstrap_ci(
    generated: torch.Tensor,
    reference: FeatureStats,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "bias_shifted",
) -> BootstrapCI:
    """Bootstrap interval of FID over resamples of ``generated`` (fast, batched path).

    Same indices, hence the same values up to float64 rounding, as
    ``bootstrap_ci(FIDResampler(generated, reference), len(generated), ...)``. About
    ``n·D² + D³`` work per resample (``n·D·n_unique + n_unique³`` when ``n < D``). The default
    ``method="bias_shifted"`` centres the interval on the point estimate (see module docstring);
    pass ``method="percentile"`` for the classic percentile interval.
    """
    resampler = FIDResampler(generated, reference)
    _check_args(resampler.n, n_resamples, level, method)
    n = resampler.n
    estimate = resampler.point_estimate()
    values = torch.empty(n_resamples, dtype=torch.float64)
    step = max(1, _BATCH_BYTES // (8 * n))
    draws = resample_indices(n, n_resamples, seed)
    for r0 in range(0, n_resamples, step):
        idx = torch.stack([next(draws) for _ in range(min(step, n_resamples - r0))])
        counts = torch.zeros(idx.shape[0], n, dtype=torch.float64)
        counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
        values[r0 : r0 + idx.shape[0]] = resampler.from_counts_batch(counts.to(resampler.device))
    return interval_from_values(values, estimate, n_resamples, seed, level, method)
