"""Feature models with exactly known population moments, for coverage simulations.

A coverage simulation draws many generated (and reference) sets from a model, computes an
interval on each, and counts how often the interval holds the quantity it claims. For
"population" estimands (FID∞) that quantity is the Fréchet distance of the generated
*distribution* to the reference statistics, so the model's mean and covariance must be known
exactly, not estimated from a large draw (whose own small-sample bias would move the target).
Three families stand in for the feature spaces gan-eval meets (:mod:`gan_eval.metrics.regimes`
maps where each interval holds on them):

* :class:`GaussianModel` — ``N(μ, diag s²)``.
* :class:`ReluModel` — ``relu(A z)``, ``z ~ N(0, I_k)``: non-negative, skewed, half zeros per
  coordinate, correlated like a ReLU layer (Inception's pool, CNN features). Moments from the
  arc-cosine kernel (Cho & Saul 2009): ``E relu(u) = σ/√(2π)``,
  ``E relu(u) relu(v) = σ_u σ_v (sin θ + (π − θ) cos θ) / (2π)``.
* :class:`MixtureModel` — a mixture of Gaussians with shared isotropic noise: clustered,
  identity-like features (faces of a few people in a face-embedding space). The smoothed
  bootstrap of a real feature set (each draw a random row plus noise) is one, which is how
  ``gan-eval calibrate`` simulates on a user's own features (:func:`smoothed_pool`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gan_eval.errors import InputError
from gan_eval.metrics.frechet import FeatureStats

__all__ = [
    "MODEL_KINDS",
    "FeatureModel",
    "GaussianModel",
    "MixtureModel",
    "ReluModel",
    "model_pair",
    "population_stats",
    "smoothed_pool",
]

#: "population" sample count recorded in :func:`population_stats` (moments are exact).
_POPULATION_N = 10**9


class FeatureModel:
    """A distribution of ``D``-dimensional features with exact mean and covariance."""

    d: int

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """float64 ``(n, D)`` i.i.d. features."""
        raise NotImplementedError

    def mean(self) -> torch.Tensor:
        """float64 ``(D,)`` population mean."""
        raise NotImplementedError

    def cov(self) -> torch.Tensor:
        """float64 ``(D, D)`` population covariance."""
        raise NotImplementedError


def population_stats(model: FeatureModel) -> FeatureStats:
    """:class:`FeatureStats` of the population (exact moments; ``n`` a large placeholder)."""
    return FeatureStats(mean=model.mean(), cov=model.cov(), n=_POPULATION_N)


@dataclass(frozen=True)
class GaussianModel(FeatureModel):
    """``N(loc, diag(scale²))``."""

    loc: torch.Tensor
    scale: torch.Tensor

    @property
    def d(self) -> int:  # type: ignore[override]
        return int(self.loc.shape[0])

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.d, generator=generator, dtype=torch.float64)
        return z * self.scale + self.loc

    def mean(self) -> torch.Tensor:
        return self.loc.double()

    def cov(self) -> torch.Tensor:
        return torch.diag(self.scale.double().square())


@dataclass(frozen=True)
class ReluModel(FeatureModel):
    """``relu(A z)`` with ``A`` float64 ``(D, k)``, ``z ~ N(0, I_k)``."""

    weights: torch.Tensor

    @property
    def d(self) -> int:  # type: ignore[override]
        return int(self.weights.shape[0])

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        z = torch.randn(n, self.weights.shape[1], generator=generator, dtype=torch.float64)
        return (z @ self.weights.T).clamp_(min=0.0)

    def _norms(self) -> torch.Tensor:
        return self.weights.double().norm(dim=1)

    def mean(self) -> torch.Tensor:
        return self._norms() / math.sqrt(2.0 * math.pi)

    def cov(self) -> torch.Tensor:
        a = self.weights.double()
        s = self._norms()
        cos = ((a @ a.T) / torch.outer(s, s)).clamp_(-1.0, 1.0)
        theta = torch.arccos(cos)
        second = torch.outer(s, s) * (torch.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
        second.diagonal().copy_(s.square() / 2.0)  # θ = 0 exactly on the diagonal
        mu = self.mean()
        cov = second - torch.outer(mu, mu)
        return (cov + cov.T) * 0.5


@dataclass(frozen=True)
class MixtureModel(FeatureModel):
    """``Σ_k w_k N(c_k, noise² I)``: centres float64 ``(K, D)``, weights ``(K,)`` summing to 1."""

    centres: torch.Tensor
    weights: torch.Tensor
    noise: float

    def __post_init__(self) -> None:
        if self.centres.dim() != 2 or self.weights.shape != (self.centres.shape[0],):
            raise InputError("a mixture needs (K, D) centres and (K,) weights")
        if not math.isclose(float(self.weights.sum()), 1.0, rel_tol=1e-9):
            raise InputError("mixture weights must sum to 1")
        if not self.noise >= 0.0:
            raise InputError(f"mixture noise must be >= 0, got {self.noise}")

    @property
    def d(self) -> int:  # type: ignore[override]
        return int(self.centres.shape[1])

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.multinomial(self.weights.double(), n, replacement=True, generator=generator)
        noise = torch.randn(n, self.d, generator=generator, dtype=torch.float64)
        return self.centres.double()[rows] + self.noise * noise

    def mean(self) -> torch.Tensor:
        return self.weights.double() @ self.centres.double()

    def cov(self) -> torch.Tensor:
        c = self.centres.double() - self.mean()
        between = c.T @ (c * self.weights.double()[:, None])
        return between + self.noise**2 * torch.eye(self.d, dtype=torch.float64)


def smoothed_pool(pool: torch.Tensor, *, noise: float, rows: torch.Tensor | None = None
                  ) -> MixtureModel:
    """The smoothed bootstrap of ``pool`` (float ``(N, D)`` features) as a mixture: a draw is a
    uniformly chosen row (of ``rows`` when given) plus ``N(0, noise² I)``."""
    centres = pool.double() if rows is None else pool.double()[rows]
    k = centres.shape[0]
    return MixtureModel(centres, torch.full((k,), 1.0 / k, dtype=torch.float64), noise)


MODEL_KINDS = ("gaussian", "relu", "mixture")
"""The simulated feature families of the regime map (:func:`model_pair`)."""


def model_pair(kind: str, d: int, *, seed: int = 0) -> tuple[FeatureModel, FeatureModel]:
    """(generated model, reference model) of one family in ``d`` dimensions; they differ as a
    decent generator and its data do (a small but non-zero population FID).

    * ``"gaussian"`` — reference ``N(0, diag λ)``, ``λ_i = e^{−i/30} + 0.02`` (a decaying
      spectrum like real embeddings'); generated ``N(δ, diag s²)``, ``s² = λ(1 + 0.3u)``,
      ``δ ~ N(0, 0.05²)`` (tests/gaussian_features.py's model, drawn in the same order).
    * ``"relu"`` — ``relu(A z)``, ``A`` ``(d, d)`` Gaussian with column scales decaying as
      ``e^{−8j/d} + 0.05``; generated: rows of ``A`` scaled by ``1 + 0.1u`` plus 2 % noise.
    * ``"mixture"`` — 50 identity-like clusters, centres ``N(0, I/d)``, noise ``0.4/√d`` per
      dimension; generated: 40 of the 50 clusters with 1.3× the noise (misses people, blurs).
    """
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    if kind == "gaussian":
        lam = torch.exp(-torch.arange(d, dtype=f64) / 30) + 0.02
        scale = (lam * (1 + 0.3 * torch.rand(d, generator=g, dtype=f64))).sqrt()
        delta = 0.05 * torch.randn(d, generator=g, dtype=f64)
        return GaussianModel(delta, scale), GaussianModel(torch.zeros(d, dtype=f64), lam.sqrt())
    if kind == "relu":
        decay = (torch.exp(-torch.arange(d, dtype=f64) / (d / 8)) + 0.05).sqrt() / math.sqrt(d)
        a = torch.randn(d, d, generator=g, dtype=f64) * decay
        a_gen = (a * (1 + 0.1 * torch.rand(d, 1, generator=g, dtype=f64))
                 + 0.02 * torch.randn(d, d, generator=g, dtype=f64) * decay)
        return ReluModel(a_gen), ReluModel(a)
    if kind == "mixture":
        centres = torch.randn(50, d, generator=g, dtype=f64) / math.sqrt(d)
        noise = 0.4 / math.sqrt(d)
        return (MixtureModel(centres[:40], torch.full((40,), 1 / 40, dtype=f64), 1.3 * noise),
                MixtureModel(centres, torch.full((50,), 1 / 50, dtype=f64), noise))
    raise InputError(f"unknown feature model {kind!r}; known: {', '.join(MODEL_KINDS)}")
