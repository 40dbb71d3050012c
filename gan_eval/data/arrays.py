"""Images stored as a NumPy array in an .npy or .npz file.

Accepted layouts are those of :func:`gan_eval.data.convert.batch_to_nchw3`. In an .npz, the images
are the array named ``images`` (or ``x``, or the only array); an int array ``labels`` of the same
length, when present, gives identity labels.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from gan_eval.data.convert import batch_to_nchw3
from gan_eval.data.source import ArraySource
from gan_eval.errors import InputError

_IMAGE_KEYS = ("images", "x", "arr_0")


def _load(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            key = next((k for k in _IMAGE_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise InputError(
                    f"{path}: cannot tell which array holds the images among {keys}; "
                    f"name it one of {', '.join(_IMAGE_KEYS)}"
                )
            labels = archive["labels"] if "labels" in keys and key != "labels" else None
            return archive[key], labels
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        # allow_pickle=False makes object arrays fail here instead of unpickling them
        raise InputError(f"{path}: not a readable NumPy file ({exc})") from exc


def open_array_file(path: Path, data: str) -> ArraySource:
    """Open an .npy/.npz file as an in-memory :class:`ArraySource`."""
    array, labels = _load(path)
    images, channels = batch_to_nchw3(array, what=str(path))
    identities = None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"{path}: 'labels' has shape {labels.shape} and dtype {labels.dtype}; expected "
                f"{images.shape[0]} integers, one per image"
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
