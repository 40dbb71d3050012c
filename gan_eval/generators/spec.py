"""GENERATOR specs: what a string names, and the options that complete a generator's contract.

A GENERATOR is one of

- a gan-eval checkpoint (its folder, run folder, ``checkpoint.json`` or state file);
- ``py:package.module:attr`` or ``path/to/file.py:attr`` — a Python factory. **This imports and
  runs the user's code** (as ``python -c "import package.module"`` would): use it only with code
  you trust. ``attr`` is an ``nn.Module``, a callable taking no required argument (a factory,
  called once; it gets ``device=`` when it has such a parameter) that returns an ``nn.Module`` or
  a callable ``G(z)``, or a callable with a required argument, taken as ``G`` itself;
- a TorchScript archive written by ``torch.jit.save`` (recognised by its content — a zip holding
  ``*/code/`` and ``*/constants.pkl`` — whatever its name; loaded with ``torch.jit.load``);
- a ``torch.export`` archive written by ``torch.export.save`` (``.pt2``; recognised by its
  content — a zip holding ``*/archive_format`` — whatever its name), checked to run no code of its
  own before ``torch.export.load`` reads it (:mod:`gan_eval.generators.exported`);
- an ONNX model (``.onnx``), run by onnxruntime (``pip install 'gan-eval[onnx]'``).

A model file that starts like a zip archive but cannot be read as one (cut short by a copy or a
download) is a :attr:`SpecKind.DAMAGED` archive: refused as such, not as an unknown file type.

This module imports no torch: :func:`check_generator` is what a command runs on a GENERATOR
before it loads any network (:mod:`gan_eval.preflight`).

Files that hold a pickle (a ``torch.save`` zip, a legacy pickle, or any ``.pkl``/``.pt``/…
that is not a TorchScript archive) are refused whatever their name: unpickling runs code. Load
such weights with your own code behind a ``py:`` factory instead.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from gan_eval.errors import InputError
from gan_eval.gan.layout import is_checkpoint


class SpecKind(StrEnum):
    """What a GENERATOR string names."""

    CHECKPOINT = "checkpoint"
    PYTHON = "python"  # py:package.module:attr or file.py:attr
    TORCHSCRIPT = "torchscript"
    EXPORT = "torch-export"  # torch.export.save (.pt2)
    ONNX = "onnx"
    PICKLE = "pickle"  # refused
    DAMAGED = "damaged"  # a zip archive that cannot be read (refused)
    UNKNOWN = "unknown"


PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar", ".jit",
                             ".ts", ".torchscript", ".pt2"})
"""Suffixes of files that are generators (or refused pickles) by name, whatever their content."""

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
"""How a zip archive starts (a local file header, or the end record of an empty archive)."""

OUTPUT_RANGES = ("-1,1", "0,1", "uint8")
"""Declared output ranges: float in [-1, 1] (tanh, the default), float in [0, 1], uint8 0..255."""

_FILE_ATTR = re.compile(r"^(?P<path>.+\.py):(?P<attr>[A-Za-z_][\w.]*)$")
_PY_SPEC = re.compile(r"^py:(?P<module>[A-Za-z_][\w.]*):(?P<attr>[A-Za-z_][\w.]*)$")

GENERATOR_HELP = (
    "a gan-eval checkpoint, py:package.module:attr or file.py:attr (runs that Python code), a "
    "TorchScript archive (torch.jit.save), a torch.export archive (torch.export.save, .pt2) or "
    "an .onnx model"
)


def parse_output_range(value: str) -> str:
    """``--output-range`` → one of :data:`OUTPUT_RANGES` (brackets and spaces are ignored;
    ``0,255`` means uint8); :class:`InputError` otherwise."""
    text = value.strip().strip("[]()").replace(" ", "")
    text = {"0,255": "uint8", "-1,+1": "-1,1", "tanh": "-1,1"}.get(text, text)
    if text not in OUTPUT_RANGES:
        raise InputError(f"--output-range {value!r}: expected -1,1 (default), 0,1 or uint8")
    return text


@dataclass(frozen=True, kw_only=True)
class GeneratorOptions:
    """What a generator's contract needs when the model does not say it itself.

    ``z_dim``: latent size (None: read from the model — an attribute ``z_dim``/``nz``/
    ``latent_dim``/``z_size``, the ONNX or ``torch.export`` input shape, or ``gan_eval.json`` in
    a TorchScript or ``torch.export`` archive). ``truncation``: ψ, passed as
    ``truncation_psi=`` (or ``truncation=``) to models whose call takes it. ``classes``:
    number of classes of a conditional generator (labels drawn uniformly, one seeded draw per
    image index); ``labels``: a file of class indices, one per
    image (.npy, or text with one integer per line). ``output_range``: see
    :data:`OUTPUT_RANGES`. ``discriminator``: a spec (same forms, not ONNX) of D, for
    ``attack --model discriminator``. ``allow_nondeterministic``: accept a generator whose
    images differ between two draws of the same latents (otherwise refused); its features are
    then never cached.
    """

    z_dim: int | None = None
    truncation: float | None = None
    classes: int | None = None
    labels: str | None = None
    output_range: str = "-1,1"
    discriminator: str | None = None
    allow_nondeterministic: bool = False

    def __post_init__(self) -> None:
        if self.z_dim is not None and (isinstance(self.z_dim, bool) or self.z_dim < 1):
            raise InputError(f"--z-dim {self.z_dim!r}: expected a positive latent size")
        if self.truncation is not None and not 0.0 <= self.truncation <= 2.0:
            raise InputError(f"--truncation {self.truncation!r}: expected ψ in [0, 2] (1 = none)")
        if self.classes is not None and (isinstance(self.classes, bool) or self.classes < 1):
            raise InputError(f"--classes {self.classes!r}: expected a positive number of classes")
        object.__setattr__(self, "output_range", parse_output_range(self.output_range))

    def is_default(self) -> bool:
        """True when no option was given (a native checkpoint accepts only that)."""
        return self == GeneratorOptions()

    def to_json(self) -> dict[str, Any]:
        """Plain dict for a source record (inverse: :meth:`from_json`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> GeneratorOptions:
        """Options from a source record's ``generator.options``; defaults when absent."""
        if not isinstance(data, dict):
            return cls()
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def _zip_names(path: Path) -> list[str] | None:
    """The member names of a zip archive, or None when ``path`` is not one that can be read
    (any archive that cannot be listed is not a TorchScript model; the image reader reports
    what is wrong with it). An archive cut short can seem to list the members of a zip stored
    inside it (a ``.pt2`` holds a ``torch.save`` zip): a listing without the file's own first
    member is not its directory, and counts as unreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        with open(path, "rb") as handle:
            head = handle.read(30)
            if len(head) == 30 and head[:4] == _ZIP_MAGIC[0]:
                first = handle.read(int.from_bytes(head[26:28], "little"))
                if first.decode("utf-8", "replace") not in names \
                        and first.decode("cp437") not in names:
                    return None
        return names
    except (zipfile.BadZipFile, OSError, ValueError, UnicodeDecodeError, EOFError,
            NotImplementedError):
        return None


def is_torchscript_zip(names: list[str]) -> bool:
    """True for the member list of a ``torch.jit.save`` archive: ``<root>/code/…`` and
    ``<root>/constants.pkl`` (a ``torch.save`` zip has ``data.pkl`` but no code)."""
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    return any(f"{r}/constants.pkl" in names and any(n.startswith(f"{r}/code/") for n in names)
               for r in roots)


def is_exported_zip(names: list[str]) -> bool:
    """True for the member list of a ``torch.export.save`` archive: ``<root>/archive_format``
    (or ``serialized_exported_program.json``, the format before torch 2.8, which is refused when
    loaded)."""
    return any(n.count("/") == 1 and n.endswith("/archive_format") for n in names) or \
        any(n.rsplit("/", 1)[-1] == "serialized_exported_program.json" for n in names)


def _looks_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(4) in _ZIP_MAGIC
    except OSError:
        return False


def _looks_like_pickle(path: Path) -> bool:
    """A legacy ``torch.save``/``pickle.dump`` file: protocol-2+ pickles start with 0x80."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
    except OSError:
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def classify(data: str) -> SpecKind | None:
    """What ``data`` names as a generator, or None when it is not a generator (image data).

    By form: ``py:…`` and ``….py:attr`` are Python specs (even when the file is missing, so
    that the error names it). By content for files: a TorchScript or ``torch.export`` archive, a
    ``torch.save`` zip or legacy pickle (:attr:`SpecKind.PICKLE`, refused), whatever the name;
    a file that starts like a zip but cannot be listed is :attr:`SpecKind.DAMAGED` (unless it is
    named ``.zip``/``.npz``: image data, whose reader says what is wrong); then ``.onnx`` by
    name (an ONNX protobuf is neither a zip nor a pickle). Files named like models
    (:data:`PICKLE_SUFFIXES`) whose content is none of these are :attr:`SpecKind.UNKNOWN`.
    """
    if data.startswith("py:"):
        return SpecKind.PYTHON
    if _FILE_ATTR.match(data) and not Path(data).exists():
        return SpecKind.PYTHON
    path = Path(data).expanduser()
    if is_checkpoint(path):
        return SpecKind.CHECKPOINT
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    names = _zip_names(path) if suffix != ".npz" else None
    if names is not None:
        if is_torchscript_zip(names):
            return SpecKind.TORCHSCRIPT
        if is_exported_zip(names):
            return SpecKind.EXPORT
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return SpecKind.PICKLE
        return SpecKind.UNKNOWN if suffix in (*PICKLE_SUFFIXES, ".onnx") else None
    if suffix in (".npy", ".npz"):
        return None  # numpy arrays are image data (read with allow_pickle=False)
    if suffix != ".zip" and _looks_like_zip(path):
        return SpecKind.DAMAGED
    if _looks_like_pickle(path):
        return SpecKind.PICKLE
    if suffix == ".onnx":  # checked after the content: a pickle named .onnx is still a pickle
        return SpecKind.ONNX
    return SpecKind.UNKNOWN if suffix in PICKLE_SUFFIXES else None


def python_target(data: str) -> tuple[str | None, Path | None, str]:
    """(module name, file path, attribute) of a Python spec; :class:`InputError` when malformed.

    ``py:package.module:attr`` gives a module name; ``path/file.py:attr`` a file.
    """
    if data.startswith("py:"):
        match = _PY_SPEC.match(data)
        if match is None:
            raise InputError(f"{data}: expected py:package.module:attr (a dotted module name, a "
                             "colon, and the name of a factory or nn.Module in it)")
        return match["module"], None, match["attr"]
    match = _FILE_ATTR.match(data)
    if match is None:
        raise InputError(f"{data}: expected path/to/file.py:attr")
    return None, Path(match["path"]).expanduser(), match["attr"]


def refuse_pickle(data: str) -> InputError:
    """The error for a pickle file given as a model."""
    return InputError(
        f"{data}: this file is a pickle (torch.save or pickle.dump); pickle files are never "
        "loaded, whatever their name, because unpickling runs arbitrary code. Export the "
        "generator with torch.export.save (.pt2), torch.jit.save (TorchScript) or to ONNX, or "
        "load it with your own code behind a "
        "py:package.module:attr or file.py:attr factory"
    )


def damaged_archive(name: str, data: str) -> InputError:
    """The error for a model file that starts like a zip archive but cannot be read as one."""
    return InputError(f"{name}: truncated or damaged archive {Path(data).expanduser()} (it "
                      "starts like a zip archive — TorchScript, torch.export and torch.save files "
                      "are zips — but its directory at the end is missing or corrupt: a copy or "
                      "download cut short?); copy or export it again")


def unknown_file(data: str) -> InputError:
    """The error for a file that is no generator gan-eval knows."""
    return InputError(f"{data}: unknown generator file type; expected {GENERATOR_HELP}")


def check_generator(data: str) -> SpecKind:
    """The kind of generator ``data`` names, checked without running or loading anything: a
    ``py:`` spec's syntax, a ``file.py:attr`` spec's file, a model file's existence and kind.

    Raises:
        InputError: naming ``data`` when it is a pickle file (always refused), a damaged
            archive, no such file or folder, a file gan-eval cannot run as a generator, or a
            malformed Python spec.
    """
    kind = classify(data)
    if kind is SpecKind.PICKLE:
        raise refuse_pickle(data)
    if kind is SpecKind.DAMAGED:
        raise damaged_archive(data, data)
    if kind is None:
        if not Path(data).expanduser().exists():
            raise InputError(f"{data}: no such file or folder; expected {GENERATOR_HELP}")
        raise unknown_file(data)
    if kind is SpecKind.UNKNOWN:
        raise unknown_file(data)
    if kind is SpecKind.PYTHON:
        _, path, _ = python_target(data)
        if path is not None and not path.is_file():
            raise InputError(f"{data}: no such file {path}; expected path/to/file.py:attr")
    return kind
