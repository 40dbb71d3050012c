"""Did restoration keep the person? Per-face identity outcomes from face embeddings.

For restored faces ``r_i`` and their clean originals ``c_i`` (N×D embeddings of one face
recognizer, e.g. dlib's 128-D face descriptors), with identity labels of the clean set (or none:
every clean face is its own person):

- ``distance``: ``‖r_i − c_i‖``, the identity distance of restoration papers ("Deg.");
- ``kept``: ``distance ≤ threshold`` — still the same person at a same-person threshold
  (:func:`gan_eval.faces.is_match`);
- ``swapped``: some clean face of a *different* person is strictly closer to ``r_i`` than
  ``c_i`` is — restoration made (or kept) a face that the recognizer takes for someone else;
  ``other`` / ``other_distance`` name the closest such face.

Pure functions (torch in, numpy out, float64 distances).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.faces import is_match

__all__ = ["IdentityOutcome", "identity_outcomes"]


@dataclass(frozen=True)
class IdentityOutcome:
    """Per-face outcomes (N each): see the module docstring."""

    distance: np.ndarray
    kept: np.ndarray
    swapped: np.ndarray
    other: np.ndarray
    other_distance: np.ndarray


def identity_outcomes(
    restored: torch.Tensor, clean: torch.Tensor, *, threshold: float,
    labels: np.ndarray | None = None,
) -> IdentityOutcome:
    """Outcomes of ``restored`` (N×D) against ``clean`` (N×D, row i = the original of row i);
    ``labels``: N identity labels of the clean faces (None: all different). Needs at least two
    people among the clean faces."""
    if restored.ndim != 2 or restored.shape != clean.shape or restored.shape[0] < 2:
        raise InputError(f"identity outcomes: restored {tuple(restored.shape)} and clean "
                         f"{tuple(clean.shape)} must be the same N×D with N ≥ 2")
    n = restored.shape[0]
    people = np.arange(n) if labels is None else np.asarray(labels)
    if people.shape != (n,) or np.unique(people).size < 2:
        raise InputError("identity outcomes: the clean faces must show at least two people")
    d = torch.cdist(restored.double(), clean.double()).cpu().numpy()  # N×N
    own = d[np.arange(n), np.arange(n)]
    others = np.where(people[None, :] != people[:, None], d, np.inf)
    other = others.argmin(1)
    other_distance = others[np.arange(n), other]
    return IdentityOutcome(distance=own, kept=np.asarray(is_match(own, threshold)),
                           swapped=other_distance < own, other=other,
                           other_distance=other_distance)

