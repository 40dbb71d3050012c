"""``open_source(DATA)``: the one entry point from a DATA string to an :class:`ImageSource`."""

from __future__ import annotations

from pathlib import Path

import torch

from gan_eval.data.arrays import open_array_file
from gan_eval.data.builtin import open_builtin
from gan_eval.data.files import (
    CorruptImageError,
    FolderSource,
    ZipSource,
    _FileSource,
    decode_image,
)
from gan_eval.data.source import ImageSource, Problem, SourceInfo
from gan_eval.errors import InputError

PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin"})

DATA_HELP = (
    "an image folder (identity = first-level subfolder), a .zip of images, an .npz/.npy array, "
    "a generator checkpoint, or builtin:lfw-subset"
)


def open_source(
    data: str,
    *,
    resolution: int | None = None,
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> ImageSource:
    """Open a DATA string (see ``DATA_HELP``) as a source of uint8 B×3×H×W batches.

    ``resolution`` resizes every image to a square of that size (see
    :data:`gan_eval.data.convert.RESIZE_FILTER`); without it, mixed sizes are an error.
    ``n``, ``seed`` and ``device`` apply to generator checkpoints: how many images to sample,
    from which seed, on which device. Raises :class:`InputError` naming ``data`` when it cannot
    be used.
    """
    if resolution is not None and not 1 <= resolution <= 4096:
        raise InputError(f"--resolution: {resolution} is out of range; expected 1..4096 pixels")
    if data.startswith("builtin:"):
        return open_builtin(data.removeprefix("builtin:")).with_resolution(resolution)
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"{data}: no such file or folder; expected {DATA_HELP}")

    from gan_eval.gan.checkpoint import is_checkpoint

    if is_checkpoint(path):
        from gan_eval.gan.source import open_checkpoint_source

        return open_checkpoint_source(path, n=n, seed=seed, device=device).with_resolution(
            resolution
        )
    if path.is_dir():
        folder = FolderSource(path, data)
        if resolution is None:
            folder.require_single_resolution()
        return folder.with_resolution(resolution)
    suffix = path.suffix.lower()
    if suffix == ".zip":
        archive = ZipSource(path, data)
        if resolution is None:
            archive.require_single_resolution()
        return archive.with_resolution(resolution)
    if suffix in (".npz", ".npy"):
        return open_array_file(path, data).with_resolution(resolution)
    if suffix in PICKLE_SUFFIXES:
        raise InputError(
            f"{data}: pickle-based files ({suffix}) are never loaded (unpickling can run code); "
            "gan-eval checkpoints are safetensors + JSON written by `gan-eval train`"
        )
    raise InputError(f"{data}: unsupported file type {suffix or '(none)'}; expected {DATA_HELP}")


def inspect_source(data: str, *, resolution: int | None = None) -> SourceInfo:
    """Open ``data`` and decode every image, collecting what is found for ``gan-eval inspect``.

    Corrupt or truncated images are reported as fatal problems rather than raised, so that the
    report lists them all; the caller decides the exit code.
    """
    source = open_source(data, resolution=resolution)
    problems = list(source.problems)
    if isinstance(source, _FileSource):
        resolutions = dict(source.resolutions)
        channels = dict(source.channel_counts)
        for name in source.names:
            what = source._display(name)
            try:
                decode_image(source._read_bytes(name), what=what)
            except CorruptImageError as exc:
                problems.append(Problem(exc.path, exc.reason, fatal=True))
    else:
        resolutions = {source.resolution: len(source)}
        channels = {int(getattr(source, "source_channels", 3)): len(source)}
    return SourceInfo(
        data=data,
        kind=source.kind,
        count=len(source),
        resolutions=resolutions,
        channels=channels,
        identities=None if source.identities is None else len(source.identities),
        content_hash=source.content_hash(),
        problems=problems,
    )
