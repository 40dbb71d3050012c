"""Reading pretrained weights files without trusting them, and checking they hold the expected
network.

Every extractor reads its file through these functions, and so do ``gan-eval weights fetch`` and
``verify`` (through the extractor's ``check_weights``), so a file is judged the same way
everywhere. Each refusal is an :class:`~gan_eval.errors.InputError` of one form::

    <extractor> weights file <path> <what is wrong>; expected <official file, network, format>

(:func:`bad_file`), so a message always names the file and ends with what was expected.

- State dicts (``torch.save`` of ``{name: tensor}``: Meta's DINOv2 files, torch-fidelity's
  Inception file) are parsed with ``torch.load(weights_only=True)`` only.
- TorchScript archives (OpenAI's CLIP files) are **not** opened with ``torch.jit.load``: a
  TorchScript archive is a program (its classes' ``__setstate__`` runs at load, and PyTorch's
  own security notes say there is no safe mode for ``torch.jit.load``).
  :func:`read_torchscript_tensors` reads the archive as data instead: ``data.pkl`` is unpickled
  with an allow-list (TorchScript class instances become inert attribute holders, tensors are
  rebuilt from the archive's storage records, any other global refuses the file), and no
  TorchScript code is compiled or run.
- :func:`check_shapes` compares a state dict with the exact parameter names and shapes of the
  expected architecture.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from gan_eval.catalogue import WeightsFile
from gan_eval.errors import InputError
from gan_eval.weights import file_problem, zip_damage

__all__ = [
    "bad_file",
    "check_shapes",
    "read_file_bytes",
    "read_state_dict",
    "read_torchscript_tensors",
]


def bad_file(entry: WeightsFile, path: str | Path, problem: str) -> InputError:
    """``InputError("<name> weights file <path> <problem>; expected <entry.expected>")``."""
    return InputError(f"{entry.name} weights file {path} {problem}; expected {entry.expected}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_file_bytes(path: str | Path, entry: WeightsFile) -> bytes:
    """The bytes of ``path`` after the container checks of
    :func:`gan_eval.weights.file_problem` (missing, empty, HTML, plain pickle, truncated zip,
    the other format) and of :func:`gan_eval.weights.zip_damage` (every zip record matches its
    CRC-32: torch itself does not check them, so a damaged file would load wrong numbers)."""
    if problem := file_problem(path, entry.kind):
        raise bad_file(entry, path, problem)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise bad_file(entry, path, f"cannot be read ({exc.strerror or exc})") from None
    if damage := zip_damage(data):
        raise bad_file(entry, path, damage)
    return data


def read_state_dict(source: bytes | str | Path, path: str | Path,
                    entry: WeightsFile) -> dict[str, Tensor]:
    """The ``{name: tensor}`` in a ``torch.save`` file, unpickled with ``weights_only=True``.

    Args:
        source: the file's bytes (already read and hashed by the caller), or its path (then the
            tensors are memory-mapped where the format allows, so checking a large file costs
            little memory).
        path: the file, for messages.
        entry: what the file should be.

    Raises:
        InputError: the container is wrong (see :func:`read_file_bytes`), the pickle holds
            objects other than tensors, or the result is not a ``{str: Tensor}`` mapping.
    """
    if isinstance(source, bytes):
        handle: Any = io.BytesIO(source)
        mmap = False
    else:
        if problem := file_problem(source, entry.kind):
            raise bad_file(entry, path, problem)
        handle = str(source)
        mmap = zipfile.is_zipfile(source)
    try:
        obj = torch.load(handle, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" ({found[1]})" if found else ""
        raise bad_file(entry, path, f"holds Python objects other than tensors{what}; refused: "
                       "gan-eval never unpickles them") from None
    except Exception as exc:  # any other parsing failure: the file is damaged
        raise bad_file(entry, path, f"is damaged: torch cannot read it ({_first_line(exc)})"
                       ) from None
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise bad_file(entry, path, f"holds a {type(obj).__name__}, not a state dict "
                       "({name: tensor})")
    return {str(k): v for k, v in obj.items()}


def check_shapes(state: Mapping[str, Tensor], shapes: Mapping[str, tuple[int, ...]],
                 path: str | Path, entry: WeightsFile, *,
                 optional: Callable[[str], bool] = lambda key: False) -> None:
    """Refuse ``state`` unless it has exactly the keys of ``shapes`` (those for which
    ``optional(key)`` may be absent), each with that shape, floating point (integer tensors
    only under optional keys).

    Raises:
        InputError: naming the first few differences and how many there are.
    """
    problems = []
    for key, shape in shapes.items():
        if key not in state:
            if not optional(key):
                problems.append(f"no {key}")
        elif tuple(state[key].shape) != tuple(shape):
            problems.append(f"{key} has shape {tuple(state[key].shape)}, not {tuple(shape)}")
        elif not state[key].is_floating_point() and not optional(key):
            problems.append(f"{key} is {state[key].dtype}, not floating point")
    problems += [f"an unexpected {key}" for key in state if key not in shapes]
    if problems:
        more = f" and {len(problems) - 3} more differences" if len(problems) > 3 else ""
        raise bad_file(entry, path, "does not hold the expected network's parameters: "
                       + ", ".join(problems[:3]) + more)


# --------------------------------------------------------------------------------------------
# TorchScript archives, read as data
# --------------------------------------------------------------------------------------------

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32, "HalfStorage": torch.float16, "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """An inert stand-in for an instance of a TorchScript class: it only keeps its state."""

    def __init__(self, *args: object) -> None:
        self.state: object = None

    def __setstate__(self, state: object) -> None:
        self.state = state


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


def _same(value: object, *_: object) -> object:
    return value


def _rebuild_tensor(storage: object, offset: object, size: object, stride: object,
                    *_: object) -> Tensor:
    """A tensor viewing ``storage`` (a 1-d tensor of its elements), bounds checked."""
    if not (isinstance(storage, Tensor) and isinstance(offset, int)
            and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride)
            and all(isinstance(x, int) and x >= 0 for x in (*size, *stride, offset))):
        raise pickle.UnpicklingError("a malformed tensor record")
    if math.prod(size) > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.numel():
            raise pickle.UnpicklingError("a tensor record that reaches past its storage")
    return storage.as_strided(size, stride, offset)


class _ArchiveUnpickler(pickle.Unpickler):
    """``data.pkl`` of a TorchScript archive with an allow-list of globals."""

    _ALLOWED: ClassVar[dict[tuple[str, str], object]] = {
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("collections", "OrderedDict"): OrderedDict,
        ("torch.jit._pickle", "restore_type_tag"): _same,
        ("torch.jit._pickle", "build_intlist"): _same,
        ("torch.jit._pickle", "build_doublelist"): _same,
        ("torch.jit._pickle", "build_boollist"): _same,
        ("torch.jit._pickle", "build_tensorlist"): _same,
    }

    def __init__(self, data: bytes, load_storage: Callable[[str, torch.dtype, int], Tensor]):
        super().__init__(io.BytesIO(data))
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            return _ScriptObject
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"an unexpected object {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)
                and isinstance(pid[4], int)):
            raise pickle.UnpicklingError("an unexpected persistent record")
        return self._load_storage(pid[2], pid[1].dtype, pid[4])


def _collect(obj: object, prefix: str, out: dict[str, Tensor], depth: int = 0) -> None:
    if depth > 64:
        raise pickle.UnpicklingError("modules nested more than 64 deep")
    if isinstance(obj, Tensor):
        out[prefix.removesuffix(".")] = obj
    elif isinstance(obj, _ScriptObject):
        if not isinstance(obj.state, dict):  # a plain module's state is its attribute dict
            raise pickle.UnpicklingError(
                f"an object {prefix.removesuffix('.') or 'at the root'} with custom "
                "__getstate__/__setstate__ (code that torch.jit.load would run)")
        for key, value in obj.state.items():
            if isinstance(key, str):
                _collect(value, f"{prefix}{key}.", out, depth + 1)


def read_torchscript_tensors(data: bytes, path: str | Path,
                             entry: WeightsFile) -> dict[str, Tensor]:
    """Every tensor attribute of the module in a TorchScript archive, by dotted name (what its
    ``state_dict()`` would hold), read without running any of the archive's code.

    Args:
        data: the archive's bytes.
        path: the file, for messages.
        entry: what the file should be.

    Raises:
        InputError: not a readable zip archive, no ``data.pkl``, big-endian data, a pickle
            that names anything but TorchScript classes, tensors, storages and TorchScript's
            list/type helpers, or storage records that are missing or of the wrong size.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise bad_file(entry, path, f"is truncated or damaged ({_first_line(exc)})") from None
    pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise bad_file(entry, path, "is a zip archive without a single data.pkl")
    root = pickles[0].removesuffix("data.pkl")
    order = f"{root}byteorder"
    if order in names and archive.read(order).strip() not in (b"little", b""):
        raise bad_file(entry, path, "holds big-endian tensors")

    def load_storage(key: str, dtype: torch.dtype, numel: int) -> Tensor:
        record = f"{root}data/{key}"
        if not key.isdigit() or record not in names:
            raise pickle.UnpicklingError(f"no storage record {key!r}")
        raw = archive.read(record)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) != numel * itemsize:
            raise pickle.UnpicklingError(f"storage {key} has {len(raw)} bytes, not "
                                         f"{numel} × {itemsize}")
        return torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)

    try:
        module = _ArchiveUnpickler(archive.read(pickles[0]), load_storage).load()
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, KeyError, TypeError,
            ValueError, IndexError, AttributeError, RecursionError) as exc:
        raise bad_file(entry, path, f"is not a plain TorchScript module archive: it holds "
                       f"{exc if isinstance(exc, pickle.UnpicklingError) else _first_line(exc)}"
                       "; refused without running any of its code") from None
    tensors: dict[str, Tensor] = {}
    try:
        _collect(module, "", tensors)
    except pickle.UnpicklingError as exc:
        raise bad_file(entry, path, f"is not a plain TorchScript module archive ({exc})") from None
    return tensors
