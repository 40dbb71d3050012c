"""Loading external models (Python factories, TorchScript, ``torch.export``, ONNX) into one
calling convention.

Every loader returns a :class:`LoadedModel`: ``run(z, labels, truncation)`` runs the model on a
latent batch (float32 B×z_dim on the model's device) and returns what the model returns,
unchecked; the contract is checked by :mod:`gan_eval.generators.external`. What the model says
about itself (latent size, classes, whether it takes ψ, a fixed batch size) is read here, and the
sha256 of every file loaded is kept for provenance. The user's code — a Python spec's import,
its factory, every model's forward — runs contained (:mod:`gan_eval.generators.usercode`): its
errors and exits are :class:`InputError` s naming the spec (``name``: the GENERATOR as given, or
``--discriminator SPEC``).

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
import traceback
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
from gan_eval.generators.exported import read_exported
from gan_eval.generators.spec import (
    SpecKind,
    classify,
    damaged_archive,
    python_target,
    refuse_pickle,
    unknown_file,
)
from gan_eval.generators.usercode import contained, one_line

Z_DIM_ATTRS = ("z_dim", "nz", "latent_dim", "z_size")
"""Attributes that state a model's latent size, in the order they are read."""

TRUNCATION_KEYWORDS = ("truncation_psi", "truncation")
"""Keywords a model's call may take ψ under."""

METADATA_FILE = "gan_eval.json"
"""Optional extra file of a TorchScript or ``torch.export`` archive (``torch.jit.save(...,
_extra_files=…)``, ``torch.export.save(..., extra_files=…)``):
``{"z_dim": int, "classes": int}``."""


@dataclass
class LoadedModel:
    """A loaded generator or discriminator and what it says about itself.

    ``name`` names it in errors (the GENERATOR as given, or ``--discriminator SPEC``); ``role``
    is ``"generator"`` or ``"discriminator"``; ``call`` runs the model as loaded, :meth:`run`
    runs it contained.
    """

    kind: SpecKind
    call: Callable[[torch.Tensor, torch.Tensor | None, float | None], Any]
    name: str = ""
    role: str = "generator"
    module: nn.Module | None = None  # the torch module (None for ONNX and plain callables)
    files: dict[str, str] = field(default_factory=dict)  # absolute path → sha256
    weights_sha256: str | None = None  # sha256 of a Python module's state_dict (its weights)
    z_dim: int | None = None
    classes: int | None = None
    onehot: bool = False  # labels as one-hot float B×K instead of int64 indices
    truncation_keyword: str | None = None
    conditional: bool = False  # the model needs class labels (it says how many classes)
    takes_labels: bool = False  # the call accepts class labels (a second argument or input)
    static_batch: int | None = None  # ONNX / torch.export models with a fixed batch size
    user_files: tuple[str, ...] = ()  # the user's Python source files (for error locations)

    def run(self, x: torch.Tensor, labels: torch.Tensor | None = None,
            psi: float | None = None) -> Any:
        """The model's output on ``x`` (latents B×z_dim of a generator, images B×C×H×W of a
        discriminator), with the user's code contained: any error or exit of the model is an
        :class:`InputError` naming it and the input's shape."""
        what = "latents" if self.role == "generator" else "images"
        shape = "×".join(str(int(s)) for s in x.shape)
        with contained(self.name, f"calling the {self.role} on {what} {shape}",
                       files=self.user_files):
            return self.call(x, labels, psi)


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


def _import(data: str, name: str) -> tuple[Any, dict[str, str]]:
    """The attribute a Python spec names, and {module file: sha256}; the import runs contained
    (errors say "while importing FILE")."""
    module_name, path, attr = python_target(data)
    if path is not None:
        if not path.is_file():
            raise InputError(f"{name}: no such file {path}")
        folder = str(path.resolve().parent)
        if folder not in sys.path:  # the file's own imports of its neighbours must work
            sys.path.insert(0, folder)
        key = f"gan_eval_user_{abs(hash(str(path.resolve())))}_{path.stem}"
        spec = importlib.util.spec_from_file_location(key, path)
        if spec is None or spec.loader is None:
            raise InputError(f"{name}: {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        try:
            with contained(name, f"while importing {path.resolve()}", files=[str(path)],
                           argv=str(path), hold_output=True):
                spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(key, None)
            raise
    else:
        assert module_name is not None
        if "" not in sys.path and str(Path.cwd()) not in sys.path:
            sys.path.append(str(Path.cwd()))  # as `python -m` does, after installed code
        try:
            with contained(name, f"while importing {module_name}", argv=module_name,
                           hold_output=True):
                module = importlib.import_module(module_name)
        except InputError as exc:
            missing = exc.__cause__
            if isinstance(missing, ModuleNotFoundError) and missing.name is not None \
                    and module_name.startswith(missing.name):
                raise InputError(f"{name}: cannot import {module_name}: {missing} (it is "
                                 "imported as `import` would, the current directory on the "
                                 "path after installed packages)") from missing
            raise
    files: dict[str, str] = {}
    source_file = getattr(module, "__file__", None)
    if source_file and Path(source_file).is_file():
        files[str(Path(source_file).resolve())] = sha256_file(source_file)
    target: Any = module
    with contained(name, f"looking up {attr}", files=list(files)):  # (a module __getattr__)
        for part in attr.split("."):
            if not hasattr(target, part):
                where = module_name or str(path)
                raise InputError(f"{name}: {where} has no attribute {attr!r}")
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


def load_python(data: str, device: torch.device, *, role: str, name: str) -> LoadedModel:
    """A ``py:`` / ``file.py:attr`` spec: imports and runs the user's code (see the module doc
    of :mod:`gan_eval.generators.spec` for what ``attr`` may be)."""
    target, files = _import(data, name)
    user_files = tuple(files)
    attr = python_target(data)[2]
    obj: Any = target
    if not isinstance(target, nn.Module):
        if not callable(target):
            raise InputError(f"{name}: {type(target).__name__} object is not callable; expected "
                             f"an nn.Module or a factory returning the {role}")
        if _required_positional(target) == 0:  # a factory: call it once
            params = _parameters(target)
            kwargs = {"device": device} if "device" in params else {}
            with contained(name, f"calling the factory {attr}()", files=user_files, argv=attr):
                obj = target(**kwargs)
            if not callable(obj):
                raise InputError(f"{name}: the factory returned a {type(obj).__name__}, which is "
                                 f"not callable; expected an nn.Module or a callable {role}")
    model = LoadedModel(kind=SpecKind.PYTHON, call=lambda *a: None, name=name, role=role,
                        files=files, user_files=user_files)
    # what the model says about itself (its properties and state-dict hooks are its code too)
    with contained(name, f"reading the {role}'s attributes and weights", files=user_files):
        if isinstance(obj, nn.Module):
            obj = obj.to(device).eval().requires_grad_(False)
            model.module = obj
            model.weights_sha256 = state_sha256(obj)
        _read_attrs(obj, model)
        params = _parameters(obj.forward if isinstance(obj, nn.Module) else obj)
    keyword = next((k for k in TRUNCATION_KEYWORDS if k in params), None)
    model.truncation_keyword = keyword
    positional = [p for arg, p in params.items() if arg not in TRUNCATION_KEYWORDS
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


def _read_metadata(raw: str | bytes, model: LoadedModel) -> None:
    """``gan_eval.json`` of an archive: latent size and classes."""
    if not raw:
        return
    try:
        meta = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{model.name}: {METADATA_FILE} in the archive is not JSON "
                         f"({exc})") from exc
    if isinstance(meta, dict):
        model.z_dim = _positive_int(meta.get("z_dim")) or model.z_dim
        classes = _positive_int(meta.get("classes"))
        if classes is not None:
            model.classes, model.conditional = classes, True


def load_torchscript(data: str, device: torch.device, *, role: str, name: str) -> LoadedModel:
    """A ``torch.jit.save`` archive, loaded with ``torch.jit.load`` (never ``torch.load``)."""
    path = Path(data).expanduser()
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is "deprecated" upstream
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as exc:  # its last line says what; the whole text with --debug
        raise InputError(f"{name}: not a loadable TorchScript archive ({one_line(exc)})",
                         detail="".join(traceback.format_exception(exc))) from exc
    module = module.eval()
    model = LoadedModel(kind=SpecKind.TORCHSCRIPT, call=lambda *a: None, name=name, role=role,
                        module=module, files={str(path.resolve()): sha256_file(path)})
    _read_attrs(module, model)
    _read_metadata(extra.get(METADATA_FILE) or b"", model)
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


def load_exported(data: str, device: torch.device, *, role: str, name: str) -> LoadedModel:
    """A ``torch.export.save`` archive (``.pt2``), checked to run no code of its own before
    ``torch.export.load`` reads it (:mod:`gan_eval.generators.exported`). Its first input takes
    the latents (or images); an input named ``truncation``/``truncation_psi`` takes ψ, another
    the class labels. A program exported with a fixed batch size takes exactly that many rows."""
    path = Path(data).expanduser()
    program, extra = read_exported(path, name)
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    module = program.module().requires_grad_(False)  # (its train/eval mode is fixed at export)
    model = LoadedModel(kind=SpecKind.EXPORT, call=lambda *a: None, name=name, role=role,
                        module=module, files={str(path.resolve()): sha256_file(path)})
    inputs = list(program.graph_signature.user_inputs)
    shapes = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
    first = shapes.get(inputs[0]) if inputs else None
    if isinstance(first, torch.Tensor) and first.ndim in (2, 4):
        model.z_dim = _positive_int(first.shape[1]) if isinstance(first.shape[1], int) else None
        model.static_batch = (_positive_int(first.shape[0])
                              if isinstance(first.shape[0], int) else None)
    _read_metadata(extra.get(METADATA_FILE, ""), model)
    signature = program.module_call_graph[0].signature if program.module_call_graph else None
    names = list(signature.forward_arg_names or []) if signature is not None else inputs
    keyword = next((k for k in TRUNCATION_KEYWORDS if k in names), None)
    model.truncation_keyword = keyword
    model.takes_labels = len([n for n in names if n not in TRUNCATION_KEYWORDS]) >= 2
    model.conditional = model.conditional or model.takes_labels

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


def onnx_session(data: str, device: torch.device, *, name: str) -> Any:
    """An onnxruntime ``InferenceSession`` of the ONNX file ``data`` (CUDA first when ``device``
    is CUDA and onnxruntime has it). ``name`` begins the messages: MissingAssetError without
    onnxruntime, InputError when it cannot load the file."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingAssetError(
            f"{name}: ONNX models need onnxruntime, which is not installed; install it with "
            "`pip install 'gan-eval[onnx]'` (or `pip install onnxruntime`)") from exc
    path = Path(data).expanduser()
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), providers=providers)
    except Exception as exc:
        raise InputError(f"{name}: onnxruntime cannot load this model ({one_line(exc)})",
                         detail="".join(traceback.format_exception(exc))) from exc


def load_onnx(data: str, device: torch.device, *, role: str, name: str) -> LoadedModel:
    """An ONNX model run by onnxruntime: the first input takes the latents (B×z_dim), an input
    named ``truncation``/``truncation_psi``/``psi`` takes ψ, another input the class labels
    (int → B indices, float → one-hot B×K)."""
    session = onnx_session(data, device, name=name)
    path = Path(data).expanduser()
    inputs = session.get_inputs()
    if not inputs:
        raise InputError(f"{name}: the ONNX model has no inputs; expected latents B×z_dim")
    latent = inputs[0]
    psi_input = next((i for i in inputs[1:] if i.name.lower() in
                      (*TRUNCATION_KEYWORDS, "psi")), None)
    label_input = next((i for i in inputs[1:] if i is not psi_input), None)
    model = LoadedModel(kind=SpecKind.ONNX, call=lambda *a: None, name=name, role=role,
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


def load_model(data: str, device: torch.device, *, role: str = "generator",
               name: str | None = None) -> LoadedModel:
    """Load the external model ``data`` names; :class:`InputError` for pickles, unknown or
    damaged files and specs that cannot be loaded (a native checkpoint is not an external
    model). ``name`` names it in errors (default: ``data``; ``--discriminator SPEC`` for D)."""
    name = data if name is None else name
    kind = classify(data)
    if kind is SpecKind.PYTHON:
        return load_python(data, device, role=role, name=name)
    if kind is SpecKind.TORCHSCRIPT:
        return load_torchscript(data, device, role=role, name=name)
    if kind is SpecKind.EXPORT:
        return load_exported(data, device, role=role, name=name)
    if kind is SpecKind.ONNX:
        return load_onnx(data, device, role=role, name=name)
    if kind is SpecKind.PICKLE:
        raise refuse_pickle(name)
    if kind is SpecKind.DAMAGED:
        raise damaged_archive(name, data)
    if kind is None and not Path(data).expanduser().exists():
        raise InputError(f"{name}: no such file or folder")
    raise unknown_file(name)
