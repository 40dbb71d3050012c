"""External generators (Python factories, TorchScript, ONNX) as image sources, contract checked.

The contract, validated on a probe batch when the source is opened and on every chunk after:

- latents: float32 B×z_dim, ``z_i ~ N(0, I)`` seeded per image index exactly as for native
  checkpoints (:class:`~gan_eval.generators.source.GeneratorSource`), so images are the same
  across batch sizes and torchrun process counts; ``z_dim`` from the model, else ``--z-dim``;
- ψ (``--truncation``) is passed to models whose call takes it, and refused for others;
- class labels for conditional models: a file of indices (``--labels``), else uniform over the
  K classes (``--classes``, or the model's ``c_dim``/``num_classes``) with one seeded draw per
  image index (``derive_seed(seed, "sample-class", i)``);
- output: a tensor B×C×H×W (NCHW), C in {1, 3}, finite; float in the declared range ([-1, 1]
  by default, or [0, 1]), or uint8 when declared. Values beyond the range by at most half its
  width are clipped (StyleGAN's outputs overshoot [-1, 1] a little, and are clipped the same way
  by its own tools); more than that means a wrong declaration and is an error.

Every violation raises :class:`InputError` naming the spec and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gan_eval.data.convert import to_uint8
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.fileio import sha256_file
from gan_eval.generators.loaders import LoadedModel, load_model
from gan_eval.generators.source import DEFAULT_N, GeneratorSource
from gan_eval.generators.spec import GeneratorOptions, SpecKind, python_target
from gan_eval.seeding import derive_seed

PROBE = 2
"""Images generated when the source is opened, to check the contract before any work."""

_RANGES = {"-1,1": (-1.0, 1.0), "0,1": (0.0, 1.0), "uint8": (0.0, 255.0)}


def read_label_file(path: str, n: int) -> tuple[np.ndarray, str]:
    """Class indices (int64, at least ``n``) from ``.npy`` or text (one integer a line), and
    the file's sha256."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"--labels {path}: no such file")
    try:
        if file.suffix.lower() == ".npy":
            values = np.load(file, allow_pickle=False)
        else:
            values = np.array([int(line) for line in file.read_text().split()], dtype=np.int64)
    except (ValueError, OSError) as exc:
        raise InputError(f"--labels {path}: expected class indices, one integer per line or an "
                         f"integer .npy array ({exc})") from exc
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise InputError(f"--labels {path}: expected a 1-D array of integer class indices, got "
                         f"{values.dtype} of shape {values.shape}")
    if values.shape[0] < n:
        raise InputError(f"--labels {path}: {values.shape[0]} labels for {n} images; need one "
                         "per image")
    if values.min(initial=0) < 0:
        raise InputError(f"--labels {path}: class indices must be ≥ 0")
    return values.astype(np.int64), sha256_file(file)


class ExternalSource(GeneratorSource):
    """``n`` images of an external generator (see the module doc for the contract)."""

    def __init__(
        self,
        spec: str,
        options: GeneratorOptions | None = None,
        *,
        n: int = DEFAULT_N,
        seed: int = 0,
        device: str | torch.device | None = None,
        chunk: int | None = None,
    ) -> None:
        options = options or GeneratorOptions()
        dev = resolve_device(device)
        model = load_model(spec, dev)
        self.spec_string = spec
        self.options = options
        self.model = model
        self.output_range = options.output_range
        z_dim = options.z_dim or model.z_dim
        if z_dim is None:
            raise InputError(f"{spec}: the model does not state its latent size (no z_dim/nz "
                             "attribute, fixed input shape or gan_eval.json); pass --z-dim N")
        if options.z_dim is not None and model.z_dim is not None and options.z_dim != model.z_dim:
            raise InputError(f"--z-dim {options.z_dim}: {spec} states a latent size of "
                             f"{model.z_dim}")
        if options.truncation is not None and model.truncation_keyword is None:
            raise InputError(f"--truncation {options.truncation}: {spec} takes no truncation "
                             "argument (truncation_psi= or truncation=); leave --truncation out")
        self.classes = options.classes or model.classes
        if options.classes and model.classes and options.classes != model.classes:
            raise InputError(f"--classes {options.classes}: {spec} states {model.classes} "
                             "classes")
        self.label_values: np.ndarray | None = None
        self.labels_sha256: str | None = None
        if options.labels is not None:
            self.label_values, self.labels_sha256 = read_label_file(options.labels, n)
        conditional = self.classes is not None or self.label_values is not None
        if conditional and not model.takes_labels:
            raise InputError(f"{spec}: --classes/--labels given, but the model's call takes no "
                             "class labels (expected G(z, c))")
        if model.conditional and not conditional:
            raise InputError(f"{spec}: the model is conditional (it needs class labels); pass "
                             "--classes K or --labels FILE")
        if self.label_values is not None and self.classes is not None \
                and int(self.label_values[:n].max()) >= self.classes:
            raise InputError(f"--labels {options.labels}: class index "
                             f"{int(self.label_values[:n].max())} ≥ {self.classes} classes")
        if model.onehot and self.classes is None:
            raise InputError(f"{spec}: the model takes one-hot labels; pass --classes K")
        self.conditional = conditional
        self._expected: tuple[int, int, int] | None = None
        super().__init__(
            self._generate, nz=z_dim, resolution=1, channels=3, identity="", data=spec,
            kind=f"generator-{model.kind.value}", n=n, seed=seed, device=dev,
            chunk=chunk or model.static_batch)
        if model.static_batch is not None and self.chunk != model.static_batch:
            raise InputError(f"{spec}: the ONNX model takes batches of exactly "
                             f"{model.static_batch}, not {self.chunk}")
        self.identity = self._identity()
        probe = list(range(min(PROBE if model.static_batch is None else self.chunk, n)))
        z = torch.zeros(model.static_batch or len(probe), z_dim)
        z[: len(probe)] = self.latents(probe)
        with torch.no_grad():
            images = self._forward(z, probe)
        channels, height, width = (int(s) for s in images.shape[1:])
        self._expected = (channels, height, width)
        self.source_channels = channels
        self.resolution = (height, width)

    # -- the contract -------------------------------------------------------------------------

    def class_labels(self, indices: Sequence[int], rows: int) -> torch.Tensor | None:
        """Class labels of a chunk of ``rows`` (images ``indices`` then padding with class 0):
        int64 ``rows``, or float32 one-hot ``rows``×K for models that take one-hot labels."""
        if not self.conditional:
            return None
        labels = torch.zeros(rows, dtype=torch.int64)
        for k, i in enumerate(indices):
            if self.label_values is not None:
                labels[k] = int(self.label_values[i])
            else:
                assert self.classes is not None
                rng = torch.Generator().manual_seed(derive_seed(self.seed, "sample-class", i))
                labels[k] = int(torch.randint(self.classes, (1,), generator=rng))
        if self.model.onehot:
            assert self.classes is not None
            return torch.nn.functional.one_hot(labels, self.classes).float()
        return labels

    def _generate(self, z: torch.Tensor) -> torch.Tensor:  # the base class's generator slot
        raise NotImplementedError  # never called: _forward below replaces the base path

    def _forward(self, z: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
        labels = self.class_labels(indices, z.shape[0])
        try:
            out = self.model.call(z.to(self.device),
                                  None if labels is None else labels.to(self.device),
                                  self.options.truncation)
        except InputError:
            raise
        except Exception as exc:  # the user's model failed: bad input, not a gan-eval bug
            raise InputError(f"{self.spec_string}: calling the generator on latents "
                             f"{tuple(z.shape)} raised {type(exc).__name__}: {exc}") from exc
        return self._check(out, rows=z.shape[0], real=len(indices),
                           first=indices[0] if indices else 0)

    def _check(self, out: Any, *, rows: int, real: int, first: int) -> torch.Tensor:
        spec, declared = self.spec_string, self.output_range
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(out)
        if not isinstance(out, torch.Tensor):
            raise InputError(f"{spec}: the generator returned a {type(out).__name__}; expected "
                             "a tensor of images B×C×H×W")
        shape = tuple(out.shape)
        if out.ndim != 4 or shape[0] != rows or shape[1] not in (1, 3):
            hint = (" (it looks channels-last, B×H×W×C; expected NCHW)"
                    if out.ndim == 4 and shape[-1] in (1, 3) else "")
            raise InputError(f"{spec}: the generator returned shape {shape} for {rows} latents; "
                             f"expected {rows}×C×H×W with C = 1 or 3{hint}")
        if self._expected is not None and tuple(shape[1:]) != self._expected:
            raise InputError(f"{spec}: images {first}..{first + real - 1} have shape "
                             f"{shape[1:]}, the first ones had {self._expected}")
        out = out[:real]
        if declared == "uint8":
            if out.dtype != torch.uint8:
                raise InputError(f"{spec}: the generator returned {out.dtype}; --output-range "
                                 "uint8 expects torch.uint8 images")
            return out
        if not out.is_floating_point():
            raise InputError(f"{spec}: the generator returned {out.dtype}; expected floats in "
                             f"[{declared}] (declare --output-range uint8 for uint8 images)")
        finite = torch.isfinite(out)
        if not bool(finite.all()):
            bad = int((~finite).flatten(1).any(dim=1).sum())
            raise InputError(f"{spec}: {bad} of images {first}..{first + real - 1} hold NaN or "
                             "infinite values; expected finite floats")
        lo, hi = _RANGES[declared]
        slack = (hi - lo) / 2
        if real and (float(out.min()) < lo - slack or float(out.max()) > hi + slack):
            raise InputError(f"{spec}: images {first}..{first + real - 1} span "
                             f"[{float(out.min()):.4g}, {float(out.max()):.4g}]; expected floats "
                             f"in [{declared}] (declare the range with --output-range -1,1, 0,1 "
                             "or uint8)")
        if declared == "-1,1":
            return to_uint8(out)
        return out.float().mul(255.0).round_().clamp_(0, 255).to(torch.uint8)

    # -- provenance ---------------------------------------------------------------------------

    def latent_settings(self) -> dict[str, Any]:
        """How latents (and labels) are drawn: what image i depends on besides the weights."""
        settings: dict[str, Any] = {
            "z_dim": self.nz, "distribution": "normal N(0, I), float32",
            "seeding": "torch.Generator seeded with derive_seed(seed, 'sample', i) per image i",
            "truncation_psi": self.options.truncation,
            "truncation_keyword": self.model.truncation_keyword
            if self.options.truncation is not None else None,
            "output_range": self.output_range,
        }
        if self.conditional:
            settings["labels"] = {
                "classes": self.classes,
                "format": "one-hot float B×K" if self.model.onehot else "int64 indices",
                "source": (f"file {self.options.labels} (sha256 {self.labels_sha256})"
                           if self.label_values is not None else
                           "uniform, derive_seed(seed, 'sample-class', i) per image i"),
            }
        return settings

    def _identity(self) -> str:
        """sha256 of everything that fixes the images besides seed and n: the files loaded (by
        content), the module's weights, the latent settings."""
        key = {"kind": self.model.kind.value, "files": sorted(self.model.files.values()),
               "weights": self.model.weights_sha256, "latent": self.latent_settings(),
               "labels_sha256": self.labels_sha256}
        if self.model.kind is SpecKind.PYTHON:
            key["attr"] = python_target(self.spec_string)[2]
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def data_string(self) -> str:
        """The spec with a ``file.py`` path made absolute (reopenable from elsewhere)."""
        if self.model.kind is SpecKind.PYTHON and not self.spec_string.startswith("py:"):
            _, path, attr = python_target(self.spec_string)
            assert path is not None
            return f"{path.resolve()}:{attr}"
        return self.spec_string

    def record(self) -> dict[str, Any]:
        """The source record with ``generator``: spec, kind, sha256 of every file loaded (and of
        a Python module's weights), latent settings and the options to reopen it with."""
        record = super().record()
        record["data"] = str(Path(self.data).resolve()) if Path(self.data).exists() \
            else self.data_string()
        record["generator"] = {
            "spec": self.spec_string, "kind": self.model.kind.value,
            "files_sha256": dict(self.model.files),
            "weights_sha256": self.model.weights_sha256,
            "latent": self.latent_settings(),
            "discriminator": self.options.discriminator,
            "options": self.options.to_json(),
        }
        return record

    # -- the discriminator --------------------------------------------------------------------

    def open_discriminator(self) -> tuple[nn.Module, dict[str, Any]] | None:
        """``--discriminator SPEC`` loaded as a differentiable module (images in the generator's
        output range, B×C×H×W → logits B, real ⇔ > 0) and its provenance; None without one."""
        spec = self.options.discriminator
        if spec is None:
            return None
        loaded: LoadedModel = load_model(spec, self.device, role="discriminator")
        if loaded.kind is SpecKind.ONNX:
            raise InputError(f"--discriminator {spec}: attacks need gradients, which onnxruntime "
                             "does not give; export D with torch.jit.save or wrap it as py:")
        call = loaded.call

        class _D(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out = call(x, None, None)
                if not isinstance(out, torch.Tensor) or out.numel() != x.shape[0]:
                    raise InputError(f"--discriminator {spec}: returned "
                                     f"{getattr(out, 'shape', type(out).__name__)} for "
                                     f"{x.shape[0]} images; expected one logit per image")
                return out.reshape(x.shape[0])

        d = _D()
        if loaded.module is not None:
            d.add_module("wrapped", loaded.module)
        info = {"spec": spec, "kind": loaded.kind.value, "files_sha256": loaded.files,
                "weights_sha256": loaded.weights_sha256}
        return d.eval(), info
