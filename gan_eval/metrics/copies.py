"""Memorization audit: how close generated samples come to training samples, in embedding space.

For every generated embedding (e.g. a 128-d dlib face descriptor) find its nearest training
embedding (exact Euclidean search, :func:`gan_eval.metrics.neighbors.nearest`) and compare that
distance with the matched training image's own nearest-neighbour distance inside the training
set (excluding itself):

* ``distance`` — generated → nearest training embedding.
* ``ratio`` — ``distance / train_nn_distance``. Below 1: the generated sample sits closer to that
  training image than any other training image does, the signature of a copy. When the training
  image has an exact duplicate (own distance 0) the ratio is 0 if the generated sample is also an
  exact copy, else ``inf``.
* ``copy_rate`` — fraction of generated samples with ``distance <= threshold``; the default 0.6 is
  dlib's same-person threshold (``face_recognition.compare_faces`` tolerance, inclusive).
* ``closest_pairs`` — the ``top_k`` generated samples closest to the training set, with indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.faces import MATCH_THRESHOLD, is_match
from gan_eval.metrics.neighbors import (
    DEFAULT_MEMORY_BUDGET,
    check_features,
    check_same_dim,
    cross_search_squared,
    nearest,
    self_search_squared,
)

__all__ = ["DLIB_MATCH_THRESHOLD", "MemorizationResult", "NearestReference", "memorization",
           "nearest_reference"]

DLIB_MATCH_THRESHOLD = MATCH_THRESHOLD
"""dlib's same-person distance (:data:`gan_eval.faces.MATCH_THRESHOLD`)."""


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



def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _summary(t: torch.Tensor) -> dict[str, float | None]:
    if t.numel() == 0:
        return {"min": None, "median": None, "mean": None, "max": None}
    finite = t[torch.isfinite(t)]
    return {
        "min": _finite_or_none(float(t.min())),
        "median": _finite_or_none(float(t.median())),
        "mean": float(finite.mean()) if finite.numel() == t.numel() else None,
        "max": _finite_or_none(float(t.max())),
    }


@dataclass(frozen=True)
class MemorizationResult:
    """Nearest-training-sample analysis of a generated set.

    Attributes:
        nearest_index: int64 ``(M,)`` index of each generated sample's nearest training sample.
        distance: float64 ``(M,)`` Euclidean distance to it (embedding units).
        train_nn_distance: float64 ``(M,)`` that training sample's distance to its own nearest
            other training sample.
        ratio: float64 ``(M,)`` ``distance / train_nn_distance`` (0/0 → 0, x/0 → inf).
        threshold: match distance used for ``copy_rate``.
        copy_rate: fraction of generated samples with ``distance <= threshold``.
        closest_pairs: ``(generated_index, train_index, distance)`` of the ``top_k`` smallest
            distances, ascending (ties by generated index).
        n_generated, n_train: set sizes.
    """

    nearest_index: torch.Tensor = field(repr=False)
    distance: torch.Tensor = field(repr=False)
    train_nn_distance: torch.Tensor = field(repr=False)
    ratio: torch.Tensor = field(repr=False)
    threshold: float
    copy_rate: float
    closest_pairs: list[tuple[int, int, float]]
    n_generated: int
    n_train: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (no per-sample arrays; non-finite numbers become ``None``)."""
        ratio_by_index = self.ratio.tolist()
        return {
            "n_generated": self.n_generated,
            "n_train": self.n_train,
            "threshold": self.threshold,
            "copy_rate": self.copy_rate,
            "n_copies": round(self.copy_rate * self.n_generated),
            "distance": _summary(self.distance),
            "ratio": {
                **_summary(self.ratio),
                "fraction_below_1": float((self.ratio < 1).double().mean())
                if self.ratio.numel()
                else None,
            },
            "closest_pairs": [
                {
                    "generated": g,
                    "train": t,
                    "distance": d,
                    "ratio": _finite_or_none(ratio_by_index[g]),
                }
                for g, t, d in self.closest_pairs
            ],
        }


def memorization(
    generated: torch.Tensor,
    train: torch.Tensor,
    *,
    threshold: float = MATCH_THRESHOLD,
    top_k: int = 10,
    block_rows: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    nearest_found: NearestReference | None = None,
) -> MemorizationResult:
    """Nearest training sample of every generated sample, with copy rate and ratios.

    Args:
        generated: ``(M, D)`` embeddings of generated images (``M ≥ 1``).
        train: ``(N, D)`` embeddings of the training images (``N ≥ 2``).
        threshold: match distance for ``copy_rate`` (default 0.6, dlib's).
        top_k: how many closest pairs to report (fewer if ``M`` is smaller).
        block_rows, memory_budget: see :func:`gan_eval.metrics.neighbors.nearest`.
        nearest_found: the nearest training row of each generated row when already searched
            (:func:`nearest_reference` of the same embeddings), so that it is searched once.

    Raises:
        InputError: bad embeddings, mismatched ``D``, negative ``threshold`` or ``top_k``.
    """
    gen = check_features(generated, "generated", min_rows=1)
    tr = check_features(train, "train", min_rows=2)
    check_same_dim(gen, tr, "generated", "train")
    if not (threshold >= 0 and math.isfinite(threshold)):
        raise InputError(f"threshold must be a finite distance ≥ 0, got {threshold!r}")
    if top_k < 0:
        raise InputError(f"top_k must be ≥ 0, got {top_k}")
    if nearest_found is None:
        d2, idx = cross_search_squared(gen, tr, 1, None, block_rows, memory_budget)
        dist, nn_idx = d2[:, 0].sqrt(), idx[:, 0]
    else:
        if nearest_found.distances.shape != (gen.shape[0],):
            raise InputError(f"nearest_found holds {nearest_found.distances.shape[0]} rows for "
                             f"{gen.shape[0]} generated embeddings")
        dist = torch.from_numpy(nearest_found.distances).to(gen.device)
        nn_idx = torch.from_numpy(nearest_found.indices).to(gen.device)

    # Own nearest-neighbour distance of the matched training rows only: a query of those rows
    # against the training set (skipping each row itself) unless most rows are matched, where
    # the symmetric self pass is cheaper.
    matched = torch.unique(nn_idx)
    if 2 * matched.numel() >= tr.shape[0]:
        own_d2 = self_search_squared(tr, 1, block_rows, memory_budget)[0][:, 0]
        own_matched = own_d2[matched]
    else:
        own_d2, _ = cross_search_squared(tr[matched], tr, 1, matched, block_rows, memory_budget)
        own_matched = own_d2[:, 0]
    own = torch.empty(tr.shape[0], dtype=torch.float64, device=tr.device)
    own[matched] = own_matched.sqrt()
    train_nn = own[nn_idx]

    ratio = torch.where(
        train_nn > 0,
        dist / train_nn.clamp(min=torch.finfo(torch.float64).tiny),
        torch.where(dist > 0, math.inf, 0.0),
    )
    copy_rate = float(is_match(dist, threshold).double().mean())
    k = min(top_k, gen.shape[0])
    order = torch.argsort(dist, stable=True)[:k]
    closest = [(int(g), int(nn_idx[g]), float(dist[g])) for g in order.tolist()]
    return MemorizationResult(
        nearest_index=nn_idx.cpu(),
        distance=dist.cpu(),
        train_nn_distance=train_nn.cpu(),
        ratio=ratio.cpu(),
        threshold=float(threshold),
        copy_rate=copy_rate,
        closest_pairs=closest,
        n_generated=int(gen.shape[0]),
        n_train=int(tr.shape[0]),
    )
