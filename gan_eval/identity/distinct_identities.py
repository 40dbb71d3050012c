"""Identity diversity: how many different people a set of faces shows.

Two estimates, each at a match threshold (two faces are "the same person" when their dlib
embeddings are within it):

**Distinct identities** — agglomerative clustering with *average* linkage (UPGMA) on the exact
pairwise distances, cut at the threshold: two groups merge while the mean distance between their
members is within the threshold, so every identity is a group whose members are, on average,
the same person. Average rather than single linkage (connected components of the "same person"
graph) because single linkage chains: a generator that interpolates smoothly between people
links everyone to everyone through intermediate faces. On ``builtin:lfw-subset`` (100 photos of
about as many people) at threshold 0.6, single linkage finds 4 identities, average 28, complete
42; at the reference-calibrated threshold (≈0.45) all three find 95–97. The clustering needs the
full distance matrix (O(n²) memory), so sets larger than ``max_images`` (default 5,000) are
clustered on a seeded random subset of that size (stated in the result).

**Birthday-paradox support size** (Arora & Zhang, 2017, "Do GANs learn the distribution?"):
if a batch of ``s`` faces contains a duplicate identity (a pair within the threshold) with
probability ≥ 1/2, the distribution's support holds about ``s²`` identities. Each trial draws a
random order of the set and records the smallest ``s`` whose prefix holds a duplicate (every
prefix of a random order is a uniform random batch, so one trial answers every batch size);
``s*`` is the median over trials, with a distribution-free 95% interval from order statistics.
When more than half the trials find no duplicate in the whole set, ``s* > n`` and only the lower
bound ``support > n²`` is reported. (For a uniform distribution over ``S`` identities
``P(duplicate) ≈ 1 − exp(−s²/2S)``, so ``S ≈ s²/(2 ln 2) ≈ 0.72·s²``: ``s²`` overestimates a
uniform support by ≈1.4×; the paper's ``s²`` is kept as the headline.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from gan_eval.metrics.summaries import median_rank_interval
from gan_eval.seeding import numpy_rng

LINKAGE = "average"
"""scipy linkage method used to count identities."""

DEFAULT_MAX_IMAGES = 5000
"""Largest set clustered / birthday-tested in full; larger sets use a seeded random subset."""

DEFAULT_TRIALS = 64
"""Random orders drawn for the birthday-paradox test."""


def _as_float64(embeddings: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(embeddings, torch.Tensor):
        return embeddings.detach().cpu().double().numpy()
    return np.asarray(embeddings, dtype=np.float64)


def clusters_from_pdist(condensed: np.ndarray, n: int, threshold: float) -> np.ndarray:
    """Average-linkage identity labels (0..K−1) of ``n`` rows from their ``pdist`` distances."""
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    tree = linkage(condensed, method=LINKAGE)
    labels = fcluster(tree, t=threshold, criterion="distance")
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


def identity_clusters(embeddings: torch.Tensor | np.ndarray, threshold: float) -> np.ndarray:
    """Identity label (0..K−1, int64) of each row: average-linkage clusters cut at ``threshold``."""
    x = _as_float64(embeddings)
    n = int(x.shape[0])
    return clusters_from_pdist(pdist(x) if n >= 2 else np.zeros(0), n, threshold)


def _condensed_to_pairs(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column (i < j) of entries ``k`` of a condensed (scipy ``pdist``) matrix."""
    k = k.astype(np.int64)
    i = (n - 2 - np.floor(np.sqrt(-8.0 * k + 4.0 * n * (n - 1) - 7) / 2.0 - 0.5)).astype(np.int64)
    j = k + i + 1 - n * (n - 1) // 2 + (n - i) * (n - i - 1) // 2
    return i, j


def first_duplicate_sizes_from_pdist(
    condensed: np.ndarray, n: int, thresholds: list[float], *, trials: int, seed: int
) -> np.ndarray:
    """:func:`first_duplicate_sizes` from precomputed ``pdist`` distances of ``n`` rows.

    In a random order with ranks ``r``, the first prefix holding a close pair ``(i, j)`` has size
    ``min over close pairs of max(r_i, r_j) + 1``: one pass over the close pairs per trial.
    """
    rng = numpy_rng(seed, "diversity/birthday")
    ranks = np.stack([rng.permutation(n) for _ in range(trials)]) if n else np.zeros((trials, 0))
    out = np.full((trials, len(thresholds)), np.inf)
    for col, threshold in enumerate(thresholds):
        i, j = _condensed_to_pairs(np.flatnonzero(condensed <= threshold), n)
        if i.size == 0:
            continue
        for trial in range(trials):
            r = ranks[trial]
            out[trial, col] = float(np.maximum(r[i], r[j]).min()) + 1.0
    return out


def first_duplicate_sizes(
    embeddings: torch.Tensor | np.ndarray,
    thresholds: list[float],
    *,
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
) -> np.ndarray:
    """Birthday trials: float (trials × thresholds) smallest batch size holding a duplicate.

    ``inf`` where the whole set (in that trial's order) holds no pair within the threshold.
    """
    x = _as_float64(embeddings)
    n = int(x.shape[0])
    condensed = pdist(x) if n >= 2 else np.zeros(0)
    return first_duplicate_sizes_from_pdist(condensed, n, thresholds, trials=trials, seed=seed)


def birthday_support(sizes: np.ndarray, n: int) -> dict[str, Any]:
    """``s*`` (median smallest batch with a duplicate), support ≈ s*², 95% intervals, P(s) curve.

    ``sizes``: one value per trial from :func:`first_duplicate_sizes` (``inf``: none in ``n``).
    """
    m = int(sizes.size)
    s = np.sort(sizes)
    median_index = math.ceil(m / 2) - 1  # smallest s with P(duplicate within s) ≥ 1/2
    lo, hi = median_rank_interval(m)
    s_star = s[median_index]
    grid = sorted({min(n, 2**e) for e in range(1, max(2, math.ceil(math.log2(max(n, 2)))) + 1)})
    curve = [[int(b), float(np.mean(sizes <= b))] for b in grid]

    def finite(v: float) -> int | None:
        return int(v) if np.isfinite(v) else None

    def squared(v: float) -> int | None:
        return int(v) ** 2 if np.isfinite(v) else None

    lower_bound = not np.isfinite(s_star)
    result: dict[str, Any] = {
        "trials": m,
        "batch_size": finite(s_star),
        "batch_size_ci95": [finite(s[lo]), finite(s[hi])],
        "support": squared(s_star),
        "support_ci95": [squared(s[lo]), squared(s[hi])],
        "support_lower_bound": n * n if lower_bound else None,
        "p_duplicate": curve,
        "no_duplicate_trials": int(np.count_nonzero(~np.isfinite(sizes))),
    }
    if lower_bound:
        result["note"] = (
            f"more than half the trials found no duplicate identity among all {n} faces: "
            f"the support exceeds {n}² = {n * n}"
        )
    return result


def diversity(
    embeddings: torch.Tensor,
    thresholds: dict[str, float],
    *,
    max_images: int = DEFAULT_MAX_IMAGES,
    trials: int = DEFAULT_TRIALS,
    seed: int = 0,
) -> dict[str, Any]:
    """Distinct identities and birthday support of one set, at each named threshold."""
    n_total = int(embeddings.shape[0])
    rows = np.arange(n_total)
    subset = None
    if n_total > max_images:
        rows = np.sort(numpy_rng(seed, "diversity/subset").choice(n_total, size=max_images,
                                                                     replace=False))
        subset = f"seeded random subset of {max_images} of {n_total} (seed {seed})"
    x = _as_float64(embeddings[torch.as_tensor(rows, device=embeddings.device)])
    n = int(x.shape[0])
    condensed = pdist(x) if n >= 2 else np.zeros(0)  # float64, n(n−1)/2: 100 MB at n = 5,000
    names = list(thresholds)
    sizes = first_duplicate_sizes_from_pdist(
        condensed, n, [thresholds[k] for k in names], trials=trials, seed=seed
    )
    per: dict[str, Any] = {}
    for col, name in enumerate(names):
        labels = clusters_from_pdist(condensed, n, thresholds[name])
        counts = np.bincount(labels) if labels.size else np.zeros(0, np.int64)
        per[name] = {
            "threshold": float(thresholds[name]),
            "identities": int(counts.size),
            "identities_per_image": float(counts.size / n) if n else None,
            "largest_identity_share": float(counts.max() / n) if n else None,
            "birthday": birthday_support(sizes[:, col], n),
        }
    return {"n": n, "n_total": n_total, "subset": subset, "linkage": LINKAGE, "at": per}
