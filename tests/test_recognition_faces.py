"""Recognition tests on real faces, through the API and the ``gan-eval recognition`` command.

Faces: the 100 LFW faces and 100 non-face patches bundled with scikit-image (25×25 gray,
``builtin:lfw-subset`` / ``builtin:lfw-nonfaces``), ``skimage.data.astronaut()`` and matplotlib's
``grace_hopper.jpg``. No package ships several photos of one person, so the labelled folder's
identities are *pseudo-identities*: each is one real face photo under six augmentations (flip,
shifts, brightness, zoom). They exercise the protocol end to end; they are easier than real
different photos of one person, so the verification numbers are not LFW-comparable.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.features.dlib_face import embed_faces
from gan_eval.features.framing import frame_crops
from gan_eval.identity import (
    RecognitionConfig,
    analyse_embeddings,
    recognition,
    recognition_metrics,
)
from gan_eval.results import Results
from gan_eval.sources import open_source

runner = CliRunner()

# HOG boxes (x0, y0, x1, y1) of the two photos' faces, from dlib.get_frontal_face_detector().
ASTRONAUT_BOX = (175, 76, 265, 166)
HOPPER_BOX = (180, 139, 366, 325)
LFW_IDENTITIES = (1, 5, 12, 20, 33, 47)  # LFW subset rows used as pseudo-identities
SIDE = 64


def hopper() -> np.ndarray:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.asarray(Image.open(path).convert("RGB"))


def face_crop(img: np.ndarray, box: tuple[int, int, int, int], scale: float = 1.3) -> np.ndarray:
    """A square crop around a HOG box, about as framed as a dlib chip, resized to SIDE."""
    x0, y0, x1, y1 = box
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * scale / 2
    crop = img[int(cy - half) : int(cy + half), int(cx - half) : int(cx + half)]
    return np.asarray(Image.fromarray(crop).resize((SIDE, SIDE), Image.BILINEAR))


def augmentations(base: np.ndarray) -> list[np.ndarray]:
    """Six views of one face: itself, mirrored, shifted ±3 px, darker, brighter, zoomed 90%."""
    padded = np.pad(base, ((3, 3), (3, 3), (0, 0)), mode="edge")
    zoom = base[3:-3, 3:-3]
    return [
        base,
        base[:, ::-1],
        padded[0:SIDE, 6 : 6 + SIDE],
        np.clip(base.astype(np.float64) * 0.85, 0, 255).astype(np.uint8),
        np.clip(base.astype(np.float64) * 1.15, 0, 255).astype(np.uint8),
        np.asarray(Image.fromarray(np.ascontiguousarray(zoom)).resize((SIDE, SIDE))),
    ]


@pytest.fixture(scope="module")
def labelled_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from skimage.data import astronaut

    lfw = open_source("builtin:lfw-subset").load()
    bases = {
        "astronaut": face_crop(astronaut(), ASTRONAUT_BOX),
        "hopper": face_crop(hopper(), HOPPER_BOX),
    }
    for row in LFW_IDENTITIES:
        big = torch.nn.functional.interpolate(
            lfw[row : row + 1].float(), size=(SIDE, SIDE), mode="bilinear", antialias=True
        )
        bases[f"lfw{row:03d}"] = big[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    root = tmp_path_factory.mktemp("labelled")
    for name, base in bases.items():
        (root / name).mkdir()
        for k, view in enumerate(augmentations(base)):
            Image.fromarray(np.ascontiguousarray(view)).save(root / name / f"{k}.png")
    return root


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command caches embeddings; keep the tests' cache out of the user's."""
    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def lfw() -> tuple[torch.Tensor, torch.Tensor]:
    """The LFW faces (uint8 100×3×25×25) and their dlib embeddings (crop framing, margin 0)."""
    faces = open_source("builtin:lfw-subset").load()
    return faces, embed_faces(frame_crops(faces))


@pytest.fixture(scope="module")
def self_results() -> Results:
    """The training set fed back as the 'generated' set."""
    return recognition("builtin:lfw-subset", "builtin:lfw-subset", RecognitionConfig(
        birthday_trials=32))


@pytest.fixture(scope="module")
def nonface_results() -> Results:
    return recognition("builtin:lfw-nonfaces", "builtin:lfw-subset", RecognitionConfig(
        birthday_trials=32))


# ------------------------------------------------------------------------------------------------
# Property tests on real faces
# ------------------------------------------------------------------------------------------------


def test_training_set_as_generated_leaks_everything(self_results: Results) -> None:
    rec = self_results.recognition
    assert self_results.metric("leakage_rate").value >= 0.95
    assert rec["leakage"]["at"]["calibrated"]["rate"] >= 0.95
    assert rec["leakage"]["top_pairs"][0] == {
        "generated": 0, "reference": 0, "distance": 0.0, "leaked_at": ["match", "calibrated"]
    }
    assert self_results.metric("identity_diversity").value == (
        rec["diversity"]["reference"]["at"]["match"]["identities"]
    )
    # No identity labels: verification is skipped with a note, leakage is still there.
    assert rec["verification"]["skipped"] and "identity labels" in rec["verification"]["reason"]
    assert rec["framing"]["mode"] == "crop" and rec["framing"]["margin"] == 0.0


def test_real_faces_are_faces_at_the_calibrated_threshold(self_results: Results) -> None:
    rec = self_results.recognition
    faceness = self_results.metric("faceness")
    assert faceness.value >= 0.85
    assert faceness.details["interval"]["estimand"] == "population"  # a Wilson rate
    assert faceness.ci95 == pytest.approx(tuple(faceness.details["interval"]["ci"]))
    assert rec["faceness"]["generated"]["upsample_factors"] == [4]  # 25 px → ×4
    # ~100 different people: the calibrated threshold tells them apart.
    assert rec["diversity"]["reference"]["at"]["calibrated"]["identities"] >= 90
    assert 0.35 < rec["thresholds"]["calibrated"]["value"] < 0.6


def test_nonfaces_have_low_faceness_and_low_calibrated_leakage(nonface_results: Results) -> None:
    rec = nonface_results.recognition
    assert nonface_results.metric("faceness").value <= 0.1
    assert rec["faceness"]["reference"]["rate"] >= 0.85
    assert rec["leakage"]["at"]["calibrated"]["rate"] <= 0.05
    # At 25×25 gray, dlib's 0.6 accepts ~17% of pairs of different people, so non-faces sit
    # within 0.6 of some face: the result says so instead of reporting that as leakage silently.
    assert rec["thresholds"]["match"]["far_on_reference"] > 0.05
    assert "calibrated threshold" in rec["thresholds"]["warning"]
    assert "warning" in nonface_results.metric("leakage_rate").details


def test_flips_and_shifts_are_matched_to_their_face(
    lfw: tuple[torch.Tensor, torch.Tensor], self_results: Results
) -> None:
    faces, reference = lfw
    rows = [0, 10, 40, 70]
    views = []
    for row in rows:
        face = faces[row]
        views += [
            face.flip(-1),
            torch.roll(face, 1, dims=-1),
            torch.roll(face, -1, dims=-2),
            torch.nn.functional.pad(face[None, :, 1:, 1:].float(), (0, 1, 0, 1),
                                    mode="replicate")[0].byte(),
        ]
    generated = embed_faces(frame_crops(torch.stack(views)))
    section = analyse_embeddings(generated, reference,
                                 config=RecognitionConfig(top_k=100, birthday_trials=8))
    tau = self_results.recognition["thresholds"]["calibrated"]["value"]
    assert section["thresholds"]["calibrated"]["value"] == pytest.approx(tau)
    pairs = {p["generated"]: p for p in section["leakage"]["top_pairs"]}
    assert len(pairs) == len(views)
    for k in range(len(views)):
        assert pairs[k]["reference"] == rows[k // 4]
        assert pairs[k]["distance"] <= tau
    assert recognition_metrics(section)[0].value == 1.0


def test_a_generator_of_one_repeated_face_has_one_identity(
    lfw: tuple[torch.Tensor, torch.Tensor],
) -> None:
    faces, reference = lfw
    generated = embed_faces(frame_crops(faces[7:8].repeat(60, 1, 1, 1)))
    section = analyse_embeddings(generated, reference, config=RecognitionConfig(birthday_trials=16))
    found = {m.name: m for m in recognition_metrics(section)}
    assert found["identity_diversity"].value == 1
    assert found["identity_diversity_calibrated"].value == 1
    gen = section["diversity"]["generated"]["at"]
    assert gen["calibrated"]["identities"] == 1
    assert gen["match"]["birthday"]["batch_size"] == 2  # every pair is a duplicate


def test_margin_changes_the_chip_as_stated() -> None:
    lfw = open_source("builtin:lfw-subset").load()[:2]
    plain, padded = frame_crops(lfw, 0.0), frame_crops(lfw, 0.2)
    e = embed_faces(torch.cat([plain, padded]))
    assert 0.0 < float((e[0] - e[2]).norm()) < 0.6  # same face, other framing: still close


# ------------------------------------------------------------------------------------------------
# The command end to end, on a labelled folder
# ------------------------------------------------------------------------------------------------


def test_cli_labelled_reference_end_to_end(labelled_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "rec.json"
    result = runner.invoke(app, ["recognition", "builtin:lfw-subset", "--reference",
                                 str(labelled_folder), "--json", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "verification" in result.output and "fold accuracy" in result.output
    saved = Results.load(out)
    rec = saved.recognition
    ver = rec["verification"]
    assert ver["identities"] == 8 and ver["pairs"]["genuine"] == 8 * 15
    assert ver["pairs"]["impostor"] == 48 * 47 // 2 - 120  # every impostor pair
    assert ver["auc"] > 0.95 and ver["accuracy_10fold"]["folds"] == 10
    assert rec["diversity"]["reference_labelled_identities"] == 8
    assert {m.name for m in saved.metrics} >= {"leakage_rate", "identity_diversity", "faceness"}
    # The LFW rows that were turned into reference identities leak, to their own folder.
    names = sorted(p.relative_to(labelled_folder).as_posix()
                   for p in labelled_folder.rglob("*.png"))
    leaked = {p["generated"]: names[p["reference"]] for p in rec["leakage"]["top_pairs"]
              if "calibrated" in p["leaked_at"]}
    for row in LFW_IDENTITIES:
        assert leaked[row].startswith(f"lfw{row:03d}/")
    util = rec["utility"]
    assert util["generated_as_distractors"]["gallery"] == 8
    assert "0.001" in util["generated_as_impostors"]["acceptance_at_real_far"]
    json.loads(out.read_text())  # strict JSON (no NaN)


def test_verification_equals_sklearn_on_the_same_pairs(labelled_folder: Path) -> None:
    """Every pair is used (fewer than 10,000 impostors), so the numbers are fully determined."""
    source = open_source(str(labelled_folder))
    emb = embed_faces(frame_crops(source.load()))
    labels = np.asarray(source.labels)
    section = analyse_embeddings(emb, emb, labels=labels,
                                 config=RecognitionConfig(birthday_trials=4))
    ver = section["verification"]
    i, j = np.triu_indices(len(labels), 1)
    d = (emb[i].double() - emb[j].double()).norm(dim=1).numpy()
    y = labels[i] == labels[j]
    assert ver["auc"] == pytest.approx(roc_auc_score(y, -d), abs=1e-9)
    fpr, tpr, _ = roc_curve(y, -d)
    for far in ("0.01", "0.001"):
        assert ver["tar_at_far"][far]["tar"] == pytest.approx(tpr[fpr <= float(far)].max())
    calibrated = section["thresholds"]["calibrated"]
    assert calibrated["value"] == pytest.approx(np.sort(d[~y])[0], abs=1e-9)  # k = ⌊1e-3·1008⌋


# ------------------------------------------------------------------------------------------------
# Bad input through the command: exit 2 and a message naming the input
# ------------------------------------------------------------------------------------------------


def test_cli_empty_generated_folder(tmp_path: Path, labelled_folder: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["recognition", str(empty), "--reference", str(labelled_folder)])
    assert result.exit_code == 2
    assert str(empty) in result.output and "no files" in result.output


def test_cli_reference_of_one_image(tmp_path: Path) -> None:
    ref = tmp_path / "one"
    ref.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(ref / "a.png")
    result = runner.invoke(app, ["recognition", "builtin:lfw-subset", "--reference", str(ref)])
    assert result.exit_code == 2
    assert "--reference" in result.output and "at least 2 reference images" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--margin", "3"], "--margin"), (["--n", "0"], "--count"),
     (["--threshold", "-1"], "--threshold"), (["--far", "2"], "--far")],
)
def test_cli_bad_options(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["recognition", "builtin:lfw-subset", "--reference",
                                 "builtin:lfw-subset", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------------------------------------
# --align on raw photos (dlib-bin)
# ------------------------------------------------------------------------------------------------


def test_align_finds_aligns_and_drops(tmp_path: Path) -> None:
    pytest.importorskip("dlib")
    from skimage.data import astronaut, coffee

    photos = tmp_path / "photos"
    photos.mkdir()
    square = hopper()[44:556]  # 512 × 512
    for name, img in (("a_astronaut", astronaut()), ("b_hopper", square), ("c_coffee", coffee())):
        Image.fromarray(np.asarray(Image.fromarray(img).resize((256, 256)))).save(
            photos / f"{name}.png"
        )
    result = runner.invoke(app, ["recognition", str(photos), "--reference", str(photos),
                                 "--align", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    rec = Results.load(tmp_path / "r.json").recognition
    assert rec["framing"]["mode"] == "align"
    assert rec["framing"]["dropped"] == {"generated": 1, "reference": 1}  # the coffee cup
    assert rec["leakage"]["at"]["match"]["rate"] == 1.0
    assert [p["generated"] for p in rec["leakage"]["top_pairs"]] == [0, 1]
    # The two women are different people.
    assert rec["diversity"]["generated"]["at"]["match"]["identities"] == 2


def test_skimage_lbp_fallback_detects_lfw_faces_not_patches() -> None:
    from gan_eval.identity.faceness import SkimageLbpDetector, detect_faces

    faces = open_source("builtin:lfw-subset").load()[:30]
    patches = open_source("builtin:lfw-nonfaces").load()[:30]
    detector = SkimageLbpDetector()
    assert detect_faces([faces], detector).rate >= 0.8
    assert detect_faces([patches], detector).rate <= 0.1
