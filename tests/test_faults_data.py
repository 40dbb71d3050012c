"""Hostile and damaged data files (issue #15): size bombs, damaged archives, unreadable and
undecodable names. Every case is an InputError (exit 2) naming the file, or a reported problem;
never another exception, never a silently dropped image.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from faults_helpers import run_unprivileged
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npformat
from PIL import Image
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.data.files import ReadLimits, decode_image, display_name
from gan_eval.errors import InputError
from gan_eval.sources import inspect_source, open_source

runner = CliRunner()
GIB = 1 << 30


# -- builders ---------------------------------------------------------------------------------

def png_bytes(size: tuple[int, int] = (5, 4), color: int = 128, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, color).save(out, format="PNG")
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming ``width``×``height`` gray pixels, no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    chunk += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    iend = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    idat_data = zlib.compress(b"")
    idat = (struct.pack(">I", len(idat_data)) + b"IDAT" + idat_data
            + struct.pack(">I", zlib.crc32(b"IDAT" + idat_data)))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat + iend


def raw_zip(members: list[dict[str, object]]) -> bytes:
    """A .zip built by hand, so that headers can say what a normal writer never would.

    Each member: name (bytes), data (bytes as stored), method (0 stored, 8 deflate), crc,
    size (uncompressed), flags.
    """
    out = bytearray()
    central = bytearray()
    for m in members:
        name, data = m["name"], m["data"]
        assert isinstance(name, bytes) and isinstance(data, bytes)
        method, flags = int(m.get("method", 0)), int(m.get("flags", 0))  # type: ignore[call-overload]
        crc = int(m.get("crc", zlib.crc32(data)))  # type: ignore[call-overload]
        size = int(m.get("size", len(data)))  # type: ignore[call-overload]
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, 0, 0x21, crc,
                           len(data), size, len(name), 0) + name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, 0,
                               0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0,
                               offset) + name
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central),
                       len(out), 0)
    return bytes(out + central + eocd)


def deflated_zeros(n_chunks: int, chunk: int = 1 << 24) -> tuple[bytes, int]:
    """Raw deflate stream of ``n_chunks`` × ``chunk`` zero bytes, and its CRC-32, built fast:
    after a full flush every chunk of zeros compresses to the same bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    first = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    repeat = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
    data = first + repeat * (n_chunks - 1) + comp.flush()
    crc = 0
    for _ in range(n_chunks):
        crc = zlib.crc32(zeros, crc)
    return data, crc


@pytest.fixture(scope="module")
def gib_of_zeros() -> tuple[bytes, int]:
    return deflated_zeros(64)  # 64 × 16 MiB = 1 GiB, about 1 MiB compressed


def faces_folder(root: Path, names: list[bytes]) -> Path:
    """Gray 5×4 PNGs under ``root`` at the given relative byte paths."""
    for i, rel in enumerate(names):
        path = os.path.join(os.fsencode(root), rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(png_bytes(color=10 * i))
    return root


# -- class 1: image pixel bombs ------------------------------------------------------------------

def test_tiny_png_claiming_ten_gigapixels(tmp_path: Path) -> None:
    bomb = png_claiming(100_000, 100_000)
    assert len(bomb) < 100
    with pytest.raises(InputError, match="100000×100000"):
        decode_image(bomb, what="bomb.png")
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "bomb.png").write_bytes(bomb)
    (tmp_path / "f" / "ok.png").write_bytes(png_bytes())
    with pytest.raises(InputError, match=r"bomb\.png") as info:
        open_source(str(tmp_path / "f"))
    assert "GAN_EVAL_MAX_IMAGE_PIXELS" in str(info.value)
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as archive:
        archive.writestr("bomb.png", bomb)
    with pytest.raises(InputError, match=r"bomb\.png"):
        open_source(str(tmp_path / "b.zip"))
    result = runner.invoke(app, ["inspect", str(tmp_path / "f")])
    assert result.exit_code == 2 and "bomb.png" in result.output


@pytest.mark.parametrize(("width", "height"), [(9460, 9460), (89_478_486, 1), (1, 200_000_000),
                                               (65535, 65535)])
def test_pixel_limit_is_pillows_by_default(width: int, height: int) -> None:
    # just over Pillow's MAX_IMAGE_PIXELS (warning zone) and far over it (error zone)
    assert width * height > ReadLimits().max_image_pixels
    with pytest.raises(InputError, match="pixels"):
        decode_image(png_claiming(width, height), what="x.png")


def test_pixel_limit_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "a.png").write_bytes(png_bytes((25, 25)))
    monkeypatch.setenv("GAN_EVAL_MAX_IMAGE_PIXELS", "600")
    with pytest.raises(InputError, match="625"):
        open_source(str(tmp_path / "f"))
    monkeypatch.setenv("GAN_EVAL_MAX_IMAGE_PIXELS", "625")
    assert len(open_source(str(tmp_path / "f"))) == 1
    for bad in ("lots", "-5", "0", "1e3"):
        monkeypatch.setenv("GAN_EVAL_MAX_IMAGE_PIXELS", bad)
        with pytest.raises(InputError, match="GAN_EVAL_MAX_IMAGE_PIXELS"):
            open_source(str(tmp_path / "f"))


# -- class 2: zip bombs and damaged members -------------------------------------------------------

@pytest.mark.parametrize("name", [b"faces/bomb.png", b"bomb.bmp"])
def test_one_mib_zip_with_a_gib_member_is_refused_before_reading(
        tmp_path: Path, gib_of_zeros: tuple[bytes, int], name: bytes) -> None:
    data, crc = gib_of_zeros
    path = tmp_path / "bomb.zip"
    path.write_bytes(raw_zip([{"name": name, "data": data, "method": 8, "crc": crc,
                               "size": GIB}, {"name": b"faces/ok.png", "data": png_bytes()}]))
    assert path.stat().st_size < 1.1 * (1 << 20)
    # a read would need 1 GiB at once; refusing from the header keeps memory flat
    reads: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, member: object, *args: object, **kwargs: object) -> object:
        reads.append(getattr(member, "filename", str(member)))
        return real_open(self, member, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(zipfile.ZipFile, "open", spy)
        with pytest.raises(InputError, match=r"bomb\.(png|bmp)") as info:
            open_source(str(path))
    assert "1,073,741,824" in str(info.value)
    assert name.decode() not in reads


def test_npz_with_a_gib_member_is_refused(tmp_path: Path, gib_of_zeros: tuple[bytes, int]
                                          ) -> None:
    data, crc = gib_of_zeros  # refused from the sizes in the zip headers, before any read
    path = tmp_path / "bomb.npz"
    path.write_bytes(raw_zip([{"name": b"images.npy", "data": data, "method": 8, "crc": crc,
                               "size": GIB}]))
    with pytest.raises(InputError, match=r"bomb\.npz:images\.npy.*expands"):
        open_source(str(path))


def test_member_bigger_than_its_header_says_is_capped(tmp_path: Path) -> None:
    real = png_bytes((64, 64))
    path = tmp_path / "forged.zip"
    # headers claim 10 bytes; the stored data is longer: reads stop at 10 and the CRC fails
    path.write_bytes(raw_zip([{"name": b"a.png", "data": real, "size": 10,
                               "crc": zlib.crc32(real[:10])}]))
    with pytest.raises(InputError, match=r"a\.png"):
        open_source(str(path))


def test_encrypted_member_is_a_problem_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "enc.zip"
    path.write_bytes(raw_zip([{"name": b"x/a.png", "data": b"\x00" * 12 + png_bytes(),
                               "flags": 1}, {"name": b"x/b.png", "data": png_bytes()}]))
    with pytest.raises(InputError, match=r"a\.png.*encrypted"):
        open_source(str(path))
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 2 and "encrypted" in result.output


def test_bad_crc_member_is_a_problem_naming_it(tmp_path: Path) -> None:
    good = png_bytes()
    path = tmp_path / "crc.zip"
    path.write_bytes(raw_zip([{"name": b"a.png", "data": good, "crc": zlib.crc32(good) ^ 1},
                              {"name": b"b.png", "data": good}]))
    with pytest.raises(InputError, match=r"a\.png.*CRC"):
        open_source(str(path))


def test_bad_crc_found_only_when_decoding_is_reported_by_inspect(tmp_path: Path) -> None:
    # the header parse of a deflated member reads it all, so damage anywhere is caught at open
    good = png_bytes((32, 32), color=7)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = comp.compress(good) + comp.flush()
    damaged = bytearray(deflated)
    damaged[len(damaged) // 2] ^= 0x10
    path = tmp_path / "crc2.zip"
    path.write_bytes(raw_zip([{"name": b"a.png", "data": bytes(damaged), "method": 8,
                               "crc": zlib.crc32(good), "size": len(good)},
                              {"name": b"b.png", "data": good}]))
    with pytest.raises(InputError, match=r"a\.png"):
        inspect_source(str(path))


def test_duplicate_member_names_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "dup.zip"
    path.write_bytes(raw_zip([{"name": b"p/a.png", "data": png_bytes(color=1)},
                              {"name": b"p/a.png", "data": png_bytes(color=2)},
                              {"name": b"p/b.png", "data": png_bytes(color=3)}]))
    with pytest.raises(InputError, match=r"a\.png.*2 members share this name"):
        open_source(str(path))
    notes = tmp_path / "dup_notes.zip"  # a duplicated non-image is a note, not a refusal
    notes.write_bytes(raw_zip([{"name": b"README", "data": b"1"}, {"name": b"README",
                                                                   "data": b"2"},
                               {"name": b"b.png", "data": png_bytes()}]))
    info = inspect_source(str(notes))
    assert info.count == 1
    assert any("share this name" in p.message and not p.fatal for p in info.problems)


def test_utf8_flagged_member_name_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "names.zip"
    path.write_bytes(raw_zip([{"name": b"\xff\xfe.png", "data": png_bytes(), "flags": 0x800}]))
    with pytest.raises(InputError, match=r"names\.zip"):
        open_source(str(path))


# -- class 3: array headers against the file size --------------------------------------------------

def npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    """An .npy header (magic included) for an array of ``shape``, with no data after it."""
    out = io.BytesIO()
    npformat.write_array_header_1_0(out, {"descr": descr, "fortran_order": False,
                                          "shape": shape})
    return out.getvalue()


def test_npy_header_claiming_931_gib(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    path.write_bytes(npy_header((1_000_000, 1_000_000)) + bytes(64))
    with pytest.raises(InputError, match=r"huge\.npy.*1,000,000,000,000 bytes"):
        open_source(str(path))


@pytest.mark.parametrize("descr", ["<f8", "<u2", "|b1"])
def test_truncated_npy_is_refused_naming_sizes(tmp_path: Path, descr: str) -> None:
    array = np.zeros((4, 5, 5), dtype=np.dtype(descr))
    buffer = io.BytesIO()
    np.save(buffer, array)
    path = tmp_path / "cut.npy"
    path.write_bytes(buffer.getvalue()[:-3])
    with pytest.raises(InputError, match="truncated"):
        open_source(str(path))


def test_npz_member_header_claiming_more_than_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "claim.npz"
    path.write_bytes(raw_zip([{"name": b"images.npy",
                               "data": npy_header((10**6, 1000, 1000)) + bytes(100)}]))
    with pytest.raises(InputError, match=r"claim\.npz:images\.npy.*claims"):
        open_source(str(path))


def test_object_array_header_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "obj.npy"
    path.write_bytes(npy_header((2,), descr="|O") + b"\x80\x04N.")
    with pytest.raises(InputError, match="objects"):
        open_source(str(path))


def test_npz_bad_crc_and_encryption(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 4, 4), np.uint8))
    body = buffer.getvalue()
    (tmp_path / "crc.npz").write_bytes(raw_zip([{"name": b"images.npy", "data": body,
                                                 "crc": zlib.crc32(body) ^ 5}]))
    with pytest.raises(InputError, match=r"crc\.npz"):
        open_source(str(tmp_path / "crc.npz"))
    (tmp_path / "enc.npz").write_bytes(raw_zip([{"name": b"images.npy", "data": body,
                                                 "flags": 1}]))
    with pytest.raises(InputError, match="encrypted"):
        open_source(str(tmp_path / "enc.npz"))


# -- class 4: random and mutated bytes (property-based) -------------------------------------------

def _valid_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("p/a.png", png_bytes(color=1))
        archive.writestr("q/b.png", png_bytes(color=2))
    return buffer.getvalue()


def _valid_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=np.zeros((2, 4, 4), np.uint8), labels=np.arange(2))
    return buffer.getvalue()


def _valid_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((2, 4, 4), np.float32))
    return buffer.getvalue()


SEEDS = {".png": png_bytes((6, 6)), ".zip": _valid_zip(), ".npz": _valid_npz(),
         ".npy": _valid_npy(), ".gif": b"GIF89a" + bytes(20), ".tif": b"II*\x00" + bytes(16)}


def _mutations(seed: bytes) -> st.SearchStrategy[bytes]:
    edit = st.tuples(st.integers(0, max(len(seed) - 1, 0)), st.integers(0, 255))

    def apply(edits: list[tuple[int, int]], cut: int | None) -> bytes:
        data = bytearray(seed)
        for where, value in edits:
            data[where] = value
        return bytes(data[:cut]) if cut is not None else bytes(data)

    return st.builds(apply, st.lists(edit, max_size=6),
                      st.none() | st.integers(0, len(seed)))


def _open_any(path: Path) -> None:
    """Open and fully read ``path``; only InputError may escape."""
    if path.suffix in (".png", ".gif", ".tif"):
        decode_image(path.read_bytes(), what=str(path))
        folder = path.parent / "folder"
        folder.mkdir(exist_ok=True)
        shutil.copy(path, folder / path.name)
        try:
            inspect_source(str(folder))
        finally:
            shutil.rmtree(folder)
        return
    source = open_source(str(path), resolution=8)
    source.load()
    source.content_hash()
    if path.suffix == ".zip":
        inspect_source(str(path), resolution=8)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow's note, harmless
@pytest.mark.parametrize("suffix", sorted(SEEDS))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_bytes_open_or_raise_input_error(tmp_path: Path, suffix: str,
                                             data: st.DataObject) -> None:
    blob = data.draw(st.one_of(st.binary(max_size=300), _mutations(SEEDS[suffix])))
    path = tmp_path / f"x{suffix}"
    path.write_bytes(blob)
    try:
        _open_any(path)
    except InputError as exc:
        assert str(exc)  # a message, naming something
        str(exc).encode("utf-8")


# -- class 5: unreadable folders and files ------------------------------------------------------

def test_unreadable_identity_folder_is_reported_not_dropped(tmp_path: Path) -> None:
    root = faces_folder(tmp_path / "faces", [b"alice/1.png", b"alice/2.png", b"bob/1.png"])
    (root / "bob").chmod(0)
    code = (
        "from gan_eval.sources import open_source\n"
        "from gan_eval.errors import InputError\n"
        "try:\n"
        f"    s = open_source({str(root)!r})\n"
        "    print('OPENED', len(s), s.identities)\n"
        "except InputError as e:\n"
        "    print('INPUT', e)\n"
    )
    try:
        result = run_unprivileged(code)
    finally:
        (root / "bob").chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("INPUT") and "bob" in result.stdout
    assert "cannot be read" in result.stdout


@pytest.mark.slow  # a child process; the in-process tests below cover the class by default
def test_unreadable_image_file_is_reported(tmp_path: Path) -> None:
    root = faces_folder(tmp_path / "faces", [b"a.png", b"b.png"])
    (root / "b.png").chmod(0)
    code = (
        "from gan_eval.sources import open_source\n"
        "from gan_eval.errors import InputError\n"
        "try:\n"
        f"    open_source({str(root)!r})\n"
        "    print('OPENED')\n"
        "except InputError as e:\n"
        "    print('INPUT', e)\n"
    )
    result = run_unprivileged(code)
    assert result.stdout.startswith("INPUT") and "b.png" in result.stdout, result
    assert "corrupt" not in result.stdout  # the reason is the permission, not the bytes


def test_folder_that_fails_to_list_is_fatal_in_process(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # the same class without a child process: listing raises PermissionError for one folder
    root = faces_folder(tmp_path / "faces", [b"alice/1.png", b"bob/1.png"])
    real = os.scandir

    def scandir(path: object) -> object:
        if Path(os.fsdecode(path)).name == "bob":  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(InputError, match=r"bob: folder cannot be read \(Permission denied\)"):
        open_source(str(root))


def test_file_that_fails_to_read_is_fatal_in_process(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = faces_folder(tmp_path / "faces", [b"a.png", b"b.png"])
    real = Image.open

    def image_open(fp: object, *args: object, **kwargs: object) -> object:
        if str(fp).endswith("b.png"):
            raise PermissionError(13, "Permission denied", str(fp))
        return real(fp, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", image_open)
    with pytest.raises(InputError, match=r"b\.png: cannot be read \(Permission denied\)"):
        open_source(str(root))


def test_broken_symlink_is_a_note(tmp_path: Path) -> None:
    root = faces_folder(tmp_path / "faces", [b"a.png"])
    (root / "gone.png").symlink_to(tmp_path / "nowhere.png")
    info = inspect_source(str(root))
    assert info.count == 1
    assert any("broken symbolic link" in p.message for p in info.problems)


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    root = faces_folder(tmp_path / "faces", [b"a/1.png"])
    (root / "a" / "loop").symlink_to(root)
    info = inspect_source(str(root))
    assert info.count == 1


# -- class 6: non-UTF-8 names ----------------------------------------------------------------

def test_non_utf8_file_and_folder_names(tmp_path: Path) -> None:
    root = faces_folder(tmp_path / "faces", [b"\xfe\xfd/\xff.png", b"\xfe\xfd/b.png",
                                             b"carol/1.png"])
    info = inspect_source(str(root))
    assert info.count == 3 and info.identities == 2
    notes = [p for p in info.problems if "UTF-8" in p.message]
    assert len(notes) == 2 and not any(p.fatal for p in notes)
    for problem in info.problems:
        str(problem).encode("utf-8")  # printable without surrogates
    assert any("\\xff.png" in p.path for p in notes)
    source = open_source(str(root))
    assert source.identities is not None
    assert "\\xfe\\xfd" in source.identities
    for name in source.identities:
        name.encode("utf-8")
    json.dumps(list(source.identities), ensure_ascii=False).encode("utf-8")
    # the hash is over the names' own bytes: renaming a file changes it
    assert source.load().shape == (3, 3, 4, 5)
    first = source.content_hash()
    os.rename(os.path.join(os.fsencode(root), b"\xfe\xfd/\xff.png"),
              os.path.join(os.fsencode(root), b"\xfe\xfd/\xfa.png"))
    assert open_source(str(root)).content_hash() != first


def test_cli_inspect_with_non_utf8_names(tmp_path: Path) -> None:
    root = faces_folder(tmp_path / "faces", [b"\xff.png", b"b.png"])
    for extra in ([], ["--json"]):
        result = runner.invoke(app, ["inspect", str(root), *extra])
        assert result.exit_code == 0, result.output
        assert "\\xff.png" in result.output


def test_non_utf8_name_of_a_bad_image_is_printable(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    root.mkdir()
    with open(os.path.join(os.fsencode(root), b"\xff.png"), "wb") as handle:
        handle.write(b"not a png")
    with pytest.raises(InputError) as info:
        open_source(str(root))
    message = str(info.value)
    message.encode("utf-8")
    assert "\\xff.png" in message


def test_display_name_round_trip() -> None:
    name = os.fsdecode(b"a\xffb\n\x01")
    shown = display_name(name)
    assert shown == "a\\xffb\\n\\x01"
    shown.encode("utf-8")
    assert display_name("café/ß.png") == "café/ß.png"


@pytest.mark.parametrize("dtype", [">u2", ">f4", "<u2", ">u1"])
def test_arrays_of_either_byte_order_read_the_same(tmp_path: Path, dtype: str) -> None:
    values = np.array([[[0, 1], [2, 3]]], dtype=np.float64) / (3 if "f" in dtype else 1)
    if "u2" in dtype:
        values = values * 65535 / 3
    array = values.astype(dtype)
    path = tmp_path / "a.npy"
    np.save(path, array)
    native = tmp_path / "n.npy"
    np.save(native, array.astype(array.dtype.newbyteorder("=")))
    assert (open_source(str(path)).load() == open_source(str(native)).load()).all()


def test_builtin_without_scikit_image_is_a_missing_asset(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from gan_eval.errors import MissingAssetError

    monkeypatch.setitem(sys.modules, "skimage.data", None)  # import fails as if not installed
    with pytest.raises(MissingAssetError, match="scikit-image"):
        open_source("builtin:lfw-subset")
