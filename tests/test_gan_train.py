"""The training loop: exact resume, NaN guard, outputs of a run folder, config validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from gan_eval.errors import InputError
from gan_eval.gan import losses
from gan_eval.gan.checkpoint import load_checkpoint
from gan_eval.gan.losses import GanLoss, LossName
from gan_eval.gan.training import (
    TrainConfig,
    TrainingDivergedError,
    cpu_threads,
    ema_decay_at,
    train,
    update_ema,
)

DATA = "builtin:lfw-subset"  # 100 images: with batch 32, 3 batches per epoch


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny(out: Path, steps: int, **overrides: Any) -> TrainConfig:
    """A config that trains in well under a second per step on a laptop CPU."""
    options: dict[str, Any] = dict(
        data=DATA, out=out, steps=steps, batch_size=32, width=8, nz=16, sample_every=1000,
        checkpoint_every=1000, log_every=2, quiet=True, device="cpu",
    )
    options.update(overrides)
    return TrainConfig(**options)


def state(run: Path) -> dict[str, torch.Tensor]:
    checkpoint = load_checkpoint(run / "checkpoint", groups=(), task=None)
    return load_file(checkpoint.state_path)


def metric_rows(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for row in rows:  # timings differ between runs
        row.pop("img_per_s")
        row.pop("time_s")
    return rows


@pytest.mark.parametrize(("task", "loss", "channels_last"),
                         [("generation", "ns", True), ("generation", "wgan-gp", True),
                          ("generation", "hinge", False), ("restoration", "ns", True),
                          ("restoration", "wgan-gp", False)])
def test_resume_is_bit_identical(tmp_path: Path, task: str, loss: str,
                                 channels_last: bool) -> None:
    """2N steps in one run == N steps, then --resume to 2N: every tensor, bit for bit.

    N = 4 crosses an epoch boundary (3 batches per epoch); with wgan-gp (G steps every 5th
    step) the first G update after the resume point is exercised too; channels_last checks that
    restored Adam moments take their parameter's memory layout. The restoration GAN's random
    degradations (kinds, severities, noise) are replayed too.
    """
    options = {"task": task, "loss": loss, "channels_last": channels_last}
    train(tiny(tmp_path / "once", 8, **options))
    train(tiny(tmp_path / "twice", 4, **options))
    assert load_checkpoint(tmp_path / "twice", groups=(), task=None).step == 4
    train(tiny(tmp_path / "twice", 8, resume=True, **options))

    once, twice = state(tmp_path / "once"), state(tmp_path / "twice")
    assert once.keys() == twice.keys()
    assert any(k.startswith("opt_d.state.") for k in once) and "rng.cpu" in once
    for key in once:
        assert torch.equal(once[key], twice[key]), key
    assert metric_rows(tmp_path / "once") == metric_rows(tmp_path / "twice")
    assert [r["step"] for r in metric_rows(tmp_path / "once")] == list(range(1, 9))


def test_run_folder_outputs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(run, 4, sample_every=2, loss="wgan-gp", spectral_norm=True))
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000002.png", "step-000004.png"]
    with Image.open(run / "samples" / "step-000004.png") as grid:
        assert grid.mode == "L"  # lfw-subset is gray: trained on 1 channel
        assert grid.size == (8 * 34 + 2, 8 * 34 + 2)
    files = sorted(p.name for p in (run / "checkpoint").iterdir())
    assert files == ["checkpoint.json", "state-00000004.safetensors"]
    meta = json.loads((run / "checkpoint" / "checkpoint.json").read_text())
    assert meta["step"] == 4 and meta["model"]["channels"] == 1
    assert meta["model"]["spectral_norm"] is True and meta["model"]["d_norm"] == "none"
    assert meta["config"]["loss"] == "wgan-gp" and meta["world_size"] == 1
    assert len(meta["data"]["content_hash"]) == 64 and "torch" in meta["versions"]
    rows = metric_rows(run)
    # wgan-gp: G steps on every 5th step only, and the penalty is logged
    assert [r["g_loss"] is None for r in rows] == [True] * 4
    assert all(r["gp"] >= 0 for r in rows)


def test_checkpoint_every_replaces_the_state_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(run, 3, checkpoint_every=2))
    assert sorted(p.name for p in (run / "checkpoint").iterdir()) == [
        "checkpoint.json", "state-00000003.safetensors"]


@pytest.mark.parametrize("task", ["generation", "restoration"])
def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str
) -> None:
    calls = {"n": 0}

    def poisoned(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        value = losses.ns_d_loss(real, fake)
        return value * float("nan") if calls["n"] == 5 else value

    monkeypatch.setitem(losses.LOSSES, LossName.NS,
                        GanLoss(LossName.NS, poisoned, losses.ns_g_loss))
    run = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"step 5: non-finite D loss") as info:
        train(tiny(run, 8, checkpoint_every=2, log_every=1, task=task))
    assert "step 4" in str(info.value) and isinstance(info.value, InputError)
    kept = load_checkpoint(run / "checkpoint", groups=("g", "d", "g_ema"), task=None)
    assert kept.step == 4
    assert all(torch.isfinite(t).all() for t in kept.tensors("d").values())
    assert [r["step"] for r in metric_rows(run)] == [1, 2, 3, 4]


def test_resume_truncates_metrics_written_after_the_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(run, 2))
    with open(run / "metrics.jsonl", "a") as handle:  # a crash after step 2's checkpoint
        handle.write(json.dumps({"step": 3, "d_loss": 1.0, "g_loss": 1.0}) + "\n")
    train(tiny(run, 4, resume=True))
    assert [r["step"] for r in metric_rows(run)] == [1, 2, 3, 4]


def test_resume_refuses_changed_options_and_data(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(tiny(run, 2))
    with pytest.raises(InputError, match=r"--lr 0\.001 \(checkpoint: 0\.0002\)"):
        train(tiny(run, 4, resume=True, lr=1e-3))
    with pytest.raises(InputError, match="--data builtin:lfw-nonfaces is not the data"):
        train(tiny(run, 4, resume=True, data="builtin:lfw-nonfaces"))
    with pytest.raises(InputError, match="already holds a checkpoint; pass --resume"):
        train(tiny(run, 4))
    with pytest.raises(InputError, match=r"--resume: .* does not exist"):
        train(tiny(tmp_path / "empty", 4, resume=True))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"resolution": 48}, "--resolution 48 is not supported; choose one of 32, 64, 128"),
        ({"batch_size": 101}, "--batch-size 101 is larger than the data: builtin:lfw-subset "
                              "holds 100 images"),
        ({"steps": 0}, "--steps 0"),
        ({"ema_decay": 1.0}, "--ema-decay 1.0"),
        ({"channels": 2}, "--channels 2"),
        ({"loss": "lsgan"}, "--loss 'lsgan': unknown loss; choose one of ns, hinge, wgan-gp"),
        ({"device": "tpu"}, "--device"),
    ],
)
def test_bad_options_name_the_option(tmp_path: Path, overrides: dict[str, Any],
                                     message: str) -> None:
    with pytest.raises(InputError) as info:
        train(tiny(tmp_path / "run", **{"steps": 2, **overrides}))
    assert message in str(info.value)
    assert not (tmp_path / "run" / "checkpoint").exists()


def test_ema_ramp() -> None:
    assert ema_decay_at(0.999, 0) == pytest.approx(0.1)
    assert ema_decay_at(0.999, 300) == pytest.approx(301 / 310)
    assert ema_decay_at(0.999, 100_000) == 0.999


def test_update_ema_is_the_weighted_average() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4))
    ema = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.BatchNorm1d(4))
    model(torch.randn(8, 5))  # BN running statistics move away from ema's
    before = [p.detach().clone() for p in ema.parameters()]
    update_ema(ema, model, torch.tensor(1.0 - 0.9))
    for old, new, target in zip(before, ema.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * target, rtol=1e-6, atol=1e-7)
    for copied, source in zip(ema.buffers(), model.buffers(), strict=True):
        assert torch.equal(copied, source)


def test_cuda_graphs_option_changes_nothing_on_cpu(tmp_path: Path) -> None:
    train(tiny(tmp_path / "a", 3))
    train(tiny(tmp_path / "b", 3, cuda_graphs=True))
    a, b = state(tmp_path / "a"), state(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cpu_threads(tmp_path: Path) -> None:
    assert cpu_threads(tiny(tmp_path, 1, threads=3)) == 3
    torch.set_num_threads(2)
    assert cpu_threads(tiny(tmp_path, 1)) == 2  # torch's current setting
    train(tiny(tmp_path / "run", 1, threads=1))
    assert torch.get_num_threads() == 2  # restored after training
