"""``open_images(DATA)``: image data (folders, zips, arrays, built-ins) as an :class:`ImageSource`.

Generators are opened one layer up (:mod:`gan_eval.generators`);
:func:`gan_eval.sources.open_source` is the entry point that takes any DATA string.
"""

from __future__ import annotations

from pathlib import Path

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

IMAGES_HELP = (
    "an image folder (identity = first-level subfolder), a .zip of images, an .npz/.npy array, "
    "or builtin:lfw-subset"
)


def open_images(data: str, *, resolution: int | None = None, expected: str = IMAGES_HELP
                ) -> ImageSource:
    """Open image data (see :data:`IMAGES_HELP`) as a source of uint8 B×3×H×W batches.

    ``resolution`` resizes every image to a square of that size (see
    :data:`gan_eval.data.convert.RESIZE_FILTER`); without it, mixed sizes are an error. Raises
    :class:`InputError` naming ``data`` when it cannot be used (``expected`` says what would be).
    """
    if resolution is not None and not 1 <= resolution <= 4096:
        raise InputError(f"--resolution: {resolution} is out of range; expected 1..4096 pixels")
    if data.startswith("builtin:"):
        return open_builtin(data.removeprefix("builtin:")).with_resolution(resolution)
    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"{data}: no such file or folder; expected {expected}")
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
    raise InputError(f"{data}: unsupported file type {suffix or '(none)'}; expected {expected}")


def inspect_images(source: ImageSource, data: str) -> SourceInfo:
    """Decode every image of ``source`` (opened from ``data``), collecting what is found for
    ``gan-eval inspect``.

    Corrupt or truncated images are reported as fatal problems rather than raised, so that the
    report lists them all; the caller decides the exit code.
    """
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
