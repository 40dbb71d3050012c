"""Utility: what the generated faces do to face recognition on the labelled reference.

Two protocols (the reference must have identity labels):

1. **Generated faces as impostors.** Pairs (real image, generated image) are drawn uniformly at
   random (seeded), as many as the real impostor pairs, and treated as impostors: a GAN should
   invent people, so a generated face should not be accepted as any real person more often than a
   real stranger is. Reported: the acceptance rate of these pairs at the thresholds calibrated on
   real impostors to FAR 1e-2 and 1e-3 (and its ratio to the real FAR), and the verification
   protocol (AUC, EER, TAR@FAR, fold intervals) with the generated impostors added, beside the
   real-only numbers and the difference.
2. **Generated faces as gallery distractors** (MegaFace-style identification). Gallery: the first
   image of every identity with at least two images; probes: the other images of those
   identities. Rank-1 identification rate (the nearest gallery face has the probe's identity)
   with the gallery alone and with every generated face added as a distractor; the difference has
   a paired bootstrap interval over probes (1,000 resamples, seeded).

What "better" and "worse" mean here: the target is **no change** — generated faces that are as
distinct from the real identities as real strangers are (generated-impostor FAR ratio ≈ 1,
Δ ≈ 0). A ratio above 1, lower TAR / AUC, higher EER or a lower rank-1 rate is worse: generated
faces are confusable with real people (identity leakage, or faces crowded around real
identities). A ratio well below 1 or slightly better numbers are not a virtue: the generated faces
are easier to reject than real faces, most often because they look less like real faces.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gan_eval.recognition.leakage import nearest_reference
from gan_eval.recognition.stats import wilson_interval
from gan_eval.recognition.verification import (
    FAR_TARGETS,
    PairScores,
    far_key,
    far_threshold,
    fold_intervals,
    pair_distances,
    roc_summary,
)

BOOTSTRAP_RESAMPLES = 1000


def generated_impostors(
    reference: torch.Tensor,
    generated: torch.Tensor,
    scores: PairScores,
    *,
    seed: int = 0,
    far_targets: tuple[float, ...] = FAR_TARGETS,
    folds: int = 10,
) -> dict[str, Any]:
    """Protocol 1: generated faces as extra impostors (see the module docstring)."""
    rng = np.random.default_rng([seed, 1])
    count = int(scores.impostor.size)
    ri = rng.integers(0, reference.shape[0], size=count)
    gi = rng.integers(0, generated.shape[0], size=count)
    gen_d = pair_distances(reference, generated, ri, gi)
    acceptance: dict[str, Any] = {}
    for far in far_targets:
        threshold = far_threshold(scores.impostor, far)
        if threshold is None:
            acceptance[far_key(far)] = {"skipped": True, "reason": "too few real impostor pairs"}
            continue
        real_rate = float(np.mean(scores.impostor <= threshold))
        accepted = int(np.count_nonzero(gen_d <= threshold))
        acceptance[far_key(far)] = {
            "threshold": threshold,
            "real_far": real_rate,
            "generated_far": accepted / count,
            "generated_far_ci95": wilson_interval(accepted, count),
            "ratio": (accepted / count) / real_rate if real_rate > 0 else None,
        }
    real_d = np.concatenate([scores.genuine, scores.impostor])
    real_y = np.concatenate([np.ones(scores.genuine.size, bool), np.zeros(count, bool)])
    mixed_d = np.concatenate([real_d, gen_d])
    mixed_y = np.concatenate([real_y, np.zeros(count, bool)])
    real = roc_summary(real_d, real_y, far_targets)
    mixed = roc_summary(mixed_d, mixed_y, far_targets)
    delta = {
        "auc": mixed["auc"] - real["auc"],
        "eer": mixed["eer"] - real["eer"],
        **{
            f"tar@far={k}": mixed["tar_at_far"][k]["tar"] - real["tar_at_far"][k]["tar"]
            for k in real["tar_at_far"]
        },
    }
    return {
        "generated_pairs": count,
        "pairs": "(real image, generated image) drawn uniformly at random, as many as the real "
        "impostor pairs",
        "acceptance_at_real_far": acceptance,
        "with_generated_impostors": mixed,
        "with_generated_impostors_fold_intervals": fold_intervals(
            mixed_d, mixed_y, far_targets=far_targets, folds=folds, seed=seed
        ),
        "delta_vs_real_only": delta,
    }


def distractor_identification(
    reference: torch.Tensor, labels: np.ndarray, generated: torch.Tensor, *, seed: int = 0
) -> dict[str, Any]:
    """Protocol 2: rank-1 identification with and without generated gallery distractors."""
    labels = np.asarray(labels)
    _, first, counts = np.unique(labels, return_index=True, return_counts=True)
    gallery = np.sort(first[counts >= 2])
    if gallery.size == 0:
        return {"skipped": True, "reason": "no identity has two images"}
    in_gallery = np.zeros(labels.size, dtype=bool)
    in_gallery[gallery] = True
    probes = np.flatnonzero(~in_gallery & np.isin(labels, labels[gallery]))
    device = reference.device
    g_emb = reference[torch.as_tensor(gallery, device=device)]
    p_emb = reference[torch.as_tensor(probes, device=device)]
    plain = nearest_reference(p_emb, g_emb)
    correct = labels[gallery[plain.indices]] == labels[probes]
    with_distractors = nearest_reference(p_emb, torch.cat([g_emb, generated.to(device)]))
    hit_gallery = with_distractors.indices < gallery.size
    idx = np.where(hit_gallery, with_distractors.indices, 0)
    correct_d = hit_gallery & (labels[gallery[idx]] == labels[probes])
    rng = np.random.default_rng([seed, 2])
    n = probes.size
    boot = rng.integers(0, n, size=(BOOTSTRAP_RESAMPLES, n))
    diffs = correct_d[boot].mean(axis=1) - correct[boot].mean(axis=1)
    delta = float(correct_d.mean() - correct.mean())
    return {
        "gallery": int(gallery.size),
        "probes": int(n),
        "distractors": int(generated.shape[0]),
        "rank1": float(correct.mean()),
        "rank1_ci95": wilson_interval(int(correct.sum()), n),
        "rank1_with_distractors": float(correct_d.mean()),
        "rank1_with_distractors_ci95": wilson_interval(int(correct_d.sum()), n),
        "probes_taken_by_distractor": int(np.count_nonzero(~hit_gallery)),
        "delta": delta,
        "delta_ci95": [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))],
        "interval": f"paired bootstrap over probes, {BOOTSTRAP_RESAMPLES} resamples",
    }


INTERPRETATION = (
    "target is no change: generated faces as distinct from real identities as real strangers "
    "(FAR ratio ≈ 1, deltas ≈ 0). Ratio > 1, lower TAR/AUC/rank-1 or higher EER = worse: "
    "generated faces are confusable with real people. Ratio < 1 = generated faces are easier to "
    "reject than real faces (usually: less face-like), not better."
)
