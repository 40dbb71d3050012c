"""The restoration GAN (``gan-eval train --task restoration``): its networks, its step, its run
folder and checkpoint record, :func:`gan_eval.gan.load_restorer`, and the refusals of a
restoration checkpoint where a generator is expected (and the other way round).

Resume, NaN guard, kill safety and torchrun are the shared loop's tests, parametrised by task
(test_gan_train, test_faults_train, test_gan_dist); the quality run is test_restoration_quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.data import open_images
from gan_eval.data.degrade import DEFAULT_RANGES, parse_ranges
from gan_eval.errors import InputError
from gan_eval.gan import (
    Restorer,
    TaskName,
    TrainConfig,
    load_checkpoint,
    load_restorer,
    restore_images,
    train,
)
from gan_eval.gan.losses import get_loss
from gan_eval.gan.pix2pix import PatchDiscriminator, RestorationSpec, UNetGenerator
from gan_eval.gan.training import DEFAULT_L1_WEIGHT, GanStep, config_for_resume

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
runner = CliRunner()


def tiny(out: Path, steps: int, **overrides: Any) -> TrainConfig:
    options: dict[str, Any] = dict(
        data="builtin:lfw-subset", out=out, task="restoration", steps=steps, batch_size=16,
        width=8, sample_every=1000, checkpoint_every=1000, quiet=True, device="cpu")
    options.update(overrides)
    return TrainConfig(**options)


@pytest.fixture
def run(tiny_restoration_run: Path, tmp_path: Path) -> Path:
    """A private copy of the 2-step restoration run, free to damage."""
    return Path(shutil.copytree(tiny_restoration_run, tmp_path / "run"))


# -- networks -------------------------------------------------------------------------------

@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_networks_keep_the_size_and_start_as_the_identity(resolution: int) -> None:
    spec = RestorationSpec(resolution=resolution, ngf=4, ndf=4, d_layers=2 if resolution == 32
                           else 3)
    g, d = spec.build()
    x = torch.rand(3, 3, resolution, resolution) * 2 - 1
    assert torch.equal(g(x), x)  # the last layer starts at zero: output = input
    patches = {32: 6 * 6, 64: 6 * 6, 128: 14 * 14}[resolution]  # pix2pix's PatchGAN output
    assert d(torch.cat([x, x], 1)).shape == (3 * patches,)
    assert spec.parameter_counts() == (sum(p.numel() for p in g.parameters()),
                                       sum(p.numel() for p in d.parameters()))


def test_unet_output_is_clipped_to_the_image_range() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(RestorationSpec(resolution=32, ngf=8, ndf=8))
    torch.nn.init.normal_(g.last.weight, 0, 1.0)
    out = g(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert out.min() >= -1 and out.max() <= 1 and (out.abs() == 1).any()


@pytest.mark.parametrize(("field", "value"), [
    ("resolution", 48), ("ngf", 0), ("ngf", 2.5), ("ndf", True), ("d_layers", 5),
    ("d_layers", 0), ("d_norm", "group"), ("spectral_norm", "yes"), ("ngf", 1024),
])
def test_spec_fields_are_validated(field: str, value: object) -> None:
    fields = {"resolution": 32, "ngf": 8, "ndf": 8, "d_layers": 2} | {field: value}
    with pytest.raises(ValueError, match=field if field != "ngf" or value != 1024
                       else "parameters"):
        RestorationSpec.from_json(fields)


# -- the step ---------------------------------------------------------------------------------

def test_conditional_step_logs_the_l1_of_the_identity_generator_first() -> None:
    """At step 0 the U-Net is the identity, so the L1 logged is mean |degraded − clean|; D sees
    (degraded, image) pairs, so it is built for 6 input channels."""
    torch.manual_seed(0)
    spec = RestorationSpec(resolution=32, ngf=8, ndf=8)
    g, d = spec.build()
    assert isinstance(d, PatchDiscriminator) and d.main[0].in_channels == 6
    step = GanStep(g, d, get_loss("ns"), conditional=True, l1_weight=100.0)
    clean = torch.rand(8, 3, 32, 32) * 2 - 1
    degraded = 0.6 * clean  # contrast lost: learnable from the input alone
    losses = step(clean, degraded)
    assert losses.l1 is not None and losses.g_loss is not None
    torch.testing.assert_close(losses.l1, (degraded - clean).abs().mean())
    # the L1 term dominates G's update: G moves towards the clean images
    for i in range(1, 30):
        last = step(clean, degraded, step=i)
    assert last.l1 is not None and last.l1 < 0.97 * losses.l1


def test_l1_weight_none_adds_no_term() -> None:
    spec = RestorationSpec(resolution=32, ngf=8, ndf=8)
    results = []
    for weight in (None, 0.0):
        torch.manual_seed(0)
        g, d = spec.build()
        step = GanStep(g, d, get_loss("hinge"), conditional=True, l1_weight=weight)
        x = torch.rand(4, 3, 32, 32) * 2 - 1
        losses = step(x, x.flip(3))
        results.append((losses, [p.clone() for p in step.g.parameters()]))
    (none, g_none), (zero, g_zero) = results
    assert none.l1 is None and zero.l1 is not None
    assert all(torch.equal(a, b) for a, b in zip(g_none, g_zero, strict=True))


# -- the run folder and the checkpoint --------------------------------------------------------

def test_run_folder_outputs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(tiny(out, 4, sample_every=2, degradations="noise=5:10,jpeg=20:30", l1_weight=50))
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step-000002.png", "step-000004.png"]
    with Image.open(out / "samples" / "step-000004.png") as grid:
        # rows degraded / restored / clean of 8 faces, 32 px cells with 2 px borders
        assert grid.mode == "RGB" and grid.size == (8 * 34 + 2, 3 * 34 + 2)
        cells = torch.from_numpy(__import__("numpy").asarray(grid).copy())
    clean_row = cells[2 * 34 + 2 : 3 * 34, 2:34]  # the first face, clean
    first = open_images("builtin:lfw-subset", resolution=32).load()[0].permute(1, 2, 0)
    assert torch.equal(clean_row, first)
    meta = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    assert meta["task"] == "restoration" and meta["config"]["task"] == "restoration"
    assert meta["config"]["l1_weight"] == 50.0 and meta["config"]["channels"] == 3
    assert meta["config"]["degradations"] == "noise=5:10,jpeg=20:30"
    record = meta["restoration"]
    assert record["resolution"] == 32 and record["value_range"] == [-1.0, 1.0]
    assert record["degradations"] == [
        {"name": "noise", "parameter": "sd", "unit": "pixel levels of 0..255", "low": 5.0,
         "high": 10.0},
        {"name": "jpeg", "parameter": "quality", "unit": "JPEG quality 1..100", "low": 20.0,
         "high": 30.0}]
    assert meta["model"] == {"resolution": 32, "ngf": 8, "ndf": 8, "d_layers": 2,
                             "d_norm": "batch", "spectral_norm": False}
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and all(r["l1"] > 0 for r in rows)


def test_defaults_are_recorded(run: Path) -> None:
    config = load_checkpoint(run, groups=(), task=TaskName.RESTORATION).meta["config"]
    assert config["l1_weight"] == DEFAULT_L1_WEIGHT == 100.0
    assert config["degradations"] == DEFAULT_RANGES


def test_help_states_the_restoration_defaults() -> None:
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    text = "".join(result.output.split())  # the help wraps long values anywhere
    assert f"[default:{DEFAULT_RANGES}]" in text
    assert f"[default:{DEFAULT_L1_WEIGHT}]" in text


# -- the restorer -----------------------------------------------------------------------------

def test_load_restorer_is_the_ema_generator_in_eval_mode(run: Path) -> None:
    restorer = load_restorer(run, "cpu")
    assert isinstance(restorer, Restorer) and not restorer.training
    assert restorer.resolution == 32 and restorer.degradations == parse_ranges(DEFAULT_RANGES)
    assert all(not p.requires_grad for p in restorer.parameters())
    restorer.train()  # stays in eval mode: BatchNorm keeps its running statistics
    assert not restorer.training and not restorer.unet.training
    ckpt = load_checkpoint(run, groups=("g_ema",), task=TaskName.RESTORATION)
    unet = UNetGenerator(ckpt.spec)
    unet.load_state_dict(ckpt.tensors("g_ema"))
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    assert torch.equal(restorer(x), unet.eval()(x))
    assert restorer.identity == ckpt.meta["state_sha256"]
    for form in (run / "checkpoint", run / "checkpoint" / "checkpoint.json",
                 ckpt.state_path):
        assert torch.equal(load_restorer(form, "cpu")(x), restorer(x))


@settings(deadline=None, max_examples=10)
@given(st.integers(1, 9), st.integers(1, 20))
def test_restore_images_does_not_depend_on_the_batch(tiny_restoration_run: Path, n: int,
                                                     batch_size: int) -> None:
    restorer = load_restorer(tiny_restoration_run, "cpu")
    images = open_images("builtin:lfw-subset", resolution=32).load()[:n]
    whole = restore_images(restorer, images)
    assert whole.dtype == torch.uint8 and whole.shape == images.shape
    assert torch.equal(restore_images(restorer, images, batch_size=batch_size), whole)
    assert torch.equal(restore_images(restorer, images[-1:])[0], whole[-1])


@pytest.mark.parametrize("bad", [
    torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 32, 32), torch.zeros(3, 32, 32),
    torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.zeros(2, 3, 32, 31),
])
def test_restorer_refuses_other_shapes(tiny_restoration_run: Path, bad: torch.Tensor) -> None:
    with pytest.raises(InputError, match=r"takes float B×3×32×32 images"):
        load_restorer(tiny_restoration_run, "cpu")(bad)


def test_load_restorer_refuses_a_dcgan_checkpoint(tiny_run: Path) -> None:
    with pytest.raises(InputError, match=r"generation \(DCGAN\) checkpoint.*--task restoration"):
        load_restorer(tiny_run, "cpu")


def _edit(run: Path, change: Any) -> Path:
    path = run / "checkpoint" / "checkpoint.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(("where", "value", "named"), [
    ("task", "upscaling", "'task'"), ("task", 3, "'task'"), ("task", None, "'task'"),
    ("model.d_layers", 9, "d_layers"), ("model.ngf", "8", "ngf"), ("model.nz", 100, "nz"),
    ("config.degradations", "blur=1:99", "degradations"),
    ("config.degradations", None, "degradations"),
    ("restoration.resolution", 64, "resolution"), ("restoration", None, "resolution"),
])
def test_hostile_restoration_fields_name_the_file(run: Path, where: str, value: object,
                                                  named: str) -> None:
    def change(meta: dict[str, Any]) -> None:
        *parents, key = where.split(".")
        target = meta
        for parent in parents:
            target = target[parent]
        target[key] = value

    path = _edit(run, change)
    with pytest.raises(InputError) as info:
        load_restorer(run, "cpu")
    assert str(path) in str(info.value) and named in str(info.value)


# -- a restoration checkpoint where a generator is expected ------------------------------------

REFUSING = [
    ["sample", "{run}", "--count", "2", "--out", "{tmp}/o"],
    ["evaluate", "{run}", "--reference", "builtin:lfw-subset", "--count", "8"],
    ["recognition", "{run}", "--reference", "builtin:lfw-subset", "--count", "8"],
    ["attack", "{run}", "--model", "discriminator", "--count", "4"],
    ["inspect", "{run}"],
]


@pytest.mark.parametrize("command", REFUSING, ids=lambda c: c[0])
def test_generator_commands_refuse_a_restoration_checkpoint(run: Path, tmp_path: Path,
                                                            command: list[str]) -> None:
    args = [a.format(run=run, tmp=tmp_path) for a in command]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "a restoration checkpoint restores images; use gan-eval restoration" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_load_checkpoint_asks_for_a_task(run: Path, tiny_run: Path) -> None:
    with pytest.raises(InputError, match="restoration checkpoint restores images"):
        load_checkpoint(run)
    assert load_checkpoint(run, task=TaskName.RESTORATION).task is TaskName.RESTORATION
    assert load_checkpoint(run, task=None).spec == RestorationSpec(ngf=8, ndf=8)
    assert load_checkpoint(tiny_run, task=None).task is TaskName.GENERATION
    with pytest.raises(InputError, match=r"generation \(DCGAN\) checkpoint"):
        load_checkpoint(tiny_run, task=TaskName.RESTORATION)


def test_a_checkpoint_without_the_task_field_is_a_dcgan(tiny_run: Path, tmp_path: Path) -> None:
    old = Path(shutil.copytree(tiny_run, tmp_path / "old"))
    _edit(old, lambda meta: (meta.pop("task"), meta["config"].pop("task"),
                             meta["config"].pop("l1_weight"),
                             meta["config"].pop("degradations")))
    assert load_checkpoint(old).task is TaskName.GENERATION
    train(config_for_resume(old, steps=3, quiet=True))  # resumes as before the field existed
    assert load_checkpoint(old).step == 3


# -- the audit of a restoration checkpoint ------------------------------------------------------

def test_gan_eval_restoration_audits_a_trained_checkpoint(tiny_restoration_run: Path,
                                                          tmp_path: Path) -> None:
    """``gan-eval restoration RUN`` opens the checkpoint through load_restorer, at its training
    resolution, and feeds it the shared degradations (gan_eval.data.degrade)."""
    from lpips_fixture import write_random_alexnet

    from gan_eval import catalogue
    from gan_eval.results import Results

    alexnet = write_random_alexnet(tmp_path / catalogue.ALEXNET_FILENAME)
    out = tmp_path / "r.json"
    result = runner.invoke(app, [
        "restoration", str(tiny_restoration_run), "--data", "builtin:lfw-heldout",
        "--degradation", "blur:1", "--count", "4", "--no-baselines", "--quiet",
        "--weights", f"lpips-alex={alexnet}", "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = Results.load(out).restoration
    method = record["methods"][str(tiny_restoration_run)]
    assert method["kind"] == "checkpoint" and method["resolution"] == 32
    assert method["weights_sha256"] == load_checkpoint(
        tiny_restoration_run, groups=(), task=TaskName.RESTORATION).meta["state_sha256"]
    assert record["values"][str(tiny_restoration_run)]["blur:1"]["psnr"]["n"] == 4


# -- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "message"), [
    ({"task": "upscale"}, "--task 'upscale': unknown task; choose one of generation, restoration"),
    ({"task": "generation", "l1_weight": 10.0}, "--l1-weight applies to --task restoration"),
    ({"task": "generation", "degradations": "blur=1:2"},
     "--degradations applies to --task restoration"),
    ({"channels": 1}, "--channels 1: a restoration model maps 3-channel images"),
    ({"l1_weight": -1.0}, "--l1-weight -1.0: expected a number >= 0"),
    ({"l1_weight": float("nan")}, "--l1-weight nan"),
    ({"degradations": "blur=0:99"}, "--degradations 'blur=0:99'"),
    ({"degradations": "sharpen=1:2"}, "unknown degradation 'sharpen'"),
    ({"degradations": ""}, "--degradations ''"),
    ({"resolution": 48}, "--resolution 48"),
    ({"width": 1024, "resolution": 128}, "--width 1024"),
])
def test_bad_options_name_the_option(tmp_path: Path, overrides: dict[str, Any],
                                     message: str) -> None:
    with pytest.raises(InputError) as info:
        train(tiny(tmp_path / "run", 2, **overrides))
    assert message in str(info.value)
    assert not (tmp_path / "run").exists()


def test_cli_trains_resumes_and_refuses_changes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--data", "builtin:lfw-subset", "--out", str(out),
                                 "--task", "restoration", "--steps", "2", "--width", "8",
                                 "--batch-size", "16", "--degradations", "blur=1:2",
                                 "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--out", str(out), "--resume", "--steps", "3",
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    assert (meta["step"], meta["task"], meta["config"]["degradations"]) == (
        3, "restoration", "blur=1:2")
    for option, value, shown in (("--degradations", "blur=1:3", "'blur=1:3' (checkpoint: "
                                                                 "'blur=1:2')"),
                                 ("--l1-weight", "5", "5.0 (checkpoint: 100.0)"),
                                 ("--task", "generation", "'generation' (checkpoint: "
                                                          "'restoration')")):
        result = runner.invoke(app, ["train", "--out", str(out), "--resume", "--steps", "4",
                                     option, value, "--quiet"])
        assert result.exit_code == 2 and f"{option} {shown}" in result.output, result.output
