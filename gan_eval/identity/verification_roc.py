"""Face verification on labelled embeddings: pairs, ROC, EER, TAR@FAR, LFW-style 10-fold accuracy.

A pair ``(i, j)`` is *genuine* when both images have the same identity label and an *impostor*
pair otherwise; its score is the Euclidean distance between the two dlib embeddings (a pair is
accepted as "same person" when ``distance ≤ threshold``). The ROC statistics come from
scikit-learn (``roc_curve`` / ``roc_auc_score``) on the similarity ``−distance``:

- ``auc``: area under the ROC curve;
- ``eer``: the equal error rate, where the false-accept rate equals the false-reject rate
  (linear interpolation between the two ROC points around the crossing);
- ``tar_at_far``: the largest true-accept rate among ROC points whose false-accept rate is
  ``≤ far``; ``resolved`` says whether there are at least ``1 / far`` impostor pairs (fewer, and
  the only attainable rate ≤ far is 0);
- ``accuracy_10fold``: as in the LFW protocol, on balanced pairs (all genuine pairs and as many
  impostors) cut into 10 stratified folds: the accuracy-maximising threshold on 9 folds is applied
  to the 10th; mean ± sample std over the folds.

The intervals of auc / eer / tar are fold intervals: the same statistics on each of 10 stratified
folds of all pairs, mean ± std.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold

from gan_eval.metrics.pairs import MAX_GENUINE, different_pairs, genuine_pairs, pair_distances
from gan_eval.metrics.pairs import far_threshold as far_threshold  # gan_eval.identity's
from gan_eval.metrics.summaries import mean_std
from gan_eval.seeding import derive_seed, numpy_rng

FAR_TARGETS: tuple[float, ...] = (1e-2, 1e-3)
"""False-accept rates at which the true-accept rate is reported."""

MIN_IMPOSTORS = 10_000
"""Impostor pairs sampled: ``max(genuine pairs, MIN_IMPOSTORS)``, or all when fewer exist."""


@dataclass(frozen=True)
class PairScores:
    """Distances of the genuine and impostor pairs the protocol used (float64)."""

    genuine: np.ndarray
    impostor: np.ndarray


def far_key(far: float) -> str:
    return f"{far:g}"


# ----------------------------------------------------------------------------------------------
# Pairs
# ----------------------------------------------------------------------------------------------














# ----------------------------------------------------------------------------------------------
# ROC statistics
# ----------------------------------------------------------------------------------------------


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """(EER, score threshold at the EER) from a ROC curve, interpolating at the crossing."""
    fnr = 1.0 - tpr
    diff = fnr - fpr  # from 1 at (0, 0) down to -1 at (1, 1)
    k = int(np.argmax(diff <= 0))
    if k == 0:
        return float(fpr[0]), float(scores[0])
    d0, d1 = diff[k - 1], diff[k]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    eer = fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
    s0 = scores[k - 1] if np.isfinite(scores[k - 1]) else scores[k]
    return float(eer), float(s0 + t * (scores[k] - s0))


def roc_summary(
    distances: np.ndarray, genuine: np.ndarray, far_targets: tuple[float, ...] = FAR_TARGETS
) -> dict[str, Any]:
    """AUC, EER and TAR at each FAR for pair ``distances`` with boolean ``genuine`` labels."""
    y = np.asarray(genuine, dtype=bool)
    score = -np.asarray(distances, dtype=np.float64)
    n_imp = int((~y).sum())
    fpr, tpr, thresholds = roc_curve(y, score, drop_intermediate=False)
    eer, eer_score = equal_error_rate(fpr, tpr, thresholds)
    tar: dict[str, Any] = {}
    for far in far_targets:
        ok = np.flatnonzero(fpr <= far)
        best = ok[np.argmax(tpr[ok])]
        tar[far_key(far)] = {
            "tar": float(tpr[best]),
            "far": float(fpr[best]),
            "threshold": float(-thresholds[best]) if np.isfinite(thresholds[best]) else None,
            "resolved": n_imp * far >= 1.0,
        }
    return {
        "auc": float(roc_auc_score(y, score)),
        "eer": eer,
        "eer_threshold": -eer_score,
        "tar_at_far": tar,
        "n_genuine": int(y.sum()),
        "n_impostor": n_imp,
    }


def best_threshold(distances: np.ndarray, genuine: np.ndarray) -> float:
    """The distance threshold (accept ``d ≤ t``) with the highest accuracy on these pairs.

    Cut points lie midway between consecutive distinct distances; ties go to the smaller one.
    """
    order = np.argsort(distances, kind="stable")
    d = np.asarray(distances, dtype=np.float64)[order]
    y = np.asarray(genuine, dtype=bool)[order]
    n = d.size
    accepted_genuine = np.concatenate([[0], np.cumsum(y)])
    accepted_impostor = np.concatenate([[0], np.cumsum(~y)])
    correct = accepted_genuine + (accepted_impostor[-1] - accepted_impostor)
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = d[1:] > d[:-1]  # a cut between equal distances is not a threshold
    m = int(np.flatnonzero(valid)[np.argmax(correct[valid])])
    if m == 0:
        return float(np.nextafter(d[0], -np.inf))
    if m == n:
        return float(d[-1])
    return float((d[m - 1] + d[m]) / 2.0)


def kfold_accuracy(
    distances: np.ndarray, genuine: np.ndarray, *, folds: int = 10, seed: int = 0
) -> dict[str, Any]:
    """LFW-style k-fold accuracy: threshold chosen on k−1 folds, applied to the held-out one."""
    y = np.asarray(genuine, dtype=bool)
    d = np.asarray(distances, dtype=np.float64)
    smallest = int(min(y.sum(), (~y).sum()))
    k = min(folds, smallest)
    if k < 2:
        return {"skipped": True, "reason": f"{smallest} pair(s) in the smaller class; need ≥ 2"}
    splitter = StratifiedKFold(n_splits=k, shuffle=True,
                               random_state=derive_seed(seed, "verification/folds") % 2**32)
    accuracies: list[float] = []
    thresholds: list[float] = []
    for train, test in splitter.split(d, y):
        t = best_threshold(d[train], y[train])
        accuracies.append(float(np.mean((d[test] <= t) == y[test])))
        thresholds.append(t)
    return {
        "folds": k,
        **mean_std(accuracies),
        "accuracies": accuracies,
        "thresholds": thresholds,
        "n_pairs": int(d.size),
    }


def fold_intervals(
    distances: np.ndarray,
    genuine: np.ndarray,
    *,
    far_targets: tuple[float, ...] = FAR_TARGETS,
    folds: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """AUC, EER and (resolved) TAR@FAR on each of ``folds`` stratified folds: mean ± std."""
    y = np.asarray(genuine, dtype=bool)
    d = np.asarray(distances, dtype=np.float64)
    k = min(folds, int(y.sum()), int((~y).sum()))
    if k < 2:
        return {"skipped": True, "reason": "fewer than 2 pairs in a class"}
    per: dict[str, list[float]] = {"auc": [], "eer": []}
    per.update({f"tar@far={far_key(f)}": [] for f in far_targets})
    splitter = StratifiedKFold(n_splits=k, shuffle=True,
                               random_state=derive_seed(seed, "verification/folds") % 2**32)
    for _, test in splitter.split(d, y):
        summary = roc_summary(d[test], y[test], far_targets)
        per["auc"].append(summary["auc"])
        per["eer"].append(summary["eer"])
        for f in far_targets:
            entry = summary["tar_at_far"][far_key(f)]
            per[f"tar@far={far_key(f)}"].append(entry["tar"] if entry["resolved"] else np.nan)
    return {"folds": k, **{name: mean_std(values) for name, values in per.items()}}


def verification(
    embeddings: torch.Tensor,
    labels: np.ndarray,
    *,
    seed: int = 0,
    far_targets: tuple[float, ...] = FAR_TARGETS,
    max_genuine: int = MAX_GENUINE,
    min_impostors: int = MIN_IMPOSTORS,
    folds: int = 10,
) -> tuple[dict[str, Any], PairScores]:
    """The verification protocol on labelled ``embeddings`` (N×D); returns (section, pair scores).

    Genuine pairs: every same-identity pair (a seeded sample of ``max_genuine`` when more).
    Impostor pairs: ``max(#genuine, min_impostors)`` seeded random different-identity pairs (all of
    them when fewer exist). The pair distances are returned for threshold calibration and the
    utility protocol.
    """
    rng = numpy_rng(seed, "verification/pairs")
    labels = np.asarray(labels)
    gi, gj = genuine_pairs(labels, max_pairs=max_genuine, rng=rng)
    ii, ij = different_pairs(len(labels), max(gi.size, min_impostors), rng=rng, labels=labels)
    gd = pair_distances(embeddings, embeddings, gi, gj)
    idist = pair_distances(embeddings, embeddings, ii, ij)
    section: dict[str, Any] = {
        "identities": int(np.unique(labels).size),
        "images": int(labels.size),
        "pairs": {
            "genuine": int(gi.size),
            "impostor": int(ii.size),
            "sampling": f"genuine: all same-identity pairs (seeded sample of {max_genuine} if "
            f"more); impostor: max(#genuine, {min_impostors}) seeded different-identity pairs "
            "(all if fewer)",
            "seed": seed,
        },
        "score": "euclidean distance between dlib embeddings; accept when distance ≤ threshold",
    }
    if gi.size == 0 or ii.size == 0:
        section["skipped"] = True
        section["reason"] = (
            "no identity has two images" if gi.size == 0 else "only one identity is labelled"
        )
        return section, PairScores(gd, idist)
    d = np.concatenate([gd, idist])
    y = np.concatenate([np.ones(gd.size, bool), np.zeros(idist.size, bool)])
    section.update(roc_summary(d, y, far_targets))
    section["fold_intervals"] = fold_intervals(d, y, far_targets=far_targets, folds=folds,
                                               seed=seed)
    balanced = np.concatenate([gd, idist[: gd.size]])
    balanced_y = np.concatenate([np.ones(gd.size, bool), np.zeros(min(gd.size, idist.size), bool)])
    section["accuracy_10fold"] = kfold_accuracy(balanced, balanced_y, folds=folds, seed=seed)
    section["accuracy_10fold"]["pairs"] = "all genuine pairs and as many impostor pairs (LFW-style)"
    return section, PairScores(gd, idist)
