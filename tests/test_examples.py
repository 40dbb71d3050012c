"""Every example runs exactly as its README says, and the CI workflows agree with the READMEs.

The README commands run in a scratch copy of ``examples/`` (so that a test run leaves the
checkout as it was), with ``gan-eval`` and ``python`` meaning this interpreter's.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gan_eval.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WORKFLOWS = [EXAMPLES / "ci" / "gan-eval-gate.yml",
             EXAMPLES / "external_generator" / "gan-eval-gate.yml"]


def _blocks(readme: Path, language: str) -> list[list[str]]:
    """The lines of each fenced block in ``language`` (comments and blank lines dropped)."""
    text = readme.read_text()
    return [[line.strip() for line in block.splitlines()
             if line.strip() and not line.strip().startswith("#")]
            for block in re.findall(rf"```{language}\n(.*?)\n```", text, flags=re.S)]


def _runnable(readme: Path) -> list[str]:
    """The commands of ``readme``'s ```bash blocks, in order."""
    return [line for block in _blocks(readme, "bash") for line in block]


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "gan-eval":
        return [sys.executable, "-m", "gan_eval", *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise AssertionError(f"not a gan-eval or python command: {command}")


def _env(scratch: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "GAN_EVAL_CACHE_DIR": str(scratch / "cache"),
            "OMP_NUM_THREADS": "1"}


def _run_all(commands: list[str], scratch: Path,
             expected: Callable[[str], int] = lambda command: 0,
             ) -> list[subprocess.CompletedProcess[str]]:
    """Run ``commands`` in order; each must exit with ``expected(command)``."""
    done = []
    for command in commands:
        result = subprocess.run(_argv(command), cwd=scratch, env=_env(scratch), text=True,
                                capture_output=True, timeout=1800)
        assert result.returncode == expected(command), \
            f"{command}\n{result.stdout}\n{result.stderr}"
        done.append(result)
    return done


def _is_gate(command: str) -> bool:
    return " gate " in f" {command} "


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A folder holding a copy of ``examples/`` (without exported files), the commands' cwd."""
    shutil.copytree(EXAMPLES, tmp_path / "examples",
                    ignore=shutil.ignore_patterns("out", "__pycache__"))
    return tmp_path


def test_every_example_file_is_named_by_a_readme() -> None:
    readmes = (EXAMPLES / "README.md").read_text() + \
        (EXAMPLES / "external_generator" / "README.md").read_text()
    files = [p for p in EXAMPLES.rglob("*") if p.suffix in (".py", ".yml", ".toml")
             and "out" not in p.relative_to(EXAMPLES).parts]
    assert files
    assert [str(p.relative_to(EXAMPLES)) for p in files if p.name not in readmes] == []
    assert _runnable(EXAMPLES / "README.md") and _runnable(
        EXAMPLES / "external_generator" / "README.md")


@pytest.mark.slow
def test_api_examples_run_as_the_readme_says(scratch: Path) -> None:
    _run_all(_runnable(EXAMPLES / "README.md"), scratch)
    results = scratch / "runs" / "quickstart" / "results.json"
    audit = scratch / "runs" / "quickstart" / "audit.json"
    assert results.is_file() and audit.is_file()
    names = {m["name"] for m in json.loads(audit.read_text())["metrics"]}
    assert {"fid", "leakage_rate"} <= names  # evaluate's and recognition's numbers, one file


@pytest.mark.slow
def test_external_generator_example_runs_as_the_readme_says(scratch: Path) -> None:
    # the example's weights are random: its gates (spans relative to real data and noise) fail,
    # every one of them, for every export (exit 1, as the README says)
    commands = _runnable(EXAMPLES / "external_generator" / "README.md")
    done = _run_all(commands, scratch, lambda command: 1 if _is_gate(command) else 0)
    out = scratch / "examples" / "external_generator" / "out"
    assert (out / "generator.pt").is_file() and (out / "generator.onnx").is_file()
    gates = [r for r, c in zip(done, commands, strict=True) if _is_gate(c)]
    n_gates = len(tomllib.loads((EXAMPLES / "external_generator" / "gates.toml").read_text())
                  ["gate"])
    assert gates and all(len(re.findall(r"\bFAIL\b", r.stdout)) == n_gates
                         and "PASS" not in r.stdout for r in gates)
    page = (scratch / "runs" / "external" / "index.html").read_text()
    header = re.search(r'<div class="subject">(.*?)</div>', page, flags=re.S)
    assert header is not None
    assert "generator.onnx" in header[1] and "onnx generator, sha256" in header[1]
    assert "trained on" not in header[1]  # --data was only the reference
    assert header[1].endswith("compared with builtin:lfw-subset")


@pytest.mark.slow
def test_ci_gate_step_runs_in_a_scratch_repository(tmp_path: Path) -> None:
    """The gate step of examples/ci/gan-eval-gate.yml, verbatim, in a repository laid out as
    the job expects: it judges (exit 0 or 1), writes results.json and the JUnit XML."""
    import numpy as np
    from PIL import Image

    from gan_eval.gan.training import TrainConfig, train
    from gan_eval.sources import open_source

    shutil.copytree(EXAMPLES / "ci", tmp_path / "examples" / "ci")
    train(TrainConfig(data="builtin:lfw-subset", out=tmp_path / "runs" / "latest", steps=2,
                      batch_size=16, width=8, nz=16, quiet=True, device="cpu", threads=1))
    faces = (tmp_path / "data" / "train")
    faces.mkdir(parents=True)
    for i, image in enumerate(open_source("builtin:lfw-subset").load()):
        Image.fromarray(np.ascontiguousarray(image[0].numpy())).save(faces / f"{i:03d}.png")
    (step,) = _gate_commands(WORKFLOWS[0])
    baseline = re.sub(r" --baseline \S+| --junit \S+", "", step).replace(
        "--json results.json", "--json baselines/main-results.json")
    (tmp_path / "baselines").mkdir()
    for command, codes in ((baseline, (0, 1)), (step, (0, 1))):
        result = subprocess.run(_argv(command), cwd=tmp_path, env=_env(tmp_path), text=True,
                                capture_output=True, timeout=1800)
        assert result.returncode in codes, f"{command}\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "results.json").is_file() and (tmp_path / "gate-junit.xml").is_file()
    assert "baseline" in (tmp_path / "gate-junit.xml").read_text()


def _steps(workflow: Path) -> list[dict[str, str]]:
    loaded = yaml.safe_load(workflow.read_text())
    (job,) = loaded["jobs"].values()
    return list(job["steps"])


def _gate_commands(workflow: Path) -> list[str]:
    return [" ".join(step["run"].split()) for step in _steps(workflow)
            if "run" in step and step["run"].strip().startswith("gan-eval gate")]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.parent.name)
def test_workflow_installs_gan_eval_as_the_readme_says(workflow: Path) -> None:
    installs = [line.strip() for step in _steps(workflow) if "run" in step
                for line in step["run"].splitlines() if line.strip().startswith("pip install")]
    readme_blocks = [block for block in _blocks(EXAMPLES / "README.md", "text")
                     if all(line.startswith("pip install") for line in block)]
    assert installs in readme_blocks, (installs, readme_blocks)
    gan_eval_lines = [line for line in installs if "gan-eval" in line]
    assert len(gan_eval_lines) == 1
    assert re.search(r'"gan-eval(\[[a-z,]+\])? @ git\+https://github\.com/\S+/gan-eval@\S+"',
                     gan_eval_lines[0]), "until a release exists, gan-eval installs from git"
    assert "download.pytorch.org/whl/cpu" in installs[0]  # the runner has no GPU


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.parent.name)
def test_workflow_gate_steps_use_real_options_and_files(workflow: Path) -> None:
    help_text = CliRunner().invoke(app, ["gate", "--help"], env={"COLUMNS": "200"}).output
    commands = _gate_commands(workflow)
    assert commands
    for command in commands:
        words = shlex.split(command)
        assert all(w in help_text for w in words if w.startswith("--")), command
        config = words[words.index("--config") + 1]
        assert (ROOT / config).is_file(), config
    if workflow.parent.name == "ci":  # the README shows the step as the job runs it
        shown = [block[0] for block in _blocks(EXAMPLES / "README.md", "text")
                 if block[0].startswith("gan-eval gate")]
        assert shown == commands
    else:
        export = [step["run"] for step in _steps(workflow)
                  if "run" in step and "export.py" in step["run"]]
        assert export == ["python examples/external_generator/export.py --out exported"]
        extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"]["onnx"]
        assert any(re.fullmatch(r"onnx\b(?!runtime).*", r) for r in extra), \
            "the onnx extra installs what exporting needs (onnx), not only onnxruntime"
