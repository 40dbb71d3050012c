"""``torch.export`` archives (``torch.export.save``, ``.pt2``) read without running code from them.

``torch.export.load`` trusts its file (torch 2.8 to 2.14: ``torch/export/pt2_archive/_package.py``,
``torch/_export/serde/serialize.py``, ``torch/export/_unlift.py``). Loading an archive runs:

- pickles: tensors saved as pickles (tensor subclasses, ``use_pickle`` in the weights/constants
  config) are read with ``torch.load(weights_only=False)``, torchbind objects with
  ``torch._C._pickle_load_obj``, "opaque" constants with ``pickle.loads``, and the weights of the
  legacy layout (``data/weights/<model>.pt``) and of the pre-2.8 archive format are unpickled;
- the sample inputs (``data/sample_inputs/<model>.pt``) with ``torch.load(weights_only=True)``,
  retried with ``weights_only=False`` when that fails;
- Python source: every symbolic shape expression (``expr_str``) goes through ``sympy.sympify``,
  which evaluates it; ``guards_code`` strings become source that ``ExportedProgram.module()``
  executes; parameter, buffer and constant names are pasted into the source FX generates;
- callables: a node's ``target`` may name any callable reachable from ``torch``, ``operator`` or
  ``math`` (``torch.load``, …), called when the program runs;
- native code: AOTInductor packages (``data/aotinductor/``) are shared libraries.

:func:`read_exported` reads the archive into memory once and checks it against all of that
before ``torch.export.load`` sees the same bytes: only the members a plain ``torch.export.save``
writes (raw tensor payloads, JSON, the sample inputs, extra files); no pickled payload; sample
inputs that load with ``weights_only=True``; a program whose operators are ``aten``/``prims``
overloads (no file operators) and a few ``operator`` functions, whose expressions are sympy
arithmetic of shape symbols, whose names are dotted identifiers, with tensor inputs only and no
guards code. Anything else is refused with an :class:`~gan_eval.errors.InputError` that names the
file and what it holds.
"""

from __future__ import annotations

import io
import json
import re
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from gan_eval.errors import InputError

MODEL = "model"
"""The program ``torch.export.save`` stores (``models/model.json``) and ``torch.export.load``
returns."""

_MEMBERS = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/model\.json|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
    r"|data/sample_inputs/model\.pt|extra/[A-Za-z0-9_.\-]+)")
"""Members (below the archive's root folder) of an archive ``torch.export.save`` writes for one
program without pickled payloads."""

_OLD_FORMAT = ("serialized_exported_program.json", "serialized_state_dict.pt")
"""Members of the format before torch 2.8 (its state dict is a pickle)."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_NAME_KEYS = frozenset({"name", "parameter_name", "buffer_name", "tensor_constant_name",
                        "user_input_name", "fqn", "as_name"})

_OPERATOR = re.compile(r"torch\.ops\.(aten|prims)\.(?P<op>[A-Za-z_][A-Za-z0-9_]*)\.[A-Za-z0-9_]+")
_FILE_OPERATORS = frozenset({"from_file", "save", "load"})
_PYTHON_TARGETS = frozenset(
    {f"_operator.{f}" for f in ("getitem", "add", "sub", "mul", "floordiv", "truediv", "mod",
                                "neg", "pos", "abs", "eq", "ne", "lt", "le", "gt", "ge",
                                "and_", "or_", "not_")}
    | {f"math.{f}" for f in ("ceil", "floor", "trunc")}
    | {f"torch.{f}" for f in ("sym_max", "sym_min", "sym_not", "sym_float", "sym_int",
                              "sym_sqrt", "sym_ite", "sym_sum")})
"""The plain-Python node targets of shape arithmetic (what export emits for symbolic sizes)."""

_INPUT_KINDS = frozenset({"parameter", "buffer", "tensor_constant", "user_input"})
_OUTPUT_KINDS = frozenset({"user_output"})

_EXPR_TOKEN = re.compile(
    r"\s+|\d+(\.\d*)?([eE][+-]?\d+)?|'[A-Za-z_][A-Za-z0-9_]*'|[A-Za-z_][A-Za-z0-9_]*"
    r"|==|!=|<=|>=|//|[-+*/%(),=<>&|~]")
_EXPR_NAMES = frozenset({
    "Symbol", "Integer", "Float", "Rational", "True", "False", "None", "oo", "int_oo",
    "positive", "negative", "integer", "nonnegative", "nonpositive", "real", "finite",
    "infinite", "zero", "nonzero", "Max", "Min", "Abs", "Mod", "floor", "ceiling", "Eq", "Ne",
    "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "FloorDiv", "ModularIndexing", "Where",
    "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift",
    "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
    "RoundDecimal", "ToFloat", "Identity"})
_SYMBOL = re.compile(r"[a-z]+[0-9]+")
MAX_EXPRESSION = 1000
"""Characters of one symbolic shape expression (longer ones are refused, not evaluated)."""


def _refuse(name: str, why: str) -> InputError:
    return InputError(f"{name}: this torch.export archive {why}; gan-eval loads only archives "
                      "that run no code of theirs (a plain torch.export.save of a module "
                      "without tensor subclasses, custom objects or AOTInductor packages)")


def safe_expression(text: str) -> bool:
    """True when ``text`` is sympy arithmetic that ``sympify`` may evaluate: numbers, quoted
    symbol names, the names in a fixed list (sympy constructors and assumptions, torch's shape
    functions), symbols such as ``s68``, and operators (no attribute access, subscripts,
    strings with other characters, ``**``, ``:`` or any other name)."""
    if len(text) > MAX_EXPRESSION:
        return False
    position = 0
    while position < len(text):
        match = _EXPR_TOKEN.match(text, position)
        if match is None:
            return False
        token = match.group()
        if _NAME.fullmatch(token) and token not in _EXPR_NAMES \
                and not _SYMBOL.fullmatch(token):
            return False
        position = match.end()
    return True


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    """(key, value) for every value under a key of a JSON tree, at any depth."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _check_spec(name: str, text: Any, what: str) -> None:
    """A pytree spec (``in_spec``/``out_spec``) made of tuples, lists, dicts with identifier keys
    and leaves only (other node types carry names that become Python source)."""
    try:
        protocol, tree = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise _refuse(name, f"has an unreadable {what}") from exc
    if protocol != 1:
        raise _refuse(name, f"has a {what} of protocol {protocol!r}")
    stack = [tree]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            raise _refuse(name, f"has a malformed {what}")
        kind = item.get("type")
        if kind not in (None, "builtins.tuple", "builtins.list", "builtins.dict"):
            raise _refuse(name, f"takes or returns a {kind} (only tensors, tuples, lists and "
                          "dicts)")
        if kind == "builtins.dict":
            keys = json.loads(item.get("context") or "[]")
            if not all(isinstance(k, str) and _NAME.fullmatch(k) for k in keys):
                raise _refuse(name, f"has dict keys {keys!r} in its {what}")
        stack.extend(item.get("children_spec") or [])


def _check_program(name: str, program: Any) -> None:
    if not isinstance(program, dict) or not isinstance(program.get("graph_module"), dict):
        raise _refuse(name, "holds no readable program")
    if program.get("guards_code"):
        raise _refuse(name, "carries guards code (Python source that loading would run)")
    module = program["graph_module"]
    if module.get("treespec_namedtuple_fields"):
        raise _refuse(name, "takes or returns named tuples")
    signature = module.get("signature") or {}
    for spec in signature.get("input_specs") or []:
        kinds = set(spec) if isinstance(spec, dict) else {"?"}
        if not kinds <= _INPUT_KINDS:
            raise _refuse(name, f"has inputs of kind {', '.join(sorted(kinds))} (only "
                          "tensors, parameters, buffers and tensor constants)")
        if "user_input" in spec and "as_tensor" not in (spec["user_input"].get("arg") or {}):
            raise _refuse(name, "takes an input that is not a tensor")
    for spec in signature.get("output_specs") or []:
        kinds = set(spec) if isinstance(spec, dict) else {"?"}
        if not kinds <= _OUTPUT_KINDS:
            raise _refuse(name, f"has outputs of kind {', '.join(sorted(kinds))} (a program "
                          "that changes its own buffers is not a generator; only tensor "
                          "outputs)")
    for key, value in _walk(program):
        if key == "target":
            if not isinstance(value, str):
                raise _refuse(name, "has a node without an operator name")
            operator = _OPERATOR.fullmatch(value)
            if operator is None and value not in _PYTHON_TARGETS:
                raise _refuse(name, f"calls {value!r} (only aten and prims operators)")
            if operator is not None and operator["op"] in _FILE_OPERATORS:
                raise _refuse(name, f"calls {value!r}, which touches files")
        elif key == "expr_str":
            if not isinstance(value, str) or not safe_expression(value):
                raise _refuse(name, f"has the shape expression {str(value)[:80]!r}, which is "
                              "not plain arithmetic of shape symbols")
        elif key in _NAME_KEYS and isinstance(value, str):
            allowed = _DOTTED.fullmatch(value) or (key == "fqn" and value == "")
            if not allowed:
                raise _refuse(name, f"has the name {value[:80]!r} ({key}), which is not a "
                              "dotted identifier")
        elif key in ("tensor_values", "sym_int_values", "sym_bool_values",
                     "sym_float_values", "range_constraints") and isinstance(value, dict):
            bad = [k for k in value if not _NAME.fullmatch(k)]
            if bad:
                raise _refuse(name, f"has the value name {bad[0][:80]!r}, which is not an "
                              "identifier")
        elif key in ("in_spec", "out_spec") and isinstance(value, str):
            _check_spec(name, value, key)
        elif key == "custom_obj_values" and value:
            raise _refuse(name, "holds custom (torchbind) objects, which are unpickled")


def _check_payloads(name: str, text: bytes, what: str, pattern: str) -> None:
    try:
        config = json.loads(text)
        entries = config["config"]
        if not isinstance(entries, dict):
            raise TypeError(type(entries).__name__)
    except (ValueError, KeyError, TypeError) as exc:
        raise _refuse(name, f"has an unreadable {what} config") from exc
    for fqn, meta in entries.items():
        if not isinstance(fqn, str) or not _DOTTED.fullmatch(fqn):
            raise _refuse(name, f"names a {what} {str(fqn)[:80]!r}, not a dotted identifier")
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise _refuse(name, f"stores the {what} {fqn} as a pickle")
        if not re.fullmatch(pattern, str(meta.get("path_name"))):
            raise _refuse(name, f"stores the {what} {fqn} in {meta.get('path_name')!r}")


def _members(name: str, archive: zipfile.ZipFile) -> dict[str, str]:
    """{member below the archive's root folder: full name}."""
    names = archive.namelist()
    if any(n.rsplit("/", 1)[-1] in _OLD_FORMAT for n in names):
        raise _refuse(name, "is of the format before torch 2.8, whose state dict is a pickle "
                      "(export it again with torch.export.save)")
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise _refuse(name, "has members outside one root folder")
    inner = {n.split("/", 1)[1]: n for n in names if not n.endswith("/")}
    unknown = sorted(m for m in inner if not _MEMBERS.fullmatch(m))
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise _refuse(name, f"holds {unknown[0]}{more}, which is not a plain program's "
                      "weights, constants or JSON (pickled objects, AOTInductor libraries and "
                      "other programs than 'model' are not read)")
    for needed in ("archive_format", "models/model.json",
                   "data/weights/model_weights_config.json",
                   "data/constants/model_constants_config.json"):
        if needed not in inner:
            raise _refuse(name, f"lacks {needed}")
    return inner


def _check_sample_inputs(name: str, data: bytes) -> None:
    """torch.export.load retries ``weights_only=False`` when ``weights_only=True`` fails: the
    same bytes must load here with ``weights_only=True`` (then they do there too)."""
    if not data:
        return
    try:
        loaded = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:
        raise _refuse(name, "has sample inputs that are not plain tensors (they would be "
                      "unpickled)") from exc
    if not isinstance(loaded, tuple | dict):
        raise _refuse(name, "has sample inputs that are not a tuple")


def read_exported(path: Path, name: str) -> tuple[Any, dict[str, str]]:
    """The ``ExportedProgram`` in the archive at ``path`` and its extra files {name: text}, after
    the checks of the module doc; :class:`InputError` naming it (``name``) otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inner = _members(name, archive)
            if archive.read(inner["archive_format"]).strip() != b"pt2":
                raise _refuse(name, "is not of the pt2 archive format")
            _check_payloads(name, archive.read(inner["data/weights/model_weights_config.json"]),
                            "weight", r"weight_\d+")
            _check_payloads(name, archive.read(
                inner["data/constants/model_constants_config.json"]), "constant", r"tensor_\d+")
            try:
                program = json.loads(archive.read(inner["models/model.json"]))
            except ValueError as exc:
                raise _refuse(name, "holds a program that is not JSON") from exc
            _check_program(name, program)
            if "data/sample_inputs/model.pt" in inner:
                _check_sample_inputs(name, archive.read(inner["data/sample_inputs/model.pt"]))
    except zipfile.BadZipFile as exc:
        raise InputError(f"{name}: truncated or damaged archive {path} ({exc})") from exc
    extra: dict[str, str] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "saved files may not be usable in newer versions"
            program_out = torch.export.load(io.BytesIO(data), extra_files=extra)
    except Exception as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise InputError(f"{name}: torch.export.load cannot read this archive "
                         f"({type(exc).__name__}: {lines[-1] if lines else ''})",
                         detail=str(exc)) from exc
    return program_out, {k: str(v) for k, v in extra.items()}
