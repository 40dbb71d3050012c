"""Identity leakage: generated faces that are the same person as a training (reference) face.

For each generated embedding the nearest reference embedding is found with the blocked, exact,
constant-memory search :func:`gan_eval.metrics.neighbors.nearest` (50,000 × 200,000 × 128-d runs
in well under 1 GB beyond its inputs). A generated face *leaks* when that distance is within a
match threshold (``distance ≤ threshold``); ``leakage_rate`` is the fraction of generated faces
that leak, with a 95% Wilson interval over the generated images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gan_eval.metrics.neighbors import DEFAULT_MEMORY_BUDGET, nearest
from gan_eval.recognition.stats import wilson_interval


@dataclass(frozen=True)
class NearestReference:
    """For each query row: the distance to and index of its nearest reference row."""

    distances: np.ndarray  # float64 (N,)
    indices: np.ndarray  # int64 (N,)


def nearest_reference(
    query: torch.Tensor,
    reference: torch.Tensor,
    *,
    exclude_self: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> NearestReference:
    """Nearest reference row of every query row (exact Euclidean, blocked, constant memory).

    ``exclude_self``: ``query`` is ``reference`` and a row may not match itself.
    """
    found = nearest(query, reference, k=1, exclude_self=exclude_self, memory_budget=memory_budget)
    return NearestReference(
        distances=found.distances[:, 0].cpu().numpy().astype(np.float64),
        indices=found.indices[:, 0].cpu().numpy().astype(np.int64),
    )


def leakage_at(nn: NearestReference, threshold: float) -> dict[str, Any]:
    """Leakage rate at ``threshold``: count, fraction and its 95% Wilson interval."""
    n = int(nn.distances.size)
    leaked = int(np.count_nonzero(nn.distances <= threshold))
    return {
        "threshold": float(threshold),
        "rate": leaked / n if n else None,
        "ci95": wilson_interval(leaked, n),
        "leaked": leaked,
        "n": n,
    }


def leaked_pairs(
    nn: NearestReference,
    threshold: float,
    *,
    top_k: int,
    query_ids: np.ndarray | None = None,
    reference_ids: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """The ``top_k`` closest leaked pairs, sorted by distance (then generated index).

    ``query_ids`` / ``reference_ids`` map embedding rows back to source image indices (they
    differ when ``--align`` dropped images without a face).
    """
    rows = np.flatnonzero(nn.distances <= threshold)
    rows = rows[np.lexsort((rows, nn.distances[rows]))][: max(0, top_k)]
    q = query_ids if query_ids is not None else np.arange(nn.distances.size)
    r_idx = nn.indices[rows]
    r = reference_ids[r_idx] if reference_ids is not None else r_idx
    return [
        {"generated": int(q[row]), "reference": int(ref), "distance": float(nn.distances[row])}
        for row, ref in zip(rows.tolist(), r.tolist(), strict=True)
    ]


def distance_quantiles(distances: np.ndarray) -> dict[str, float]:
    """5 / 25 / 50 / 75 / 95% quantiles of nearest distances (for the report's histogram)."""
    if distances.size == 0:
        return {}
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    return {f"q{int(q * 100):02d}": float(v) for q, v in zip(qs, np.quantile(distances, qs),
                                                            strict=True)}
