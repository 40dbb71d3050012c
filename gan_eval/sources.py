"""DATA strings → :class:`ImageSource`: the one place that opens anything a command reads.

A DATA string names image data (:mod:`gan_eval.data`: an image folder, a .zip, an .npz/.npy
array, ``builtin:NAME``) or a GENERATOR (:mod:`gan_eval.generators`: sampled on the fly).
:func:`as_source` is how every analysis accepts "a DATA string or an already opened source";
:func:`reopen` is how a report opens a source again from the record a results file holds
(:meth:`ImageSource.record`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gan_eval.data import ImageSource, SourceInfo, inspect_images, open_images
from gan_eval.errors import GanEvalError, InputError
from gan_eval.generators import GeneratorOptions, is_generator, open_generator
from gan_eval.preflight import DATA_HELP


def open_source(
    data: str,
    *,
    resolution: int | None = None,
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    options: GeneratorOptions | None = None,
    batch_size: int | None = None,
) -> ImageSource:
    """Open a DATA string (see :data:`DATA_HELP`) as a source of uint8 B×3×H×W batches.

    ``resolution`` resizes every image to a square of that size (see
    :data:`gan_eval.data.convert.RESIZE_FILTER`); without it, mixed sizes are an error.
    ``n``, ``seed``, ``device``, ``options`` (an external model's contract:
    :class:`~gan_eval.generators.GeneratorOptions`) and ``batch_size`` (latents per call of an
    external generator) apply to generators: how many images to sample, from which seed, on
    which device. Raises :class:`InputError` naming ``data`` when it cannot be used.
    """
    if not isinstance(data, str):
        raise InputError(f"expected a DATA string, got {type(data).__name__}")
    if resolution is not None and not 1 <= resolution <= 4096:
        raise InputError(f"--resolution: {resolution} is out of range; expected 1..4096 pixels")
    if is_generator(data):
        return open_generator(data, n=n, seed=seed, device=device, options=options,
                              batch_size=batch_size).with_resolution(resolution)
    if options is not None and not options.is_default():
        raise InputError(f"{data}: generator options (--z-dim, --truncation, --classes, "
                         "--labels, --output-range, --discriminator, --allow-nondeterministic) "
                         "given for image data")
    return open_images(data, resolution=resolution, expected=DATA_HELP)


def as_source(
    data: str | ImageSource,
    option: str,
    *,
    resolution: int | None = None,
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    options: GeneratorOptions | None = None,
    batch_size: int | None = None,
) -> ImageSource:
    """``data`` itself when it is an opened source, else :func:`open_source` of it; ``option``
    names the argument in errors (e.g. ``--reference``)."""
    if isinstance(data, ImageSource):
        return data
    if not isinstance(data, str):
        raise InputError(f"{option}: expected a DATA string or an ImageSource, got "
                         f"{type(data).__name__}")
    return open_source(data, resolution=resolution, n=n, seed=seed, device=device,
                       options=options, batch_size=batch_size)


def inspect_source(data: str, *, resolution: int | None = None) -> SourceInfo:
    """What ``gan-eval inspect`` reports about ``data``: count, sizes, channels, identities,
    content hash and problems (every image decoded; corrupt ones listed, not raised)."""
    return inspect_images(open_source(data, resolution=resolution), data)


def _inside(data: str, folder: Path) -> bool:
    """True for a built-in dataset or a path under ``folder``."""
    if data.startswith("builtin:"):
        return True
    return Path(data).expanduser().resolve().is_relative_to(folder.resolve())


@dataclass(frozen=True)
class Reopened:
    """A source named in a results JSON, reopened; ``source`` is None with ``reason`` when not."""

    source: ImageSource | None
    reason: str = ""


def reopen(
    record: dict[str, Any], base: Path | None = None, *, seed: int = 0,
    device: str | torch.device | None = "cpu", confine_to: Path | None = None,
) -> Reopened:
    """Open a source record (:meth:`ImageSource.record`) as the run did and check its content
    hash.

    ``record["relative"]``, when present, is the path relative to ``base`` (tried when ``data``
    itself is gone, e.g. a report folder copied elsewhere with its run). ``seed`` is used for a
    generator whose record does not carry its own; an external generator is reopened with the
    options its record holds (``generator.options``). ``confine_to``: for a record from an
    untrusted file, a path outside this folder is opened only when the record names the content
    hash it must have.
    """
    data = record.get("data")
    if not isinstance(data, str):
        return Reopened(None, "the results name no source")
    candidates = [data]
    if base is not None and isinstance(record.get("relative"), str):
        candidates.append(str(base / record["relative"]))
    generator = record.get("generator")
    options = (GeneratorOptions.from_json(generator.get("options"))
               if isinstance(generator, dict) else None)
    batch = generator.get("batch_size") if isinstance(generator, dict) else None
    batch = batch if isinstance(batch, int) and not isinstance(batch, bool) and batch > 0 \
        else None
    reason = ""
    for candidate in candidates:
        if confine_to is not None and not record.get("content_hash") \
                and not _inside(candidate, confine_to):
            reason = reason or (f"{candidate} lies outside {confine_to} and the results give no "
                                "content hash to check it against; not opened")
            continue
        try:
            source = open_source(candidate, resolution=record.get("resize"), n=record.get("n"),
                                 seed=int(record.get("seed", seed)), device=device,
                                 options=options, batch_size=batch)
        except GanEvalError as exc:
            reason = reason or f"{data} cannot be opened now ({exc})"
            continue
        if isinstance(record.get("head"), int):
            source = source.head(record["head"])
        expected = record.get("content_hash")
        if expected and source.content_hash() != expected:
            return Reopened(None, f"{candidate} has changed since the run (content hash differs)")
        return Reopened(source)
    return Reopened(None, reason)
