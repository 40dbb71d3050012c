"""Fréchet distance between Gaussians fitted to features (FID when the features are Inception's).

``FID = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr√(Σ1 Σ2)``, with ``Σ`` the unbiased covariance
(``ddof = 1``, as ``np.cov`` in torch-fidelity's ``fid_features_to_statistics``). Everything is
accumulated and computed in float64; the result is a real number, never complex, never NaN.

How ``tr√(Σ1Σ2)`` is computed (the sum of square roots of the eigenvalues of ``Σ1Σ2``, which are
real and ≥ 0 because ``Σ1Σ2`` is similar to a symmetric PSD matrix):

* **Symmetric form** (both sets have more samples than dimensions). Factor ``Σ1 = G Gᵀ``; then
  ``Σ1Σ2 = G (Gᵀ Σ2 G) G⁻¹`` is similar to the symmetric PSD ``M = Gᵀ Σ2 G`` and
  ``tr√(Σ1Σ2) = Σ sqrt(eigvalsh(M))``. ``G`` is the Cholesky factor when Σ1 (or Σ2) is numerically
  positive definite, otherwise ``G = V Λ^{1/2}`` from ``eigh(Σ1)`` with tiny negative eigenvalues
  clamped to 0 (``G Gᵀ = F²`` with ``F = Σ1^{1/2}``, so ``M`` has the eigenvalues of ``F Σ2 F``).
  Negative rounding noise in ``eigvalsh(M)`` is clamped to 0.
* **Gram/SVD form** (a set with ``n ≤ D``). With centred rows ``X`` (``n × D``) write
  ``Σ = Zᵀ Z``, ``Z = X / sqrt(n − 1)``. For any factors ``Σi = Fi Fiᵀ``, ``Σ1Σ2 = F1 F1ᵀ F2 F2ᵀ``
  has the non-zero eigenvalues of ``B Bᵀ`` with ``B = F1ᵀ F2``, so ``tr√(Σ1Σ2) = ‖B‖_*``, the
  nuclear norm (sum of singular values). When both sets are small, ``F = Zᵀ`` on both sides:
  ``tr√(Σ1Σ2) = ‖Z1 Z2ᵀ‖_* = ‖X1 X2ᵀ‖_* / sqrt((n1 − 1)(n2 − 1))`` — an ``n1 × n2`` SVD (rows
  are samples, so the product is ``X1 X2ᵀ`` over features, not ``X1ᵀ X2``). When one set is
  small, ``B = Z1 G2`` (``n1 × D``) with ``G2`` a factor of ``Σ2``. Singular values do not
  amplify rounding noise the way ``sqrt`` of near-zero eigenvalues does.

FID from fewer than 2,000 samples, or fewer samples than dimensions, is biased high (the estimate
of ``tr√`` is biased low); :func:`frechet_distance` emits :class:`SmallSampleFIDWarning` then.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from gan_eval.errors import InputError
from gan_eval.metrics.neighbors import check_features

__all__ = [
    "FeatureStats",
    "FeatureSums",
    "SmallSampleFIDWarning",
    "frechet_distance",
    "trace_sqrt_product",
]

SMALL_SAMPLE_N = 2000
"""Below this many samples in either set FID is flagged as biased high."""

_CHUNK_ELEMS = 2**22  # rows × D per float64 chunk when accumulating (32 MiB)


class SmallSampleFIDWarning(UserWarning):
    """FID is biased high at small n (fewer than 2,000 samples, or fewer samples than dims)."""


def _chunk_rows(d: int) -> int:
    return max(1, _CHUNK_ELEMS // max(d, 1))


@dataclass(frozen=True)
class FeatureStats:
    """Mean and covariance of a feature set, float64.

    Attributes:
        mean: ``(D,)`` float64 sample mean.
        cov: ``(D, D)`` float64 unbiased covariance (divided by ``n − 1``).
        n: number of samples (≥ 2).
        factor: optional ``(n, D)`` float64 ``(X − mean) / sqrt(n − 1)`` so that
            ``cov = factorᵀ factor``; kept when ``n ≤ D`` so that :func:`frechet_distance` can use
            the cheaper and better-conditioned Gram form.
    """

    mean: torch.Tensor
    cov: torch.Tensor
    n: int
    factor: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.mean.dim() != 1:
            raise InputError(f"FeatureStats.mean must be 1-D, got shape {tuple(self.mean.shape)}")
        d = self.mean.shape[0]
        if self.cov.shape != (d, d):
            raise InputError(
                f"FeatureStats.cov must have shape ({d}, {d}), got {tuple(self.cov.shape)}"
            )
        if self.n < 2:
            raise InputError(f"FeatureStats needs at least 2 samples, got n={self.n}")
        if self.factor is not None and self.factor.shape[1] != d:
            raise InputError("FeatureStats.factor must have D columns")
        object.__setattr__(self, "mean", self.mean.to(torch.float64))
        object.__setattr__(self, "cov", self.cov.to(torch.float64))
        if self.factor is not None:
            object.__setattr__(self, "factor", self.factor.to(torch.float64))
        if not (bool(torch.isfinite(self.mean).all()) and bool(torch.isfinite(self.cov).all())):
            raise InputError("FeatureStats mean/cov contain NaN or inf")

    @property
    def d(self) -> int:
        """Feature dimension ``D``."""
        return int(self.mean.shape[0])

    @classmethod
    def from_features(
        cls, features: torch.Tensor, *, keep_factor: bool | None = None
    ) -> FeatureStats:
        """Statistics of an ``(N, D)`` feature matrix (float32/float64), accumulated in float64.

        Two passes over row chunks (mean, then centred outer products), so memory stays at
        ``D²`` plus one chunk. ``keep_factor`` (default: ``N ≤ D``) also stores the centred,
        scaled rows for the Gram form.

        Raises:
            InputError: fewer than 2 rows, NaN/inf, not a 2-D floating tensor.
        """
        x = check_features(features, "features", min_rows=2)
        n, d = x.shape
        if keep_factor is None:
            keep_factor = n <= d
        step = _chunk_rows(d)
        total = torch.zeros(d, dtype=torch.float64, device=x.device)
        for i in range(0, n, step):
            total += x[i : i + step].double().sum(0)
        mean = total / n
        cov = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        for i in range(0, n, step):
            c = x[i : i + step].double() - mean
            cov.addmm_(c.T, c)
        cov /= n - 1
        cov = (cov + cov.T) * 0.5
        factor = (x.double() - mean) / math.sqrt(n - 1) if keep_factor else None
        return cls(mean=mean, cov=cov, n=n, factor=factor)

    @classmethod
    def from_sums(cls, total: torch.Tensor, outer: torch.Tensor, n: int) -> FeatureStats:
        """Statistics from sharded partial sums: ``Σx`` ``(D,)``, ``Σ x xᵀ`` ``(D, D)``, count.

        ``cov = (Σxxᵀ − n μ μᵀ) / (n − 1)``. In float64 this loses about ``log10(‖μ‖²/var)``
        digits to cancellation, negligible for CNN features; prefer :class:`FeatureSums` with
        :meth:`FeatureSums.merge` to combine shards.
        """
        if n < 2:
            raise InputError(f"need at least 2 samples in total, got n={n}")
        total = total.to(torch.float64)
        outer = outer.to(torch.float64)
        if total.dim() != 1 or outer.shape != (total.shape[0], total.shape[0]):
            raise InputError(
                f"sum must be (D,) and outer (D, D); got {tuple(total.shape)} and "
                f"{tuple(outer.shape)}"
            )
        mean = total / n
        cov = (outer - n * torch.outer(mean, mean)) / (n - 1)
        cov = (cov + cov.T) * 0.5
        return cls(mean=mean, cov=cov, n=int(n))


@dataclass(frozen=True)
class FeatureSums:
    """Mergeable partial sums of a feature shard: ``Σx``, ``Σ x xᵀ`` (float64) and the count.

    Typical use with sharded extraction: each rank computes ``FeatureSums.from_features`` on its
    rows, the sums are all-reduced (or merged with ``+``), then :meth:`to_stats`.
    """

    total: torch.Tensor
    outer: torch.Tensor
    n: int

    @classmethod
    def zeros(cls, d: int, device: torch.device | str = "cpu") -> FeatureSums:
        """Empty sums for ``D`` features."""
        return cls(
            total=torch.zeros(d, dtype=torch.float64, device=device),
            outer=torch.zeros(d, d, dtype=torch.float64, device=device),
            n=0,
        )

    @classmethod
    def from_features(cls, features: torch.Tensor) -> FeatureSums:
        """Sums of an ``(N, D)`` float feature shard (``N ≥ 1``), accumulated in float64."""
        x = check_features(features, "features", min_rows=1)
        d = x.shape[1]
        total = torch.zeros(d, dtype=torch.float64, device=x.device)
        outer = torch.zeros(d, d, dtype=torch.float64, device=x.device)
        step = _chunk_rows(d)
        for i in range(0, x.shape[0], step):
            c = x[i : i + step].double()
            total += c.sum(0)
            outer.addmm_(c.T, c)
        return cls(total=total, outer=outer, n=int(x.shape[0]))

    def merge(self, other: FeatureSums) -> FeatureSums:
        """Sums over the union of both shards."""
        if self.total.shape != other.total.shape:
            raise InputError(
                f"cannot merge sums of {self.total.shape[0]} and {other.total.shape[0]} features"
            )
        return FeatureSums(self.total + other.total, self.outer + other.outer, self.n + other.n)

    def __add__(self, other: FeatureSums) -> FeatureSums:
        return self.merge(other)

    def to_stats(self) -> FeatureStats:
        """The :class:`FeatureStats` of all rows summed so far (needs ``n ≥ 2``)."""
        return FeatureStats.from_sums(self.total, self.outer, self.n)


def _sum_sqrt_eigvalsh(m: torch.Tensor) -> float:
    """``Σ sqrt(max(λ, 0))`` over the eigenvalues of the symmetric part of ``m``."""
    m = (m + m.T) * 0.5
    ev = torch.linalg.eigvalsh(m)
    return float(ev.clamp_(min=0.0).sqrt_().sum())


def psd_factor(cov: torch.Tensor) -> torch.Tensor:
    """``G`` with ``G Gᵀ = cov``: Cholesky when positive definite, else ``V Λ₊^{1/2}``."""
    chol, info = torch.linalg.cholesky_ex(cov)
    if int(info) == 0:
        return chol
    evals, evecs = torch.linalg.eigh(cov)
    return evecs * evals.clamp(min=0.0).sqrt()


def trace_sqrt_product(stats1: FeatureStats, stats2: FeatureStats) -> float:
    """``tr√(Σ1 Σ2)`` (float): Gram/SVD form when a set kept its factor, symmetric form otherwise.

    With ``Σi = Fi Fiᵀ`` for any factors, ``Σ1Σ2`` is similar to ``B Bᵀ`` with ``B = F1ᵀ F2``, so
    ``tr√(Σ1Σ2) = Σ σ(B)``, the nuclear norm; singular values carry no square-root amplification
    of rounding noise, which matters for the zero eigenvalues of rank-deficient (``n ≤ D``)
    covariances. With no stored factor the ``D × D`` symmetric form uses ``eigvalsh`` (about 5×
    cheaper than an SVD at ``D = 2048``; full-rank covariances have no zero eigenvalues to spoil).
    """
    z1, z2 = stats1.factor, stats2.factor
    if z1 is not None and z2 is not None:
        return float(torch.linalg.svdvals(z1 @ z2.T).sum())
    if z1 is not None:
        return float(torch.linalg.svdvals(z1 @ psd_factor(stats2.cov)).sum())
    if z2 is not None:
        return float(torch.linalg.svdvals(z2 @ psd_factor(stats1.cov)).sum())
    g = psd_factor(stats1.cov)
    return _sum_sqrt_eigvalsh(g.T @ stats2.cov @ g)


def frechet_distance(stats1: FeatureStats, stats2: FeatureStats, *, warn: bool = True) -> float:
    """Fréchet distance between the Gaussians of two feature sets (FID on Inception features).

    Args:
        stats1, stats2: :class:`FeatureStats` of the two sets (same ``D``); symmetric in them.
        warn: emit :class:`SmallSampleFIDWarning` when either set has fewer than 2,000 samples
            or fewer samples than dimensions.

    Returns:
        ``‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr√(Σ1Σ2)`` as a Python float, in squared feature
        units. Equals torch-fidelity's ``fid_statistics_to_metric`` up to its rounding; may be a
        tiny negative number (≈ −1e-12·tr Σ) for identical sets, as there.

    Raises:
        InputError: the feature dimensions differ.
    """
    if stats1.d != stats2.d:
        raise InputError(
            f"statistics have {stats1.d} and {stats2.d} feature dimensions; "
            "both must come from the same extractor layer"
        )
    if warn:
        n_min = min(stats1.n, stats2.n)
        if n_min < SMALL_SAMPLE_N or n_min < stats1.d:
            warnings.warn(
                SmallSampleFIDWarning(
                    f"FID is biased high at small n: {stats1.n} and {stats2.n} samples in "
                    f"{stats1.d} dimensions (use ≥ {SMALL_SAMPLE_N} and ≥ D per set for "
                    "numbers comparable to the literature)"
                ),
                stacklevel=2,
            )
    diff = stats1.mean - stats2.mean
    tr_sqrt = trace_sqrt_product(stats1, stats2)
    value = (
        float(diff @ diff)
        + float(torch.trace(stats1.cov))
        + float(torch.trace(stats2.cov))
        - 2.0 * tr_sqrt
    )
    return value
