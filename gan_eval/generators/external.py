"""External generators (Python factories, TorchScript, ``torch.export``, ONNX) as image sources,
contract checked.

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
  by its own tools); more than that means a wrong declaration and is an error. Floats that never
  go below 0 under the default ``-1,1`` (an output in [0, 1] declared as tanh's) warn
  (:class:`GeneratorContractWarning`), naming ``--output-range``;
- determinism: the probe batch is drawn twice and must give the same images, else the generator
  is refused as non-deterministic (``--allow-nondeterministic`` accepts it: recorded in the
  source record, and its features are never cached);
- the generator is called with ``min(batch, images left)`` latents at a time: images
  ``k·batch … (k+1)·batch − 1`` always form one call, whatever range a reader asks for, so image i
  is the same however the images are read (bit for bit); ``batch`` is the caller's batch size
  (``--batch-size``; default 64 on the CPU, 256 on CUDA); an ONNX or ``torch.export`` model with a
  fixed batch size gets exactly that many rows (zero padded).

The content hash (which keys the feature cache) covers the generated pixels themselves, not only
the files gan-eval loaded: a weights file the factory reads, or an ONNX model's external data,
changes the hash when it changes the images. It is accumulated while the images are generated in
order (a full read costs nothing more); asked for before that, it samples the rest of the images.
Feature extraction reads first and hashes after (:func:`gan_eval.features.extract`).

Every violation raises :class:`InputError` naming the spec and what was expected; the user's code
runs contained (:mod:`gan_eval.generators.usercode`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gan_eval.data.convert import to_uint8
from gan_eval.devices import resolve_device
from gan_eval.errors import GanEvalWarning, InputError
from gan_eval.fileio import sha256_file
from gan_eval.generators.loaders import LoadedModel, load_model
from gan_eval.generators.source import DEFAULT_N, SAMPLER_VERSION, GeneratorSource
from gan_eval.generators.spec import GeneratorOptions, SpecKind, python_target
from gan_eval.seeding import derive_seed

PROBE = 2
"""Images generated (twice) when the source is opened, to check the contract before any work."""


class GeneratorContractWarning(GanEvalWarning):
    """An external generator's output looks unlike what its declared contract says."""

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
    """``n`` images of an external generator (see the module doc for the contract).

    ``chunk``: latents per call of the generator (default 64 on the CPU, 256 on CUDA; at most
    ``n``). ``warnings`` lists what looked wrong on the probe (also warned as
    :class:`GeneratorContractWarning`); ``nondeterministic`` says whether the probe differed
    between two draws (only possible with ``allow_nondeterministic``).
    """

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
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)
                                  or chunk < 1):
            raise InputError(f"--batch-size {chunk!r}: expected a positive number of images")
        model = load_model(spec, dev, name=spec)
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
        self._span: tuple[float, float] | None = None  # lowest, highest float output so far
        self._kept: tuple[int, torch.Tensor] | None = None  # the last chunk generated
        self._lock = threading.Lock()
        self._pixel_digest = hashlib.sha256()  # of chunks 0 .. _digested - 1, in order
        self._digested = 0
        self._pixels: str | None = None  # hex sha256 of every pixel, once all were digested
        self.warnings: list[str] = []
        self.nondeterministic = False
        per_call = model.static_batch or min(
            chunk or (256 if dev.type == "cuda" else 64), max(n, 1))
        super().__init__(
            self._generate, nz=z_dim, resolution=1, channels=3, identity="", data=spec,
            kind=f"generator-{model.kind.value}", n=n, seed=seed, device=dev, chunk=per_call)
        self.identity = self._identity()
        self.cacheable = not options.allow_nondeterministic
        probe = list(range(min(PROBE if model.static_batch is None else self.chunk, n)))
        self.probed = len(probe)
        first = self._probe(probe)
        self.nondeterministic = not torch.equal(first, self._probe(probe))
        if self.nondeterministic and not options.allow_nondeterministic:
            raise InputError(
                f"{spec}: non-deterministic generator: the same {len(probe)} latents gave "
                "different images when drawn twice (noise drawn inside the model — e.g. "
                "StyleGAN's noise_mode='random' —, dropout, or a model left in training mode?); "
                "its numbers would not be reproducible and could not be cached. Make it "
                "deterministic (noise_mode='const', seeded noise), or pass "
                "--allow-nondeterministic to audit it anyway (recorded in the results; its "
                "features are then never cached)")
        self._warn_about_range(len(probe))

    def _probe(self, indices: list[int]) -> torch.Tensor:
        """The images of ``indices`` (the first ones), as one call of the generator."""
        z = torch.zeros(self.model.static_batch or len(indices), self.nz)
        z[: len(indices)] = self.latents(indices)
        with torch.no_grad():
            images = self._forward(z, indices)
        if self._expected is None:
            channels, height, width = (int(s) for s in images.shape[1:])
            self._expected = (channels, height, width)
            self.source_channels = channels
            self.resolution = (height, width)
        return images[: len(indices)].cpu()

    def _warn_about_range(self, probed: int) -> None:
        if self.output_range != "-1,1" or self._span is None or self._span[0] < 0.0:
            return
        low, high = self._span
        message = (f"{self.spec_string}: the generator's images never go below 0 (the first "
                   f"{probed} span [{low:.3g}, {high:.3g}]), although --output-range is -1,1 "
                   "(the default, tanh's range): if it outputs [0, 1] its images are read "
                   "too bright and washed out and every number is wrong; declare "
                   "--output-range 0,1 (or uint8)")
        self.warnings.append(message)
        warnings.warn(message, GeneratorContractWarning, stacklevel=3)

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
        raise NotImplementedError  # never called: _generate_range below replaces the base path

    @torch.no_grad()
    def _generate_range(self, indices: Sequence[int]) -> torch.Tensor:
        """The images at ``indices`` (uint8 B×3×H×W), cut from the calls that generate them
        (images ``k·chunk … (k+1)·chunk − 1`` are always one call)."""
        for i in indices:
            if not 0 <= i < self.n:
                raise IndexError(f"image index {i} outside 0..{self.n - 1}")
        parts = [self._chunk_images(k)[[i - k * self.chunk for i in group]]
                 for k, group in itertools.groupby(indices, key=lambda i: i // self.chunk)]
        return self._joined(parts)

    @torch.no_grad()
    def _chunk_images(self, k: int) -> torch.Tensor:
        """uint8 C×H×W images ``k·chunk … min((k+1)·chunk, n) − 1``, from one call of the
        generator (kept until another chunk is asked for: readers of smaller ranges, and the
        read-ahead thread, share it)."""
        with self._lock:
            if self._kept is not None and self._kept[0] == k:
                images = self._kept[1]
            else:
                indices = list(range(k * self.chunk, min((k + 1) * self.chunk, self.n)))
                z = torch.zeros(self.model.static_batch or len(indices), self.nz)
                z[: len(indices)] = self.latents(indices)
                images = self._forward(z, indices)[: len(indices)].cpu()
                self._kept = (k, images)
            if k == self._digested and self._pixels is None:  # the next chunk in order
                self._pixel_digest.update(images.numpy().tobytes())
                self._digested += 1
                if self._digested == self._chunks():
                    self._pixels = self._pixel_digest.hexdigest()
            return images

    def _chunks(self) -> int:
        return -(-self.n // self.chunk)

    def pixel_hash(self) -> str:
        """sha256 (hex) of every generated pixel in index order (uint8 C×H×W per image), from
        the images generated so far in order plus the rest, generated now."""
        for k in range(self._digested, self._chunks()):
            self._chunk_images(k)
        assert self._pixels is not None
        return self._pixels

    def _forward(self, z: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
        labels = self.class_labels(indices, z.shape[0])
        out = self.model.run(z.to(self.device), None if labels is None else labels.to(self.device),
                             self.options.truncation)
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
        if real:
            low, high = float(out.min()), float(out.max())
            if low < lo - slack or high > hi + slack:
                raise InputError(f"{spec}: images {first}..{first + real - 1} span "
                                 f"[{low:.4g}, {high:.4g}]; expected floats in [{declared}] "
                                 "(declare the range with --output-range -1,1, 0,1 or uint8)")
            self._span = (low, high) if self._span is None else (
                min(self._span[0], low), max(self._span[1], high))
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

    def _hash_content(self, digest: hashlib._Hash) -> None:
        """The generator's identity, seed and count, and every generated pixel
        (:meth:`pixel_hash`): what the images are, not only what gan-eval guesses they depend
        on. A generator accepted as non-deterministic is hashed by its identity alone (its
        pixels change from draw to draw; it is never cached)."""
        digest.update(self.identity.encode())
        digest.update(f"{SAMPLER_VERSION}/seed={self.seed}/n={self.n}".encode())
        if self.options.allow_nondeterministic:
            digest.update(b"/non-deterministic: identity only")
            return
        digest.update(f"/pixels {self.source_channels}x{self.resolution}".encode())
        digest.update(self.pixel_hash().encode())

    def hashed_by_reading(self) -> bool:
        """True until every pixel was generated in order (or the content hash computed)."""
        return (self._hash is None and self._pixels is None
                and not self.options.allow_nondeterministic)

    def origin_hash(self) -> str:
        """The generator's identity (files, weights, latent settings), seed and count: what
        the images come from, known without generating them."""
        if not self.hashed_by_reading():
            return self.content_hash()
        key = f"{self.kind}/{self.identity}/{SAMPLER_VERSION}/seed={self.seed}/n={self.n}"
        return hashlib.sha256(key.encode()).hexdigest()

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
            "batch_size": self.chunk,
            "content_hash_of": ("identity only: accepted as non-deterministic"
                                if self.options.allow_nondeterministic else "generated pixels"),
            "deterministic": {
                "checked": f"the first {self.probed} images drawn twice",
                "same": not self.nondeterministic,
                "allowed_otherwise": self.options.allow_nondeterministic,
            },
            "warnings": list(self.warnings),
            "discriminator": self.options.discriminator,
            "options": self.options.to_json(),
        }
        return record

    # -- the discriminator --------------------------------------------------------------------

    def open_discriminator(self) -> tuple[nn.Module, dict[str, Any]] | None:
        """``--discriminator SPEC`` loaded as a differentiable module (images in the generator's
        output range, B×C×H×W → logits B, real ⇔ > 0) and its provenance; None without one.
        Every error names ``--discriminator``."""
        spec = self.options.discriminator
        if spec is None:
            return None
        name = f"--discriminator {spec}"
        loaded = load_model(spec, self.device, role="discriminator", name=name)
        if loaded.kind is SpecKind.ONNX:
            raise InputError(f"{name}: attacks need gradients, which onnxruntime does not give; "
                             "export D with torch.export.save or torch.jit.save, or wrap it as "
                             "py:")
        info = {"spec": spec, "kind": loaded.kind.value, "files_sha256": loaded.files,
                "weights_sha256": loaded.weights_sha256}
        return ExternalDiscriminator(loaded).eval(), info


class ExternalDiscriminator(nn.Module):
    """An external D: images B×C×H×W (in its generator's output range) → float logits B.

    Its output is checked: a tensor of one finite floating-point logit per image, else an
    :class:`InputError` naming it (``--discriminator SPEC``); its code runs contained.
    """

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__()
        self.loaded = loaded
        if loaded.module is not None:
            self.add_module("wrapped", loaded.module)

    def train(self, mode: bool = True) -> ExternalDiscriminator:
        """Only this wrapper's flag: the loader put D in eval mode (a ``torch.export`` program's
        mode is fixed when it is exported and cannot be changed)."""
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name, rows = self.loaded.name, int(x.shape[0])
        out = self.loaded.run(x)
        if not isinstance(out, torch.Tensor) or out.numel() != rows:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InputError(f"{name}: returned {got} for {rows} images; expected one logit per "
                             "image")
        if not out.is_floating_point():
            raise InputError(f"{name}: returned {out.dtype} logits; expected floats")
        logits = out.reshape(rows)
        finite = torch.isfinite(logits.detach())
        if not bool(finite.all()):
            raise InputError(f"{name}: returned NaN or infinite logits for {int((~finite).sum())}"
                             f" of {rows} images; expected one finite logit per image (a "
                             "diverged discriminator gives no verdict)")
        return logits
