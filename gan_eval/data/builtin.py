"""Datasets that ship inside installed packages (no download): ``builtin:NAME``.

``builtin:lfw-subset``: the 100 real grayscale LFW faces (25×25) bundled with scikit-image
(``skimage.data.lfw_subset()`` rows 0-99; rows 100-199 are non-face patches and are excluded).
``builtin:lfw-nonfaces``: those 100 non-face patches, a negative control for face tests.
``builtin:lfw-train`` / ``builtin:lfw-heldout``: rows 0-79 and 80-99 of ``lfw-subset``, the
default report's training faces and the people it never trains on (its membership test). The
subset has no identity labels: a person pictured on both sides would count as held out, which
can only hide a leak (the test is conservative), never invent one.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gan_eval.data.convert import batch_to_nchw3
from gan_eval.data.source import ArraySource
from gan_eval.errors import InputError, MissingAssetError


def _lfw_rows(rows: slice) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        try:
            from skimage.data import lfw_subset

            faces = lfw_subset()
        except (ImportError, OSError, ValueError) as exc:
            raise MissingAssetError(
                f"builtin datasets need scikit-image's bundled LFW subset, which cannot be read "
                f"({type(exc).__name__}: {exc}); install it with `pip install scikit-image`"
            ) from exc
        return np.asarray(faces[rows], dtype=np.float64)

    return load


BUILTINS: dict[str, tuple[Callable[[], np.ndarray], str]] = {
    "lfw-subset": (_lfw_rows(slice(0, 100)), "100 real LFW faces, 25×25 gray (scikit-image)"),
    "lfw-nonfaces": (_lfw_rows(slice(100, 200)), "100 non-face patches, 25×25 gray (scikit-image)"),
    "lfw-train": (_lfw_rows(slice(0, 80)), "lfw-subset faces 0-79: the default training set"),
    "lfw-heldout": (_lfw_rows(slice(80, 100)),
                    "lfw-subset faces 80-99: held out of the default training set"),
}

#: The held-out partner of a built-in training set: the people the default report's membership
#: test compares the training people with.
HELDOUT_OF: dict[str, str] = {"builtin:lfw-train": "builtin:lfw-heldout"}


def open_builtin(name: str) -> ArraySource:
    """Open ``builtin:NAME`` as an in-memory source."""
    if name not in BUILTINS:
        raise InputError(
            f"builtin:{name}: unknown built-in dataset; available: "
            + ", ".join(f"builtin:{k}" for k in BUILTINS)
        )
    loader, _ = BUILTINS[name]
    images, channels = batch_to_nchw3(loader(), what=f"builtin:{name}")
    return ArraySource(
        torch.from_numpy(images), data=f"builtin:{name}", kind="builtin", source_channels=channels
    )
