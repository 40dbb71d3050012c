"""FaceNet (Inception-ResNet-v1) equals the reference implementation (facenet-pytorch's
``InceptionResnetV1``, installed test-only with ``--no-deps``) on random weights written in the
official file format, and refuses files that are not that format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.features.facenet import (
    EMBEDDING_DIM,
    FaceNet,
    expected_shapes,
    load_facenet,
    read_facenet_state,
)
from gan_eval.features.registry import build_extractor

facenet_pytorch = pytest.importorskip(
    "facenet_pytorch", reason="test oracle: pip install --no-deps facenet-pytorch==2.6.0")


def _official_random(path: Path, seed: int = 0) -> torch.nn.Module:
    """The reference network with random weights and batch-norm statistics, saved as the
    official file is (a state dict with the 8,631-way classifier)."""
    torch.manual_seed(seed)
    ref = facenet_pytorch.InceptionResnetV1(classify=True, num_classes=8631).eval()
    with torch.no_grad():
        for module in ref.modules():
            if isinstance(module, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    torch.save(ref.state_dict(), path)
    ref.classify = False
    return ref


def test_state_names_and_shapes_are_the_official_ones() -> None:
    ref = facenet_pytorch.InceptionResnetV1(classify=True, num_classes=8631)
    official = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert expected_shapes() == official


def test_embeddings_equal_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "20180402-114759-vggface2.pt"
    ref = _official_random(path)
    x = torch.rand(4, 3, 160, 160) * 2 - 1
    with torch.no_grad():
        expected = ref(x)
        unfolded = FaceNet().eval()
        unfolded.load_state_dict(read_facenet_state(path))
        plain = unfolded(x)
    ours = load_facenet(path)(x.contiguous(memory_format=torch.channels_last))
    assert ours.shape == (4, EMBEDDING_DIM)
    # unit vectors: absolute tolerance; folding the batch norms changes float32 rounding only
    torch.testing.assert_close(plain, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, expected, rtol=0, atol=2e-5)


def test_the_extractor_takes_uint8_crops(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    ref = _official_random(path, seed=1)
    images = torch.randint(0, 256, (3, 3, 25, 25), dtype=torch.uint8)
    extractor = build_extractor("facenet-vggface2", device="cpu", weights=path)
    out = extractor(images)["embedding"]
    assert extractor.check_weights(path)
    resized = torch.nn.functional.interpolate(images.float(), size=(160, 160), mode="bilinear",
                                              antialias=True, align_corners=False)
    x = (resized.round().clamp(0, 255) - 127.5) / 128.0
    with torch.no_grad():
        torch.testing.assert_close(out, ref(x), rtol=0, atol=2e-5)
    assert torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-5)


@pytest.mark.parametrize("damage", ["html", "empty", "pickle", "missing", "shape", "nan",
                                    "extra", "not_dict"])
def test_files_that_are_not_the_weights_are_refused(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "w.pt"
    good = FaceNet().state_dict()
    if damage == "html":
        path.write_text("<html><body>captive portal</body></html>")
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "pickle":
        import pickle

        path.write_bytes(pickle.dumps(print))  # a global reference: weights_only refuses it
    elif damage == "missing":
        torch.save({k: v for k, v in good.items() if "repeat_2.3" not in k}, path)
    elif damage == "shape":
        torch.save({**good, "last_linear.weight": torch.zeros(128, 1792)}, path)
    elif damage == "nan":
        torch.save({**good, "block8.conv2d.bias": torch.full((1792,), float("nan"))}, path)
    elif damage == "extra":
        torch.save({**good, "something.else": torch.zeros(2)}, path)
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(InputError, match=str(path)) as info:
        read_facenet_state(path)
    assert "expected 20180402-114759-vggface2.pt" in str(info.value)


# --- FaceNet as the face network of every identity number (--face-extractor) -----------------
# Random weights in the official format: these numbers are plumbing (which network, which
# threshold, which weights file), not FaceNet's accuracy.


@pytest.fixture(scope="module")
def random_official(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("facenet") / "20180402-114759-vggface2.pt"
    _official_random(path, seed=3)
    return path


def test_the_published_thresholds_are_the_catalogue_s() -> None:
    from gan_eval import catalogue
    from gan_eval.faces import MATCH_THRESHOLD

    faces = {n: s.match_threshold for n, s in catalogue.EXTRACTORS.items() if s.face}
    assert faces == {"dlib-face": MATCH_THRESHOLD, "facenet-vggface2": None}


def test_recognition_on_facenet_calibrates_its_match_threshold(random_official: Path) -> None:
    from gan_eval.fileio import sha256_file
    from gan_eval.identity import RecognitionConfig, recognition

    config = RecognitionConfig(face_extractor="facenet-vggface2", weights=random_official,
                               use_cache=False, faceness_max=0, birthday_trials=4,
                               permutations=50, heldout="builtin:lfw-heldout")
    results = recognition("builtin:lfw-nonfaces", "builtin:lfw-train", config)
    section = results.recognition
    assert section["extractor"] == "facenet-vggface2"
    match, calibrated = section["thresholds"]["match"], section["thresholds"]["calibrated"]
    assert "no published same-person distance" in match["source"]
    assert match["value"] == calibrated["value"]
    identity = {m.name: m.extractor for m in results.metrics if m.name != "faceness"}
    assert {"leakage_rate", "identity_diversity", "vendi_identities", "authenticity"} <= set(
        identity)
    assert set(identity.values()) == {"facenet-vggface2"}
    assert section["identity"]["vendi"]["bandwidth"] == pytest.approx(match["value"] / 2)
    assert section["identity"]["membership"].get("skipped") is not True
    assert results.provenance["weights"] == {"facenet-vggface2": sha256_file(random_official)}


def test_recognition_on_dlib_keeps_its_published_threshold() -> None:
    from gan_eval.identity import RecognitionConfig, recognition

    results = recognition("builtin:lfw-heldout", "builtin:lfw-train",
                          RecognitionConfig(use_cache=False, faceness_max=0, birthday_trials=4))
    match = results.recognition["thresholds"]["match"]
    assert match["value"] == 0.6 and "published" in match["source"]
    assert results.recognition["identity"]["vendi"]["bandwidth"] == pytest.approx(0.3)


def test_the_cli_takes_face_extractor_and_its_weights(tmp_path: Path,
                                                       random_official: Path) -> None:
    from typer.testing import CliRunner

    from gan_eval.cli import app

    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [
        "recognition", "builtin:lfw-heldout", "--reference", "builtin:lfw-train",
        "--face-extractor", "facenet-vggface2", "--weights",
        f"facenet-vggface2={random_official}", "--no-cache", "--json", str(out),
        "--device", "cpu"])
    assert result.exit_code == 0, result.output
    saved = Path(out).read_text()
    assert '"leakage_rate"' in saved and '"extractor": "facenet-vggface2"' in saved


@pytest.mark.parametrize("command", ["recognition", "restoration"])
def test_a_face_extractor_that_is_not_a_face_network_is_exit_2(command: str) -> None:
    from typer.testing import CliRunner

    from gan_eval.cli import app

    args = (["recognition", "builtin:lfw-heldout", "--reference", "builtin:lfw-train"]
            if command == "recognition" else ["restoration", "builtin:none", "--data",
                                              "builtin:lfw-heldout"])
    result = CliRunner().invoke(app, [*args, "--face-extractor", "inception"])
    assert result.exit_code == 2
    assert "--face-extractor inception: expected a face network, one of dlib-face, " \
        "facenet-vggface2" in result.output


def test_facenet_without_its_file_is_exit_3_with_the_fetch_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from gan_eval.cli import app

    monkeypatch.setenv("GAN_EVAL_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("GAN_EVAL_FACENET_VGGFACE2_WEIGHTS", raising=False)
    result = CliRunner().invoke(app, [
        "recognition", "builtin:lfw-heldout", "--reference", "builtin:lfw-train",
        "--face-extractor", "facenet-vggface2"])
    assert result.exit_code == 3, result.output
    assert "gan-eval weights fetch facenet-vggface2" in result.output


def test_restoration_identity_on_facenet(random_official: Path, tmp_path: Path) -> None:
    from lpips_fixture import write_random_alexnet

    from gan_eval import catalogue
    from gan_eval.fileio import sha256_file
    from gan_eval.restoration.audit import RestorationConfig, audit_restoration
    from gan_eval.restoration.plan import Condition

    alexnet = write_random_alexnet(tmp_path / catalogue.ALEXNET_FILENAME)
    run = audit_restoration(["builtin:none"], "builtin:lfw-heldout", RestorationConfig(
        conditions=(Condition("noise", 25.0),), baselines=False, n=8, resolution=64,
        face_extractor="facenet-vggface2",
        weights={"facenet-vggface2": random_official, "lpips-alex": alexnet}))
    identity = [m for m in run.results.metrics if m.extractor == "facenet-vggface2"]
    assert {m.name for m in identity} >= {"identity_distance", "identity_swap_rate"}
    assert run.results.restoration["face_extractor"] == "facenet-vggface2"
    assert run.results.provenance["weights"]["facenet-vggface2"] == sha256_file(random_official)


def test_evaluate_on_facenet_leaves_copy_rate_out_and_says_why(random_official: Path) -> None:
    from gan_eval.evaluation import EvaluateConfig, evaluate

    results = evaluate("builtin:lfw-heldout", "builtin:lfw-train", EvaluateConfig(
        extractors=("facenet-vggface2",), weights=(("facenet-vggface2", random_official),),
        use_cache=False, splits=4))
    names = {m.name for m in results.metrics}
    assert "copy_rate" not in names and "copy_rate_calibrated" in names
    omitted = {o.name: o for o in results.omitted}
    assert "no published same-person distance" in omitted["copy_rate"].reason
