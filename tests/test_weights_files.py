"""A weights file the user names is used or refused, never unpickled unsafely and never replaced by
a file found elsewhere; every refusal names the file and what was expected.

By class: missing, a folder, empty, an HTML page, a plain pickle (malicious), a torch file holding
Python objects (malicious), truncated, damaged (a flipped byte), the other format (TorchScript /
state dict), the wrong architecture; for each extractor that reads a file (inception,
dinov2-vit-s14, clip-vit-b32, dlib-face), through the Python API and through
``gan-eval evaluate --weights NAME=PATH`` (and ``--inception-weights``). A property test draws
bad files at random. TorchScript archives are shown to run code under ``torch.jit.load`` and not
under gan-eval's reader.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import toy_extractor as toy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spaces_fixture import hide_installed_weights
from torch import Tensor, nn
from typer.testing import CliRunner

from gan_eval import weights as w
from gan_eval.cli import app
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.dlib_face import default_weights_path
from gan_eval.features.registry import build_extractor
from gan_eval.features.weights_files import read_torchscript_tensors

runner = CliRunner()
NAMES = ["inception", "dinov2-vit-s14", "clip-vit-b32", "dlib-face"]
PORTAL = b"\n <!doctype html><html><head><title>Sign in</title></head><body>Wi-Fi</body></html>"


class Payload:
    """Unpickling this creates the marker file (arbitrary code execution, if it ever ran)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return (os.makedirs, (str(self.marker),))


def _torchscript(tensors: dict[str, Tensor]) -> bytes:
    """A TorchScript archive holding ``tensors`` (dotted names) and no code that runs at load."""

    class Holder(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x

    root = Holder()
    for key, value in tensors.items():
        *path, leaf = key.split(".")
        node: nn.Module = root
        for part in path:
            if part not in node._modules:
                node.add_module(part, Holder())
            node = node._modules[part]  # type: ignore[assignment]
        node.register_buffer(leaf, value)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit is deprecated; OpenAI's files are TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(root), buffer)
    return buffer.getvalue()


def _flip(data: bytes) -> bytes:
    """``data`` with one byte flipped inside the last tensor record (not its zip headers)."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    info = max((i for i in archive.infolist() if "/data/" in i.filename and i.file_size),
               key=lambda i: i.header_offset)
    local = info.header_offset  # the local header's own name and extra (alignment) lengths
    names, extra = (int.from_bytes(data[local + k:local + k + 2], "little") for k in (26, 28))
    at = local + 30 + names + extra + info.file_size // 2
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


@pytest.fixture(autouse=True)
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_installed_weights(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def dlib_bytes() -> bytes:
    return default_weights_path().read_bytes()


def bad_files(name: str, folder: Path, dlib_bytes: bytes) -> dict[str, tuple[Path, str]]:
    """Every class of bad file for extractor ``name``: (path, words the message must hold)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "PWNED"
    state_dict = name in ("inception", "dinov2-vit-s14")
    good = {  # a valid container of the right format (another network: the wrong architecture)
        "dlib-face": toy.file_bytes(0),
        "clip-vit-b32": _torchscript({"visual.conv1.weight": torch.zeros(8, 3, 32, 32),
                                      "visual.proj": torch.zeros(8, 512)}),
    }.get(name, toy.file_bytes(0))
    own = dlib_bytes if name == "dlib-face" else good
    objects = io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": Payload(marker)}, objects)
    files = {
        "folder": (b"", "is not a file"),
        "empty": (b"", "is empty (0 bytes)"),
        "html": (PORTAL, "HTML"),
        "plain-pickle": (pickle.dumps(Payload(marker)),
                         "pickle" if name != "dlib-face" else "not a readable dlib network"),
        "torch-pickle-with-objects": (objects.getvalue(), "other than tensors" if state_dict
                                      else "TorchScript" if name == "clip-vit-b32"
                                      else "not a readable dlib network"),
        "truncated": (own[: len(own) // 2], "truncated" if name != "dlib-face"
                      else "truncated?"),
        "damaged": (_flip(good), "CRC-32"),
        "other-format": (_torchscript({"a": torch.zeros(2)}) if state_dict
                         else toy.file_bytes(0),
                         "TorchScript archive, not a state dict" if state_dict
                         else "not a TorchScript archive" if name == "clip-vit-b32"
                         else "not a readable dlib network"),
        "wrong-architecture": (good, "does not hold the expected network's parameters"
                               if name != "dlib-face" else "not a readable dlib network"),
    }
    out = {"missing": (folder / "missing.pth", "does not exist")}
    for case, (data, words) in files.items():
        path = folder / f"{case}.pth"
        if case == "folder":
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(data)
        out[case] = (path, words)
    return out


DLIB_DAMAGE = ("dlib's .dat format has no checksum: a flipped byte inside a tensor still parses "
               "(only a known sha256 could tell; the packaged file is not user-given)")
CASES = ["missing", "folder", "empty", "html", "plain-pickle", "torch-pickle-with-objects",
         "truncated", "damaged", "other-format", "wrong-architecture"]


def well_formed(message: str, path: Path) -> None:
    """Names the file, says what was expected, no traceback, never ends in a bare number."""
    assert str(path) in message, message
    assert "expected" in message, message
    assert "Traceback" not in message
    assert not re.search(r"\d\s*\.?\s*$", message.strip()), message


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", CASES)
def test_explicit_file_is_used_or_refused_by_the_api(name: str, case: str, tmp_path: Path,
                                                     dlib_bytes: bytes) -> None:
    if (name, case) == ("dlib-face", "damaged"):
        pytest.skip(DLIB_DAMAGE)
    path, words = bad_files(name, tmp_path / "f", dlib_bytes)[case]
    with pytest.raises(InputError) as info:
        build_extractor(name, device="cpu", weights=path)
    message = str(info.value)
    well_formed(message, path)
    assert words in message, (words, message)
    assert not (tmp_path / "f" / "PWNED").exists()  # nothing was ever unpickled


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", CASES)
def test_explicit_file_is_used_or_refused_by_the_cli(name: str, case: str, tmp_path: Path,
                                                     dlib_bytes: bytes) -> None:
    """``--weights NAME=PATH`` is exit 2 naming the file (never "not found", exit 3)."""
    if (name, case) == ("dlib-face", "damaged"):
        pytest.skip(DLIB_DAMAGE)
    path, words = bad_files(name, tmp_path / "f", dlib_bytes)[case]
    options = [["--weights", f"{name}={path}"]]
    if name == "inception":
        options.append(["--inception-weights", str(path)])
    for option in options:
        result = runner.invoke(app, ["evaluate", "builtin:lfw-subset", "-r", "builtin:lfw-nonfaces",
                                     "-e", name, *option, "--no-cache", "-q", "--device", "cpu"])
        assert result.exit_code == 2, result.output
        well_formed(result.output, path)
        assert words in result.output, (words, result.output)
        assert not (tmp_path / "f" / "PWNED").exists()


def test_an_explicit_file_is_never_replaced_by_a_cached_one(tmp_path: Path) -> None:
    """A valid file in the cache does not stand in for a bad explicit one."""
    cache = tmp_path / "xdg" / "gan-eval" / "weights"
    cache.mkdir(parents=True)
    (cache / w.WEIGHTS["inception"].filename).write_bytes(b"anything")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(PORTAL)
    with pytest.raises(InputError, match=re.escape(str(bad))):
        build_extractor("inception", device="cpu", weights=bad)
    assert w.locate("inception", bad).path == bad


def test_conflicting_inception_options_are_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    result = runner.invoke(app, ["evaluate", "builtin:lfw-subset", "-r", "builtin:lfw-subset",
                                 "-e", "inception", "--weights", f"inception={a}",
                                 "--inception-weights", str(b), "-q"])
    assert result.exit_code == 2 and "give one" in result.output


def test_missing_weights_say_the_working_syntax_and_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``-e dinov2-vit-s14`` without weights: exit 3 naming the exact --weights spelling, the
    fetch command and the env var; on a base install (no timm) also the pip extra."""
    args = ["evaluate", "builtin:lfw-subset", "-r", "builtin:lfw-subset", "-e", "dinov2-vit-s14",
            "--no-cache", "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output
    for words in ("--weights dinov2-vit-s14=/path/to/dinov2_vits14_pretrain.pth",
                  "gan-eval weights fetch dinov2-vit-s14", "GAN_EVAL_DINOV2_VIT_S14_WEIGHTS"):
        assert words in result.output
    monkeypatch.setitem(__import__("sys").modules, "timm", None)
    with pytest.raises(MissingAssetError) as info:
        build_extractor("dinov2-vit-s14", device="cpu")
    message = str(info.value)
    assert "needs timm" in message and "pip install 'gan-eval[feature-spaces]'" in message
    assert "gan-eval weights fetch dinov2-vit-s14" in message  # and the file, missing too
    assert not re.search(r"\d\s*\.?\s*$", message)


# ------------------------------------------------------------------------------------------
# random bad files: every message names the file and what was expected
# ------------------------------------------------------------------------------------------

_VALID = {"state_dict": toy.file_bytes(0),
          "torchscript": _torchscript({"visual.proj": torch.zeros(4, 2)})}


def _bad_bytes() -> st.SearchStrategy[bytes]:
    valid = st.sampled_from(sorted(_VALID.values()))
    return st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda t: ("<html>" + t).encode("utf-8", "replace")),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")),
        st.recursive(st.none() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c,
                                                                         max_size=3),
                     max_leaves=6).map(pickle.dumps),
        st.tuples(valid, st.floats(0.0, 0.99)).map(lambda v: v[0][: int(len(v[0]) * v[1])]),
        valid.map(_flip),
    )


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_bad_bytes(), name=st.sampled_from(NAMES))
def test_property_bad_files_get_messages_that_name_the_file(data: bytes, name: str,
                                                            tmp_path: Path) -> None:
    path = tmp_path / f"drawn-{name}.bin"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        build_extractor(name, device="cpu", weights=path)
    well_formed(str(info.value), path)
    if name != "dlib-face":  # the torch-free pre-check says the same, or leaves it to the reader
        problem = w.file_problem(path, w.WEIGHTS[name].kind)
        assert problem is None or problem in str(info.value)


# ------------------------------------------------------------------------------------------
# TorchScript: torch.jit.load runs the archive's code; gan-eval's reader does not
# ------------------------------------------------------------------------------------------


class _SetState(nn.Module):
    """A module whose __setstate__ (TorchScript code in the archive) prints at load."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(2))

    def forward(self, x: Tensor) -> Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> tuple[Tensor, bool]:
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[Tensor, bool]) -> None:
        print("ARCHIVE-CODE-RAN")
        self.w = state[0]
        self.training = state[1]


def test_torch_jit_load_runs_archive_code_and_our_reader_does_not(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(_SetState()), buffer)
        data = buffer.getvalue()
        torch.jit.load(io.BytesIO(data))
    assert "ARCHIVE-CODE-RAN" in capfd.readouterr().out  # why gan-eval never calls it
    path = tmp_path / "setstate.pt"
    path.write_bytes(data)
    with pytest.raises(InputError) as info:
        read_torchscript_tensors(data, path, w.WEIGHTS["clip-vit-b32"])
    assert "__setstate__" in str(info.value) and "without running" in str(info.value)
    result = runner.invoke(app, ["evaluate", "builtin:lfw-subset", "-r", "builtin:lfw-subset",
                                 "-e", "clip-vit-b32", "--weights", f"clip-vit-b32={path}", "-q"])
    assert result.exit_code == 2 and str(path) in result.output
    assert "ARCHIVE-CODE-RAN" not in capfd.readouterr().out + result.output


def test_archive_naming_a_python_global_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(Payload(marker), protocol=2))
        archive.writestr("archive/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("archive/code/__torch__.py", "def forward(self, x):\n  return x\n")
        archive.writestr("archive/version", "3\n")
    with pytest.raises(InputError) as info:
        build_extractor("clip-vit-b32", device="cpu", weights=path)
    assert "unexpected object" in str(info.value) and "makedirs" in str(info.value)
    well_formed(str(info.value), path)
    assert not marker.exists()
