"""``gan-eval inspect``: the report, and exit code 2 with the path named for every bad input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from gan_eval.cli import app

runner = CliRunner()


def _image_bytes(fmt: str, size: int = 16, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _inspect(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["inspect", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_inspect_builtin_reports_count_resolution_and_hash() -> None:
    code, output = _inspect("builtin:lfw-subset")
    assert code == 0
    assert "100" in output and "25×25" in output and "sha256" in output


def test_inspect_folder_lists_identities_and_skipped_files(tmp_path: Path) -> None:
    for person in ("ann", "ben"):
        (tmp_path / person).mkdir()
        (tmp_path / person / "1.png").write_bytes(_image_bytes("PNG"))
    (tmp_path / "ann" / "readme.md").write_text("hi")
    code, output = _inspect(str(tmp_path))
    assert code == 0
    assert "identities   2" in output
    assert "readme.md: not an image file, skipped" in output


def _truncated(tmp_path: Path, fmt: str, suffix: str) -> Path:
    folder = tmp_path / f"trunc-{suffix}"
    folder.mkdir()
    (folder / f"good{suffix}").write_bytes(_image_bytes(fmt, size=64, seed=1))
    data = _image_bytes(fmt, size=64, seed=2)
    (folder / f"bad{suffix}").write_bytes(data[: len(data) // 2])
    return folder


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    no_images = tmp_path / "no-images"
    no_images.mkdir()
    (no_images / "a.txt").write_text("x")
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.png", _image_bytes("PNG"))
    wrong_shape = tmp_path / "wrong.npz"
    np.savez(wrong_shape, images=np.zeros((2, 5, 5, 5, 5), np.uint8))
    nans = tmp_path / "nans.npz"
    arr = np.full((3, 8, 8), 0.5)
    arr[1, 2, 3] = np.nan
    np.savez(nans, images=arr)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes(_image_bytes("PNG", size=8))
    (mixed / "b.png").write_bytes(_image_bytes("PNG", size=9))
    return {
        "missing": (tmp_path / "does-not-exist", "no such file"),
        "empty folder": (empty, "contains no files"),
        "no images": (no_images, "no image files"),
        "truncated png": (_truncated(tmp_path, "PNG", ".png") / "bad.png", "corrupt or truncated"),
        "truncated jpeg": (
            _truncated(tmp_path, "JPEG", ".jpg") / "bad.jpg",
            "corrupt or truncated",
        ),
        "zip traversal": (evil, "refusing archive"),
        "npz wrong shape": (wrong_shape, "expected N×H×W"),
        "npz nan": (nans, "NaN"),
        "mixed resolutions": (mixed, "mixed resolutions"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "empty folder",
        "no images",
        "truncated png",
        "truncated jpeg",
        "zip traversal",
        "npz wrong shape",
        "npz nan",
        "mixed resolutions",
    ],
)
def test_bad_input_exits_2_naming_the_path(tmp_path: Path, case: str) -> None:
    path, expected = _bad_inputs(tmp_path)[case]
    target = path.parent if case.startswith("truncated") else path
    code, output = _inspect(str(target))
    assert code == 2, output
    assert str(path) in output, output
    assert expected in output, output
    assert "Traceback" not in output
