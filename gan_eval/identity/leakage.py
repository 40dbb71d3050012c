"""Identity leakage: generated faces that are the same person as a training (reference) face.

For each generated embedding the nearest reference embedding is found with the blocked, exact,
constant-memory search :func:`gan_eval.metrics.copies.nearest_reference` (50,000 × 200,000 ×
128-d runs in well under 1 GB beyond its inputs). A generated face *leaks* when that distance is
within a match threshold (:func:`gan_eval.faces.is_match`: ``distance ≤ threshold``);
``leakage_rate`` is the fraction of generated faces that leak, with a 95% Wilson interval over
the generated images.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gan_eval.estimates import wilson_interval
from gan_eval.faces import is_match
from gan_eval.metrics.copies import NearestReference, nearest_reference

__all__ = ["NearestReference", "distance_quantiles", "leakage_at", "leaked_pairs",
           "nearest_reference"]


def leakage_at(nn: NearestReference, threshold: float) -> dict[str, Any]:
    """Leakage rate at ``threshold``: count, fraction and its 95% Wilson interval."""
    n = int(nn.distances.size)
    leaked = int(np.count_nonzero(is_match(nn.distances, threshold)))
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
    rows = np.flatnonzero(is_match(nn.distances, threshold))
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
