"""Identity-level statistics on face embeddings (e.g. 128-d dlib descriptors), pure math.

* :func:`vendi_score` — Vendi score (Friedman & Dieng, TMLR 2023): ``exp`` of the Shannon
  entropy of the eigenvalues of ``K/n``, the effective number of distinct samples under a
  similarity kernel ``K`` with ``k(x, x) = 1``. With an RBF kernel of bandwidth below the
  same-person distance it reads as an effective number of distinct identities, no threshold.
* :func:`membership_test` — are training identities matched by generated faces more often
  than identities held out of training (Webster et al. 2021, "This person (probably)
  exists")? A permutation test over identity labels, with a p-value.
* :func:`authenticity` — per-sample authenticity of Alaa et al. (ICML 2022): a generated
  sample is unauthentic when it is closer to its nearest training sample than that training
  sample's own nearest training neighbour. Chosen over the C_T test (Meehan et al. 2020)
  because it flags *samples* (which images are copies, for the report), has no tuning
  parameters (C_T needs a k-means partition and a minimum cell size) and reuses the exact
  nearest-neighbour search of :func:`~gan_eval.metrics.copies.memorization` (its
  ``ratio ≤ 1``). Its rate is not 0 for a generator that does not copy (held-out real faces are
  "unauthentic" at some base rate), so it is reported beside the same rate of held-out real
  samples, with a two-proportion test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult
from gan_eval.metrics.copies import memorization
from gan_eval.metrics.intervals import rate_interval
from gan_eval.metrics.neighbors import check_features, check_same_dim, cross_search_squared

__all__ = [
    "AuthenticityResult",
    "MembershipResult",
    "authenticity",
    "identity_centroids",
    "membership_test",
    "vendi_score",
]


def vendi_score(
    embeddings: torch.Tensor,
    *,
    kernel: Literal["cosine", "rbf"] = "rbf",
    bandwidth: float = 0.3,
) -> float:
    """Vendi score of ``(n, D)`` embeddings (1 … n; higher is more diverse).

    Args:
        embeddings: ``(n, D)`` float embeddings, ``n ≥ 1``.
        kernel: ``"cosine"`` — rows L2-normalised, ``k = xᵀy`` (equals
            ``vendi_score.vendi.score_X(X)``, the package's default); ``"rbf"`` —
            ``k = exp(−‖x − y‖² / (2·bandwidth²))`` (equals ``vendi_score.vendi.score_K(K)`` on
            that ``K``). dlib descriptors are far from centred (different people have cosine
            similarity ≈ 0.9), so the cosine Vendi barely moves with the number of people; the
            RBF at 0.3 (half dlib's 0.6 same-person distance) gives near 1 to images of one
            person and near 0 to different people.
        bandwidth: RBF length scale in embedding units.

    Computed from the ``D × D`` dual (``XᵀX/n``) for cosine when ``n > D``; eigenvalues of
    ``K/n`` in float64 otherwise. Zero eigenvalues contribute nothing (``0·log 0 = 0``).
    """
    x = check_features(embeddings, "embeddings", min_rows=1).double()
    n = x.shape[0]
    if kernel == "cosine":
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-300)
        mat = x.T @ x if n > x.shape[1] else x @ x.T
    elif kernel == "rbf":
        if not (bandwidth > 0 and math.isfinite(bandwidth)):
            raise InputError(f"bandwidth must be a positive distance, got {bandwidth!r}")
        sq = x.square().sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
        mat = torch.exp(-d2 / (2.0 * bandwidth * bandwidth))
    else:
        raise InputError(f"kernel must be 'cosine' or 'rbf', got {kernel!r}")
    w = torch.linalg.eigvalsh((mat + mat.T) / (2.0 * n))
    w = w[w > 0]
    return float(torch.exp(-(w * w.log()).sum()))


def identity_centroids(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(P, D)`` mean embedding of each identity, rows in ascending label order."""
    x = check_features(embeddings, "embeddings", min_rows=1).double()
    lab = torch.as_tensor(labels)
    if lab.shape != (x.shape[0],):
        raise InputError(f"labels must have one entry per embedding ({x.shape[0]}), got "
                         f"{tuple(lab.shape)}")
    uniq, inv = torch.unique(lab, return_inverse=True)
    sums = torch.zeros(uniq.numel(), x.shape[1], dtype=torch.float64).index_add_(0, inv, x)
    return sums / torch.bincount(inv, minlength=uniq.numel()).double()[:, None]


@dataclass(frozen=True)
class MembershipResult:
    """Membership test of training identities.

    Attributes:
        p_value: one-sided permutation p-value of "training identities are matched more than
            held-out ones" (``(1 + #{perm ≥ observed}) / (1 + permutations)``).
        statistic: mean matches per training identity minus per held-out identity.
        train_match_rate, heldout_match_rate: mean generated samples per identity whose
            nearest identity it is (train, held-out).
        matched: generated samples that matched an identity (within ``threshold``; all if None).
        n_generated, n_train, n_heldout, permutations, seed, threshold: the setting.
    """

    p_value: float
    statistic: float
    train_match_rate: float
    heldout_match_rate: float
    matched: int
    n_generated: int
    n_train: int
    n_heldout: int
    permutations: int
    seed: int
    threshold: float | None


def membership_test(
    generated: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    *,
    threshold: float | None = None,
    permutations: int = 10_000,
    seed: int = 0,
) -> MembershipResult:
    """Do generated faces match training identities more often than held-out identities?

    Args:
        generated: ``(n, D)`` generated embeddings.
        train: ``(A, D)`` one row per training identity (e.g. :func:`identity_centroids`).
        heldout: ``(B, D)`` one row per identity held out of training, drawn from the same
            population (a random split of identities is what makes the test exact).
        threshold: count a generated sample only if its nearest identity is within this
            distance (e.g. dlib's 0.6); None counts every sample's nearest identity.
        permutations: random relabelings of the ``A + B`` identities.
        seed: ``numpy.random.default_rng`` seed of the relabelings.

    Each generated sample is assigned to its nearest identity among ``train ∪ heldout``; the
    statistic is the difference of mean assignments per identity, train minus held-out. Under
    the null (the generator does not favour the people it was trained on) the train/held-out
    labels are exchangeable among identities, so permuting them gives the exact null
    distribution — robust to "hub" identities that attract many samples whichever side they
    are on, which a per-sample binomial test would count as evidence.
    """
    gen = check_features(generated, "generated", min_rows=1)
    tr = check_features(train, "train", min_rows=1)
    ho = check_features(heldout, "heldout", min_rows=1)
    check_same_dim(gen, tr, "generated", "train")
    check_same_dim(gen, ho, "generated", "heldout")
    if permutations < 1:
        raise InputError(f"permutations must be ≥ 1, got {permutations}")
    ids = torch.cat([tr.double(), ho.double()])
    d2, idx = cross_search_squared(gen.double(), ids, 1, None, None, 2**28)
    keep = torch.ones(idx.shape[0], dtype=torch.bool) if threshold is None else (
        d2[:, 0].sqrt().cpu() <= threshold)
    a, b = tr.shape[0], ho.shape[0]
    counts = np.bincount(idx[:, 0].cpu()[keep].numpy(), minlength=a + b).astype(np.float64)
    observed = counts[:a].mean() - counts[a:].mean()
    rng = np.random.default_rng(seed)
    total = counts.sum()
    ge = 0
    for _ in range(permutations):
        perm_train = counts[rng.permutation(a + b)[:a]].sum()
        stat = perm_train / a - (total - perm_train) / b
        ge += stat >= observed - 1e-12 * max(1.0, abs(observed))
    return MembershipResult(
        p_value=(1 + ge) / (1 + permutations), statistic=float(observed),
        train_match_rate=float(counts[:a].mean()), heldout_match_rate=float(counts[a:].mean()),
        matched=int(keep.sum()), n_generated=int(gen.shape[0]), n_train=a, n_heldout=b,
        permutations=permutations, seed=seed, threshold=threshold,
    )  # fmt: skip


@dataclass(frozen=True)
class AuthenticityResult:
    """Authenticity of generated samples (Alaa et al. 2022), beside held-out real samples.

    Attributes:
        authentic: bool ``(n,)``, per generated sample.
        rate: Wilson interval of the authentic fraction of generated samples.
        heldout_rate: the same for held-out real samples (None without them).
        p_value: one-sided two-proportion z-test of "generated less authentic than held-out"
            (None without held-out samples).
    """

    authentic: torch.Tensor
    rate: IntervalResult
    heldout_rate: IntervalResult | None
    p_value: float | None


def _authentic(samples: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    # ratio = d(sample, nearest train) / d(that train sample, its nearest other train sample)
    return memorization(samples, train, top_k=0).ratio > 1.0


def authenticity(
    generated: torch.Tensor, train: torch.Tensor, *, heldout: torch.Tensor | None = None,
    level: float = 0.95,
) -> AuthenticityResult:  # fmt: skip
    """Per-sample authenticity: ``d(g, r*) > d(r*, NN_train(r*))`` with ``r*`` the nearest
    training sample of ``g`` (Euclidean, exact). Embeddings ``(n, D)``, ``(N, D)``, ``(h, D)``.
    """
    auth = _authentic(generated, train)
    n = auth.numel()
    rate = rate_interval(int(auth.sum()), n, level=level)
    if heldout is None:
        return AuthenticityResult(auth, rate, None, None)
    ha = _authentic(heldout, train)
    h_rate = rate_interval(int(ha.sum()), ha.numel(), level=level)
    pooled = (float(auth.sum()) + float(ha.sum())) / (n + ha.numel())
    se = math.sqrt(max(pooled * (1 - pooled), 1e-300) * (1 / n + 1 / ha.numel()))
    z = (rate.estimate - h_rate.estimate) / se
    return AuthenticityResult(auth, rate, h_rate, NormalDist().cdf(z))
