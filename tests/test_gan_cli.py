"""``gan-eval train`` through typer's CliRunner: bad options exit 2 naming the option."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.gan.training import TrainConfig

runner = CliRunner()
TINY = ["--width", "8", "--batch-size", "16", "--quiet", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def train(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["train", "--data", "builtin:lfw-subset", "--out",
                                 str(tmp_path / "run"), *args])
    return result.exit_code, result.output


def test_unknown_loss(tmp_path: Path) -> None:
    code, output = train(tmp_path, "--loss", "lsgan")
    assert code == 2
    assert "--loss" in output and "ns" in output and "wgan-gp" in output


def test_unsupported_resolution(tmp_path: Path) -> None:
    code, output = train(tmp_path, "--resolution", "48", *TINY)
    assert code == 2
    assert "--resolution 48" in output and "32, 64, 128" in output
    assert "Traceback" not in output


def test_batch_larger_than_the_data(tmp_path: Path) -> None:
    code, output = train(tmp_path, "--batch-size", "128", "--quiet")
    assert code == 2
    assert "--batch-size 128" in output and "100 images" in output


def test_data_is_required_without_resume(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "--data" in result.output


def test_missing_data_path(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "nope"), "--out",
                                 str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 2 and "nope" in result.output


def test_train_then_resume_with_fewer_options(tmp_path: Path) -> None:
    code, output = train(tmp_path, "--steps", "2", "--seed", "5", "--loss", "hinge", *TINY)
    assert code == 0, output
    run = tmp_path / "run"
    # --resume keeps the checkpointed options (loss, seed, width, …) not given again; speed
    # options such as --cuda-graphs (ignored on CPU) may change
    result = runner.invoke(app, ["train", "--out", str(run), "--resume", "--steps", "3",
                                 "--cuda-graphs", "--quiet"])
    assert result.exit_code == 0, result.output
    meta = json.loads((run / "checkpoint" / "checkpoint.json").read_text())
    assert (meta["step"], meta["config"]["loss"], meta["config"]["seed"]) == (3, "hinge", 5)
    assert meta["config"]["cuda_graphs"] is True
    # changing a fixed option on resume is refused, naming it
    result = runner.invoke(app, ["train", "--out", str(run), "--resume", "--steps", "4",
                                 "--loss", "ns", "--quiet"])
    assert result.exit_code == 2 and "--loss 'ns' (checkpoint: 'hinge')" in result.output
    # starting again over an existing run is refused
    code, output = train(tmp_path, "--steps", "2", *TINY)
    assert code == 2 and "--resume" in output


def test_help_defaults_match_the_config() -> None:
    """The [default: …] texts of `train --help` are written by hand (the options default to
    None, so that --resume keeps checkpointed values): keep them true."""
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    # one entry per option: its first line starts with the option, continuation lines are indented
    entries = re.split(r"\n(?=  (?:-\w, )?--)", result.output.split("Options:", 1)[1])
    claims = {}
    for entry in entries:
        name = re.match(r"\s*(?:-\w, )?--([a-z0-9-]+)", entry)
        default = re.search(r"\[default: ([^\]]+)\]", " ".join(entry.split()))
        if name and default:
            claims[name[1]] = default[1]
    assert len(claims) >= 15
    words = {"on": True, "off": False}
    for option, claim in claims.items():
        default = fields[option.replace("-", "_")]
        if default is None:  # resolved later; the text says how
            continue
        shown = words.get(claim, claim)
        assert str(shown) == str(getattr(default, "value", default)), option
