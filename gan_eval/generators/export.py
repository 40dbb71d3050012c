"""Exporting a generator to ``torch.export``, TorchScript and ONNX in the form gan-eval reads back.

Used by the example (``examples/external_generator/export.py``), the tests and the benchmark:
a generator ``G(z)`` (float B×z_dim → images B×C×H×W) is traced once; the ``torch.export`` and
TorchScript archives carry ``gan_eval.json`` (its latent size) so that no ``--z-dim`` is needed,
and the ONNX model and the ``torch.export`` program have a dynamic batch axis and a static latent
axis (which is how gan-eval reads its size).
"""

from __future__ import annotations

import importlib.util
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from gan_eval.errors import MissingAssetError
from gan_eval.fileio import atomic_path, atomic_write_bytes
from gan_eval.generators.loaders import METADATA_FILE


def export_pt2(model: nn.Module, example: torch.Tensor, path: str | Path, *,
               z_dim: int | None = None) -> Path:
    """``torch.export.export`` ``model`` (eval mode) on ``example`` (latents B×z_dim of a
    generator, or images B×C×H×W of a discriminator) with a dynamic batch axis, and
    ``torch.export.save`` it to ``path`` (atomically), with ``gan_eval.json`` =
    ``{"z_dim": z_dim}`` when ``z_dim`` is given. Returns ``path``.

    The archive holds the program's JSON and raw tensors only, which gan-eval loads without
    running code from the file (:mod:`gan_eval.generators.exported`)."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    buffer = io.BytesIO()
    extra = {METADATA_FILE: json.dumps({"z_dim": z_dim})} if z_dim is not None else {}
    torch.export.save(program, buffer, extra_files=extra)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def export_torchscript(generator: nn.Module, z_dim: int, path: str | Path, *,
                       metadata: bool = True) -> Path:
    """Trace ``generator`` (eval mode) on a B=2 latent batch and ``torch.jit.save`` it to
    ``path`` (atomically), with ``gan_eval.json`` = ``{"z_dim": z_dim}`` unless ``metadata`` is
    False. Returns ``path``."""
    generator = generator.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is "deprecated" upstream
        traced = torch.jit.trace(generator, torch.zeros(2, z_dim))
        extra = {METADATA_FILE: json.dumps({"z_dim": z_dim})} if metadata else {}
        torch.jit.save(traced, buffer, _extra_files=extra)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def export_onnx(generator: nn.Module, z_dim: int, path: str | Path) -> Path:
    """Export ``generator`` (eval mode) to ONNX at ``path``: input ``z`` (batch×z_dim, dynamic
    batch), output ``images``. Uses torch's TorchScript-based exporter (``dynamo=False``), which
    needs the ``onnx`` package (the ``onnx`` extra installs it) but not ``onnxscript``. Returns
    ``path``; :class:`MissingAssetError` when onnx is not installed."""
    if importlib.util.find_spec("onnx") is None:
        raise MissingAssetError("exporting to ONNX needs the onnx package: "
                                "pip install 'gan-eval[onnx]' (or pip install onnx)")
    generator = generator.eval()
    with atomic_path(path) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(generator, (torch.zeros(2, z_dim),), str(tmp), dynamo=False,
                          input_names=["z"], output_names=["images"],
                          dynamic_axes={"z": {0: "batch"}, "images": {0: "batch"}})
    return Path(path)
