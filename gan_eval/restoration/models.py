"""MODEL specs of ``gan-eval restoration``: built-in methods and image-to-image models.

A MODEL is

- ``builtin:NAME`` — a method of :data:`gan_eval.restoration.plan.BUILTINS` (no weights);
- a gan-eval restoration checkpoint (``gan-eval train --task restoration``), loaded by
  :func:`_open_native` — **the one place where native checkpoints enter**: it calls
  ``gan_eval.gan.load_restorer(checkpoint, device)`` (float B×3×R×R in [−1, 1] in and out, at the
  resolution R it was trained at) when this build has it;
- any external model, through the generators' spec machinery
  (:func:`gan_eval.generators.loaders.load_model`): ``py:package.module:attr`` or
  ``file.py:attr`` (**runs that Python code**), a TorchScript archive; and ``.onnx`` models run
  by onnxruntime (here: the first input takes the images). Pickles are refused.

The contract of an image-to-image model (checked on a probe batch when the audit starts, and on
every batch after; a violation is an :class:`InputError` naming MODEL, exit 2): it takes a
float32 batch B×3×H×W in the declared range (``--model-range``: ``-1,1``, the default, ``0,1``
or ``uint8``, which means float32 pixel values 0..255 in and uint8 — or floats 0..255 — out) and
returns a tensor (or array) of the same batch size, 3×(H·s)×(W·s) with ``s``
the declared scale (``--model-scale``, default 1), finite, in the same declared range (values
beyond it by at most half its width are clipped, as for generators). A model of scale 1 gets
every degraded image at the clean size (a downsampled one upsampled back bicubically); a model
of scale s > 1 restores only downsampling by s and gets the small observation.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.fileio import sha256_file
from gan_eval.generators.loaders import load_model, onnx_session, state_sha256
from gan_eval.generators.spec import SpecKind, classify, parse_output_range
from gan_eval.restoration.baselines import BUILTIN_FUNCTIONS
from gan_eval.restoration.degradations import Degraded
from gan_eval.restoration.plan import BUILTINS, Condition

__all__ = ["ModelOptions", "Restorer", "open_restorer"]

_RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "uint8": (0.0, 255.0)}


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """The contract of an external model that it cannot state itself.

    ``range``: the value range of its input and output (``-1,1``, ``0,1`` or ``uint8``);
    ``scale``: output side / input side (1: same size; s: a super-resolution model for
    downsampling by s); ``batch_size``: images per call.
    """

    range: str = "-1,1"
    scale: int = 1
    batch_size: int = 32

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "range", parse_output_range(self.range))
        except InputError:
            raise InputError(f"--model-range {self.range!r}: expected -1,1 (default), 0,1 or "
                             "uint8") from None
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) \
                or not 1 <= self.scale <= 16:
            raise InputError(f"--model-scale {self.scale!r}: expected an integer in 1..16")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise InputError(f"--batch-size {self.batch_size!r}: expected an integer ≥ 1")


class Restorer(ABC):
    """One restoration method: ``restore(degraded, condition)`` → uint8 B×3×H×W at the clean
    size, for each condition it ``applies`` to."""

    spec: str
    label: str
    resolution: int | None = None
    """The image side the model works at, when it says so (a native checkpoint does)."""

    @abstractmethod
    def applies(self, condition: Condition) -> bool:
        """True when this method restores ``condition``."""

    @abstractmethod
    def restore(self, degraded: Degraded, condition: Condition) -> torch.Tensor:
        """uint8 B×3×H×W restored images at the clean size."""

    @abstractmethod
    def record(self) -> dict[str, Any]:
        """What it is, for the results' provenance (spec, kind, file hashes, contract)."""


class BuiltinRestorer(Restorer):
    """A built-in method (:mod:`gan_eval.restoration.baselines`)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.method = BUILTINS[spec]
        self.label = self.method.label
        self._fn = BUILTIN_FUNCTIONS[spec]

    def applies(self, condition: Condition) -> bool:
        return self.method.applies(condition)

    def restore(self, degraded: Degraded, condition: Condition) -> torch.Tensor:
        return self._fn(degraded, condition)

    def record(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": "builtin", "label": self.label,
                "restores": list(self.method.kinds)}


class ModelRestorer(Restorer):
    """An image-to-image model behind a float call, with its contract checked on every batch."""

    def __init__(self, spec: str, call: Callable[[torch.Tensor], Any], options: ModelOptions, *,
                 kind: str, files: dict[str, str], weights_sha256: str | None,
                 device: torch.device, resolution: int | None = None) -> None:
        self.spec = spec
        self.label = f"{kind} model {spec}"
        self._call = call
        self.options = options
        self.kind = kind
        self.files = files
        self.weights_sha256 = weights_sha256
        self.device = device
        self.resolution = resolution

    def applies(self, condition: Condition) -> bool:
        if self.options.scale == 1:
            return True
        return condition.kind == "downsample" and int(condition.severity) == self.options.scale

    def _input(self, degraded: Degraded) -> torch.Tensor:
        return degraded.at_size if self.options.scale == 1 else degraded.observed

    def restore(self, degraded: Degraded, condition: Condition) -> torch.Tensor:
        images = self._input(degraded)
        out = []
        step = self.options.batch_size
        for start in range(0, images.shape[0], step):
            out.append(self._run(images[start : start + step]))
        return torch.cat(out)

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        declared = self.options.range
        lo, hi = _RANGES[declared]
        x = images.to(self.device)
        x = x.float() if declared == "uint8" else x.float() / 255.0 * (hi - lo) + lo
        try:
            with torch.no_grad():
                result = self._call(x)
        except InputError:
            raise
        except Exception as exc:  # the user's model failed: bad input, not a gan-eval bug
            raise InputError(f"MODEL {self.spec}: calling it on images {tuple(x.shape)} raised "
                             f"{type(exc).__name__}: {exc}") from exc
        return self._check(result, images.shape)

    def _check(self, out: Any, shape: torch.Size) -> torch.Tensor:
        spec, declared, scale = self.spec, self.options.range, self.options.scale
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(out)
        if not isinstance(out, torch.Tensor):
            raise InputError(f"MODEL {spec}: returned a {type(out).__name__}; expected a tensor "
                             "of images B×3×H×W")
        b, _, h, w = shape
        expected = (b, 3, h * scale, w * scale)
        if tuple(out.shape) != expected:
            raise InputError(f"MODEL {spec}: returned shape {tuple(out.shape)} for input "
                             f"{tuple(shape)}; expected {expected} (same batch, 3 channels, "
                             f"{'the input size' if scale == 1 else f'×{scale} the input size'}"
                             "; declare a super-resolution model with --model-scale)")
        out = out.detach().cpu()
        if not out.is_floating_point():
            if declared == "uint8" and out.dtype == torch.uint8:
                return out
            raise InputError(f"MODEL {spec}: returned {out.dtype}; expected floats in "
                             f"[{declared}] (declare --model-range uint8 for uint8 output)")
        if not bool(torch.isfinite(out).all()):
            bad = int((~torch.isfinite(out)).flatten(1).any(1).sum())
            raise InputError(f"MODEL {spec}: {bad} of {b} restored images hold NaN or infinite "
                             "values; expected finite floats")
        lo, hi = _RANGES[declared]
        slack = (hi - lo) / 2
        if float(out.min()) < lo - slack or float(out.max()) > hi + slack:
            raise InputError(f"MODEL {spec}: output spans [{float(out.min()):.4g}, "
                             f"{float(out.max()):.4g}]; expected [{declared}] (declare the "
                             "range with --model-range -1,1, 0,1 or uint8)")
        pixels = (out.double() - lo) / (hi - lo) * 255.0
        return pixels.round().clamp(0, 255).to(torch.uint8)

    def record(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "label": self.label,
                "files_sha256": dict(self.files), "weights_sha256": self.weights_sha256,
                "range": self.options.range, "scale": self.options.scale,
                "resolution": self.resolution,
                "input": ("the degraded image at the clean size (a downsampled one upsampled "
                          "back bicubically)" if self.options.scale == 1 else
                          f"the observation downsampled by {self.options.scale}")}


def _open_native(spec: str, options: ModelOptions, device: torch.device) -> ModelRestorer:
    """A gan-eval checkpoint: a restoration checkpoint through ``gan_eval.gan.load_restorer``.

    This is the integration point of the restoration GAN (``gan-eval train --task
    restoration``): its restorer takes and returns float B×3×R×R in [−1, 1] at its training
    resolution R, so the contract is fixed (range −1,1, scale 1) and the audit runs at R.
    """
    gan = importlib.import_module("gan_eval.gan")
    load_restorer = getattr(gan, "load_restorer", None)
    if load_restorer is None:
        raise InputError(f"MODEL {spec}: a gan-eval checkpoint, but this gan-eval cannot load "
                         "restoration checkpoints (gan_eval.gan.load_restorer is missing); "
                         "a DCGAN checkpoint generates faces and restores nothing")
    if options != ModelOptions(batch_size=options.batch_size):
        raise InputError(f"MODEL {spec}: a gan-eval restoration checkpoint states its own "
                         "contract; --model-range and --model-scale apply to external models")
    try:
        module = load_restorer(spec, device)
    except InputError as exc:
        raise InputError(f"MODEL {spec}: {exc}") from exc
    resolution = getattr(module, "resolution", None)
    files = {}
    json_path = getattr(module, "source", None)
    if isinstance(json_path, Path) and json_path.is_file():
        files[str(json_path.resolve())] = sha256_file(json_path)
    return ModelRestorer(spec, module, options, kind="checkpoint", files=files,
                         weights_sha256=getattr(module, "identity", None) or
                         state_sha256(module), device=device,
                         resolution=int(resolution) if isinstance(resolution, int) else None)


def _onnx_call(spec: str, device: torch.device) -> tuple[Callable[[torch.Tensor], Any],
                                                          dict[str, str]]:
    """An ONNX model run by onnxruntime: its first input takes float32 B×3×H×W images."""
    session = onnx_session(spec, device, name=f"MODEL {spec}")
    path = Path(spec).expanduser()
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise InputError(f"MODEL {spec}: the ONNX model has {len(inputs)} inputs; a restoration "
                         "model takes one (the images B×3×H×W)")
    name = inputs[0].name

    def call(x: torch.Tensor) -> Any:
        return session.run(None, {name: x.cpu().numpy().astype(np.float32)})[0]

    return call, {str(path.resolve()): sha256_file(path)}


def open_restorer(spec: str, options: ModelOptions | None = None,
                  device: torch.device | None = None) -> Restorer:
    """The method or model ``spec`` names (module docstring); :class:`InputError` naming it
    when it cannot be used."""
    options = options or ModelOptions()
    device = device or torch.device("cpu")
    if spec.startswith("builtin:"):
        if spec not in BUILTINS:
            raise InputError(f"MODEL {spec}: unknown built-in method; expected one of "
                             f"{', '.join(BUILTINS)}")
        if options != ModelOptions(batch_size=options.batch_size):
            raise InputError(f"MODEL {spec}: --model-range and --model-scale apply to external "
                             "models, not to built-in methods")
        return BuiltinRestorer(spec)
    kind = classify(spec)
    if kind is SpecKind.CHECKPOINT:
        return _open_native(spec, options, device)
    if kind is SpecKind.ONNX:
        call, files = _onnx_call(spec, device)
        return ModelRestorer(spec, call, options, kind="onnx", files=files, weights_sha256=None,
                             device=device)
    # the user's code (import, factory, forward) runs contained: gan_eval.generators.usercode
    loaded = load_model(spec, device, role="restoration model", name=f"MODEL {spec}")
    return ModelRestorer(spec, lambda x: loaded.run(x), options,
                         kind=loaded.kind.value, files=dict(loaded.files),
                         weights_sha256=loaded.weights_sha256, device=device)
