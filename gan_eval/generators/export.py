"""Exporting a generator to TorchScript and ONNX in the form gan-eval reads back.

Used by the example (``examples/external_generator/export.py``), the tests and the benchmark:
a generator ``G(z)`` (float B×z_dim → images B×C×H×W) is traced once; the TorchScript archive
carries ``gan_eval.json`` (its latent size) so that no ``--z-dim`` is needed, and the ONNX model
has a dynamic batch axis and a static latent axis (which is how gan-eval reads its size).
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
