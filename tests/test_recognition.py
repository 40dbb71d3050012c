"""Recognition statistics on synthetic embeddings: exact, fast, no face network needed.

Reference numbers come from scikit-learn / scipy computed directly on the same scores, or from
brute-force loops written out here.
"""

from __future__ import annotations

import math
import resource
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold

from gan_eval.data import ArraySource
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.estimates import wilson_interval
from gan_eval.features.framing import Framing, frame_crops
from gan_eval.identity import (
    PairScores,
    RecognitionConfig,
    birthday_support,
    distractor_identification,
    far_threshold,
    first_duplicate_sizes,
    generated_impostors,
    identity_clusters,
    kfold_accuracy,
    leakage_at,
    leaked_pairs,
    nearest_reference,
    recognition,
    roc_summary,
)
from gan_eval.identity.verification_roc import (
    best_threshold,
    different_pairs,
    genuine_pairs,
    verification,
)
from gan_eval.metrics.summaries import median_rank_interval
from gan_eval.seeding import derive_seed


def unit(rows: int, dim: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, dim, generator=g)
    return x / x.norm(dim=1, keepdim=True)


def scores(seed: int = 0, n_gen: int = 300, n_imp: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = np.concatenate([rng.normal(0.45, 0.1, n_gen), rng.normal(0.8, 0.1, n_imp)])
    y = np.concatenate([np.ones(n_gen, bool), np.zeros(n_imp, bool)])
    return d, y


# ------------------------------------------------------------------------------------------------
# Verification statistics equal scikit-learn on the same scores
# ------------------------------------------------------------------------------------------------


def test_roc_summary_equals_direct_sklearn() -> None:
    d, y = scores()
    got = roc_summary(d, y, (1e-2, 1e-3))
    assert got["auc"] == pytest.approx(roc_auc_score(y, -d), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, -d)
    for far in (1e-2, 1e-3):
        assert got["tar_at_far"][f"{far:g}"]["tar"] == pytest.approx(tpr[fpr <= far].max())
        assert got["tar_at_far"][f"{far:g}"]["resolved"] == (3000 * far >= 1)
    # The EER as the widely used brentq / interp1d snippet computes it.
    eer = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert got["eer"] == pytest.approx(eer, abs=1e-9)
    # At the EER threshold the two error rates agree (to the granularity of the pairs).
    t = got["eer_threshold"]
    frr, far_ = np.mean(d[y] > t), np.mean(d[~y] <= t)
    assert abs(frr - got["eer"]) < 2 / 300 and abs(far_ - got["eer"]) < 2 / 300
    assert got["n_genuine"] == 300 and got["n_impostor"] == 3000


def brute_best_accuracy(d: np.ndarray, y: np.ndarray) -> float:
    candidates = np.concatenate([[-np.inf], np.sort(d)])
    return max(float(np.mean((d <= t) == y)) for t in candidates)


def test_best_threshold_is_the_brute_force_optimum() -> None:
    d, y = scores(seed=3, n_gen=80, n_imp=120)
    d = np.round(d, 2)  # ties
    t = best_threshold(d, y)
    assert np.mean((d <= t) == y) == pytest.approx(brute_best_accuracy(d, y))


def test_kfold_accuracy_follows_the_lfw_protocol() -> None:
    d, y = scores(seed=1, n_gen=300, n_imp=300)
    got = kfold_accuracy(d, y, folds=10, seed=7)
    expected = []
    folds = StratifiedKFold(10, shuffle=True,
                            random_state=derive_seed(7, "verification/folds") % 2**32)
    for train, test in folds.split(d, y):
        t = best_threshold(d[train], y[train])
        expected.append(np.mean((d[test] <= t) == y[test]))
    assert got["folds"] == 10
    assert got["accuracies"] == pytest.approx(expected)
    assert got["mean"] == pytest.approx(np.mean(expected))
    assert got["std"] == pytest.approx(np.std(expected, ddof=1))
    separable = kfold_accuracy(np.r_[np.full(20, 0.1), np.full(20, 0.9)],
                               np.r_[np.ones(20, bool), np.zeros(20, bool)])
    assert separable["mean"] == 1.0


def test_far_threshold_is_the_kth_impostor_distance() -> None:
    imp = np.arange(1, 2001, dtype=float) / 1000.0  # 0.001 .. 2.0
    assert far_threshold(imp, 1e-3) == pytest.approx(0.002)  # k = 2 of 2000
    assert np.mean(imp <= far_threshold(imp, 1e-2)) <= 1e-2
    assert far_threshold(imp[:999], 1e-3) is None  # fewer than 1/FAR pairs


def test_pairs_genuine_all_impostor_sampled_seeded() -> None:
    labels = np.repeat(np.arange(5), 4)  # 5 identities × 4 images
    rng = np.random.default_rng(0)
    gi, gj = genuine_pairs(labels, rng=rng)
    assert gi.size == 5 * 6 and np.all(labels[gi] == labels[gj]) and np.all(gi < gj)
    ii, ij = different_pairs(20, 100, rng=np.random.default_rng(0), labels=labels)
    assert ii.size == 100 and np.all(labels[ii] != labels[ij])
    assert len(set(zip(ii.tolist(), ij.tolist(), strict=True))) == 100
    again = different_pairs(20, 100, rng=np.random.default_rng(0), labels=labels)
    assert np.array_equal(ii, again[0]) and np.array_equal(ij, again[1])
    # Large sets are sampled without enumerating every pair.
    big = different_pairs(100_000, 1000, rng=np.random.default_rng(1))
    assert big[0].size == 1000 and np.all(big[0] < big[1])


def test_verification_on_separated_identities() -> None:
    centres = unit(8, seed=1) * 3.0
    labels = np.repeat(np.arange(8), 6)
    emb = centres[labels] + 0.05 * unit(48, seed=2)
    section, pair_scores = verification(emb, labels, seed=0)
    assert section["pairs"]["genuine"] == 8 * 15
    assert section["pairs"]["impostor"] == 48 * 47 // 2 - 120  # all of them (fewer than 10,000)
    assert section["auc"] == 1.0 and section["eer"] == 0.0
    assert section["accuracy_10fold"]["mean"] == 1.0
    assert pair_scores.genuine.size == 120


# ------------------------------------------------------------------------------------------------
# Leakage
# ------------------------------------------------------------------------------------------------


def test_leakage_rate_pairs_and_index_maps() -> None:
    ref = unit(500, seed=4)
    near = ref[:10] + 0.01 * unit(10, seed=5)
    far_ = unit(30, seed=6)  # random unit vectors: ≈ √2 from everything
    gen = torch.cat([far_[:15], near, far_[15:]])
    nn = nearest_reference(gen, ref)
    assert np.array_equal(nn.indices[15:25], np.arange(10))
    at = leakage_at(nn, 0.6)
    assert at["leaked"] == 10 and at["rate"] == pytest.approx(10 / 40)
    lo, hi = at["ci95"]
    assert lo < 0.25 < hi
    pairs = leaked_pairs(nn, 0.6, top_k=4, query_ids=np.arange(40) + 1000,
                         reference_ids=np.arange(500) * 2)
    assert len(pairs) == 4
    assert [p["distance"] for p in pairs] == sorted(p["distance"] for p in pairs)
    assert all(p["reference"] == 2 * (p["generated"] - 1015) for p in pairs)


def test_nearest_reference_matches_brute_force() -> None:
    gen, ref = unit(200, seed=7), unit(700, seed=8)
    nn = nearest_reference(gen, ref, memory_budget=2**20)  # forces many small blocks
    full = torch.cdist(gen.double(), ref.double())
    assert np.array_equal(nn.indices, full.argmin(1).numpy())
    assert np.allclose(nn.distances, full.min(1).values.numpy(), atol=1e-12)


@pytest.mark.slow
def test_leakage_search_memory_is_blocked() -> None:
    """20,000 × 60,000: a full float32 distance matrix would take 4.8 GB; the peak stays small."""
    gen, ref = unit(20_000, seed=9), unit(60_000, seed=10)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    nn = nearest_reference(gen, ref)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    assert (after - before) * scale < 1.0e9
    assert nn.distances.shape == (20_000,)


# ------------------------------------------------------------------------------------------------
# Diversity
# ------------------------------------------------------------------------------------------------


def test_clusters_count_separated_identities_and_one_repeated() -> None:
    centres = unit(12, seed=11) * 2.0
    emb = centres[torch.arange(240) % 12] + 0.03 * unit(240, seed=12)
    labels = identity_clusters(emb, 0.6)
    assert labels.max() + 1 == 12
    repeated = unit(1, seed=13).repeat(50, 1)
    assert identity_clusters(repeated, 0.6).max() == 0
    assert identity_clusters(repeated[:1], 0.6).tolist() == [0]


def test_average_linkage_does_not_chain() -> None:
    """Points 0.5 apart on a line: single linkage at 0.6 would join all 20 into one identity."""
    line = torch.zeros(20, 128)
    line[:, 0] = torch.arange(20) * 0.5
    k = int(identity_clusters(line, 0.6).max()) + 1
    assert 5 <= k <= 15


def test_birthday_support_on_a_known_support() -> None:
    support = 100
    centres = unit(support, seed=14) * 2.0
    rng = np.random.default_rng(0)
    emb = centres[torch.from_numpy(rng.integers(0, support, 3000))] + 0.01 * unit(3000, seed=15)
    sizes = first_duplicate_sizes(emb, [0.6], trials=200, seed=1)
    result = birthday_support(sizes[:, 0], 3000)
    # Uniform support S: P(dup within s) ≈ 1 − exp(−s²/2S) → median s ≈ √(2 ln2 · S) ≈ 11.8.
    assert 9 <= result["batch_size"] <= 15
    assert result["support"] == result["batch_size"] ** 2
    lo, hi = result["batch_size_ci95"]
    assert lo <= result["batch_size"] <= hi


def test_birthday_extremes() -> None:
    repeated = unit(1, seed=16).repeat(40, 1)
    one = birthday_support(first_duplicate_sizes(repeated, [0.6], trials=8)[:, 0], 40)
    assert one["batch_size"] == 2 and one["support"] == 4
    spread = unit(40, seed=17)  # pairwise ≈ √2 apart
    none = birthday_support(first_duplicate_sizes(spread, [0.6], trials=8)[:, 0], 40)
    assert none["support"] is None and none["support_lower_bound"] == 1600


def test_median_rank_interval_brackets_the_median() -> None:
    lo, hi = median_rank_interval(64)
    assert lo < 31 < hi < 64
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 0) is None


# ------------------------------------------------------------------------------------------------
# Utility
# ------------------------------------------------------------------------------------------------


def test_utility_copies_are_worse_strangers_are_neutral() -> None:
    centres = unit(10, seed=20)
    labels = np.repeat(np.arange(10), 5)
    ref = centres[labels] + 0.02 * unit(50, seed=21)
    _, pair_scores = verification(ref, labels)
    copies = centres.clone()  # each identity's "mean face": nearer its probes than its gallery
    strangers = unit(10, seed=31) * 1.0  # new people, as far from the reference as real ones
    with_copies = generated_impostors(ref, copies, pair_scores)
    with_strangers = generated_impostors(ref, strangers, pair_scores)
    assert with_copies["acceptance_at_real_far"]["0.01"]["ratio"] > 5
    assert with_copies["delta_vs_real_only"]["auc"] < 0
    assert with_strangers["acceptance_at_real_far"]["0.01"]["generated_far"] < 0.05
    ident = distractor_identification(ref, labels, copies)
    assert ident["rank1"] == 1.0 and ident["rank1_with_distractors"] < 0.5
    assert ident["delta_ci95"][1] < 0
    neutral = distractor_identification(ref, labels, strangers)
    assert neutral["delta"] == 0.0


def test_pair_scores_type() -> None:
    s = PairScores(np.zeros(2), np.ones(3))
    assert s.genuine.size == 2 and s.impostor.size == 3


def test_condensed_indices_match_triu() -> None:
    from gan_eval.identity.distinct_identities import _condensed_to_pairs

    n = 5000
    i, j = np.triu_indices(n, 1)
    k = np.random.default_rng(0).choice(i.size, 100_000, replace=False)
    got_i, got_j = _condensed_to_pairs(k, n)
    assert np.array_equal(got_i, i[k]) and np.array_equal(got_j, j[k])


# ------------------------------------------------------------------------------------------------
# Framing and options
# ------------------------------------------------------------------------------------------------


def test_frame_crops_margin_pads_crops_and_squares() -> None:
    img = torch.zeros(1, 3, 20, 30, dtype=torch.uint8)
    img[..., :, 5:25] = 200  # the centre 20×20 square is uniform 200
    out = frame_crops(img, 0.0)
    assert out.shape == (1, 3, 150, 150) and out.dtype == torch.uint8
    assert int(out.min()) == 200  # centre-cropped, not stretched
    ramp = torch.arange(20, dtype=torch.uint8).repeat(1, 3, 20, 1) * 10
    padded, cropped = frame_crops(ramp, 0.25), frame_crops(ramp, -0.25)
    assert int(padded[0, 0, 0, 0]) == 0 and int(padded[0, 0, 0, 20]) == 0  # replicated edge
    assert int(cropped[0, 0, 0, 0]) >= 40  # the outer 5 columns are cut


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"threshold": 0.0}, "--threshold"),
        ({"threshold": float("nan")}, "--threshold"),
        ({"far": 1.5}, "--far"),
        ({"margin": 2.0}, "--margin"),
        ({"margin": 0.1, "align": True}, "--margin"),
        ({"n": 0}, "--count"),
        ({"top_k": -1}, "--top-k"),
    ],
)
def test_bad_options_name_the_option(kwargs: dict[str, object], option: str) -> None:
    src = ArraySource(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), data="tiny")
    with pytest.raises(InputError, match=option):
        framing = {k: kwargs.pop(k) for k in ("margin", "align") if k in kwargs}
        recognition(src, src, RecognitionConfig(framing=Framing(**framing), **kwargs))  # type: ignore[arg-type]


def test_empty_generated_and_tiny_reference_are_input_errors() -> None:
    empty = ArraySource(torch.zeros(0, 3, 8, 8, dtype=torch.uint8), data="nothing")
    two = ArraySource(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), data="two")
    one = ArraySource(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), data="one")
    with pytest.raises(InputError, match="generated set holds no images"):
        recognition(empty, two)
    with pytest.raises(InputError, match="at least 2 reference images"):
        recognition(two, one)


def test_align_without_dlib_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from gan_eval.features import framing

    framing._dlib_models.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib → ImportError
    try:
        with pytest.raises(MissingAssetError, match="pip install dlib-bin"):
            framing.align_faces(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    finally:
        framing._dlib_models.cache_clear()


def test_framing_is_described() -> None:
    crop = Framing(margin=0.1).describe()
    assert crop["mode"] == "crop" and crop["margin"] == 0.1
    assert "get_face_chip" in Framing(align=True).describe()["chip"]
    assert math.isclose(Framing().margin, 0.0)


def test_faceness_is_skipped_with_a_reason_when_no_detector_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gan_eval.identity import faceness

    def missing() -> faceness.FaceDetector:
        raise ImportError("No module named 'dlib'")

    monkeypatch.setattr(faceness, "FACE_DETECTORS", {"dlib-hog": missing, "skimage-lbp": missing})
    detector, reasons = faceness.load_detector()
    assert detector is None and len(reasons) == 2
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8, generator=g)
    src = ArraySource(images, data="noise")
    results = recognition(src, src, RecognitionConfig(birthday_trials=2))
    section = results.recognition["faceness"]
    assert section["skipped"] and "dlib-bin" in section["reason"]
    assert {m.name for m in results.metrics} == {"leakage_rate", "identity_diversity",
                                                 "vendi_identities", "authenticity"}
    with pytest.raises(InputError, match="detector"):
        faceness.load_detector("haar")


def test_embeddings_cache_is_keyed_by_framing(tmp_path: Path) -> None:
    from gan_eval.features.cache import FeatureCache

    cache = FeatureCache(tmp_path)
    g = torch.Generator().manual_seed(1)
    src = ArraySource(torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=g),
                      data="noise")
    first = recognition(src, src, RecognitionConfig(
        birthday_trials=2, faceness_max=0, cache_dir=(cache).root))
    files = sorted((tmp_path / "features").glob("*.safetensors"))
    assert len(files) == 1  # one set, used twice: one entry
    again = recognition(src, src, RecognitionConfig(
        birthday_trials=2, faceness_max=0, cache_dir=(cache).root))
    assert again.recognition["leakage"] == first.recognition["leakage"]
    recognition(src, src, RecognitionConfig(
        birthday_trials=2, faceness_max=0, cache_dir=(cache).root, framing=Framing(margin=0.1)))
    assert len(list((tmp_path / "features").glob("*.safetensors"))) == 2
