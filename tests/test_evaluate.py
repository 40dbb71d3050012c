"""``evaluate``: numbers equal torch-fidelity's on the same inputs, caching, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
from typer.testing import CliRunner

from gan_eval.catalogue import metric_spec
from gan_eval.cli import app
from gan_eval.evaluation import EvaluateConfig, evaluate
from gan_eval.sources import open_source

runner = CliRunner()
REL = 1e-6  # relative tolerance against torch-fidelity on identical features
# torch-fidelity computes KID's polynomial kernels in the features' float32, gan-eval in float64;
# with float32 features that alone moves KID by ~4e-4 relative (measured). On float64 features
# the two agree to 1e-6 (tests/test_metrics_kid_isc.py); here the end-to-end bound is 2e-3.
KID_REL = 2e-3


class _Images(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _jittered(images: torch.Tensor, seed: int) -> torch.Tensor:
    """Real faces with a flip and mild noise: a second, different but face-like set."""
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.normal(0, 6, images.shape)).float()
    return (images.flip(-1).float() + noise).round().clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return open_source("builtin:lfw-subset").load()


def _save(tmp_path: Path, name: str, images: torch.Tensor) -> str:
    path = tmp_path / f"{name}.npy"
    np.save(path, images.numpy())
    return str(path)


def _close(ours: float, theirs: float, rel: float = REL) -> bool:
    return abs(ours - theirs) <= rel * max(abs(theirs), 1e-12)


def test_dlib_face_metrics_equal_torch_fidelity(tmp_path: Path, faces: torch.Tensor) -> None:
    generated, reference = _jittered(faces[:60], 1), faces[40:]
    config = EvaluateConfig(cache_dir=tmp_path / "cache", splits=10, progress=False)
    results = evaluate(_save(tmp_path, "g", generated), _save(tmp_path, "r", reference), config)
    theirs = torch_fidelity.calculate_metrics(
        input1=_Images(generated),
        input2=_Images(reference),
        feature_extractor="dlib-face",
        fid=True,
        kid=True,
        prc=True,
        kid_subset_size=60,
        verbose=False,
        cuda=False,
        batch_size=32,
        save_cpu_ram=True,
    )
    ours = {m.name: m.value for m in results.metrics}
    assert _close(ours["fid"], theirs["frechet_inception_distance"])
    assert _close(ours["kid"], theirs["kernel_inception_distance_mean"], KID_REL)
    assert _close(ours["precision"], theirs["precision"])
    assert _close(ours["recall"], theirs["recall"])
    uncalibrated = ("kid", "cmmd", "precision", "recall", "density", "coverage")
    for metric in results.metrics:
        assert metric.n_generated == 60 and metric.n_reference == 60
        if metric.name not in uncalibrated:
            assert metric.ci95 is not None and metric.ci95[0] <= metric.ci95[1]
    # the kernel and k-NN metrics' intervals are not calibrated at n = 60 (docs/regimes.md):
    # the values without them, each saying why
    for name in uncalibrated:
        assert results.metric(name).ci95 is None
        assert "calibrated only from" in results.metric(name).details["no_interval"]
    # every calibrated interval says what it is an interval of, with the se a gate tests
    estimands = {m.name: m.details["interval"]["estimand"] for m in results.metrics
                 if "interval" in m.details}
    assert estimands == {"fid": "mean_at_n", "copy_rate": "population",
                         "copy_rate_calibrated": "population"}
    # FID∞ at n = 60 in 128 dimensions is outside its regime: left out, with its reason
    omitted = results.omission("fid_infinity", "dlib-face")
    assert omitted is not None and omitted.n_generated == 60 and "needs n ≥" in omitted.reason
    # FID's interval with the reference redrawn too, beside the conditional one
    both = results.metric("fid").details["interval_both_sets"]
    assert both["estimand"] == "mean_at_sizes" and both["n_reference"] == 60
    assert both["se"] >= results.metric("fid").details["interval"]["se"]
    # the reader's label of the tables ("interval of") and of the gates ("compared")
    assert results.metric("fid").interval_of() == "at n=60"
    assert results.metric("copy_rate").interval_of() == "population"
    for metric in results.metrics:
        if metric.name in estimands:
            interval = metric.details["interval"]
            assert interval["n"] == 60 and interval["se"] > 0 and interval["level"] == 0.95
            # ci95 is the interval, clipped to the metric's range (a rate's at 1, FID's at 0)
            low, high = metric_spec(metric.name).bounds
            assert metric.ci95 == pytest.approx(
                tuple(min(max(v, low), high) for v in interval["ci"]), abs=1e-12)


def test_cli_splits_default_is_the_api_default() -> None:
    import inspect

    from gan_eval.cli import evaluate_cmd

    default = inspect.signature(evaluate_cmd).parameters["splits"].default
    assert default == EvaluateConfig().splits


@pytest.mark.slow
def test_inception_metrics_equal_torch_fidelity_plumbing(
    tmp_path: Path, faces: torch.Tensor
) -> None:
    """Random calibrated Inception weights in the real format: plumbing numbers, not FID."""
    from inception_fixture import write_calibrated_weights

    import gan_eval.features.inception as inception

    weights = write_calibrated_weights(tmp_path / "inception.pth")  # importing it registered it
    generated, reference = _jittered(faces[:40], 2), faces[50:90]  # 40: IS has an interval
    # the same batch size on both sides: BLAS blocking differs between batch shapes (~1e-7)
    config = EvaluateConfig(
        extractors=("inception",),
        inception_weights=weights,
        batch_size=15,
        cache_dir=tmp_path / "cache",
        splits=5,
        progress=False,
    )
    results = evaluate(_save(tmp_path, "g", generated), _save(tmp_path, "r", reference), config)
    theirs = torch_fidelity.calculate_metrics(
        input1=_Images(generated),
        input2=_Images(reference),
        feature_extractor=inception.FAST_EXTRACTOR_NAME,
        feature_extractor_weights_path=str(weights),
        fid=True,
        kid=True,
        prc=True,
        isc=True,
        kid_subset_size=40,
        isc_splits=10,
        verbose=False,
        cuda=False,
        batch_size=15,
        save_cpu_ram=True,
    )
    ours = {m.name: m.value for m in results.metrics}
    assert ours["fid"] > 1.0  # the calibrated weights separate the two sets
    # n = 40 ≪ d = 2048: torch-fidelity's eigvals of the rank-deficient Σ1·Σ2 and its float32
    # means move its FID by ~1e-6 relative (measured 1.05e-6 at n = 30), so the bound is 1e-5; the
    # Fréchet math itself is pinned to 1e-8 in tests/test_metrics_frechet.py.
    assert _close(ours["fid"], theirs["frechet_inception_distance"], 1e-5)
    assert _close(ours["kid"], theirs["kernel_inception_distance_mean"], KID_REL)
    assert _close(ours["is"], theirs["inception_score_mean"])
    assert _close(ours["precision"], theirs["precision"])
    assert _close(ours["recall"], theirs["recall"])
    # IS at n = 40 with 1,008 classes is reported without its interval, and IS∞ is left out:
    # both are outside their regime (n ≥ 2·C), each with the n it needs
    assert results.metric("is").ci95 is None
    assert "2,016" in results.metric("is").details["no_interval"]
    assert "is_infinity" not in ours
    omitted = results.omission("is_infinity", "inception")
    assert omitted is not None and omitted.needed_n is not None and omitted.needed_n > 1008
    # IS has a floor (the real images' IS, one chunk of 20) and a ceiling (the mean image's is
    # exactly 1: one image, one class distribution), on the same extractor
    span = results.metric("is").span()
    assert (span.n_generated, span.n_reference) == (20, 20)
    assert span.floor is not None and span.floor > 1 and span.ceiling == pytest.approx(1.0)
    assert span.ceiling_of == "mean face"
    for name in ("fid", "kid", "precision", "coverage"):
        assert results.metric(name).details["floor"]["n_generated"] == 20, name


def test_identical_sets_give_zero_fid_and_cache_skips_forward_passes(
    tmp_path: Path, faces: torch.Tensor
) -> None:
    path = _save(tmp_path, "same", faces[:30])
    config = EvaluateConfig(cache_dir=tmp_path / "cache", splits=5, progress=False)
    first = evaluate(path, path, config)
    assert abs(first.metric("fid").value) < 1e-6
    other = _save(tmp_path, "other", _jittered(faces[:30], 3))
    second = evaluate(other, path, config)
    passes = second.provenance["forward_passes"]["dlib-face"]
    assert passes["reference"] == 0 and passes["generated"] > 0
    uncached = evaluate(other, path, EvaluateConfig(use_cache=False, splits=5, progress=False))
    assert uncached.provenance["forward_passes"]["dlib-face"]["reference"] > 0
    assert uncached.metric("fid").value == pytest.approx(second.metric("fid").value, rel=1e-9)


def test_batch_size_does_not_change_the_numbers(tmp_path: Path, faces: torch.Tensor) -> None:
    g, r = _save(tmp_path, "g", _jittered(faces[:20], 4)), _save(tmp_path, "r", faces[20:40])
    values = []
    for batch_size in (3, 20):
        config = EvaluateConfig(batch_size=batch_size, use_cache=False, splits=5, progress=False)
        values.append(evaluate(g, r, config).metric("fid").value)
    assert values[0] == pytest.approx(values[1], rel=1e-5)


def test_cli_evaluate_writes_json_and_reports_bad_input(
    tmp_path: Path, faces: torch.Tensor
) -> None:
    g, r = _save(tmp_path, "g", _jittered(faces[:12], 5)), _save(tmp_path, "r", faces[12:24])
    out = tmp_path / "results.json"
    env = {"GAN_EVAL_CACHE_DIR": str(tmp_path / "cache")}
    result = runner.invoke(
        app,
        ["evaluate", g, "--reference", r, "--json", str(out), "-q", "--splits", "5"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["schema"] == "gan-eval/results/v1"
    assert {m["name"] for m in data["metrics"]} >= {
        "fid",
        "kid",
        "precision",
        "recall",
        "copy_rate",
    }

    one = _save(tmp_path, "one", faces[:1])
    result = runner.invoke(app, ["evaluate", g, "--reference", one, "-q"], env=env)
    assert result.exit_code == 2 and "one.npy" in result.output and "at least 2" in result.output

    result = runner.invoke(app, ["evaluate", g, "--reference", r, "-e", "vgg", "-q"], env=env)
    assert result.exit_code == 2 and "dlib-face, facenet-vggface2, inception" in result.output

    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((4, 8, 8), np.nan))
    result = runner.invoke(app, ["evaluate", str(nan), "--reference", r, "-q"], env=env)
    assert result.exit_code == 2 and "nan.npy" in result.output


def test_missing_inception_weights_exit_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAN_EVAL_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    result = runner.invoke(
        app,
        [
            "evaluate",
            "builtin:lfw-nonfaces",
            "--reference",
            "builtin:lfw-subset",
            "-e",
            "inception",
            "-q",
        ],
    )
    assert result.exit_code == 3
    assert "weights-inception-2015-12-05-6726825d.pth" in result.output
    assert "GAN_EVAL_INCEPTION_WEIGHTS" in result.output


def test_copy_rate_reports_its_chance_level_and_says_when_the_threshold_is_uninformative(
    tmp_path: Path, faces: torch.Tensor
) -> None:
    from sklearn.metrics import pairwise_distances

    from gan_eval import embed_faces

    reference = faces[12:40]
    config = EvaluateConfig(use_cache=False, splits=5, progress=False)
    results = evaluate(_save(tmp_path, "g", _jittered(faces[:12], 6)),
                       _save(tmp_path, "r", reference), config)
    chance = results.metric("copy_rate").details["chance"]
    d = pairwise_distances(embed_faces(reference).double().numpy())
    far = float(np.mean(d[np.triu_indices(len(d), 1)] <= 0.6))  # all 378 pairs
    assert chance["pairs"] == 378 and abs(chance["far_on_reference_pairs"] - far) <= 1 / 378
    assert chance["rate"] == pytest.approx(1 - (1 - chance["far_on_reference_pairs"]) ** 28)
    # 25×25 LFW crops: 0.6 accepts far more than 5% of pairs of different people
    assert far > 0.05 and "does not separate people" in chance["warning"]
    assert any("copy_rate" in note and "copy_rate_calibrated" in note
               for note in results.provenance["notes"])
    # so a gate on it cannot judge; 378 pairs cannot calibrate at FAR 1e-3 either: it says so
    unjudged = results.metric("copy_rate").details["cannot_judge"]
    assert "does not separate people" in unjudged["reason"] and unjudged["instead"] is None
    assert "needs at least 1000" in unjudged["reason"]
    assert "copy_rate_calibrated" not in {m.name for m in results.metrics}


def test_copy_rate_calibrated_uses_recognitions_calibrated_threshold(
    tmp_path: Path, faces: torch.Tensor
) -> None:
    """copy_rate_calibrated counts copies at the threshold with false-accept rate 1e-3 on the
    reference's impostor pairs: the same threshold as recognition's calibrated leakage, and the
    same count; copy_rate at 0.6 records that it cannot be judged here, naming it."""
    from gan_eval.identity import RecognitionConfig, recognition

    generated, reference = _save(tmp_path, "g", _jittered(faces[:30], 6)), _save(
        tmp_path, "r", faces[40:100])
    results = evaluate(generated, reference,
                       EvaluateConfig(cache_dir=tmp_path / "cache", splits=5, progress=False))
    calibrated = results.metric("copy_rate_calibrated")
    faces_audit = recognition(generated, reference, RecognitionConfig(
        birthday_trials=2, faceness_max=0, cache_dir=tmp_path / "cache"))
    leak = faces_audit.metric("leakage_rate_calibrated")
    assert calibrated.details["threshold"] == pytest.approx(leak.details["threshold"])
    assert calibrated.value == pytest.approx(leak.value)
    assert calibrated.details["far_on_reference_pairs"] <= 1e-3 < calibrated.details["far"] * 2
    assert calibrated.details["pairs"] == 60 * 59 // 2
    unjudged = results.metric("copy_rate").details["cannot_judge"]
    assert unjudged["instead"] == "copy_rate_calibrated"
    assert unjudged["far_on_reference_pairs"] > 0.05
    assert "cannot_judge" not in calibrated.details
    assert faces_audit.metric("leakage_rate").details["cannot_judge"]["instead"] == (
        "leakage_rate_calibrated")
    assert faces_audit.metric("identity_diversity").details["cannot_judge"]["instead"] == (
        "identity_diversity_calibrated")


def test_copy_rate_chance_is_zero_for_well_separated_references() -> None:
    from gan_eval.evaluation import _chance_copy_rate, _reference_impostors

    spread = torch.eye(50, dtype=torch.float64)  # every pair √2 apart
    chance = _chance_copy_rate(spread, 0.6, _reference_impostors(spread, EvaluateConfig()))
    assert chance["far_on_reference_pairs"] == 0 and chance["rate"] == 0
    assert chance["warning"] is None
