"""Every option of every command survives torchrun's own command-line parser.

torchrun parses ``torchrun [its options] -m gan_eval COMMAND [options]`` with argparse, whose
prefix matching claims any of *our* options that is an abbreviation of one of *its* options
(``--n`` → "ambiguous option: could match --nnodes, --nproc-per-node, …"), even after the
module name. Each option therefore has a spelling torchrun leaves alone; the old ``--n`` is kept
as an alias that works outside torchrun.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from torch.distributed.run import get_args_parser
from torchrun_helpers import free_port, run_clean

from gan_eval.cli import app

KNOWN_ALIASES_TORCHRUN_CLAIMS = {"--n"}
"""Old spellings kept for plain ``gan-eval`` use; each option also has another spelling."""


def _survives(command: str, args: list[str]) -> bool:
    parser = get_args_parser()
    words = command.split()
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            parsed = parser.parse_args(["--nproc-per-node", "2", "-m", "gan_eval", *words, *args])
        except SystemExit:
            return False
    return list(parsed.training_script_args) == [*words, *args]


def _commands() -> dict[str, Any]:
    """Every command by the words that call it (``weights fetch`` for a group's command)."""
    found = {}
    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        for sub, inner in getattr(command, "commands", {}).items():
            found[f"{name} {sub}"] = inner
        if not hasattr(command, "commands"):
            found[name] = command
    return found


def test_every_command_is_checked() -> None:
    assert set(_commands()) == {"inspect", "train", "sample", "evaluate", "recognition",
                                "attack", "report", "gate", "weights list", "weights fetch",
                                "weights verify", "restoration", "calibrate"}


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_has_a_spelling_torchrun_leaves_alone(name: str) -> None:
    claimed = set()
    for param in _commands()[name].params:
        if getattr(param, "param_type_name", "") != "option":
            continue
        spellings = [*param.opts, *param.secondary_opts]
        values = [] if param.is_flag or param.count else ["1"]
        survivors = [s for s in spellings if _survives(name, [s, *values])]
        assert survivors, f"{name}: torchrun claims every spelling of {spellings}"
        claimed |= set(spellings) - set(survivors)
    assert claimed <= KNOWN_ALIASES_TORCHRUN_CLAIMS, (name, claimed)


def test_the_old_spelling_is_what_torchrun_claimed() -> None:
    """The check can fail: ``--n`` and ``--n=300`` are refused, ``--count`` is passed on."""
    assert not _survives("evaluate", ["CKPT", "--n", "300"])
    assert not _survives("evaluate", ["CKPT", "--n=300"])
    assert _survives("evaluate", ["CKPT", "--count", "300"])
    assert _survives("evaluate", ["CKPT", "--count=300"])


def test_torchrun_samples_a_checkpoint_with_a_chosen_count(tiny_run: Path, tmp_path: Path) -> None:
    """``torchrun … -m gan_eval evaluate CKPT --count 70`` samples 70 images and gives the
    single process's numbers (each rank extracts a shard of the same seeded samples)."""
    options = [str(tiny_run), "--reference", "builtin:lfw-subset", "--count", "70",
               "--no-cache", "-q", "--device", "cpu", "--batch-size", "32", "--splits", "20"]
    single, multi = tmp_path / "single.json", tmp_path / "multi.json"
    run_clean([sys.executable, "-m", "gan_eval", "evaluate", *options, "--json", str(single)])
    run_clean([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
               "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
               "--master-port", str(free_port()),
               "-m", "gan_eval", "evaluate", *options, "--json", str(multi)])
    ours, theirs = (json.loads(p.read_text())["metrics"] for p in (multi, single))
    assert [m["n_generated"] for m in ours] == [70] * len(ours)
    assert [(m["name"], m["value"], m["ci95"]) for m in ours] == \
        [(m["name"], m["value"], m["ci95"]) for m in theirs]
