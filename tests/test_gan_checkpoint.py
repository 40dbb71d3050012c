"""Checkpoints and the CLI's bad-input paths: truncated, foreign and pickle files are refused.

Every refusal is an exit code 2 whose message names the offending file or option; nothing is
ever unpickled.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.errors import InputError
from gan_eval.fileio import sha256_file
from gan_eval.gan.checkpoint import load_checkpoint

runner = CliRunner()


@pytest.fixture
def trained(tiny_run: Path) -> Path:
    return tiny_run / "checkpoint"


@pytest.fixture
def checkpoint(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained checkpoint folder (in a run folder), free to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run" / "checkpoint"))


def state_file(folder: Path) -> Path:
    (path,) = folder.glob("state-*.safetensors")
    return path


def sample_exit(path: Path, tmp_path: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["sample", str(path), "--n", "2", "--out", str(tmp_path / "o")])
    return result.exit_code, result.output


def test_valid_checkpoint_loads_from_every_path_form(checkpoint: Path) -> None:
    for form in (checkpoint, checkpoint / "checkpoint.json", state_file(checkpoint)):
        loaded = load_checkpoint(form, groups=("g", "d", "g_ema", "opt_g", "opt_d"))
        assert loaded.step == 2 and loaded.spec.nz == 16
    run = checkpoint.parent  # the run folder holding checkpoint/ works too
    assert load_checkpoint(run).json_path == checkpoint / "checkpoint.json"


def test_truncated_state_file(checkpoint: Path, tmp_path: Path) -> None:
    state = state_file(checkpoint)
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    code, output = sample_exit(checkpoint, tmp_path)
    assert code == 2
    assert state.name in output and "truncated" in output
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_truncated_json(checkpoint: Path, tmp_path: Path) -> None:
    json_path = checkpoint / "checkpoint.json"
    json_path.write_text(json_path.read_text()[:100])
    code, output = sample_exit(checkpoint, tmp_path)
    assert code == 2 and "checkpoint.json" in output and "not valid JSON" in output


def test_missing_state_file(checkpoint: Path, tmp_path: Path) -> None:
    state_file(checkpoint).unlink()
    code, output = sample_exit(checkpoint, tmp_path)
    assert code == 2 and "state-00000002.safetensors" in output and "missing" in output


def test_foreign_safetensors(tmp_path: Path) -> None:
    foreign = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, foreign)
    code, output = sample_exit(foreign, tmp_path)
    assert code == 2 and "model.safetensors" in output and "checkpoint.json" in output


def test_foreign_json(tmp_path: Path) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "checkpoint.json").write_text(json.dumps({"model": "resnet", "epoch": 3}))
    code, output = sample_exit(folder, tmp_path)
    assert code == 2 and "checkpoint.json" in output and "schema" in output


def rewrite_state(checkpoint: Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Replace the state file and fix the sha256 in the JSON: only the content check can fail."""
    state = state_file(checkpoint)
    save_file(tensors, state)
    meta = json.loads((checkpoint / "checkpoint.json").read_text())
    meta["state_sha256"] = sha256_file(state)
    (checkpoint / "checkpoint.json").write_text(json.dumps(meta))
    return state


def test_missing_keys_are_named(checkpoint: Path) -> None:
    tensors = load_file(state_file(checkpoint))
    del tensors["g_ema.main.0.weight"]
    state = rewrite_state(checkpoint, tensors)
    with pytest.raises(InputError, match=r"missing g_ema\.main\.0\.weight") as info:
        load_checkpoint(checkpoint)
    assert str(state) in str(info.value)


def test_wrong_shapes_are_named(checkpoint: Path) -> None:
    tensors = load_file(state_file(checkpoint))
    tensors["g_ema.main.0.weight"] = tensors["g_ema.main.0.weight"][:8].contiguous()
    rewrite_state(checkpoint, tensors)
    with pytest.raises(InputError, match=r"g_ema\.main\.0\.weight has shape \[8, "):
        load_checkpoint(checkpoint)


def test_optimizer_state_is_checked_for_resume(checkpoint: Path) -> None:
    tensors = load_file(state_file(checkpoint))
    del tensors["opt_d.state.0.exp_avg_sq"]
    rewrite_state(checkpoint, tensors)
    load_checkpoint(checkpoint)  # sampling needs only g_ema
    with pytest.raises(InputError, match=r"opt_d\.state\.0 lacks \['exp_avg_sq'\]"):
        load_checkpoint(checkpoint, groups=("opt_d",))


def test_changed_state_file_fails_the_sha256(checkpoint: Path, tmp_path: Path) -> None:
    state = state_file(checkpoint)
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF
    state.write_bytes(bytes(data))
    code, output = sample_exit(checkpoint, tmp_path)
    assert code == 2 and "sha256" in output and state.name in output


def test_resume_refuses_a_truncated_checkpoint(checkpoint: Path) -> None:
    run = checkpoint.parent
    state = state_file(checkpoint)
    state.write_bytes(state.read_bytes()[:1000])
    result = runner.invoke(app, ["train", "--out", str(run), "--resume", "--steps", "4", "--quiet"])
    assert result.exit_code == 2 and state.name in result.output


class _Payload:
    """Unpickling this creates the marker file (as a malicious pickle could run anything)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt"])
def test_pickle_checkpoints_are_never_unpickled(tmp_path: Path, suffix: str) -> None:
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(proof)))  # the payload works when unpickled...
    assert proof.exists()

    marker = tmp_path / "UNPICKLED"
    evil = tmp_path / f"generator{suffix}"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    code, output = sample_exit(evil, tmp_path)
    assert code == 2 and f"generator{suffix}" in output and "never loaded" in output
    result = runner.invoke(app, ["inspect", str(evil)])
    assert result.exit_code == 2
    assert not marker.exists()  # ...and was never unpickled


def test_atomic_commit_keeps_the_old_checkpoint_until_the_json_is_replaced(
    checkpoint: Path,
) -> None:
    """A crash after the new state file is written but before the JSON: the old one still loads."""
    old = load_checkpoint(checkpoint, groups=("g", "d", "g_ema", "opt_g", "opt_d"))
    (checkpoint / "state-00000004.safetensors").write_bytes(b"half a file")
    (checkpoint / ".checkpoint.json.abc.tmp").write_text("{")  # an interrupted JSON write
    again = load_checkpoint(checkpoint, groups=("g", "d", "g_ema", "opt_g", "opt_d"))
    assert again.step == old.step == 2 and again.state_path == old.state_path
