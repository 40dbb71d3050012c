"""Pairs of embeddings: seeded samples of genuine and different pairs, and their distances.

Pure functions on index arrays and embedding tensors (no I/O); used to calibrate thresholds on
a reference set (:func:`far_threshold`: recognition's leakage and evaluate's copy rate at the
calibrated threshold) and to measure the chance level of a copy rate (evaluate).
"""

from __future__ import annotations

import numpy as np
import torch

_ENUMERATE_LIMIT = 2_000_000  # enumerate all pairs up to this many, sample beyond

CALIBRATION_PAIRS = 200_000
"""Distinct-image pairs sampled to calibrate on an unlabelled reference (all when fewer)."""

MAX_GENUINE = 3000
"""At most this many genuine pairs (a seeded sample when there are more; LFW uses 3000)."""


def genuine_pairs(
    labels: np.ndarray, *, max_pairs: int = MAX_GENUINE, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """All same-label pairs ``i < j`` (int64 arrays), a seeded sample of ``max_pairs`` if more."""
    labels = np.asarray(labels)
    firsts: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    for group in np.split(order, bounds):
        if group.size < 2:
            continue
        a, b = np.triu_indices(group.size, 1)
        firsts.append(group[a])
        seconds.append(group[b])
    if not firsts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.concatenate(firsts).astype(np.int64)
    j = np.concatenate(seconds).astype(np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((hi, lo))
    lo, hi = lo[order], hi[order]
    if lo.size > max_pairs:
        keep = np.sort(rng.choice(lo.size, size=max_pairs, replace=False))
        lo, hi = lo[keep], hi[keep]
    return lo, hi


def different_pairs(
    n: int, count: int, *, rng: np.random.Generator, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` distinct unordered pairs ``i < j`` of different items, seeded, in random
    order (so any prefix is itself a random sample).

    With ``labels`` only pairs of different labels (impostors); without, any two different
    images. All such pairs are returned when there are at most ``count``.
    """
    total = n * (n - 1) // 2
    if total <= min(_ENUMERATE_LIMIT, max(count, 0) * 4) or total <= count:
        i, j = np.triu_indices(n, 1)
        if labels is not None:
            keep = labels[i] != labels[j]
            i, j = i[keep], j[keep]
        pick = rng.permutation(i.size)[:count]  # random order: any prefix is a random sample
        return i[pick].astype(np.int64), j[pick].astype(np.int64)
    seen: set[tuple[int, int]] = set()
    firsts: list[int] = []
    seconds: list[int] = []
    for _ in range(100):
        if len(firsts) >= count:
            break
        a = rng.integers(0, n, size=2 * (count - len(firsts)) + 16)
        b = rng.integers(0, n, size=a.size)
        ok = a != b
        if labels is not None:
            ok &= labels[a] != labels[b]
        for x, y in zip(np.minimum(a, b)[ok].tolist(), np.maximum(a, b)[ok].tolist(), strict=True):
            if (x, y) not in seen:
                seen.add((x, y))
                firsts.append(x)
                seconds.append(y)
                if len(firsts) >= count:
                    break
    return np.asarray(firsts, np.int64), np.asarray(seconds, np.int64)


def unlabelled_impostors(
    reference: torch.Tensor, count: int, *, rng: np.random.Generator
) -> np.ndarray:
    """Distances of up to ``count`` random pairs of different images of an unlabelled reference,
    taken as impostors (most pairs show different people; repeated people only make a threshold
    calibrated on them stricter)."""
    i, j = different_pairs(int(reference.shape[0]), count, rng=rng)
    return pair_distances(reference, reference, i, j)


def pair_distances(
    a: torch.Tensor, b: torch.Tensor, i: np.ndarray, j: np.ndarray, *, chunk: int = 65536
) -> np.ndarray:
    """float64 ``‖a[i] − b[j]‖`` for index arrays ``i``, ``j`` (direct differences, chunked)."""
    out = np.empty(len(i), dtype=np.float64)
    ii = torch.as_tensor(i, dtype=torch.long, device=a.device)
    jj = torch.as_tensor(j, dtype=torch.long, device=b.device)
    for s in range(0, len(i), chunk):
        diff = a[ii[s : s + chunk]].double() - b[jj[s : s + chunk]].double()
        out[s : s + chunk] = diff.square_().sum(1).sqrt_().cpu().numpy()
    return out


def far_threshold(impostor_distances: np.ndarray, far: float) -> float | None:
    """Distance threshold whose false-accept rate on these impostors is at most ``far``.

    The ``k``-th smallest impostor distance with ``k = floor(far · M)`` (``M`` impostors), so that
    ``distance ≤ threshold`` accepts ``k / M ≤ far`` of them (ties aside). None when
    ``M < 1 / far``: too few impostors to calibrate at that rate.
    """
    d = np.sort(np.asarray(impostor_distances, dtype=np.float64))
    k = int(np.floor(far * d.size + 1e-9))
    if k < 1:
        return None
    return float(d[k - 1])
