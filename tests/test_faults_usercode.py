"""User code is contained (issue #24): whatever a ``file.py:attr`` GENERATOR or ``--discriminator``
does — raise, ``sys.exit()``, raise ``KeyboardInterrupt`` itself, raise another
``BaseException``, change the working directory, parse the command line when imported — at its
import, in its factory or in ``forward``, gan-eval's ``evaluate``, ``gate``, ``report`` and
``attack`` exit 2 naming the spec and what the code did, write no results (no JUnit claiming a
pass), and leave outputs and relative paths where they were. Only a real Ctrl-C interrupts (130).

The generators are tiny (z 4 → 3×16×16) and counts are a few images, so each case stops within a
second; the cases that must run a command to the end (working directory) evaluate 6 images.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gan_eval.cli import app

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

REFERENCE = "builtin:lfw-subset"

USER_MODULE = '''
import os
import signal
import sys
import time

import torch
from torch import nn

HOW = {how!r}
WHERE = {where!r}
LATER = {later!r}  # forward: misbehave from this call on (0, 1: the probe drawn twice)


class Boom(BaseException):
    """Not an Exception: what `except Exception` would let through."""


def misbehave():
    if HOW == "exit0":
        sys.exit(0)
    if HOW == "exit3":
        sys.exit(3)
    if HOW == "keyboard":
        raise KeyboardInterrupt
    if HOW == "base":
        raise Boom("custom BaseException")
    if HOW == "value":
        raise ValueError("bad weights")
    if HOW == "sigint":  # a real Ctrl-C arriving while the code runs
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    if HOW == "sigint-swallowed":  # ... which the code turns into an exit
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            sys.exit(0)
    if HOW == "chdir":
        os.chdir({elsewhere!r})


if WHERE == "import":
    misbehave()


class G(nn.Module):
    z_dim = 4

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3 * 16 * 16)
        self.calls = 0

    def forward(self, z):
        if WHERE == "forward" and self.calls >= LATER:
            misbehave()
        self.calls += 1
        return torch.tanh(self.lin(z)).view(-1, 3, 16, 16)


class D(nn.Module):
    def forward(self, x):
        if WHERE == "forward-d":
            misbehave()
        if HOW == "nan-logits":
            return torch.full((x.shape[0],), float("nan")) + 0 * x.sum()
        if HOW == "inf-logits":
            return torch.full((x.shape[0],), float("inf")) + 0 * x.sum()
        if HOW == "two-logits":
            return x.mean(dim=(2, 3))[:, :2]
        if HOW == "int-logits":
            return (x.mean(dim=(1, 2, 3)) > 0).long()
        return x.mean(dim=(1, 2, 3)) - 0.5


def make():
    if WHERE == "factory":
        misbehave()
    return G()


def make_d():
    if WHERE == "factory-d":
        misbehave()
    return D()
'''

SAID = {
    "exit0": "called sys.exit(0)",
    "exit3": "called sys.exit(3)",
    "keyboard": "raised KeyboardInterrupt itself (no Ctrl-C was pressed)",
    "base": "raised Boom: custom BaseException (a BaseException)",
    "value": "raised ValueError: bad weights",
}
"""What the error says the code did, per misbehaviour."""

DOING = {
    "import": "while importing",
    "factory": "calling the factory make()",
    "forward": "calling the generator on latents",
    "forward-later": "calling the generator on latents",
    "import-d": "while importing",
    "factory-d": "calling the factory make_d()",
    "forward-d": "calling the discriminator on images",
}
"""What the error says was running, per place."""


def _module(folder: Path, how: str, where: str, *, name: str = "user_gen") -> Path:
    """A user module misbehaving ``how`` at ``where`` (forward-later: after the probe;
    forward-worker: at the 4th call, the second chunk of a read in batches of 2 images, which
    the read-ahead thread generates)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    place = {"forward-later": "forward", "forward-worker": "forward",
             "import-d": "import"}.get(where, where)
    later = {"forward-later": 2, "forward-worker": 3}.get(where, 0)
    path.write_text(USER_MODULE.format(how=how, where=place, later=later,
                                       elsewhere=str(folder.parent)))
    return path


def _gates(folder: Path) -> Path:
    path = folder / "gates.toml"
    path.write_text('[[gate]]\nmetric = "fid"\nmax = 1e9\n')
    return path


def _command(command: str, spec: str, folder: Path, d_spec: str | None = None) -> list[str]:
    """The command line of ``command`` on ``spec``, its outputs in ``folder``."""
    common = ["--device", "cpu"]
    if command == "evaluate":
        return ["evaluate", spec, "--reference", REFERENCE, "--count", "6", "--splits", "5",
                "--json", str(folder / "results.json"), "--no-cache", "-q", *common]
    if command == "gate":
        return ["gate", spec, "--config", str(_gates(folder)), "--data", REFERENCE, "--count",
                "6", "--json", str(folder / "results.json"), "--junit",
                str(folder / "junit.xml"), *common]
    if command == "report":
        return ["report", "--checkpoint", spec, "--data", REFERENCE, "--count", "6",
                "--attack-n", "2", "--out", str(folder / "report"), "-q", *common]
    assert command == "attack"
    extra = ["--model", "discriminator", "--discriminator", d_spec] if d_spec else []
    return ["attack", spec, "--reference", REFERENCE, "--count", "2", "--attack", "fgsm",
            "--eps", "8/255", "--no-corruptions", "--json", str(folder / "results.json"),
            *extra, *common]


def _nothing_written(folder: Path) -> None:
    for name in ("results.json", "junit.xml", "report/index.html", "report/results.json"):
        assert not (folder / name).exists(), name


def _flat(text: str) -> str:
    return " ".join(text.split())  # typer wraps long lines


@pytest.mark.parametrize("command", ["evaluate", "gate", "report", "attack"])
@pytest.mark.parametrize("where", ["import", "factory", "forward", "forward-later"])
@pytest.mark.parametrize("how", list(SAID))
def test_user_code_that_exits_or_raises_is_exit_2_naming_the_generator(
    command: str, where: str, how: str, tmp_path: Path
) -> None:
    module = _module(tmp_path / "code", how, where)
    spec = f"{module}:make"
    cwd = os.getcwd()
    result = CliRunner().invoke(app, _command(command, spec, tmp_path))
    said = _flat(result.output)
    assert result.exit_code == 2, (result.exit_code, said)
    assert f"error: {spec}: " in said, said
    assert SAID[how] in said and DOING[where] in said, said
    if where == "import":
        assert f"while importing {module.resolve()}" in said
    assert f"at {module}:" in said  # the user's own line
    assert "Traceback" not in result.output
    assert os.getcwd() == cwd
    _nothing_written(tmp_path)


@pytest.mark.parametrize("how", list(SAID))
def test_user_code_misbehaving_in_the_read_ahead_thread_is_contained_too(
    how: str, tmp_path: Path
) -> None:
    import signal
    import sys

    module = _module(tmp_path / "code", how, "forward-worker")
    spec = f"{module}:make"
    before = (signal.getsignal(signal.SIGINT), list(sys.argv))
    result = CliRunner().invoke(app, [*_command("evaluate", spec, tmp_path), "--batch-size", "2"])
    said = _flat(result.output)
    assert result.exit_code == 2, (result.exit_code, said)
    assert f"error: {spec}: calling the generator on latents 2×4 {SAID[how]}" in said, said
    assert (signal.getsignal(signal.SIGINT), list(sys.argv)) == before
    _nothing_written(tmp_path)


@pytest.mark.parametrize("where", ["import-d", "factory-d", "forward-d"])
@pytest.mark.parametrize("how", list(SAID))
def test_a_discriminator_that_exits_or_raises_is_exit_2_naming_the_option(
    where: str, how: str, tmp_path: Path
) -> None:
    generator = _module(tmp_path / "code", "none", "nowhere")
    discriminator = _module(tmp_path / "code", how, where, name="user_disc")
    d_spec = f"{discriminator}:make_d"
    result = CliRunner().invoke(app, _command("attack", f"{generator}:make", tmp_path, d_spec))
    said = _flat(result.output)
    assert result.exit_code == 2, (result.exit_code, said)
    assert f"error: --discriminator {d_spec}: " in said, said
    assert SAID[how] in said and DOING[where] in said, said
    assert "bug in gan-eval" not in said and "Traceback" not in result.output
    _nothing_written(tmp_path)


@pytest.mark.parametrize("how, said", [
    ("nan-logits", "NaN or infinite logits for 2 of 2 images"),
    ("inf-logits", "NaN or infinite logits for 2 of 2 images"),
    ("two-logits", "expected one logit per image"),
    ("int-logits", "torch.int64 logits; expected floats"),
])
def test_a_discriminator_without_one_finite_logit_per_image_is_refused(
    how: str, said: str, tmp_path: Path
) -> None:
    """Before: NaN logits gave discriminator_fooled = 1.000 and exit 0 (exit 4 with --json)."""
    generator = _module(tmp_path / "code", "none", "nowhere")
    discriminator = _module(tmp_path / "code", how, "nowhere", name="user_disc")
    d_spec = f"{discriminator}:make_d"
    result = CliRunner().invoke(app, _command("attack", f"{generator}:make", tmp_path, d_spec))
    flat = _flat(result.output)
    assert result.exit_code == 2, (result.exit_code, flat)
    assert f"error: --discriminator {d_spec}: " in flat and said in flat, flat
    _nothing_written(tmp_path)


def _bad_discriminators(folder: Path) -> dict[str, tuple[str, str]]:
    """{case: (--discriminator SPEC, what the error says)}."""
    import pickle

    folder.mkdir(parents=True, exist_ok=True)
    pickled = folder / "d.pkl"
    pickled.write_bytes(pickle.dumps({"w": [1.0]}, protocol=2))
    unknown = folder / "d.pt"
    unknown.write_bytes(b"not a model")
    cut = folder / "cut.pt2"
    cut.write_bytes(b"PK\x03\x04" + b"\0" * 60)
    module = _module(folder, "none", "nowhere", name="user_disc")
    return {
        "missing file": (f"{folder}/absent.py:make_d", "no such file"),
        "pickle": (str(pickled), "this file is a pickle"),
        "unknown file": (str(unknown), "unknown generator file type"),
        "truncated archive": (str(cut), "truncated or damaged archive"),
        "missing attribute": (f"{module}:nothing", "has no attribute 'nothing'"),
    }


@pytest.mark.parametrize("case", ["missing file", "pickle", "unknown file", "truncated archive",
                                  "missing attribute"])
def test_every_discriminator_error_names_the_option(case: str, tmp_path: Path) -> None:
    generator = _module(tmp_path / "code", "none", "nowhere")
    d_spec, said = _bad_discriminators(tmp_path / "d")[case]
    result = CliRunner().invoke(app, _command("attack", f"{generator}:make", tmp_path, d_spec))
    flat = _flat(result.output)
    assert result.exit_code == 2, flat
    assert f"error: --discriminator {d_spec}: " in flat and said in flat, flat


def test_a_discriminator_without_model_discriminator_is_refused(tmp_path: Path) -> None:
    generator = _module(tmp_path / "code", "none", "nowhere")
    discriminator = _module(tmp_path / "code", "none", "nowhere", name="user_disc")
    args = _command("attack", f"{generator}:make", tmp_path)
    result = CliRunner().invoke(app, [*args, "--discriminator", f"{discriminator}:make_d"])
    assert result.exit_code == 2
    assert "attacked only with --model discriminator" in _flat(result.output)


def test_gate_on_a_generator_calling_sys_exit_0_fails_with_a_message_and_no_junit(
    tmp_path: Path
) -> None:
    module = tmp_path / "quits.py"
    module.write_text("import sys\n\n\ndef make():\n    sys.exit(0)\n")
    junit, results = tmp_path / "junit.xml", tmp_path / "results.json"
    result = CliRunner().invoke(app, [
        "gate", f"{module}:make", "--config", str(_gates(tmp_path)), "--data", REFERENCE,
        "--count", "6", "--device", "cpu", "--junit", str(junit), "--json", str(results)])
    assert result.exit_code == 2
    assert f"{module}:make: calling the factory make() called sys.exit(0)" in \
        _flat(result.output)
    assert not junit.exists() and not results.exists()


@pytest.mark.parametrize("how", ["sigint", "sigint-swallowed"])
@pytest.mark.parametrize("where", ["import", "factory", "forward"])
def test_a_real_ctrl_c_interrupts_whatever_the_code_makes_of_it(
    how: str, where: str, tmp_path: Path
) -> None:
    module = _module(tmp_path / "code", how, where)
    # Ctrl-C in a terminal reaches Python's own SIGINT handler; a shell that starts the tests as
    # a background job sets SIGINT to "ignore", which Python keeps: install the terminal's case
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = CliRunner().invoke(app, ["sample", f"{module}:make", "--count", "2", "--out",
                                          str(tmp_path / "out"), "--device", "cpu"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "error:" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["import", "factory", "forward", "forward-later"])
def test_a_generator_that_changes_directory_moves_no_output(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative --json/--junit land where they were named and a relative --reference still
    opens, though the code calls os.chdir (to tmp_path's parent)."""
    import numpy as np

    from gan_eval.sources import open_source

    work = tmp_path / "work"
    work.mkdir()
    np.savez(work / "ref.npz", images=open_source(REFERENCE).load()[:12].numpy())
    module = _module(tmp_path / "code", "chdir", where)
    (work / "out").mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, [
        "gate", f"{module}:make", "--config", str(_gates(work)), "--data", "ref.npz",
        "--count", "6", "--device", "cpu", "--json", "out/results.json",
        "--junit", "out/junit.xml"])
    assert result.exit_code == 0, result.output
    assert os.getcwd() == str(work)
    assert (work / "out" / "results.json").is_file() and (work / "out" / "junit.xml").is_file()
    assert not (tmp_path / "out").exists()
    record = json.loads((work / "out" / "results.json").read_text())
    assert record["provenance"]["data"]["reference"]["data"] == str(work / "ref.npz")


ARGPARSE_REQUIRED = '''import argparse

parser = argparse.ArgumentParser(description="train my GAN")
parser.add_argument("--dataset", required=True)
ARGS = parser.parse_args()
'''

ARGPARSE_OPTIONAL = '''import argparse

import torch

parser = argparse.ArgumentParser(description="train my GAN")
parser.add_argument("--lr", type=float, default=1e-3)
ARGS = parser.parse_args()  # sees the module's own argv, not gan-eval's


def make(z):
    return torch.tanh(z[:, :3, None, None].expand(-1, 3, 4, 4)) * ARGS.lr * 1e3
'''


def test_a_module_that_parses_arguments_at_import_is_not_taken_for_gan_eval(
    tmp_path: Path
) -> None:
    module = tmp_path / "train_gan.py"
    module.write_text(ARGPARSE_REQUIRED)
    result = CliRunner().invoke(app, ["sample", f"{module}:make", "--count", "2", "--out",
                                      str(tmp_path / "o"), "--device", "cpu"])
    flat = _flat(result.output)
    assert result.exit_code == 2
    assert flat.startswith(f"gan-eval sample: error: {module}:make: called sys.exit(2) while "
                           f"importing {module.resolve()}"), flat
    assert "it printed: usage: " in flat and str(module) in flat
    assert "the following arguments are required: --dataset" in flat
    assert "parses command-line arguments when it is imported" in flat
    assert "Usage: gan-eval" not in result.output and "Try 'gan-eval" not in result.output
    tolerant = tmp_path / "tolerant.py"
    tolerant.write_text(ARGPARSE_OPTIONAL)
    fine = CliRunner().invoke(app, ["sample", f"{tolerant}:make", "--count", "2", "--out",
                                    str(tmp_path / "o2"), "--device", "cpu", "--z-dim", "3"])
    assert fine.exit_code == 0, fine.output


@pytest.mark.parametrize("source, said", [
    ("x = 1\nraise ValueError('no weights here')\n",
     "raised ValueError: no weights here while importing {path} (at {path}:2, in <module>: "
     "raise ValueError('no weights here'))"),
    ("def make(:\n    pass\n", "raised SyntaxError: invalid syntax while importing {path} "
     "(at {path}:1: def make(:)"),
    ("import no_such_dependency_gx\n",
     "raised ModuleNotFoundError: No module named 'no_such_dependency_gx' while importing "
     "{path} (at {path}:1, in <module>: import no_such_dependency_gx)"),
])
def test_import_errors_name_the_file_and_the_users_line_not_our_traceback(
    source: str, said: str, tmp_path: Path
) -> None:
    module = tmp_path / "broken.py"
    module.write_text(source)
    args = ["sample", f"{module}:make", "--count", "2", "--out", str(tmp_path / "o"),
            "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert said.format(path=module) in _flat(result.output), _flat(result.output)
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    debug = CliRunner().invoke(app, ["--debug", *args])
    assert debug.exit_code == 2 and "Traceback (most recent call last)" in debug.output


RESTORER = '''
import sys

HOW, WHERE = {how!r}, {where!r}


def misbehave():
    if HOW == "exit0":
        sys.exit(0)
    raise KeyboardInterrupt


if WHERE == "import":
    misbehave()


def make():
    if WHERE == "factory":
        misbehave()

    def restore(x):
        if WHERE == "forward":
            misbehave()
        return x

    return restore
'''


@pytest.mark.parametrize("where", ["import", "factory", "forward"])
@pytest.mark.parametrize("how", ["exit0", "keyboard"])
def test_a_restoration_model_that_exits_is_exit_2_naming_it(
    how: str, where: str, tmp_path: Path
) -> None:
    """``gan-eval restoration MODEL`` loads the same specs through the same loader."""
    module = tmp_path / "restorer.py"
    module.write_text(RESTORER.format(how=how, where=where))
    spec = f"{module}:make"
    result = CliRunner().invoke(app, ["restoration", spec, "--data", "builtin:lfw-heldout",
                                      "--device", "cpu", "--out", str(tmp_path / "r")])
    said = _flat(result.output)
    assert result.exit_code == 2, (result.exit_code, said)
    assert f"error: MODEL {spec}: " in said and SAID[how] in said, said
    assert not (tmp_path / "r" / "results.json").exists()
