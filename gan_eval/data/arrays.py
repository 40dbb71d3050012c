"""Images stored as a NumPy array in an .npy or .npz file.

Accepted layouts are those of :func:`gan_eval.data.convert.batch_to_nchw3`. In an .npz, the images
are the array named ``images`` (or ``x``, or the only array); an int array ``labels`` of the same
length, when present, gives identity labels.

Untrusted sizes: every array's header (shape × dtype) is checked against the bytes that really
hold it (the .npy file's size; the .npz member's size, itself bounded by the compression-ratio
limit of :class:`gan_eval.data.files.ReadLimits`) before NumPy allocates anything, so a 100-byte
file cannot claim 931 GiB. Object arrays are refused (they would need unpickling).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import IO

import numpy as np
import torch
from numpy.lib import format as npformat

from gan_eval.data.convert import batch_to_nchw3
from gan_eval.data.files import (
    CorruptImageError,
    display_name,
    member_problem,
    open_zip,
    read_limits,
)
from gan_eval.data.source import ArraySource
from gan_eval.errors import InputError

_IMAGE_KEYS = ("images", "x", "arr_0")


def _header(handle: IO[bytes], what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes of data) from an .npy header; InputError naming ``what``."""
    try:
        version = npformat.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = npformat.read_array_header_1_0(handle, max_header_size=100_000)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = npformat.read_array_header_2_0(handle, max_header_size=100_000)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except InputError:
        raise
    except Exception as exc:  # numpy's header parser raises several types on hostile bytes
        raise InputError(f"{what}: not a readable NumPy array header "
                         f"({type(exc).__name__}: {exc})") from exc
    if dtype.hasobject:
        raise InputError(f"{what}: holds Python objects (dtype {dtype}); such arrays are never "
                         "loaded (unpickling can run code); save images as uint8 or float")
    if any(d < 0 for d in shape):
        raise InputError(f"{what}: header shape {shape} is invalid")
    return tuple(shape), dtype, math.prod(shape) * dtype.itemsize


def _check_claim(claimed: int, available: int, shape: tuple[int, ...], dtype: np.dtype,
                 what: str) -> None:
    if claimed > available:
        raise InputError(
            f"{what}: the header claims an array of shape {shape} {dtype} ({claimed:,} bytes) "
            f"but only {available:,} bytes follow it: the file is truncated or forged"
        )


def _check_npy(path: Path) -> None:
    """Refuse an .npy whose header claims more data than the file holds."""
    try:
        with open(path, "rb") as handle:
            shape, dtype, claimed = _header(handle, display_name(str(path)))
            available = path.stat().st_size - handle.tell()
    except OSError as exc:
        raise InputError(f"{display_name(str(path))}: cannot be read ({exc.strerror or exc})"
                         ) from exc
    _check_claim(claimed, available, shape, dtype, display_name(str(path)))


def _check_npz(path: Path) -> list[str]:
    """Check every member of an .npz before NumPy reads any; returns the array names."""
    shown = display_name(str(path))
    limits = read_limits()
    names: list[str] = []
    with open_zip(path) as archive:
        for info in archive.infolist():
            what = f"{shown}:{display_name(info.filename)}"
            if not info.filename.endswith(".npy"):
                continue  # np.load ignores other members
            why = member_problem(info, limits, max_bytes=None)
            if why is not None:
                raise InputError(f"{what}: {why}")
            try:
                with archive.open(info) as handle:
                    shape, dtype, claimed = _header(handle, what)
                    consumed = handle.tell()
            except InputError:
                raise
            except Exception as exc:  # bad CRC, truncated data, unsupported compression, …
                raise InputError(f"{what}: cannot be read from the archive "
                                 f"({type(exc).__name__}: {exc})") from exc
            _check_claim(claimed, info.file_size - consumed, shape, dtype, what)
            names.append(info.filename.removesuffix(".npy"))
    return names


def _load(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    shown = display_name(str(path))
    try:
        if path.suffix.lower() == ".npy":
            _check_npy(path)
            return np.load(path, allow_pickle=False), None
        _check_npz(path)
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            key = next((k for k in _IMAGE_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise InputError(
                    f"{shown}: cannot tell which array holds the images among "
                    f"{[display_name(k) for k in keys]}; name it one of {', '.join(_IMAGE_KEYS)}"
                )
            labels = archive["labels"] if "labels" in keys and key != "labels" else None
            return archive[key], labels
    except (InputError, CorruptImageError):
        raise
    except MemoryError as exc:
        raise InputError(f"{shown}: the array does not fit in memory") from exc
    except Exception as exc:  # zipfile, zlib and numpy raise many types on damaged files
        # allow_pickle=False makes object arrays fail here instead of unpickling them
        raise InputError(f"{shown}: not a readable NumPy file ({type(exc).__name__}: {exc})"
                         ) from exc


def open_array_file(path: Path, data: str) -> ArraySource:
    """Open an .npy/.npz file as an in-memory :class:`ArraySource`."""
    array, labels = _load(path)
    images, channels = batch_to_nchw3(array, what=display_name(str(path)))
    identities = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"{display_name(str(path))}: 'labels' has shape {labels.shape} and dtype "
                f"{labels.dtype}; expected {images.shape[0]} integers, one per image"
            )
        uniques, labels = np.unique(labels, return_inverse=True)
        identities = tuple(str(u) for u in uniques)
    return ArraySource(
        torch.from_numpy(images),
        data=data,
        kind="array",
        source_channels=channels,
        identities=identities,
        labels=labels,
    )
