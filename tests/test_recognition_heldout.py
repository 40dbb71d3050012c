"""Held-out sets (``--heldout``) are checked like the reference before any comparison (issue 24).

Held-out faces are resized to the reference's resolution the way the reference is (``report``
resizes the training faces to the generator's resolution), then:

* **identical after resize** — held-out images that are training images (the same pixels at the
  reference's resolution, up to a different resize path or a JPEG re-encoding) make the
  membership test meaningless: exit 2 "cannot judge membership: N held-out faces are also in the
  training set", naming ``--heldout`` (``report --heldout`` used to compare them before resizing:
  80 training faces given as held out gave membership p = 0.51 and no warning);
* **overlapping people** — a person named in both sets (folder names) is a warning, as before;
  other photos of training people are not refused (they are not the same images);
* **non-faces** — a held-out set in which the face detector finds faces far less often than in
  the reference is warned (``builtin:lfw-nonfaces`` used to be accepted silently as "held-out real
  faces").

Real dlib embeddings of the built-in LFW faces; the reference is ``builtin:lfw-train`` resized to
32 px as ``report`` resizes it for the tiny DCGAN. One private feature cache per module.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.data.convert import resize_uint8
from gan_eval.data.source import ArraySource
from gan_eval.errors import InputError
from gan_eval.identity import RecognitionConfig, recognition
from gan_eval.report.html import Pictures, render_html
from gan_eval.report.tables import recognition_table
from gan_eval.sources import open_source

runner = CliRunner()
FAST = {"birthday_trials": 4, "permutations": 500}
RESOLUTION = 32  # the tiny DCGAN's: report resizes the training faces to it


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GAN_EVAL_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return open_source("builtin:lfw-subset").load()  # uint8 100×3×25×25


def _reference() -> ArraySource:
    """The training faces as report opens them: builtin:lfw-train resized to 32 px."""
    return open_source("builtin:lfw-train", resolution=RESOLUTION)  # type: ignore[return-value]


def _generated(faces: torch.Tensor) -> ArraySource:
    return ArraySource(resize_uint8(faces[80:100], RESOLUTION), data="generated")


def _npy(images: torch.Tensor, path: Path) -> str:
    np.save(path, images.permute(0, 2, 3, 1).numpy())
    return str(path)


def _folder(images: torch.Tensor, path: Path, fmt: str = "PNG", quality: int = 95) -> str:
    path.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(
            path / f"{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}", fmt,
            **({"quality": quality} if fmt == "JPEG" else {}))
    return str(path)


def _jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
        out.append(torch.from_numpy(np.array(Image.open(buffer).convert("RGB"))).permute(2, 0, 1))
    return torch.stack(out)


# ---- identical after resize: refused -----------------------------------------------------------

# (how the held-out set is made from training faces, how many of its faces are training faces)
COPIES = {
    # the stored training pixels in another container: identical once resized like the reference
    "same pixels, 25 px .npy": (lambda f, d: _npy(f[0:80], d / "h.npy"), 80),
    # upsampled copies: another resize path to 32 px (mean difference ≤ 3.1 levels)
    "upsampled to 64 px, PNG folder": (
        lambda f, d: _folder(resize_uint8(f[0:20], 64), d / "h64"), 20),
    "upsampled to 128 px, .npy": (lambda f, d: _npy(resize_uint8(f[0:20], 128), d / "h.npy"), 20),
    # re-encoded copies
    "JPEG quality 90": (lambda f, d: _folder(f[0:20], d / "hjpg", "JPEG", 90), 20),
    # a real held-out set that also holds 5 training faces
    "5 of 25 are training faces": (
        lambda f, d: _npy(torch.cat([f[80:100], f[3:8]]), d / "h.npy"), 5),
    # an in-memory source at the stored resolution (resized through a view)
    "ArraySource at 25 px": (lambda f, d: ArraySource(f[10:30].clone(), data="mem"), 20),
}


@pytest.mark.parametrize("case", sorted(COPIES))
def test_training_faces_given_as_held_out_are_refused(faces: torch.Tensor, tmp_path: Path,
                                                      case: str) -> None:
    make, count = COPIES[case]
    heldout = make(faces, tmp_path)
    with pytest.raises(InputError) as info:
        recognition(_generated(faces), _reference(), RecognitionConfig(heldout=heldout, **FAST))
    message = str(info.value)
    assert message.startswith("--heldout ")
    assert f"cannot judge membership: {count} held-out face(s) are also in the training set" \
        in message, message
    assert "--reference" not in message


def test_report_refuses_training_faces_as_held_out(tiny_run: Path, faces: torch.Tensor,
                                                   tmp_path: Path) -> None:
    """The issue's case through ``gan-eval report``: the training faces stored as a .npy given
    as --heldout (training on builtin:lfw-subset, the tiny run's data)."""
    heldout = _npy(faces[0:100], tmp_path / "copy.npy")
    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--checkpoint", str(tiny_run / "checkpoint"),
                                 "--heldout", heldout, "--out", str(out), "--count", "20",
                                 "--attack-n", "1", "--device", "cpu", "--quiet"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"--heldout {heldout}: cannot judge membership: 100 held-out face(s)" in text
    assert "--reference" not in text and "Traceback" not in result.output
    assert not (out / "results.json").exists() and not (out / "index.html").exists()


def test_report_heldout_errors_name_heldout(tmp_path: Path) -> None:
    """The reference of ``report`` is --data: a held-out set that is the training data names
    --heldout (and the training set), never an option report does not have."""
    result = runner.invoke(app, ["report", "--heldout", "builtin:lfw-train", "--out",
                                 str(tmp_path / "out"), "--steps", "1", "--count", "20",
                                 "--attack-n", "1", "--device", "cpu", "--quiet"])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--heldout builtin:lfw-train: the same images as the training data" in text
    assert "--reference" not in text
    assert not (tmp_path / "out" / "run").exists()  # refused before any training


# ---- not identical: accepted, resized like the reference ---------------------------------------

NOT_COPIES = {
    "mirrored training faces (other photos of the same people)": lambda f: f[0:20].flip(-1),
    "training faces 10% brighter": lambda f: (f[0:20].float() * 1.1).clamp(0, 255).round()
    .to(torch.uint8),
    "other people": lambda f: f[80:100].clone(),
}


@pytest.mark.parametrize("case", sorted(NOT_COPIES))
def test_held_out_images_that_are_not_training_images_are_accepted(
    faces: torch.Tensor, case: str
) -> None:
    held = ArraySource(NOT_COPIES[case](faces), data=case)
    results = recognition(_generated(faces), _reference(), RecognitionConfig(heldout=held, **FAST))
    mem = results.recognition["identity"]["membership"]
    assert 0.0 <= mem["p_value"] <= 1.0
    assert results.provenance["data"]["heldout"]["resize"] == RESOLUTION  # resized like it
    assert held.resolution == (25, 25)  # the caller's source is untouched (a resized view)


def test_mixed_size_held_out_folder_is_resized_like_the_reference(faces: torch.Tensor,
                                                                   tmp_path: Path) -> None:
    """Held-out photos of several sizes (report has no --resolution: it used to answer "pass a
    resolution")."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(12):
        size = 25 + 3 * (i % 4)
        Image.fromarray(resize_uint8(faces[80 + i: 81 + i], size)[0].permute(1, 2, 0).numpy()
                        ).save(folder / f"{i:02d}.png")
    results = recognition(_generated(faces), _reference(),
                          RecognitionConfig(heldout=str(folder), **FAST))
    assert results.recognition["counts"]["heldout"] == 12


# ---- overlapping people: warned ------------------------------------------------------------------


@pytest.mark.parametrize("shared", [1, 3])
def test_people_named_in_both_sets_are_warned(faces: torch.Tensor, tmp_path: Path,
                                              shared: int) -> None:
    """Identity folders of the same name in --reference and --heldout: the same people (other
    photos: mirrored here), warned, not refused."""
    names = ["ann", "bob", "cyd", "dee"]
    for k, name in enumerate(names):
        (tmp_path / "ref" / name).mkdir(parents=True)
        Image.fromarray(faces[k].permute(1, 2, 0).numpy()).save(tmp_path / "ref" / name / "0.png")
    held_names = names[:shared] + [f"new{j}" for j in range(4 - shared)]
    for k, name in enumerate(held_names):
        (tmp_path / "held" / name).mkdir(parents=True)
        photo = faces[k].flip(-1) if k < shared else faces[50 + k]
        Image.fromarray(photo.permute(1, 2, 0).numpy()).save(tmp_path / "held" / name / "0.png")
    results = recognition(_generated(faces), str(tmp_path / "ref"),
                          RecognitionConfig(heldout=str(tmp_path / "held"), **FAST))
    warnings = results.recognition["identity"]["membership"]["warnings"]
    assert warnings == [
        f"{shared} identity name(s) appear in both the reference and the held-out set (e.g. "
        f"{', '.join(sorted(names[:shared])[:3])}): held-out people must not be in training"]


# ---- non-faces: warned ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nonfaces(faces: torch.Tensor) -> dict[str, object]:
    results = recognition(_generated(faces), _reference(),
                          RecognitionConfig(heldout="builtin:lfw-nonfaces", **FAST))
    return {"results": results}


def test_non_face_held_out_images_are_warned(nonfaces: dict[str, object]) -> None:
    results = nonfaces["results"]
    rec = results.recognition  # type: ignore[attr-defined]
    face = rec["faceness"]
    assert face["heldout"]["n"] == 100 and face["heldout"]["with_face"] == 0
    assert face["reference"]["rate"] > 0.6
    warning = face["heldout_warning"]
    assert warning.startswith("--heldout: a face was detected in 0 of 100 held-out images")
    assert warning in rec["identity"]["membership"]["warnings"]
    assert rec["identity"]["authenticity"]["warning"] == warning
    # the reader sees it: terminal table and page
    assert warning in recognition_table(results)  # type: ignore[arg-type]
    page = render_html(results, Pictures())  # type: ignore[arg-type]
    assert "a face was detected in 0 of 100 held-out images" in page


@pytest.mark.parametrize(("faces_rows", "nonface_rows", "warned"), [
    (range(80, 100), range(0, 0), False),  # real held-out faces
    (range(80, 100), range(0, 60), True),  # 20 faces among 80 images
    (range(80, 95), range(0, 5), False),  # a quarter non-faces: not far below
])
def test_faceness_far_below_the_reference_is_warned(
    faces: torch.Tensor, faces_rows: range, nonface_rows: range, warned: bool
) -> None:
    nonface = open_source("builtin:lfw-nonfaces").load()
    held = ArraySource(torch.cat([faces[list(faces_rows)], nonface[list(nonface_rows)]]),
                       data="held")
    results = recognition(_generated(faces), _reference(), RecognitionConfig(heldout=held, **FAST))
    face = results.recognition["faceness"]
    assert ("heldout_warning" in face) is warned, face.get("heldout")
    assert face["heldout"]["n"] == len(faces_rows) + len(nonface_rows)


def test_no_detector_run_means_no_faceness_warning(faces: torch.Tensor) -> None:
    results = recognition(_generated(faces), _reference(), RecognitionConfig(
        heldout="builtin:lfw-nonfaces", faceness_max=0, **FAST))
    assert results.recognition["faceness"]["skipped"]
    assert "warnings" not in results.recognition["identity"]["membership"]
