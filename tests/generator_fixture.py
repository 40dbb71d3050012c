"""The tiny run's DCGAN exported every way gan-eval reads a generator (tests/test_generators_*).

Imported by the test modules (`from generator_fixture import export_all`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from gan_eval.gan.checkpoint import load_checkpoint
from gan_eval.gan.models import Discriminator, Generator
from gan_eval.generators.export import export_onnx, export_pt2, export_torchscript

FACTORY = '''"""Test factory: the tiny run's EMA generator and discriminator, by gan-eval's API."""
from gan_eval.gan.checkpoint import load_checkpoint
from gan_eval.gan.models import Discriminator, Generator

CHECKPOINT = {checkpoint!r}


def make_generator():
    ckpt = load_checkpoint(CHECKPOINT, groups=("g_ema",))
    g = Generator(ckpt.spec)
    g.load_state_dict(ckpt.tensors("g_ema"))
    return g


def make_discriminator():
    ckpt = load_checkpoint(CHECKPOINT, groups=("g_ema", "d"))
    d = Discriminator(ckpt.spec)
    d.load_state_dict(ckpt.tensors("d"))
    return d
'''


@dataclass(frozen=True)
class Exported:
    """Specs of one DCGAN: native checkpoint, TorchScript (with and without gan_eval.json),
    ONNX, a py: factory and a file.py:attr factory (plus D as py: and TorchScript)."""

    native: str
    torchscript: str
    torchscript_plain: str
    onnx: str
    py: str
    file: str
    d_py: str
    d_torchscript: str
    z_dim: int


def export_all(run: Path, folder: Path, monkeypatch: pytest.MonkeyPatch,
               module: str = "tiny_dcgan_factory") -> Exported:
    """Export the run's generator into ``folder`` and put ``folder`` on sys.path."""
    ckpt = load_checkpoint(run / "checkpoint", groups=("g_ema", "d"))
    g = Generator(ckpt.spec)
    g.load_state_dict(ckpt.tensors("g_ema"))
    d = Discriminator(ckpt.spec)
    d.load_state_dict(ckpt.tensors("d"))
    nz = ckpt.spec.nz
    folder.mkdir(parents=True, exist_ok=True)
    # named .pt on purpose: recognised as TorchScript by its content, not its name
    export_torchscript(g, nz, folder / "g.pt")
    export_torchscript(g, nz, folder / "g_plain.ts", metadata=False)
    export_onnx(g, nz, folder / "g.onnx")
    import warnings

    import torch

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is "deprecated" upstream
        traced_d = torch.jit.trace(d.eval(), torch.zeros(2, ckpt.spec.channels,
                                                          ckpt.spec.resolution,
                                                          ckpt.spec.resolution))
        torch.jit.save(traced_d, str(folder / "d.pt"))
    (folder / f"{module}.py").write_text(FACTORY.format(checkpoint=str(run / "checkpoint")))
    monkeypatch.syspath_prepend(str(folder))
    return Exported(
        native=str(run / "checkpoint"), torchscript=str(folder / "g.pt"),
        torchscript_plain=str(folder / "g_plain.ts"), onnx=str(folder / "g.onnx"),
        py=f"py:{module}:make_generator", file=str(folder / f"{module}.py") + ":make_generator",
        d_py=f"py:{module}:make_discriminator", d_torchscript=str(folder / "d.pt"), z_dim=nz)


def export_pt2_pair(run: Path, folder: Path) -> tuple[str, str]:
    """The run's EMA generator and its discriminator as ``torch.export`` archives (``g.pt2``,
    with gan_eval.json, and ``d.pt2``) in ``folder``."""
    import torch

    ckpt = load_checkpoint(run / "checkpoint", groups=("g_ema", "d"))
    g = Generator(ckpt.spec)
    g.load_state_dict(ckpt.tensors("g_ema"))
    d = Discriminator(ckpt.spec)
    d.load_state_dict(ckpt.tensors("d"))
    folder.mkdir(parents=True, exist_ok=True)
    side = ckpt.spec.resolution
    g_path = export_pt2(g, torch.zeros(2, ckpt.spec.nz), folder / "g.pt2", z_dim=ckpt.spec.nz)
    d_path = export_pt2(d, torch.zeros(2, ckpt.spec.channels, side, side), folder / "d.pt2")
    return str(g_path), str(d_path)
