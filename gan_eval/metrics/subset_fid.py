"""FID of many subsets (or weighted resamples) of the generated set, from one pass.

:class:`FIDResampler` gives the FID of a subset of the generated features against fixed reference
statistics without building the subset's feature matrix: a subset is a vector of counts ``w``,
and its mean and covariance are weighted sums of the original rows. With ``Σ_ref = G Gᵀ`` fixed,
``tr√(Σ_w Σ_ref)`` is the sum of square roots of the eigenvalues of
``Gᵀ Σ_w G = Ycᵀ diag(w) Yc / (n − 1)`` with ``Y = X G`` precomputed once — one ``n·D²`` product
and one ``D × D`` ``eigvalsh`` per subset; when ``n < D`` the same eigenvalues come from the
``n_unique × n_unique`` weighted Gram matrix of ``Y`` instead. :meth:`FIDResampler.of_subsets`
batches the disjoint halves and quarters behind the split-variance intervals
(:mod:`gan_eval.metrics.intervals`, :mod:`gan_eval.metrics.extrapolation`).
"""

from __future__ import annotations

import torch

from gan_eval.errors import InputError
from gan_eval.metrics.frechet import FeatureStats, psd_factor
from gan_eval.metrics.neighbors import check_features

__all__ = ["FIDResampler"]

_BATCH_BYTES = 64 * 2**20


class FIDResampler:
    """FID of subsets or weighted resamples of generated features against fixed reference
    statistics.

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

