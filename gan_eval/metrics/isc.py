"""Inception Score (Salimans et al. 2016) from classifier logits, torch-fidelity's convention.

torch-fidelity's ``isc_features_to_metric``: the rows are shuffled with
``np.random.RandomState(seed).permutation(N)`` (seed 2020, ``samples_shuffle=True``), cut into
``splits`` contiguous chunks ``[i·N // splits, (i+1)·N // splits)``, and each chunk scores
``exp(mean_rows KL(p(y|x) ‖ p(y)))`` with ``p(y)`` the chunk's mean prediction; the result is the
mean and population std (``np.std``) over chunks. Logits are converted to float64 before the
softmax. The input is the *logits* layer (torch-fidelity's ``"logits_unbiased"``), not
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.metrics.neighbors import check_features

__all__ = ["ISResult", "inception_score"]


@dataclass(frozen=True)
class ISResult:
    """Inception Score over splits.

    Attributes:
        mean: mean score over splits (≥ 1, ≤ number of classes; higher is better).
        std: population standard deviation over splits (``ddof = 0``).
        scores: float64 ``(splits,)`` per-split scores.
        splits, shuffle, seed: the convention used.
    """

    mean: float
    std: float
    scores: torch.Tensor = field(repr=False)
    splits: int
    shuffle: bool
    seed: int


def inception_score(
    logits: torch.Tensor, *, splits: int = 10, shuffle: bool = True, seed: int = 2020
) -> ISResult:
    """Inception Score of ``(N, C)`` logits, equal to torch-fidelity's ``isc_features_to_metric``.

    Args:
        logits: ``(N, C)`` unnormalised class scores (float); ``N ≥ splits``.
        splits: number of chunks (torch-fidelity's ``isc_splits``, default 10).
        shuffle: permute rows first (torch-fidelity's ``samples_shuffle``, default True).
        seed: ``np.random.RandomState`` seed for the permutation (``rng_seed``, default 2020).

    Raises:
        InputError: bad logits, fewer than 2 classes, or fewer rows than splits (a chunk would
            be empty and torch-fidelity would return NaN).
    """
    x = check_features(logits, "logits", min_rows=1)
    n, c = x.shape
    if splits < 1:
        raise InputError(f"splits must be ≥ 1, got {splits}")
    if n < splits:
        raise InputError(f"logits: {n} rows cannot fill {splits} splits; need N ≥ splits")
    if c < 2:
        raise InputError(f"logits: need at least 2 classes, got {c}")
    if shuffle:
        perm = np.random.RandomState(seed).permutation(n)
        x = x[torch.from_numpy(perm).to(x.device)]
    x = x.double()
    p = x.softmax(dim=1)
    log_p = x.log_softmax(dim=1)
    scores = torch.empty(splits, dtype=torch.float64)
    for i in range(splits):
        s, e = i * n // splits, (i + 1) * n // splits
        p_chunk = p[s:e]
        log_q = p_chunk.mean(dim=0, keepdim=True).log()
        kl = (p_chunk * (log_p[s:e] - log_q)).sum(dim=1).mean()
        scores[i] = float(kl.exp())
    return ISResult(
        mean=float(scores.mean()),
        std=float(scores.std(correction=0)),
        scores=scores,
        splits=splits,
        shuffle=shuffle,
        seed=seed,
    )
