"""A checkpoint's ``state_sha256`` depends on its weights only: two trainings that end with
bit-identical tensors get the same hash (safetensors writes its metadata in hash-map order,
which changes from process to process; gan-eval rewrites the header canonically)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load

from gan_eval.gan.checkpoint import canonical_safetensors, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]

TRAIN = """
import sys, torch
from pathlib import Path
from gan_eval.gan.training import TrainConfig, train
torch.set_num_threads(1)
train(TrainConfig(data="builtin:lfw-subset", out=Path(sys.argv[1]), steps=2, batch_size=16,
                  width=8, nz=16, quiet=True, device="cpu"))
"""


def _train_in_a_new_process(out: Path) -> None:
    # a fresh interpreter each time: safetensors' metadata order is drawn per process
    done = subprocess.run([sys.executable, "-c", TRAIN, str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_identical_weights_give_identical_state_sha256(tmp_path: Path) -> None:
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        _train_in_a_new_process(run)
    first, second = (load_checkpoint(run / "checkpoint") for run in runs)
    groups = ("g", "d", "g_ema", "opt_g", "opt_d")
    for group in groups:  # the premise: the two trainings ended bit-identical
        a, b = first.tensors(group), second.tensors(group)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), group
    assert first.meta["state_sha256"] == second.meta["state_sha256"]
    assert first.state_path.read_bytes() == second.state_path.read_bytes()


def test_canonical_header_sorts_the_metadata_and_keeps_every_tensor() -> None:
    generator = torch.Generator().manual_seed(0)
    tensors = {"z.w": torch.randn(3, 2, generator=generator), "a.b": torch.arange(5),
               "m": torch.zeros(2, dtype=torch.uint8), "e": torch.empty(0)}
    metadata = {"step": "7", "format": "pt", "schema": "s", "b": "1"}
    outputs = {canonical_safetensors(tensors, dict(reversed(list(metadata.items()))))
               for _ in range(8)} | {canonical_safetensors(tensors, metadata)}
    assert len(outputs) == 1  # insertion order and repetition change nothing
    (data,) = outputs
    size = int.from_bytes(data[:8], "little")
    assert size % 8 == 0
    header = json.loads(data[8:8 + size])
    assert list(header) == ["__metadata__", *sorted(
        (k for k in header if k != "__metadata__"),
        key=lambda k: (header[k]["data_offsets"], k))]
    assert list(header["__metadata__"]) == sorted(metadata)
    read = load(data)  # any safetensors reader reads it back
    assert read.keys() == tensors.keys()
    assert all(torch.equal(read[k], tensors[k]) for k in tensors)


def test_metadata_survives_the_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(canonical_safetensors({"w": torch.ones(2)}, {"format": "pt", "step": "3"}))
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt", "step": "3"}
