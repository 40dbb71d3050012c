"""examples/external_generator: the file, its exports and the README's tour line agree."""

from __future__ import annotations

import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.gates import load_config
from gan_eval.sources import open_source

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "external_generator"
FILE_SPEC = f"{EXAMPLE / 'generator.py'}:make_generator"


def _tour_line() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    line = next(row for row in readme.splitlines() if "examples/external_generator/gener" in row
                and row.startswith("| `gan-eval"))
    command = re.match(r"\| `(.+?)` \|", line)
    assert command is not None
    return shlex.split(command.group(1))


def test_exports_give_the_file_generators_images(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["export.py", "--out", str(tmp_path)])
    runpy.run_path(str(EXAMPLE / "export.py"), run_name="__main__")
    reference = open_source(FILE_SPEC, n=16, seed=3, device="cpu").load()
    assert reference.shape == (16, 3, 32, 32) and reference.float().std() > 0
    torchscript = open_source(str(tmp_path / "generator.pt"), n=16, seed=3, device="cpu")
    assert torch.equal(torchscript.load(), reference)
    exported = open_source(str(tmp_path / "generator.pt2"), n=16, seed=3, device="cpu")
    assert exported.kind == "generator-torch-export"
    assert torch.equal(exported.load(), reference)
    onnx = open_source(str(tmp_path / "generator.onnx"), n=16, seed=3, device="cpu").load()
    diff = (onnx.int() - reference.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) <= 0.001


def test_workflow_and_tour_use_real_options_and_files() -> None:
    assert load_config(EXAMPLE / "gates.toml").gates
    help_text = CliRunner().invoke(app, ["gate", "--help"], env={"COLUMNS": "200"}).output
    workflow = (EXAMPLE / "gan-eval-gate.yml").read_text()
    commands = re.findall(r"run: >\n\s+gan-eval gate (.+?)\n\s+- ", workflow, flags=re.S)
    assert len(commands) == 2
    assert "python examples/external_generator/export.py --out exported" in workflow
    for command in commands:
        used = set(re.findall(r"(--[a-z-]+)", command))
        assert used >= {"--config", "--data", "--json", "--junit"}
        assert all(option in help_text for option in used), used
    tour = _tour_line()
    assert tour[:2] == ["gan-eval", "gate"]
    spec_file = tour[2].rsplit(":", 1)[0]
    assert (ROOT / spec_file).is_file()
    assert (ROOT / tour[tour.index("--config") + 1]).is_file()
    assert all(option in help_text for option in tour if option.startswith("--"))


@pytest.mark.slow
def test_tour_line_works_as_written(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The README's line, run from the repository root, runs as written and its gates mean
    something: the example's random weights fail every one of them (exit 1), each with its
    span, floor and ceiling."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("GAN_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, _tour_line()[1:])
    assert result.exit_code == 1, result.output
    gates = load_config(EXAMPLE / "gates.toml").gates
    assert len(re.findall(r"\bFAIL\b", result.output)) == len(gates)
    assert "PASS" not in result.output and "gate FAILED: 0 of" in result.output
    assert result.output.count("floor (real data)") == len(gates)
