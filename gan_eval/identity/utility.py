"""Utility: what the generated faces do to face recognition on the labelled reference.

Three protocols (the reference must have identity labels):

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
3. **Generated faces as training data** for a small identity classifier on the embeddings.
   Identities with at least two images (at most :data:`MAX_IDENTITIES`, a seeded subset beyond)
   are split per identity, seeded: ``max(1, ⌊n·TEST_FRACTION⌋)`` of an identity's ``n`` images
   are held out for testing, the rest (≥ 1) train. Classifier A: multinomial logistic
   regression (scikit-learn, lbfgs, C = 1) on float64 embeddings standardised on its own training
   set, trained on the real training images. Classifier B: the same, trained on the real
   training images plus every generated face whose nearest real face (held-out images excluded)
   is a training face within the labelling threshold (the match threshold, or the calibrated one
   when the audit warns that the match threshold does not separate people on these images),
   pseudo-labelled with that face's identity; the others are left out (also those nearest a real
   person outside the classifier), and how many were added is reported. Both are scored on the same
   held-out real images: accuracy of each (Wilson intervals), the paired difference B − A with a
   paired bootstrap interval over test images (1,000 resamples, seeded), and the test images that
   adding the generated faces fixed / broke.
   Skipped (with the reason) when fewer than two identities have two images or no generated face
   is within the threshold of a training face.

What "better" and "worse" mean for protocols 1 and 2: the target is **no change** — generated
faces that are as distinct from the real identities as real strangers are (generated-impostor FAR
ratio ≈ 1, Δ ≈ 0). A ratio above 1, lower TAR / AUC, higher EER or a lower rank-1 rate is worse:
generated faces are confusable with real people (identity leakage, or faces crowded around real
identities). A ratio well below 1 or slightly better numbers are not a virtue: the generated faces
are easier to reject than real faces, most often because they look less like real faces.

For protocol 3 a higher accuracy with the generated faces (Δ > 0) is better *as training data*:
the generated faces look enough like the real people to be labelled and to teach the classifier
something it did not know. Read it beside leakage: the held-out images were in the GAN's training
set too, so a gain carried by generated faces nearer a held-out image than to any training image
(``added_nearer_a_test_image``) is memorisation of those images, not new data. Δ < 0 is worse:
faces that pass the threshold are not that person (the threshold accepts strangers, or the
generator blends identities) and their pseudo-labels are noise. Δ ≈ 0 with few faces added says
that the generated faces are far from every real person — what a privacy-minded generator gives.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from gan_eval.errors import InputError
from gan_eval.estimates import wilson_interval
from gan_eval.identity.leakage import nearest_reference
from gan_eval.identity.verification_roc import (
    FAR_TARGETS,
    PairScores,
    far_key,
    fold_intervals,
    pair_distances,
    roc_summary,
)
from gan_eval.metrics.pairs import far_threshold
from gan_eval.seeding import numpy_rng

BOOTSTRAP_RESAMPLES = 1000

TEST_FRACTION = 0.5
"""Protocol 3: share of each identity's images held out for testing (at least one, at most all
but one)."""
MAX_IDENTITIES = 500
"""Protocol 3: at most this many identities (a seeded subset beyond) keep the fit to seconds."""
CLASSIFIER_C = 1.0
"""Protocol 3: inverse L2 strength of the logistic regression on standardised embeddings
(scikit-learn's default). On the raw embeddings (coordinates ≈ 0.1) the same C underfits: two
people 0.5 apart are told apart by class sizes more than by their faces."""
CLASSIFIER_MAX_ITER = 1000
"""Protocol 3: lbfgs iterations at most (convergence is reported)."""


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
    rng = numpy_rng(seed, "utility/impostors")
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
    rng = numpy_rng(seed, "utility/distractors")
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


def identity_split(
    labels: np.ndarray,
    *,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
    max_identities: int = MAX_IDENTITIES,
) -> tuple[np.ndarray, np.ndarray]:
    """Protocol 3's split: sorted int64 row indices ``(train, test)`` into ``labels``.

    Only identities with at least two images take part (at most ``max_identities`` of them, a
    seeded choice beyond). Each identity's ``n`` rows are shuffled (seeded) and the first
    ``min(n − 1, max(1, ⌊n·test_fraction⌋))`` go to ``test``, the rest to ``train``: every
    identity is in both. Both are empty when no identity has two images.
    """
    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    if max_identities < 2:
        raise InputError(f"max_identities: expected an integer ≥ 2, got {max_identities!r}")
    labels = np.asarray(labels)
    rng = numpy_rng(seed, "utility/split")
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(labels[order][1:] != labels[order][:-1]) + 1
    groups = [g for g in np.split(order, bounds) if g.size >= 2]
    if len(groups) > max_identities:
        keep = np.sort(rng.choice(len(groups), size=max_identities, replace=False))
        groups = [groups[k] for k in keep]
    train: list[np.ndarray] = [np.zeros(0, np.int64)]
    test: list[np.ndarray] = [np.zeros(0, np.int64)]
    for rows in groups:
        rows = rng.permutation(rows)
        k = min(rows.size - 1, max(1, int(rows.size * test_fraction)))
        test.append(rows[:k])
        train.append(rows[k:])
    return (np.sort(np.concatenate(train)).astype(np.int64),
            np.sort(np.concatenate(test)).astype(np.int64))


def fit_identity_classifier(x: np.ndarray, y: np.ndarray) -> tuple[Pipeline, bool]:
    """Protocol 3's classifier fitted on ``x`` (K×D float64) and labels ``y`` (K,): features
    standardised on ``x``, then multinomial logistic regression (lbfgs, C = :data:`CLASSIFIER_C`).
    Also returns whether lbfgs converged within :data:`CLASSIFIER_MAX_ITER` iterations.
    Deterministic: nothing is sampled."""
    clf = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=CLASSIFIER_C, solver="lbfgs", max_iter=CLASSIFIER_MAX_ITER),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as "converged" instead
        clf.fit(x, y)
    return clf, bool(np.all(clf[-1].n_iter_ < CLASSIFIER_MAX_ITER))


def _paired_bootstrap(diff: np.ndarray, rng: np.random.Generator) -> list[float]:
    """95% percentile interval of ``diff.mean()`` over resamples of its entries (in chunks, so
    memory stays at 100 × len(diff) indices)."""
    n = diff.size
    means = np.concatenate([
        diff[rng.integers(0, n, size=(min(100, BOOTSTRAP_RESAMPLES - start), n))].mean(axis=1)
        for start in range(0, BOOTSTRAP_RESAMPLES, 100)
    ])
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def generated_training_data(
    reference: torch.Tensor,
    labels: np.ndarray,
    generated: torch.Tensor,
    *,
    threshold: float,
    seed: int = 0,
) -> dict[str, Any]:
    """Protocol 3: identity classification trained on real faces alone and with pseudo-labelled
    generated faces added (see the module docstring).

    ``reference`` (M×D) with identity ``labels`` (M,), ``generated`` (N×D) embeddings;
    ``threshold``: a generated face is added when its nearest real face (held-out images
    excluded) is within this distance and is a training face of one of the classifier's
    identities, whose label it takes. Accuracies are fractions of the held-out real images;
    ``delta`` is with-generated minus real-only. A dict with ``skipped`` and ``reason`` when the
    protocol cannot run (fewer than 2 identities with 2 images, nothing to add).
    """
    labels = np.asarray(labels)
    train, test = identity_split(labels, seed=seed)
    identities = int(np.unique(labels[train]).size)
    if identities < 2:
        return {"skipped": True,
                "reason": f"{identities} identit{'y has' if identities == 1 else 'ies have'} "
                "two or more images; at least 2 are needed to train and test a classifier"}
    counts: dict[str, Any] = {"identities": identities, "train": int(train.size),
                              "test": int(test.size), "generated": int(generated.shape[0]),
                              "pseudo_label_threshold": float(threshold)}
    if generated.shape[0] == 0:
        return {"skipped": True, "reason": "no generated faces", **counts}
    device = reference.device
    # Pseudo-labels come from every real face whose label the classifier may see: all but the
    # held-out ones. A face nearest an identity outside the classifier (one image, or beyond
    # MAX_IDENTITIES) is that person's, not the nearest class's, and is left out.
    in_test = np.zeros(labels.size, dtype=bool)
    in_test[test] = True
    in_train = np.zeros(labels.size, dtype=bool)
    in_train[train] = True
    gallery = np.flatnonzero(~in_test)
    generated = generated.to(device)
    nn = nearest_reference(generated, reference[torch.as_tensor(gallery, device=device)])
    within = nn.distances <= threshold
    to_class = in_train[gallery[nn.indices]]
    added = np.flatnonzero(within & to_class)
    counts["generated_nearest_another_identity"] = int(np.count_nonzero(within & ~to_class))
    if added.size == 0:
        return {"skipped": True,
                "reason": f"no generated face is within the threshold {threshold:g} of a real "
                f"training face of the classifier's identities (the nearest real face is at "
                f"{nn.distances.min():.3f}): none to add",
                **counts}
    pseudo = labels[gallery[nn.indices[added]]]
    added_t = torch.as_tensor(added, device=device)
    test_emb = reference[torch.as_tensor(test, device=device)]
    train_emb = reference[torch.as_tensor(train, device=device)]
    nearer_test = nearest_reference(generated[added_t], test_emb).distances < nn.distances[added]

    x_train = train_emb.detach().double().cpu().numpy()
    x_test = test_emb.detach().double().cpu().numpy()
    x_added = generated[added_t].detach().double().cpu().numpy()
    y_train, y_test = labels[train], labels[test]
    real_only, converged_a = fit_identity_classifier(x_train, y_train)
    mixed, converged_b = fit_identity_classifier(np.concatenate([x_train, x_added]),
                                                 np.concatenate([y_train, pseudo]))
    correct_a = real_only.predict(x_test) == y_test
    correct_b = mixed.predict(x_test) == y_test
    n = int(test.size)
    diff = correct_b.astype(np.float64) - correct_a.astype(np.float64)
    return {
        **counts,
        "classifier": "multinomial logistic regression (scikit-learn, lbfgs, "
        f"C={CLASSIFIER_C:g}) on embeddings standardised on its training set",
        "split": f"per identity, seeded: max(1, ⌊n·{TEST_FRACTION:g}⌋) of an identity's n "
        "images held out for testing, the rest train",
        "generated_added": int(added.size),
        "identities_receiving_generated": int(np.unique(pseudo).size),
        "added_nearer_a_test_image": int(np.count_nonzero(nearer_test)),
        "accuracy_real_only": float(correct_a.mean()),
        "accuracy_real_only_ci95": wilson_interval(int(correct_a.sum()), n),
        "accuracy_with_generated": float(correct_b.mean()),
        "accuracy_with_generated_ci95": wilson_interval(int(correct_b.sum()), n),
        "delta": float(diff.mean()),
        "delta_ci95": _paired_bootstrap(diff, numpy_rng(seed, "utility/bootstrap")),
        "fixed": int(np.count_nonzero(correct_b & ~correct_a)),
        "broken": int(np.count_nonzero(correct_a & ~correct_b)),
        "converged": {"real_only": converged_a, "with_generated": converged_b},
        "interval": f"Wilson for the accuracies; paired bootstrap over test images, "
        f"{BOOTSTRAP_RESAMPLES} resamples, for the delta",
    }


INTERPRETATION = (
    "target is no change: generated faces as distinct from real identities as real strangers "
    "(FAR ratio ≈ 1, deltas ≈ 0). Ratio > 1, lower TAR/AUC/rank-1 or higher EER = worse: "
    "generated faces are confusable with real people. Ratio < 1 = generated faces are easier to "
    "reject than real faces (usually: less face-like), not better. As training data "
    "(generated_as_training_data), delta > 0 = the generated faces teach a classifier of the real "
    "identities (a gain from faces nearer a held-out image is memorisation), delta < 0 = their "
    "pseudo-labels are wrong (faces confusable with the wrong person)."
)
