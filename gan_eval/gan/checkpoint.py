"""Checkpoints: every tensor in one safetensors file, everything else in ``checkpoint.json``.

Layout of a run folder's checkpoint::

    RUN_DIR/checkpoint/
        checkpoint.json                 schema, task, step, config, model spec, data hash,
                                        versions, the state file's name and sha256 (and, for
                                        a restoration GAN, the degradations it trained on)
        state-00000300.safetensors      g.*, d.*, g_ema.* (state dicts), opt_g.* / opt_d.*
                                        (Adam states flattened), rng.* (uint8 RNG states)

Atomicity: the state file is written under a new, step-numbered name (temp file + os.replace),
then ``checkpoint.json`` is replaced atomically, then older state files are deleted. The JSON is
the commit record: at every instant it names a complete state file whose sha256 it holds, so a
crash never leaves a half-written checkpoint that would be taken as valid, and the previous
checkpoint stays usable until the new one is committed.

``task`` says what the networks do: ``generation`` (a DCGAN: :class:`ModelSpec`; also what a
checkpoint without the field is) or ``restoration`` (a pix2pix U-Net and PatchGAN:
:class:`RestorationSpec`). :func:`load_checkpoint` opens the task its caller can use and refuses
the other with a message that says what to do with it.

Loading never unpickles: safetensors and JSON only; ``.pt/.pth/.pkl/.ckpt`` paths are refused.
Every load checks the JSON schema, the sha256 of the state file, and the key set and shapes of the
tensor groups it needs against freshly built models; anything else raises :class:`InputError`
naming the file.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar, overload

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from gan_eval.errors import InputError
from gan_eval.fileio import (
    TEMP_SUFFIX,
    atomic_path,
    atomic_write_text,
    fsync_dir,
    sha256_file,
    stale_temps,
)
from gan_eval.gan.layout import (
    CHECKPOINT_DIR,
    JSON_NAME,
    checkpoint_json,
    state_file_name,
)
from gan_eval.gan.layout import (
    is_checkpoint as is_checkpoint,  # re-exported: gan_eval.gan.checkpoint.is_checkpoint
)
from gan_eval.gan.models import ModelSpec
from gan_eval.gan.pix2pix import RestorationSpec
from gan_eval.gan.task_names import TaskName

SCHEMA = "gan-eval/checkpoint/v1"
MODULE_GROUPS = ("g", "d", "g_ema")
OPTIMIZER_GROUPS = ("opt_g", "opt_d")
ADAM_STATE_NAMES = ("exp_avg", "exp_avg_sq", "step")
_STATE_FILE = re.compile(r"state-\d{8}\.safetensors")
_LEGACY_TEMP = re.compile(r"\.(state-\d{8}\.safetensors|checkpoint\.json)\.[a-z0-9_]{6,}\.tmp")
_PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar"})


def package_versions() -> dict[str, str]:
    """Versions recorded in each checkpoint (provenance)."""
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("gan-eval", "safetensors", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def canonical_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """``tensors`` (CPU, contiguous) and ``metadata`` as safetensors bytes that depend on their
    content only.

    safetensors writes its ``__metadata__`` in hash-map order, which changes from process to
    process; here the header is rewritten with the metadata keys sorted and the tensor entries
    in data order (the data section, laid out by safetensors by dtype and name, is kept as it
    is), padded with spaces to a multiple of 8 bytes as safetensors pads it. Any safetensors
    reader reads the result.
    """
    raw = save(tensors, metadata=metadata)
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    meta = header.pop("__metadata__", {})
    entries = sorted(header.items(), key=lambda item: (item[1]["data_offsets"], item[0]))
    text = json.dumps({"__metadata__": dict(sorted(meta.items())), **dict(entries)},
                      separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + size:]


def save_file(tensors: dict[str, torch.Tensor], filename: str,
              metadata: dict[str, str] | None = None) -> None:
    """``safetensors.torch.save_file`` with the canonical header of
    :func:`canonical_safetensors` (the same bytes for the same tensors and metadata)."""
    Path(filename).write_bytes(canonical_safetensors(tensors, metadata or {}))


def write_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and ``meta`` as a checkpoint in ``folder`` atomically; returns the JSON.

    ``meta`` must hold ``step``; ``schema``, ``state_file``, ``state_sha256`` and ``versions``
    are added. Tensors are copied to CPU and made contiguous. The state file's bytes depend on
    the tensors and the step only (:func:`canonical_safetensors`), so identical weights get the
    same ``state_sha256`` in any process.
    """
    folder.mkdir(parents=True, exist_ok=True)
    step = int(meta["step"])
    name = state_file_name(step)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(folder / name) as tmp:
        save_file(cpu, str(tmp), metadata={"format": "pt", "schema": SCHEMA, "step": str(step)})
        digest = sha256_file(tmp)
    record = {"schema": SCHEMA, **meta, "state_file": name, "state_sha256": digest,
              "versions": package_versions()}
    json_path = folder / JSON_NAME
    atomic_write_text(json_path, json.dumps(record, indent=2, sort_keys=False) + "\n")
    # only now is the old state unreferenced
    for old in folder.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    clean_stale_checkpoint_temps(folder)
    fsync_dir(folder)
    return json_path


def stale_checkpoint_temps(folder: Path) -> list[Path]:
    """Temporary files that killed checkpoint writes left in ``folder`` (state files and JSON).

    A kill between a state file's temp creation and its rename leaves
    ``.state-XXXXXXXX.safetensors.<pid>-<random>.tmp`` (16 MB and more); the next write has
    another step number, so only a sweep of the folder finds it. Temps of a live writer are
    kept; those named without a pid (gan-eval before 0.1.1) are always stale.
    """
    if not folder.is_dir():
        return []
    stale = [p for p in stale_temps(folder) if _is_checkpoint_temp(p.name)]
    legacy = [p for p in folder.iterdir() if _LEGACY_TEMP.fullmatch(p.name)]
    return sorted(set(stale) | set(legacy))


def _is_checkpoint_temp(name: str) -> bool:
    return name.startswith((".state-", f".{JSON_NAME}.")) and name.endswith(TEMP_SUFFIX)


def clean_stale_checkpoint_temps(folder: Path) -> int:
    """Remove :func:`stale_checkpoint_temps` (call after a committed write); returns how many."""
    stale = stale_checkpoint_temps(folder)
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


SpecT = TypeVar("SpecT", ModelSpec, RestorationSpec)

SPEC_TYPES: dict[TaskName, type[ModelSpec] | type[RestorationSpec]] = {
    TaskName.GENERATION: ModelSpec, TaskName.RESTORATION: RestorationSpec,
}
"""The model spec of each task's checkpoints."""


@dataclass(frozen=True)
class Checkpoint(Generic[SpecT]):
    """A validated checkpoint on disk: its metadata, and lazy access to its tensors."""

    json_path: Path
    state_path: Path
    meta: dict[str, Any]
    spec: SpecT

    @property
    def task(self) -> TaskName:
        """What the networks do (``generation`` for checkpoints written before the field)."""
        return TaskName(self.meta.get("task", TaskName.GENERATION))

    @property
    def folder(self) -> Path:
        return self.json_path.parent

    @property
    def step(self) -> int:
        """Training steps done when it was written."""
        return int(self.meta["step"])

    def training_data(self, option: str) -> str:
        """The DATA string the run trained on; :class:`InputError` naming the file and ``option``
        (how to give the data instead) when the checkpoint names none."""
        data = self.meta.get("data", {}).get("data") or self.meta.get("config", {}).get("data")
        if not isinstance(data, str):
            raise InputError(f"{self.json_path}: names no training data; pass {option} DATA")
        return data

    def tensors(self, group: str) -> dict[str, torch.Tensor]:
        """Tensors under ``group.`` (prefix removed), on CPU: e.g. ``tensors("g_ema")``."""
        prefix = group + "."
        with _open_state(self.state_path) as handle:
            keys = handle.keys()
            return {k[len(prefix):]: handle.get_tensor(k) for k in keys if k.startswith(prefix)}

    def optimizer_state(self, group: str) -> dict[int, dict[str, torch.Tensor]]:
        """Adam per-parameter state ``{param_index: {exp_avg, exp_avg_sq, step}}``."""
        state: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in self.tensors(group).items():
            _, index, name = key.split(".")
            state.setdefault(int(index), {})[name] = value
        return state


class _StateHandle:
    """Context manager over safe_open that turns parse errors into :class:`InputError`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Any:
        try:
            self._cm = safe_open(str(self.path), framework="pt", device="cpu")
            return self._cm.__enter__()
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputError(f"{self.path}: not a readable safetensors file ({exc})") from exc

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


def _open_state(path: Path) -> _StateHandle:
    return _StateHandle(path)


def _fail(path: Path, what: str) -> InputError:
    return InputError(f"{path}: {what}; expected a gan-eval checkpoint written by `gan-eval train`")


def _read_json(json_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(json_path, f"cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise _fail(json_path, f"is not valid JSON ({exc}); the file may be truncated") from exc
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else type(meta).__name__
        raise _fail(json_path, f"schema is {found!r}, not {SCHEMA!r}")
    types: dict[str, type | tuple[type, ...]] = {
        "step": int, "model": dict, "config": dict, "state_file": str, "state_sha256": str,
        "data": dict,
    }
    for field, kind in types.items():
        if not isinstance(meta.get(field), kind) or isinstance(meta.get(field), bool):
            raise _fail(json_path, f"field {field!r} is missing or not a {kind}")
    if meta["step"] < 0:
        raise _fail(json_path, f"field 'step' is {meta['step']}; expected an integer >= 0")
    if not _STATE_FILE.fullmatch(meta["state_file"]):
        raise _fail(json_path, f"state_file {meta['state_file']!r} is not a state file name")
    if not re.fullmatch(r"[0-9a-f]{64}", meta["state_sha256"]):
        raise _fail(json_path, "state_sha256 is not a sha256 hex digest")
    task = meta.get("task", TaskName.GENERATION.value)
    if not isinstance(task, str) or task not in set(TaskName):
        raise _fail(json_path, f"field 'task' is {task!r}; expected one of "
                               f"{', '.join(map(repr, (t.value for t in TaskName)))}")
    return meta


def wrong_task(json_path: Path, found: TaskName, wanted: TaskName) -> InputError:
    """The refusal of a checkpoint of task ``found`` where ``wanted`` is needed: it says what
    the checkpoint is for."""
    if found is TaskName.RESTORATION:
        return InputError(f"{json_path}: a restoration checkpoint restores images; use gan-eval "
                          "restoration MODEL --data DATA to audit it (it does not generate "
                          "faces, so it cannot be sampled, evaluated or attacked as a "
                          "generator)")
    return InputError(f"{json_path}: a generation (DCGAN) checkpoint makes faces from latents "
                      f"and restores nothing; a {wanted.value} model is trained with gan-eval "
                      f"train --task {wanted.value}")


def _expected_shapes(spec: ModelSpec | RestorationSpec
                     ) -> dict[str, dict[str, tuple[torch.Size, torch.dtype]]]:
    """Key → (shape, dtype) of each module group, from models built on the meta device."""
    with torch.device("meta"):
        g, d = spec.build()
    shapes = {
        "g": {k: (v.shape, v.dtype) for k, v in g.state_dict().items()},
        "d": {k: (v.shape, v.dtype) for k, v in d.state_dict().items()},
    }
    shapes["g_ema"] = shapes["g"]
    shapes["opt_g"] = {str(i): (p.shape, p.dtype) for i, p in enumerate(g.parameters())}
    shapes["opt_d"] = {str(i): (p.shape, p.dtype) for i, p in enumerate(d.parameters())}
    return shapes


def _check_groups(state_path: Path, spec: ModelSpec | RestorationSpec,
                  groups: Iterable[str]) -> None:
    expected = _expected_shapes(spec)
    with _open_state(state_path) as handle:
        keys = handle.keys()
        stored = {k: (tuple(handle.get_slice(k).get_shape()), handle.get_slice(k).get_dtype())
                  for k in keys}
    dtype_names = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}
    for group in groups:
        prefix = group + "."
        have = {k[len(prefix):]: v for k, v in stored.items() if k.startswith(prefix)}
        if group in MODULE_GROUPS:
            want = expected[group]
            missing = sorted(set(want) - set(have))
            extra = sorted(set(have) - set(want))
            if missing or extra:
                listing = ", ".join([f"missing {prefix}{k}" for k in missing[:3]]
                                    + [f"unexpected {prefix}{k}" for k in extra[:3]])
                raise _fail(state_path, f"tensors do not match the model in checkpoint.json "
                                        f"({listing})")
            for key, (shape, dtype) in want.items():
                got_shape, got_dtype = have[key]
                if got_shape != tuple(shape) or got_dtype != dtype_names.get(dtype, got_dtype):
                    raise _fail(state_path, f"{prefix}{key} has shape {list(got_shape)} "
                                            f"{got_dtype}, the model needs {list(shape)} {dtype}")
        else:  # optimizer: {index}.{exp_avg|exp_avg_sq|step}; parameters never stepped are absent
            params = expected[group]
            by_index: dict[str, set[str]] = {}
            for key, (got_shape, _) in have.items():
                parts = key.split(".")
                if len(parts) != 3 or parts[0] != "state" or parts[1] not in params \
                        or parts[2] not in ADAM_STATE_NAMES:
                    raise _fail(state_path, f"unexpected optimizer tensor {prefix}{key}")
                want_shape = () if parts[2] == "step" else tuple(params[parts[1]][0])
                if got_shape != want_shape:
                    raise _fail(state_path, f"{prefix}{key} has shape {list(got_shape)}, "
                                            f"the model needs {list(want_shape)}")
                by_index.setdefault(parts[1], set()).add(parts[2])
            for index, names in by_index.items():
                if names != set(ADAM_STATE_NAMES):
                    raise _fail(state_path, f"{prefix}state.{index} lacks "
                                            f"{sorted(set(ADAM_STATE_NAMES) - names)}")


@overload
def load_checkpoint(path: Path | str, *, groups: Iterable[str] = ...,
                    task: Literal[TaskName.GENERATION] = ...) -> Checkpoint[ModelSpec]: ...
@overload
def load_checkpoint(path: Path | str, *, groups: Iterable[str] = ...,
                    task: Literal[TaskName.RESTORATION]) -> Checkpoint[RestorationSpec]: ...
@overload
def load_checkpoint(path: Path | str, *, groups: Iterable[str] = ...,
                    task: TaskName | None) -> Checkpoint[Any]: ...


def load_checkpoint(path: Path | str, *, groups: Iterable[str] = ("g_ema",),
                    task: TaskName | None = TaskName.GENERATION) -> Checkpoint[Any]:
    """Open and validate a checkpoint; ``groups`` are the tensor groups that must be complete.

    ``path``: a checkpoint folder, a run folder holding ``checkpoint/``, the ``checkpoint.json``
    or its state file. ``task``: the task the caller can use (None: either); a checkpoint of
    another task is refused with a message that says what it is for (:func:`wrong_task`).
    Raises :class:`InputError` naming the offending file when the path is a pickle, the JSON is
    missing, truncated or foreign, the state file is missing, truncated, altered (sha256) or
    lacks tensors / has wrong shapes for the groups asked for.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise InputError(
            f"{path}: pickle-based checkpoints ({path.suffix}) are never loaded (unpickling can "
            "run code); gan-eval checkpoints are safetensors + JSON written by `gan-eval train`"
        )
    if not path.exists():
        raise InputError(f"{path}: no such checkpoint file or folder")
    json_path = checkpoint_json(path)
    if json_path is None:
        raise _fail(path, f"no {JSON_NAME} in it or in {path / CHECKPOINT_DIR}")
    if not json_path.is_file():
        raise _fail(path, f"no {JSON_NAME} beside it, so it is not a gan-eval checkpoint")
    meta = _read_json(json_path)
    found = TaskName(meta.get("task", TaskName.GENERATION))
    if task is not None and found is not TaskName(task):
        raise wrong_task(json_path, found, TaskName(task))
    try:
        spec = SPEC_TYPES[found].from_json(meta["model"])
    except (TypeError, ValueError) as exc:
        raise _fail(json_path, f"model spec is not valid: {exc}") from exc
    state_path = json_path.parent / meta["state_file"]
    if path.suffix == ".safetensors" and path.resolve() != state_path.resolve():
        raise _fail(path, f"{JSON_NAME} beside it names {meta['state_file']} as its state, not "
                          "this file")
    if not state_path.is_file():
        raise _fail(state_path, f"state file named by {json_path} is missing")
    digest = hashlib.sha256()
    with open(state_path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != meta["state_sha256"]:
        raise _fail(state_path, f"sha256 differs from the one in {JSON_NAME}: the file is "
                                "truncated or was changed after it was written")
    _check_groups(state_path, spec, groups)
    return Checkpoint(json_path=json_path, state_path=state_path, meta=meta, spec=spec)
