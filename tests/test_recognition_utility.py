"""Utility protocol 3: generated faces as training data for an identity classifier.

Synthetic embeddings (exact, fast) against a direct scikit-learn fit on the same split, properties
that a wrong pseudo-labelling or a wrong split would break, the skips, and one run of the whole
``recognition`` audit on a small labelled folder of real LFW faces.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from gan_eval.errors import InputError
from gan_eval.identity import RecognitionConfig, recognition
from gan_eval.identity.utility import (
    CLASSIFIER_C,
    CLASSIFIER_MAX_ITER,
    generated_training_data,
    identity_split,
)
from gan_eval.report.tables import recognition_table
from gan_eval.sources import open_source

DIM = 128


def unit(rows: int, seed: int) -> torch.Tensor:
    x = torch.randn(rows, DIM, generator=torch.Generator().manual_seed(seed))
    return x / x.norm(dim=1, keepdim=True)


def clustered(
    counts: list[int], *, spread: float, seed: int, radius: float = 1.0
) -> tuple[torch.Tensor, np.ndarray]:
    """Identity k: ``counts[k]`` embeddings around a random centre of norm ``radius``, Gaussian
    noise of norm ≈ ``spread``."""
    labels = np.repeat(np.arange(len(counts)), counts)
    centres = radius * unit(len(counts), seed)
    noise = torch.randn(labels.size, DIM, generator=torch.Generator().manual_seed(seed + 1))
    return centres[labels] + spread * noise / DIM**0.5, labels


def direct_fit(x: np.ndarray, y: np.ndarray, c: float = CLASSIFIER_C) -> Pipeline:
    """The documented classifier written out: standardise on the training set, then lbfgs."""
    lr = LogisticRegression(C=c, solver="lbfgs", max_iter=CLASSIFIER_MAX_ITER)
    return make_pipeline(StandardScaler(), lr).fit(x, y)


# ------------------------------------------------------------------------------------------------
# The split
# ------------------------------------------------------------------------------------------------


def test_split_is_per_identity_seeded_and_keeps_every_identity_on_both_sides() -> None:
    labels = np.array([3] * 2 + [7] * 5 + [1] * 1 + [9] * 8 + [4] * 3)
    rng = np.random.default_rng(0)
    shuffled = labels[rng.permutation(labels.size)]
    train, test = identity_split(shuffled, seed=11)
    assert np.intersect1d(train, test).size == 0
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    for ident, n in ((3, 2), (7, 5), (9, 8), (4, 3)):
        assert np.count_nonzero(shuffled[test] == ident) == max(1, n // 2)
        assert np.count_nonzero(shuffled[train] == ident) == n - max(1, n // 2)
    assert 1 not in shuffled[train] and 1 not in shuffled[test]  # one image: neither side
    again = identity_split(shuffled, seed=11)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    others = {tuple(identity_split(shuffled, seed=s)[1]) for s in range(5)}
    assert len(others) > 1  # the seed decides which images are held out


def test_split_caps_the_identities_with_a_seeded_subset() -> None:
    labels = np.repeat(np.arange(30), 3)
    train, test = identity_split(labels, seed=2, max_identities=10)
    assert np.unique(labels[train]).size == 10
    assert np.array_equal(np.unique(labels[train]), np.unique(labels[test]))


@pytest.mark.parametrize(("kwargs", "option"), [({"test_fraction": 1.0}, "test_fraction"),
                                                ({"test_fraction": 0.0}, "test_fraction"),
                                                ({"max_identities": 1}, "max_identities")])
def test_split_bad_options_name_the_option(kwargs: dict[str, float], option: str) -> None:
    with pytest.raises(InputError, match=option):
        identity_split(np.repeat(np.arange(3), 2), **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# Reference: the same numbers as a direct scikit-learn fit on the same split
# ------------------------------------------------------------------------------------------------


def test_accuracies_equal_a_direct_sklearn_fit_on_the_same_split() -> None:
    """Noisy identities (accuracy < 1), generated faces of the same people plus strangers; one
    image identities in the reference. Predictions must agree exactly (same data, same order,
    deterministic lbfgs), so the accuracies, fixed and broken counts are compared with ==."""
    counts = [6, 4, 5, 2, 7, 3, 1, 1, 6, 4]
    ref, labels = clustered(counts, spread=0.6, seed=40, radius=0.3)
    # 60 faces of the same people (as a GAN of them would draw) and 20 strangers.
    people, _ = clustered([6] * 10, spread=0.6, seed=40, radius=0.3)
    people = people[torch.randperm(60, generator=torch.Generator().manual_seed(1))]
    generated = torch.cat([people + 0.01 * unit(60, 41), 0.3 * unit(20, 42)])
    threshold = 0.8
    seed = 5
    got = generated_training_data(ref, labels, generated, threshold=threshold, seed=seed)
    assert not got.get("skipped"), got

    train, test = identity_split(labels, seed=seed)
    x = ref.double().numpy()
    g = generated.double().numpy()
    gallery = np.setdiff1d(np.arange(labels.size), test)  # pseudo-labels never see a test label
    d = np.linalg.norm(g[:, None, :] - x[gallery][None, :, :], axis=2)
    nearest, dist = d.argmin(axis=1), d.min(axis=1)
    assert np.min(np.abs(dist - threshold)) > 1e-4  # no face on the edge (float32 vs float64)
    added = (dist <= threshold) & np.isin(gallery[nearest], train)
    assert 0 < added.sum() < g.shape[0]
    pseudo = labels[gallery[nearest[added]]]
    a = direct_fit(x[train], labels[train]).predict(x[test]) == labels[test]
    b = direct_fit(np.concatenate([x[train], g[added]]),
                   np.concatenate([labels[train], pseudo])).predict(x[test]) == labels[test]
    assert 0.5 < a.mean() < 1.0 and not np.array_equal(a, b)  # a problem where B changes things
    assert got["accuracy_real_only"] == a.mean()
    assert got["accuracy_with_generated"] == b.mean()
    assert got["delta"] == pytest.approx(b.mean() - a.mean(), abs=1e-15)
    assert got["fixed"] == int(np.sum(b & ~a)) and got["broken"] == int(np.sum(a & ~b))
    assert got["generated_added"] == int(added.sum())
    assert got["identities_receiving_generated"] == np.unique(pseudo).size
    assert got["generated_nearest_another_identity"] == int(
        np.sum((dist <= threshold) & ~np.isin(gallery[nearest], train)))
    assert (got["train"], got["test"], got["identities"]) == (train.size, test.size, 8)
    lo, hi = got["delta_ci95"]
    assert lo <= got["delta"] <= hi
    assert got["converged"] == {"real_only": True, "with_generated": True}
    # Seeded: the same call gives the same section.
    assert generated_training_data(ref, labels, generated, threshold=threshold, seed=seed) == got


def test_copies_of_every_training_face_weigh_the_real_data_twice() -> None:
    """An exact copy of each training face is pseudo-labelled with its own identity (distance 0),
    so classifier B minimises C·2·Σ loss + ½‖w‖²: the real-only fit with C doubled."""
    ref, labels = clustered([5, 4, 6, 5, 4, 6], spread=0.8, seed=60)
    train, test = identity_split(labels, seed=0)
    got = generated_training_data(ref, labels, ref[torch.as_tensor(train)], threshold=0.1)
    assert got["generated_added"] == train.size
    assert got["added_nearer_a_test_image"] == 0
    x = ref.double().numpy()
    doubled = direct_fit(x[train], labels[train], c=2 * CLASSIFIER_C).predict(x[test])
    assert got["accuracy_with_generated"] == pytest.approx(np.mean(doubled == labels[test]),
                                                           abs=1e-12)


# ------------------------------------------------------------------------------------------------
# Property: right pseudo-labels help or are harmless, wrong ones hurt
# ------------------------------------------------------------------------------------------------


def confusable_pair(
    y_images: int,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
    """Identities X = 0 (10 images) and Y = 1 (``y_images``) at distance 0.5, four more far away
    (4 images each); tight clusters, except that X's held-out images sit 45% of the way towards
    Y: still nearer X's training faces than Y's.

    Returns the reference, labels, X's held-out rows, X's and Y's centres.
    """
    labels = np.repeat(np.arange(6), [10, y_images, 4, 4, 4, 4])
    _, test = identity_split(labels, seed=0)
    centres = unit(6, 70)
    away = unit(1, 71)[0]
    away = away - (away @ centres[0]) * centres[0]
    cx, cy = centres[0], centres[0] + 0.5 * away / away.norm()
    centres[1] = cy
    ref = centres[labels] + 0.01 * unit(labels.size, 72)
    hard = test[labels[test] == 0]
    ref[torch.as_tensor(hard)] = cx + 0.45 * (cy - cx) + 0.01 * unit(hard.size, 73)
    return ref, labels, hard, cx, cy


def test_rightly_labelled_faces_fix_the_mistakes_of_the_real_only_classifier() -> None:
    """Y has four times X's images, so the real-only classifier gives X's held-out faces (nearer
    X) to Y. Generated faces where those faces are take X's label and fix every one of them."""
    ref, labels, hard, cx, cy = confusable_pair(40)
    right = cx + 0.45 * (cy - cx) + 0.01 * unit(40, 80)
    got = generated_training_data(ref, labels, right, threshold=0.6)
    assert got["generated_added"] == 40 and got["identities_receiving_generated"] == 1
    # They copy the held-out faces: all are nearer a test image than their training face, and
    # the section says so (memorised test images are not new data).
    assert got["added_nearer_a_test_image"] == 40
    assert got["accuracy_real_only"] == 1 - hard.size / got["test"]  # exactly X's hard faces
    assert got["accuracy_with_generated"] == 1.0
    assert got["fixed"] == hard.size and got["broken"] == 0
    assert got["delta_ci95"][0] > 0


def test_wrongly_labelled_faces_lower_the_accuracy() -> None:
    """X and Y balanced: the real-only classifier is right everywhere. A generator blending X into
    Y puts faces just past the middle, nearest a Y training face: labelled Y, they pull X's
    held-out faces over to Y."""
    ref, labels, hard, cx, cy = confusable_pair(10)
    wrong = cx + 0.55 * (cy - cx) + 0.01 * unit(40, 81)
    got = generated_training_data(ref, labels, wrong, threshold=0.6)
    assert got["generated_added"] == 40 and got["identities_receiving_generated"] == 1
    assert got["accuracy_real_only"] == 1.0
    assert got["fixed"] == 0 and got["broken"] == hard.size
    assert got["accuracy_with_generated"] == 1 - hard.size / got["test"]
    assert got["delta_ci95"][1] < 0
    # The same faces on X's side of the middle take X's label and change nothing.
    harmless = generated_training_data(ref, labels, 2 * cx - wrong, threshold=0.6)
    assert harmless["generated_added"] == 40 and harmless["delta"] == 0.0


# ------------------------------------------------------------------------------------------------
# Skips
# ------------------------------------------------------------------------------------------------


def test_skipped_with_too_few_identities() -> None:
    ref, labels = clustered([3, 1, 1, 1], spread=0.1, seed=90)
    got = generated_training_data(ref, labels, ref[:2], threshold=0.6)
    assert got["skipped"] and "at least 2" in got["reason"]
    unique = generated_training_data(ref[:4], np.arange(4), ref[:2], threshold=0.6)
    assert unique["skipped"] and "0 identities" in unique["reason"]


def test_skipped_when_no_generated_face_is_within_the_threshold() -> None:
    ref, labels = clustered([4, 4, 4], spread=0.1, seed=91)
    far = 3.0 * unit(5, 92)  # new people, far from everyone
    got = generated_training_data(ref, labels, far, threshold=0.6)
    assert got["skipped"] and "within the threshold 0.6" in got["reason"]
    assert got["generated"] == 5 and got["identities"] == 3
    assert "accuracy_real_only" not in got
    empty = generated_training_data(ref, labels, ref[:0], threshold=0.6)
    assert empty["skipped"] and empty["reason"] == "no generated faces"


def test_faces_of_a_person_outside_the_classifier_are_not_added() -> None:
    """Copies of a one-image identity are that person, not the nearest class: left out, even
    though a class's training face is also within the threshold."""
    ref, labels = clustered([4, 4, 1], spread=0.05, seed=93)
    ref[-1] = ref[0] + 0.3 * unit(1, 94)[0]  # the single-image person is near identity 0
    copies = ref[-1:].repeat(3, 1)
    got = generated_training_data(ref, labels, copies, threshold=0.6)
    assert got["skipped"] and got["generated_nearest_another_identity"] == 3


# ------------------------------------------------------------------------------------------------
# In the audit, on real faces
# ------------------------------------------------------------------------------------------------

SIDE = 64
LFW_ROWS = (1, 5, 12, 20, 33)


@pytest.fixture(scope="module")
def labelled_lfw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five LFW faces as pseudo-identities, four views each (itself, mirrored, shifted, darker),
    upsampled to 64 px and saved one folder per identity (as tests/test_recognition_faces.py)."""
    lfw = open_source("builtin:lfw-subset").load()
    root = tmp_path_factory.mktemp("labelled-utility")
    for row in LFW_ROWS:
        big = torch.nn.functional.interpolate(lfw[row : row + 1].float(), size=(SIDE, SIDE),
                                              mode="bilinear", antialias=True)
        base = big[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
        padded = np.pad(base, ((3, 3), (3, 3), (0, 0)), mode="edge")
        views = [base, base[:, ::-1], padded[0:SIDE, 6 : 6 + SIDE],
                 np.clip(base.astype(np.float64) * 0.85, 0, 255).astype(np.uint8)]
        (root / f"lfw{row:03d}").mkdir()
        for k, view in enumerate(views):
            Image.fromarray(np.ascontiguousarray(view)).save(root / f"lfw{row:03d}" / f"{k}.png")
    return root


def test_the_audit_reports_generated_faces_as_training_data(
    labelled_lfw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    results = recognition("builtin:lfw-subset", str(labelled_lfw), RecognitionConfig(
        birthday_trials=4, seed=1))
    section = results.recognition["utility"]["generated_as_training_data"]
    assert not section.get("skipped"), section
    assert (section["identities"], section["train"], section["test"]) == (5, 10, 10)
    assert section["generated"] == 100
    assert 5 <= section["generated_added"] <= 100  # at least the five source faces themselves
    for key in ("accuracy_real_only", "accuracy_with_generated"):
        assert 0.0 <= section[key] <= 1.0
        lo, hi = section[f"{key}_ci95"]
        assert lo <= section[key] <= hi
    assert section["delta"] == pytest.approx(
        section["accuracy_with_generated"] - section["accuracy_real_only"], abs=1e-12)
    assert "classifier accuracy" in recognition_table(results)
    json.loads(json.dumps(results.recognition, allow_nan=False))  # strict JSON
