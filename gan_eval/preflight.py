"""Checks of what a command was given, run before any heavy import (no torch, no network).

A command's bad input must answer at once: a missing file, a malformed GENERATOR spec, an
unknown extractor, a ``--weights`` value that is not ``EXTRACTOR=PATH``, a missing weights file.
:mod:`gan_eval.cli` runs these (and :mod:`gan_eval.fileio`'s output-path checks) first, so each
such case exits 2 (3 for a missing weights file) in a fraction of the time ``import torch``
takes. The analyses check the same things again when they open their inputs (the API is used
without the CLI too): these functions only say earlier what would be said later.

Nothing here reads an image, imports a user's module or loads a network: a DATA string is
checked for existence and kind (:func:`check_data`), a GENERATOR for its syntax, file and kind
(:func:`gan_eval.generators.spec.check_generator`), a weights file for being where it is looked
for (:func:`gan_eval.weights.locate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from gan_eval import catalogue, weights
from gan_eval.errors import InputError
from gan_eval.gan.layout import CHECKPOINT_DIR, JSON_NAME, checkpoint_json
from gan_eval.generators.spec import GENERATOR_HELP, SpecKind, check_generator, classify

DATA_HELP = (
    "an image folder (identity = first-level subfolder), a .zip of images, an .npz/.npy array, "
    f"builtin:lfw-subset, or a generator: {GENERATOR_HELP}"
)
"""What a DATA string may be: image data or a GENERATOR."""


def check_data(data: str | None, option: str | None = None) -> None:
    """A DATA string (image data or a generator) names something that exists, of a kind
    gan-eval reads; ``None`` (not given) passes.

    ``builtin:NAME`` passes here (the table of built-ins lives with their loaders, which import
    torch; a wrong name is refused when it is opened). A GENERATOR is checked by
    :func:`~gan_eval.generators.spec.check_generator`.

    Raises:
        InputError: naming ``option`` (when given) and ``data``: no such file or folder, a
            refused pickle, a malformed or missing Python spec.
    """
    if data is None or data.startswith("builtin:"):
        return
    where = f"{option} {data}" if option else data
    if classify(data) is not None:
        try:
            check_generator(data)
        except InputError as exc:
            raise InputError(f"{option} {exc}" if option else str(exc)) from None
        return
    if not Path(data).expanduser().exists():
        raise InputError(f"{where}: no such file or folder; expected {DATA_HELP}")


def check_spec(spec: str | None, option: str | None = None) -> SpecKind | None:
    """A GENERATOR spec (checkpoint, ``py:``/``file.py:attr``, TorchScript, ONNX) is well formed
    and names a file that exists; returns its kind (``None`` when not given).
    :class:`InputError` naming ``option``."""
    if spec is None:
        return None
    try:
        return check_generator(spec)
    except InputError as exc:
        raise InputError(f"{option} {exc}" if option else str(exc)) from None


def data_for_external(spec: str, data: str | None) -> str:
    """The real faces an external generator is compared with: ``data`` (``--data``), which it
    needs, since it names no training data of its own (a gan-eval checkpoint does)."""
    if data is None:
        raise InputError(f"--data: {spec} is an external generator, which names no training "
                         "data; pass --data DATA (the real faces to compare with)")
    return data


def check_extractors(names: Iterable[str]) -> None:
    """Every name is a registered feature extractor (:data:`gan_eval.catalogue.EXTRACTORS`)."""
    for name in names:
        if name not in catalogue.EXTRACTORS:
            raise InputError(f"--extractor: unknown {name!r}; registered: "
                             f"{', '.join(catalogue.EXTRACTORS)}")


def check_face_extractor(name: str) -> None:
    """``name`` is a registered face network (an extractor spec with ``face=True``)."""
    spec = catalogue.EXTRACTORS.get(name)
    if spec is None or not spec.face:
        faces = ", ".join(n for n, s in catalogue.EXTRACTORS.items() if s.face)
        raise InputError(f"--face-extractor {name}: expected a face network, one of {faces}")


def weights_pairs(values: Sequence[str], inception_weights: Path | None = None
                  ) -> tuple[tuple[str, Path], ...]:
    """``--weights EXTRACTOR=PATH`` values as (extractor, path) pairs, each file checked for what
    can be told without torch (exists, not empty, not an HTML page or a plain pickle, the
    format its extractor reads: :func:`gan_eval.weights.file_problem`); ``--inception-weights``
    joins them as ``inception``.

    Raises:
        InputError: naming the value: not ``EXTRACTOR=PATH``, an unknown extractor, one
            extractor given two files, a file that cannot be its weights.
    """
    pairs: dict[str, Path] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or name not in catalogue.EXTRACTORS or not text:
            raise InputError(
                f"--weights {value!r}: expected EXTRACTOR=PATH (e.g. --weights "
                f"dinov2-vit-s14=dinov2_vits14_pretrain.pth) with EXTRACTOR one of "
                f"{', '.join(catalogue.EXTRACTORS)}")
        if name in pairs and pairs[name] != Path(text):
            raise InputError(f"--weights {name}= is given twice, with different files")
        pairs[name] = Path(text)
    if inception_weights is not None:
        if pairs.get("inception", inception_weights) != inception_weights:
            raise InputError(f"--weights inception={pairs['inception']} and --inception-weights "
                             f"{inception_weights} name different files; give one")
        pairs["inception"] = inception_weights
    for name, path in pairs.items():
        entry = catalogue.EXTRACTORS[name].weights
        if problem := weights.file_problem(path, entry.kind if entry else None):
            option = ("--inception-weights" if name == "inception" and path == inception_weights
                      else f"--weights {name}=PATH")
            expected = entry.expected if entry else "its weights file"
            raise InputError(f"{option}: {name} weights file {path} {problem}; expected "
                             f"{expected}")
    return tuple(pairs.items())


def check_weights_found(extractors: Iterable[str],
                        pairs: Sequence[tuple[str, Path]] = ()) -> None:
    """Each extractor that needs a pretrained weights file has one where
    :func:`gan_eval.weights.locate` looks (the ``pairs`` from :func:`weights_pairs`, the file's
    environment variable, the caches); nothing is read.

    Raises:
        MissingAssetError: a file is found nowhere (the message says how to get it; exit 3).
        InputError: the file's environment variable names a missing file.
    """
    explicit = dict(pairs)
    for name in dict.fromkeys(extractors):
        if name in weights.WEIGHTS:  # dlib-face's network ships in a package: no file
            weights.resolve(name, explicit.get(name))


def check_resumable(out: Path) -> None:
    """``train --resume``: ``out`` holds a checkpoint to continue."""
    json_path = checkpoint_json(out)
    if json_path is None or not json_path.is_file():
        raise InputError(f"--resume: {out / CHECKPOINT_DIR / JSON_NAME} does not exist; nothing "
                         "to resume (drop --resume to start a new run)")


def check_file(path: str | Path | None, option: str, expected: str) -> None:
    """An input file option names an existing file; ``None`` passes."""
    if path is None:
        return
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "no such file"
        raise InputError(f"{option} {file}: {what}; expected {expected}")
