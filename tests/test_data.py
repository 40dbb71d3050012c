"""Data sources: every DATA string → uint8 B×3×H×W, deterministic, with clear errors."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_eval.data import ArraySource, check_image_batch, resize_uint8
from gan_eval.data.files import decode_image
from gan_eval.errors import InputError
from gan_eval.sources import open_source


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _rgb(seed: int, size: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def test_folder_is_recursive_sorted_and_labelled_by_first_level_subfolder(tmp_path: Path) -> None:
    for person, seeds in {"bob": [3, 4], "alice": [1, 2, 5]}.items():
        for seed in seeds:
            _write(tmp_path / person / "deep" / f"{seed:03d}.png", _png(_rgb(seed)))
    _write(tmp_path / "alice" / "notes.txt", b"not an image")
    source = open_source(str(tmp_path))
    assert len(source) == 5
    assert source.identities == ("alice", "bob")
    assert source.labels is not None and source.labels.tolist() == [0, 0, 0, 1, 1]
    batch = source.load()
    check_image_batch(batch)
    expected = [1, 2, 5, 3, 4]  # alice/deep/001, 002, 005, then bob/deep/003, 004
    for row, seed in zip(batch, expected, strict=True):
        assert torch.equal(row, torch.from_numpy(_rgb(seed)).permute(2, 0, 1))
    assert any("not an image" in p.message for p in source.problems)


def test_batches_are_independent_of_batch_size(tmp_path: Path) -> None:
    for seed in range(7):
        _write(tmp_path / f"{seed}.png", _png(_rgb(seed)))
    source = open_source(str(tmp_path))
    assert source.labels is None
    whole = source.load()
    for batch_size in (1, 3, 7, 100):
        assert torch.equal(torch.cat(list(source.batches(batch_size))), whole)


def test_gray_alpha_sixteen_bit_and_palette_are_converted(tmp_path: Path) -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    pixels, channels = decode_image(_png(gray), what="gray")
    assert channels == 1 and pixels.shape == (3, 8, 8)
    assert all(np.array_equal(pixels[c], gray) for c in range(3))

    rgba = np.dstack([_rgb(0), np.full((8, 8), 7, np.uint8)])
    pixels, channels = decode_image(_png(rgba), what="rgba")
    assert channels == 4
    assert np.array_equal(pixels, _rgb(0).transpose(2, 0, 1))

    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    pixels, _ = decode_image(_png(deep), what="16-bit")
    expected = np.rint(deep.astype(np.float64) * 255 / 65535)
    assert np.abs(pixels[0].astype(np.float64) - expected).max() <= 0.5 + 1e-9

    palette = Image.fromarray(_rgb(2)).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    pixels, _ = decode_image(buffer.getvalue(), what="palette")
    assert np.array_equal(pixels, np.asarray(palette.convert("RGB")).transpose(2, 0, 1))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    wide = np.zeros((4, 6, 3), np.uint8)
    wide[0, 0] = 255  # a marker in the top-left corner of the stored pixels
    image = Image.fromarray(wide)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=100)
    _write(tmp_path / "rotated.jpg", buffer.getvalue())
    source = open_source(str(tmp_path))
    assert source.resolution == (6, 4)
    batch = source.load()
    assert batch.shape == (1, 3, 6, 4)
    # after a 90 degree clockwise turn the marker sits in the top-right corner
    assert batch[0, 0, 0, 3] > 200 and batch[0, 0, 0, 0] < 60


def test_mixed_resolutions_need_an_explicit_resolution(tmp_path: Path) -> None:
    _write(tmp_path / "a.png", _png(_rgb(0, 8)))
    _write(tmp_path / "b.png", _png(_rgb(1, 12)))
    with pytest.raises(InputError, match=r"mixed resolutions.*8×8.*12×12"):
        open_source(str(tmp_path))
    source = open_source(str(tmp_path), resolution=16)
    assert source.resolution == (16, 16)
    assert source.load().shape == (2, 3, 16, 16)


def test_resize_is_antialiased_bilinear_and_keeps_constant_images() -> None:
    flat = torch.full((2, 3, 10, 10), 77, dtype=torch.uint8)
    assert torch.equal(resize_uint8(flat, 4), torch.full((2, 3, 4, 4), 77, dtype=torch.uint8))
    same = torch.randint(0, 256, (1, 3, 5, 5), dtype=torch.uint8)
    assert resize_uint8(same, 5) is same


def test_zip_reads_members_in_memory_and_strips_a_wrapping_folder(tmp_path: Path) -> None:
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("faces/carol/1.png", _png(_rgb(1)))
        zf.writestr("faces/dave/2.png", _png(_rgb(2)))
    source = open_source(str(archive))
    assert source.identities == ("carol", "dave")
    assert torch.equal(source.load()[1], torch.from_numpy(_rgb(2)).permute(2, 0, 1))


def test_zip_with_path_traversal_is_refused_and_nothing_extracted(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.png", _png(_rgb(1)))
        zf.writestr("../../escaped.png", _png(_rgb(2)))
    before = set(tmp_path.parent.rglob("*"))
    with pytest.raises(InputError, match=r"evil\.zip.*'\.\./\.\./escaped\.png'"):
        open_source(str(archive))
    assert set(tmp_path.parent.rglob("*")) == before


@pytest.mark.parametrize(
    ("shape", "layout"),
    [((5, 9, 7), "NHW"), ((5, 9, 7, 3), "NHWC"), ((5, 3, 9, 7), "NCHW"), ((5, 9, 7, 4), "NHWC")],
)
def test_array_layouts(tmp_path: Path, shape: tuple[int, ...], layout: str) -> None:
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.save(tmp_path / "x.npy", array)
    batch = open_source(str(tmp_path / "x.npy")).load()
    assert batch.shape == (5, 3, 9, 7)
    if layout == "NHW":
        expected = np.repeat(array[:, None], 3, axis=1)
    elif layout == "NCHW":
        expected = array
    else:
        expected = array[..., :3].transpose(0, 3, 1, 2)
    assert np.array_equal(batch.numpy(), expected)


def test_npz_float_images_and_labels(tmp_path: Path) -> None:
    images = np.random.default_rng(1).random((4, 6, 6, 3))
    np.savez(tmp_path / "x.npz", images=images, labels=np.array([7, 3, 7, 3]))
    source = open_source(str(tmp_path / "x.npz"))
    assert np.array_equal(
        source.load().numpy(), np.rint(images * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    )
    assert source.identities == ("3", "7")
    assert source.labels is not None and source.labels.tolist() == [1, 0, 1, 0]


def test_builtin_lfw_subset_is_the_100_real_faces() -> None:
    from skimage.data import lfw_subset

    source = open_source("builtin:lfw-subset")
    batch = source.load()
    assert batch.shape == (100, 3, 25, 25)
    expected = np.rint(lfw_subset()[:100] * 255).astype(np.uint8)
    assert np.array_equal(batch[:, 0].numpy(), expected)
    assert torch.equal(batch[:, 0], batch[:, 2])
    assert open_source("builtin:lfw-subset", resolution=32).load().shape == (100, 3, 32, 32)


def test_content_hash_is_stable_and_sensitive(tmp_path: Path) -> None:
    _write(tmp_path / "a" / "1.png", _png(_rgb(1)))
    _write(tmp_path / "a" / "2.png", _png(_rgb(2)))
    first = open_source(str(tmp_path / "a")).content_hash()
    assert first == open_source(str(tmp_path / "a")).content_hash()
    _write(tmp_path / "a" / "2.png", _png(_rgb(3)))
    assert open_source(str(tmp_path / "a")).content_hash() != first
    images = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    changed = images.clone()
    changed[1, 0, 0, 0] = 1
    assert (
        ArraySource(images, data="x").content_hash()
        != ArraySource(changed, data="x").content_hash()
    )


def test_pickle_files_are_refused_without_loading(tmp_path: Path) -> None:
    path = _write(tmp_path / "model.pt", b"\x80\x04not really")
    with pytest.raises(InputError, match=r"model\.pt.*never loaded"):
        open_source(str(path))


def test_check_image_batch_rejects_other_contracts() -> None:
    with pytest.raises(InputError, match="uint8"):
        check_image_batch(torch.zeros(1, 3, 4, 4))
    with pytest.raises(InputError, match="B×3×H×W"):
        check_image_batch(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
