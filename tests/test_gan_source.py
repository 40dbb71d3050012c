"""Sampling a checkpoint: determinism, batch-size invariance, the ImageSource contract, PNG/npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gan_eval.cli import app
from gan_eval.generators.native import CheckpointSource, open_checkpoint_source
from gan_eval.sources import open_source

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def run(tiny_run: Path) -> Path:
    return tiny_run


def test_batch_size_invariance(run: Path) -> None:
    source = open_checkpoint_source(run / "checkpoint", n=70, seed=3, device="cpu")
    full = source.load()
    assert full.dtype == torch.uint8 and full.shape == (70, 3, 32, 32)
    for batch_size in (7, 64, 70):
        assert torch.equal(torch.cat(list(source.batches(batch_size))), full), batch_size
    for i in (0, 63, 64, 69):  # one image at a time
        assert torch.equal(source.read([i]), full[i : i + 1])
    assert torch.equal(source.read([65, 2, 40]), full[[65, 2, 40]])
    # a new source with the same seed gives the same images; another seed, others
    again = open_checkpoint_source(run / "checkpoint", n=70, seed=3, device="cpu")
    assert torch.equal(again.read(range(10)), full[:10])
    other = open_checkpoint_source(run / "checkpoint", n=70, seed=4, device="cpu")
    assert not torch.equal(other.read(range(10)), full[:10])
    # image i does not depend on n either
    longer = open_checkpoint_source(run / "checkpoint", n=100, seed=3, device="cpu")
    assert torch.equal(longer.read(range(70)), full)


def test_gray_model_gives_the_3_channel_contract(run: Path) -> None:
    images = open_checkpoint_source(run / "checkpoint", n=4, device="cpu").load()
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    assert images.float().std() > 0  # not a constant image


def test_open_source_dispatches_checkpoints(run: Path) -> None:
    source = open_source(str(run), device="cpu")
    assert isinstance(source, CheckpointSource)
    assert len(source) == 1000 and source.kind == "checkpoint"  # n defaults to 1000
    resized = open_source(str(run / "checkpoint"), resolution=64, n=5, device="cpu")
    assert resized.read(range(5)).shape == (5, 3, 64, 64)
    assert len(source.content_hash()) == 64
    assert source.content_hash() != open_source(str(run), seed=1, device="cpu").content_hash()


def test_sample_command_writes_pngs_and_npz(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    result = CliRunner().invoke(app, ["sample", str(run / "checkpoint"), "--n", "5", "--out",
                                      str(out), "--npz", "--seed", "3", "--device", "cpu",
                                      "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["000000.png", "000001.png", "000002.png", "000003.png", "000004.png",
                     "samples.npz"]
    expected = open_checkpoint_source(run / "checkpoint", n=5, seed=3, device="cpu").load()
    with Image.open(out / "000003.png") as image:
        assert image.mode == "L"
        assert np.array_equal(np.asarray(image), expected[3, 0].numpy())
    with np.load(out / "samples.npz") as archive:
        assert archive["images"].shape == (5, 32, 32) and archive["images"].dtype == np.uint8
    # the written npz reads back through open_source as the same images
    assert torch.equal(open_source(str(out / "samples.npz")).load(), expected)
