"""The README's two set-up commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_setup_commands() -> None:
    commands = _setup_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands), "each set-up command is one line"
    assert "gan-eval" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert _setup_commands()[1] in ci


def test_readme_command_one_leaves_the_clone_clean() -> None:
    """`gan-eval report` with no arguments writes into a git-ignored folder (its run, results,
    plots and page), so a fresh clone stays clean after README command 1, and the committed
    reports/default (the reference copy) is never its target."""
    import shutil
    import subprocess

    import typer

    from gan_eval.audit import DEFAULT_OUT
    from gan_eval.cli import app

    report = typer.main.get_command(app).commands["report"]  # type: ignore[attr-defined]
    (out_option,) = [p for p in report.params if p.name == "out"]
    assert Path(out_option.default) == DEFAULT_OUT
    assert not DEFAULT_OUT.is_absolute() and DEFAULT_OUT.parts[0] != "reports"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return  # not a checkout: nothing to keep clean
    written = [DEFAULT_OUT / name for name in
               ("index.html", "results.json", "plots/samples.png",
                "run/checkpoint/checkpoint.json", "run/metrics.jsonl",
                "restoration-run/checkpoint/checkpoint.json")]
    ignored = subprocess.run(["git", "check-ignore", *map(str, written)], cwd=ROOT,
                             capture_output=True, text=True)
    assert sorted(ignored.stdout.split()) == sorted(map(str, written))
    tracked = subprocess.run(["git", "ls-files", "reports/default"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert "reports/default/index.html" in tracked  # the reference copy stays committed
