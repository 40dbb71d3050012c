"""Per-face measurements of restored faces against their clean originals.

:class:`Reference` holds what is computed once per clean face (face embeddings, LPIPS
activations, landmarks, feature-space statistics for FID, the calibrated same-person threshold)
and :meth:`Reference.measure` turns one batch of restored faces (one method, one degradation, the
same faces in the same order) into per-face values: ``psnr``, ``ssim``, ``lpips``,
``identity_distance``, ``identity_kept``, ``identity_swapped``, ``verified`` and
``landmark_distance`` (float64 arrays of N), the nearest other person of each face, the pair
distances behind the verification ROC and the feature rows behind FID.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.features.lpips_alex import LpipsAlex
from gan_eval.features.shape_predictor import ShapePredictor
from gan_eval.identity.verification_roc import far_threshold
from gan_eval.metrics.identity_keeping import identity_outcomes
from gan_eval.metrics.landmarks import landmark_distance
from gan_eval.metrics.pairs import CALIBRATION_PAIRS, different_pairs, pair_distances
from gan_eval.metrics.perceptual import lpips_distance
from gan_eval.metrics.pixel_fidelity import psnr, ssim
from gan_eval.seeding import numpy_rng

__all__ = ["VERIFICATION_FAR", "Measured", "Reference", "calibrated_threshold"]

FaceEmbedder = Callable[[torch.Tensor], torch.Tensor]
"""uint8 B×3×H×W face images → float B×D embeddings of a face recognizer."""

FeatureFn = Callable[[torch.Tensor], torch.Tensor]
"""uint8 B×3×H×W images → float B×D features of one extractor (for FID)."""

VERIFICATION_FAR = 0.01
"""False-accept rate at which ``verified`` (and the catalogue's verification_tar) is read."""


def calibrated_threshold(clean: torch.Tensor, labels: np.ndarray | None, far: float, *,
                         seed: int) -> dict[str, Any]:
    """The same-person distance threshold at false-accept rate ``far`` on pairs of different
    clean faces (different labels; unlabelled: different images, taken as different people).

    ``value`` is None, with ``reason``, when there are fewer than ``1/far`` such pairs (the
    threshold would accept nothing below ``far``): identity_kept_rate cannot be judged then."""
    n = int(clean.shape[0])
    i, j = different_pairs(n, max(CALIBRATION_PAIRS, math.ceil(10 / far)),
                           rng=numpy_rng(seed, "restoration/impostor-pairs"),
                           labels=None if labels is None else np.asarray(labels))
    distances = pair_distances(clean, clean, i, j)
    tau = far_threshold(distances, far)
    reason = None if tau is not None else (
        f"{distances.size} pairs of different clean faces; a same-person threshold at FAR "
        f"{far:g} needs at least {math.ceil(1 / far)} (more faces, or a larger --far)")
    return {"value": tau, "far": far, "pairs": int(distances.size), "reason": reason,
            "calibrated_on": ("pairs of different clean faces (different identity labels)"
                              if labels is not None else "pairs of different clean images, "
                              "taken as different people (the data has no identity labels)")}


@dataclass
class Measured:
    """One method on one degradation: per-face values and what the gallery and FID need."""

    values: dict[str, np.ndarray]
    other: np.ndarray  # each face's closest clean face of another person
    other_distance: np.ndarray
    verification: dict[str, Any]
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # extractor → N×D (FID)


@dataclass
class Reference:
    """The clean faces and everything measured on them once (module docstring)."""

    images: torch.Tensor  # uint8 N×3×H×W
    labels: np.ndarray | None
    embed: FaceEmbedder
    embeddings: torch.Tensor
    lpips: LpipsAlex | None  # None: LPIPS is not computed (its AlexNet weights are missing)
    activations: list[torch.Tensor]
    shapes: ShapePredictor
    landmarks: torch.Tensor
    box: tuple[int, int, int, int]
    threshold: float | None  # None: too few clean pairs to calibrate (no identity_kept)
    features: dict[str, FeatureFn]
    clean_features: dict[str, torch.Tensor]
    batch_size: int = 32

    def _batched(self, fn: Callable[[torch.Tensor], Any], images: torch.Tensor) -> list[Any]:
        return [fn(images[s : s + self.batch_size])
                for s in range(0, images.shape[0], self.batch_size)]

    def measure(self, restored: torch.Tensor) -> Measured:
        """Per-face values of uint8 N×3×H×W ``restored`` (row i restores clean face i)."""
        clean = self.images
        if restored.shape != clean.shape:
            raise InputError(f"restored images {tuple(restored.shape)} differ from the clean "
                             f"{tuple(clean.shape)}")
        values: dict[str, np.ndarray] = {
            "psnr": psnr(restored, clean).cpu().numpy(),
            "ssim": ssim(restored, clean).cpu().numpy(),
        }
        if self.lpips is not None:
            lp = []
            for s in range(0, restored.shape[0], self.batch_size):
                mine = self.lpips.activations(restored[s : s + self.batch_size])
                theirs = [a[s : s + self.batch_size] for a in self.activations]
                lp.append(lpips_distance(mine, theirs, list(self.lpips.heads)).double().cpu())
            values["lpips"] = torch.cat(lp).numpy()
        emb = torch.cat(self._batched(self.embed, restored)).to(self.embeddings.device)
        outcome = identity_outcomes(emb, self.embeddings, threshold=self.threshold or 0.0,
                                    labels=self.labels)
        values["identity_distance"] = outcome.distance
        values["identity_kept"] = (outcome.kept.astype(np.float64) if self.threshold is not None
                                   else np.full(outcome.kept.shape, np.nan))
        values["identity_swapped"] = outcome.swapped.astype(np.float64)
        verified, verification = _verification(emb, self.embeddings, self.labels)
        values["verified"] = verified
        marks = torch.cat(self._batched(lambda x: self.shapes(x, self.box), restored))
        values["landmark_distance"] = landmark_distance(marks, self.landmarks)
        features: dict[str, torch.Tensor] = {}
        for name, fn in self.features.items():
            features[name] = emb if fn is self.embed else torch.cat(self._batched(fn, restored))
        return Measured(values=values, other=outcome.other, other_distance=outcome.other_distance,
                        verification=verification, features=features)


def _verification(probes: torch.Tensor, gallery: torch.Tensor, labels: np.ndarray | None
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """Restored probes against the clean gallery: genuine pair (i, i), impostor pairs (i, j)
    of different people. Returns each face's ``verified`` indicator (its genuine distance at
    or below the threshold that accepts at most :data:`VERIFICATION_FAR` of the impostor
    pairs) and the ROC summary (:func:`gan_eval.identity.verification_roc.roc_summary`) with
    the LFW-style 10-fold accuracy on all genuine pairs and as many seeded impostor pairs."""
    from gan_eval.identity.verification_roc import kfold_accuracy, roc_summary

    n = int(probes.shape[0])
    people = np.arange(n) if labels is None else np.asarray(labels)
    d = torch.cdist(probes.double(), gallery.double()).cpu().numpy()
    genuine = np.diag(d).copy()
    impostor = d[people[:, None] != people[None, :]]
    tau = far_threshold(impostor, VERIFICATION_FAR)
    verified = (genuine <= tau).astype(np.float64) if tau is not None else np.full(n, np.nan)
    distances = np.concatenate([genuine, impostor])
    labels_ = np.concatenate([np.ones(n, bool), np.zeros(impostor.size, bool)])
    summary = roc_summary(distances, labels_)
    summary["threshold_at_far"] = tau
    balanced = np.concatenate([genuine, impostor[numpy_rng(0, "restoration/balanced").permutation(
        impostor.size)[:n]]])
    summary["accuracy_10fold"] = kfold_accuracy(
        balanced, np.concatenate([np.ones(n, bool), np.zeros(balanced.size - n, bool)]))
    summary["pairs"] = ("genuine: each restored face with its own clean face; impostor: with "
                        "every clean face of another person")
    return verified, summary
