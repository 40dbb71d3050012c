"""Loading external models (Python factories, TorchScript, ONNX) into one calling convention.

Every loader returns a :class:`LoadedModel`: ``call(z, labels, truncation)`` runs the model on a
latent batch (float32 B×z_dim on the model's device) and returns what the model returns,
unchecked; the contract is checked by :mod:`gan_eval.generators.external`. What the model says
about itself (latent size, classes, whether it takes ψ, a fixed batch size) is read here, and the
sha256 of every file loaded is kept for provenance.

Calling convention: ``G(z)``; ``G(z, c)`` for a conditional model (``c``: int64 B class indices,
or float32 one-hot B×K for models with a ``c_dim`` attribute (StyleGAN's convention) and for ONNX
inputs of float type); ψ as the keyword ``truncation_psi`` (or ``truncation``) when the call
takes one.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gan_eval.errors import InputError, MissingAssetError
from gan_eval.fileio import sha256_file
from gan_eval.generators.spec import (
    SpecKind,
    classify,
    python_target,
    refuse_pickle,
    unknown_file,
)

Z_DIM_ATTRS = ("z_dim", "nz", "latent_dim", "z_size")
"""Attributes that state a model's latent size, in the order they are read."""

TRUNCATION_KEYWORDS = ("truncation_psi", "truncation")
"""Keywords a model's call may take ψ under."""

METADATA_FILE = "gan_eval.json"
"""Optional extra file of a TorchScript archive (``torch.jit.save(..., _extra_files=…)``):
``{"z_dim": int, "classes": int}``."""


@dataclass
class LoadedModel:
    """A loaded generator or discriminator and what it says about itself."""

    kind: SpecKind
    call: Callable[[torch.Tensor, torch.Tensor | None, float | None], Any]
    module: nn.Module | None = None  # the torch module (None for ONNX and plain callables)
    files: dict[str, str] = field(default_factory=dict)  # absolute path → sha256
    weights_sha256: str | None = None  # sha256 of a Python module's state_dict (its weights)
    z_dim: int | None = None
    classes: int | None = None
    onehot: bool = False  # labels as one-hot float B×K instead of int64 indices
    truncation_keyword: str | None = None
    conditional: bool = False  # the model needs class labels (it says how many classes)
    takes_labels: bool = False  # the call accepts class labels (a second argument or input)
    static_batch: int | None = None  # ONNX models exported with a fixed batch size


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | np.integer) and value > 0:
        return int(value)
    return None


def _read_attrs(obj: Any, model: LoadedModel) -> None:
    """Latent size and classes from the model's attributes (StyleGAN: ``z_dim``, ``c_dim``)."""
    for name in Z_DIM_ATTRS:
        found = _positive_int(getattr(obj, name, None))
        if found is not None:
            model.z_dim = found
            break
    else:
        nz = _positive_int(getattr(getattr(obj, "spec", None), "nz", None))  # gan-eval's DCGAN
        model.z_dim = nz
    c_dim = _positive_int(getattr(obj, "c_dim", None))
    if c_dim is not None:
        model.classes, model.onehot, model.conditional = c_dim, True, True
        return
    for name in ("num_classes", "n_classes"):
        found = _positive_int(getattr(obj, name, None))
        if found is not None:
            model.classes, model.conditional = found, True
            return


def state_sha256(module: nn.Module) -> str:
    """sha256 over a module's state_dict (names, dtypes, shapes and bytes, in key order)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}/{tensor.dtype}/{tuple(tensor.shape)}".encode())
        if tensor.numel():
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _import(data: str) -> tuple[Any, dict[str, str]]:
    """The attribute a Python spec names, and {module file: sha256}."""
    module_name, path, attr = python_target(data)
    try:
        if path is not None:
            if not path.is_file():
                raise InputError(f"{data}: no such file {path}")
            folder = str(path.resolve().parent)
            if folder not in sys.path:  # the file's own imports of its neighbours must work
                sys.path.insert(0, folder)
            name = f"gan_eval_user_{abs(hash(str(path.resolve())))}_{path.stem}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise InputError(f"{data}: {path} cannot be imported as a Python module")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            assert module_name is not None
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.append(str(Path.cwd()))  # as `python -m` does, after installed code
            module = importlib.import_module(module_name)
    except InputError:
        raise
    except ImportError as exc:
        raise InputError(f"{data}: cannot import {module_name or path}: {exc}") from exc
    except Exception as exc:  # the user's code failed while importing: bad input, not our bug
        raise InputError(f"{data}: importing {module_name or path} raised "
                         f"{type(exc).__name__}: {exc}") from exc
    files: dict[str, str] = {}
    source_file = getattr(module, "__file__", None)
    if source_file and Path(source_file).is_file():
        files[str(Path(source_file).resolve())] = sha256_file(source_file)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            where = module_name or str(path)
            raise InputError(f"{data}: {where} has no attribute {attr!r}")
        target = getattr(target, part)
    return target, files


def _required_positional(fn: Any) -> int:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in signature.parameters.values()
               if p.default is inspect.Parameter.empty
               and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _parameters(fn: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return {}


def load_python(data: str, device: torch.device, *, role: str) -> LoadedModel:
    """A ``py:`` / ``file.py:attr`` spec: imports and runs the user's code (see the module doc
    of :mod:`gan_eval.generators.spec` for what ``attr`` may be)."""
    target, files = _import(data)
    obj: Any = target
    if not isinstance(target, nn.Module):
        if not callable(target):
            raise InputError(f"{data}: {type(target).__name__} object is not callable; expected "
                             f"an nn.Module or a factory returning the {role}")
        if _required_positional(target) == 0:  # a factory: call it once
            params = _parameters(target)
            kwargs = {"device": device} if "device" in params else {}
            try:
                obj = target(**kwargs)
            except Exception as exc:
                raise InputError(f"{data}: calling the factory raised {type(exc).__name__}: "
                                 f"{exc}") from exc
            if not callable(obj):
                raise InputError(f"{data}: the factory returned a {type(obj).__name__}, which is "
                                 f"not callable; expected an nn.Module or a callable {role}")
    model = LoadedModel(kind=SpecKind.PYTHON, call=lambda *a: None, files=files)
    if isinstance(obj, nn.Module):
        obj = obj.to(device).eval().requires_grad_(False)
        model.module = obj
        model.weights_sha256 = state_sha256(obj)
    _read_attrs(obj, model)
    params = _parameters(obj.forward if isinstance(obj, nn.Module) else obj)
    keyword = next((k for k in TRUNCATION_KEYWORDS if k in params), None)
    model.truncation_keyword = keyword
    positional = [p for name, p in params.items() if name not in TRUNCATION_KEYWORDS
                  and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    model.takes_labels = len(positional) >= 2 or any(
        p.kind == p.VAR_POSITIONAL for p in params.values())
    if len(positional) >= 2 and positional[1].default is inspect.Parameter.empty:
        model.conditional = True

    def run(z: torch.Tensor, labels: torch.Tensor | None, psi: float | None) -> Any:
        args: tuple[Any, ...] = (z,) if labels is None else (z, labels)
        return obj(*args, **({keyword: psi} if keyword and psi is not None else {}))

    model.call = run
    return model


def load_torchscript(data: str, device: torch.device) -> LoadedModel:
    """A ``torch.jit.save`` archive, loaded with ``torch.jit.load`` (never ``torch.load``)."""
    path = Path(data).expanduser()
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is "deprecated" upstream
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:
        raise InputError(f"{data}: not a loadable TorchScript archive ({exc})") from exc
    module = module.eval()
    model = LoadedModel(kind=SpecKind.TORCHSCRIPT, call=lambda *a: None, module=module,
                        files={str(path.resolve()): sha256_file(path)})
    _read_attrs(module, model)
    raw = extra.get(METADATA_FILE) or b""
    if raw:
        try:
            meta = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{data}: {METADATA_FILE} in the archive is not JSON ({exc})") from exc
        if isinstance(meta, dict):
            model.z_dim = _positive_int(meta.get("z_dim")) or model.z_dim
            classes = _positive_int(meta.get("classes"))
            if classes is not None:
                model.classes, model.conditional = classes, True
    try:
        names = [a.name for a in module.forward.schema.arguments][1:]  # drop self
    except AttributeError:
        names = []
    model.truncation_keyword = next((k for k in TRUNCATION_KEYWORDS if k in names), None)
    positional = [n for n in names if n not in TRUNCATION_KEYWORDS]
    model.takes_labels = len(positional) >= 2
    keyword = model.truncation_keyword

    def run(z: torch.Tensor, labels: torch.Tensor | None, psi: float | None) -> Any:
        args: tuple[Any, ...] = (z,) if labels is None else (z, labels)
        return module(*args, **({keyword: psi} if keyword and psi is not None else {}))

    model.call = run
    return model


def _onnx_dtype(type_name: str) -> Any:
    mapping = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
               "tensor(double)": np.float64, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32}
    return mapping.get(type_name)


def load_onnx(data: str, device: torch.device) -> LoadedModel:
    """An ONNX model run by onnxruntime: the first input takes the latents (B×z_dim), an input
    named ``truncation``/``truncation_psi``/``psi`` takes ψ, another input the class labels
    (int → B indices, float → one-hot B×K)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingAssetError(
            f"{data}: ONNX models need onnxruntime, which is not installed; install it with "
            "`pip install 'gan-eval[onnx]'` (or `pip install onnxruntime`)") from exc
    path = Path(data).expanduser()
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:
        raise InputError(f"{data}: onnxruntime cannot load this model ({exc})") from exc
    inputs = session.get_inputs()
    if not inputs:
        raise InputError(f"{data}: the ONNX model has no inputs; expected latents B×z_dim")
    latent = inputs[0]
    psi_input = next((i for i in inputs[1:] if i.name.lower() in
                      (*TRUNCATION_KEYWORDS, "psi")), None)
    label_input = next((i for i in inputs[1:] if i is not psi_input), None)
    model = LoadedModel(kind=SpecKind.ONNX, call=lambda *a: None,
                        files={str(path.resolve()): sha256_file(path)})
    shape = list(latent.shape)
    if len(shape) in (2, 4):
        model.z_dim = _positive_int(shape[1])
        model.static_batch = _positive_int(shape[0])
    latent_dtype = _onnx_dtype(latent.type) or np.float32
    if psi_input is not None:
        model.truncation_keyword = psi_input.name
    if label_input is not None:
        model.takes_labels = model.conditional = True
        if _onnx_dtype(label_input.type) in (np.float32, np.float16, np.float64):
            model.onehot = True
            if len(label_input.shape) == 2:
                model.classes = _positive_int(label_input.shape[1])

    def run(z: torch.Tensor, labels: torch.Tensor | None, psi: float | None) -> Any:
        array = z.detach().cpu().numpy().astype(latent_dtype)
        if len(shape) == 4:
            array = array[:, :, None, None]
        feed: dict[str, Any] = {latent.name: array}
        if psi_input is not None:
            value = 1.0 if psi is None else psi
            feed[psi_input.name] = np.asarray(value if not psi_input.shape else [value],
                                              dtype=_onnx_dtype(psi_input.type) or np.float32)
        if label_input is not None and labels is not None:
            feed[label_input.name] = labels.cpu().numpy().astype(
                _onnx_dtype(label_input.type) or np.int64)
        return session.run(None, feed)[0]

    model.call = run
    return model


def load_model(data: str, device: torch.device, *, role: str = "generator") -> LoadedModel:
    """Load the external model ``data`` names; :class:`InputError` for pickles, unknown files
    and specs that cannot be loaded (a native checkpoint is not an external model)."""
    kind = classify(data)
    if kind is SpecKind.PYTHON:
        return load_python(data, device, role=role)
    if kind is SpecKind.TORCHSCRIPT:
        return load_torchscript(data, device)
    if kind is SpecKind.ONNX:
        return load_onnx(data, device)
    if kind is SpecKind.PICKLE:
        raise refuse_pickle(data)
    if kind is None and not Path(data).expanduser().exists():
        raise InputError(f"{data}: no such file or folder")
    raise unknown_file(data)
