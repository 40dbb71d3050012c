"""Every command's help reads cleanly: no ``<bool>`` type beside a flag, aliases separated by a
comma and a space, defaults in one style (``[default: …]``), one ``--device`` option worded the
same everywhere (``tests/test_gan_cli.py`` checks that ``train``'s stated defaults are
TrainConfig's)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gan_eval.cli import app

runner = CliRunner()


def _commands() -> list[list[str]]:
    """Every command path: [], ["train"], ["weights", "fetch"], ..."""
    root = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(command: Any, path: list[str]) -> None:
        for name, sub in getattr(command, "commands", {}).items():  # a group's commands
            paths.append([*path, name])
            walk(sub, [*path, name])

    walk(root, [])
    return paths


COMMANDS = _commands()


def _help(path: list[str]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_command_is_listed() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"train", "sample", "evaluate", "recognition", "attack", "report", "gate", "inspect",
            "weights", "weights list", "weights fetch", "weights verify"} <= names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "gan-eval")
def test_help_renders_cleanly(path: list[str]) -> None:
    text = _help(path)
    assert "Usage:" in text
    assert "<bool>" not in text  # a flag takes no value
    assert not re.search(r"--[a-z][a-z0-9-]*,-", text), "aliases need ', ' between them"
    assert "(default" not in text and "default:" not in text.replace("[default:", ""), \
        "one default style: [default: …]"
    assert "╭" not in text and "│" not in text  # the plain layout (no Rich panels)
    assert "``" not in text  # reST markup does not leak into the terminal


def _device_lines() -> dict[str, str]:
    found = {}
    for path in COMMANDS:
        text = _help(path)
        match = re.search(r"^\s*--device\b.*(?:\n\s{8,}\S.*)*", text, flags=re.M)
        if match:
            found[" ".join(path)] = " ".join(match.group(0).split())
    return found


def test_one_device_option_everywhere() -> None:
    lines = _device_lines()
    assert {"train", "sample", "evaluate", "recognition", "attack", "report", "gate"} <= set(lines)
    assert len(set(lines.values())) == 1, lines
    (line,) = set(lines.values())
    assert "[default: auto]" in line and "cuda:N" in line and "DEVICE" in line


def test_aliases_are_shown_readably() -> None:
    assert "--count, --n" in _help(["sample"])
    assert "-e, --extractor" in _help(["evaluate"])


def test_attack_help_says_slow_attacks_are_opt_in() -> None:
    from gan_eval.robustness import AttackConfig
    from gan_eval.robustness.attacks import ATTACKS, DEFAULT_ATTACKS

    text = " ".join(_help(["attack"]).split())
    assert f"[default: {', '.join(DEFAULT_ATTACKS)}]" in text
    assert AttackConfig().attacks == DEFAULT_ATTACKS
    assert not any(ATTACKS[name].minimizes for name in DEFAULT_ATTACKS)
    assert all(name in text for name in ("cw", "deepfool"))
