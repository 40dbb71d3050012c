"""Locate and load torch-fidelity's InceptionV3 weights offline, never downloading them.

The standard FID/IS/KID network is torch-fidelity's ``inception-v3-compat``, whose weights
(``weights-inception-2015-12-05-6726825d.pth``, ~91 MiB, converted from TensorFlow's 2015-12-05
Inception graph) torch-fidelity downloads from its GitHub release at first use and caches in the
torch hub directory. No package registry ships them, so gan-eval looks (the ``inception``
entry of the weights table, :mod:`gan_eval.weights`), in this order, at:

1. an explicit path (the CLI's ``--inception-weights PATH`` option);
2. the environment variable ``GAN_EVAL_INCEPTION_WEIGHTS``;
3. ``$GAN_EVAL_WEIGHTS_DIR/<file name>``, then gan-eval's weights cache
   (``~/.cache/gan-eval/weights``, where ``gan-eval weights fetch inception`` puts it);
4. torch-fidelity's own cache location, ``<torch.hub.get_dir()>/checkpoints/<file name>``
   (what ``torch.hub.load_state_dict_from_url`` uses, i.e. ``$TORCH_HOME/hub/checkpoints`` with
   ``$TORCH_HOME`` defaulting to ``~/.cache/torch``), so a machine that ever ran torch-fidelity
   online already has it.

Nothing found → :class:`~gan_eval.errors.MissingAssetError` (CLI exit 3) with the file name, its
URL, ``gan-eval weights fetch inception`` (the explicit download) and where to put it. A path that
was given (option or environment variable) but does not exist, or is not exactly torch-fidelity's
InceptionV3 state dict (:func:`inception_state_shapes`) → :class:`~gan_eval.errors.InputError`
(exit 2) naming it and what was expected; it is never replaced by a file found elsewhere. The
file is only ever unpickled with ``torch.load(..., map_location="cpu", weights_only=True)``; its
sha256 is kept for provenance.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from gan_eval import weights
from gan_eval.errors import MissingAssetError
from gan_eval.features.weights_files import check_shapes, read_file_bytes, read_state_dict
from gan_eval.fileio import sha256_file

#: File name torch-fidelity gives the weights (``os.path.basename`` of its release URL).
INCEPTION_WEIGHTS_FILENAME = weights.WEIGHTS["inception"].filename

#: The URL exactly as torch-fidelity's source writes it (text only: never fetched).
INCEPTION_WEIGHTS_URL: str = weights.WEIGHTS["inception"].url

#: Environment variable that points at the weights file.
INCEPTION_WEIGHTS_ENV = weights.WEIGHTS["inception"].env

#: CLI option that points at the weights file (the CLI passes its value as ``explicit``).
INCEPTION_WEIGHTS_OPTION = "--inception-weights"

#: How the CLI hands the file over (for messages).
INCEPTION_WEIGHTS_SPELLING = "--inception-weights PATH (or --weights inception=PATH)"


@functools.cache
def inception_state_shapes() -> dict[str, tuple[int, ...]]:
    """Every key of torch-fidelity's InceptionV3 state dict with its shape, read from
    torch-fidelity's own architecture (built on the meta device: no memory, no weights)."""

    class _Architecture(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:  # the architecture only
            return None

    empty = io.BytesIO()
    torch.save({}, empty)  # our own bytes: torch-fidelity unpickles them without weights_only
    empty.seek(0)
    with torch.device("meta"):
        net = _Architecture("shapes", ["2048"], feature_extractor_weights_path=empty)
    return {key: tuple(value.shape) for key, value in net.state_dict().items()}


def _optional(key: str) -> bool:
    """BatchNorm's step counters: torch-fidelity's file has none (its load adds them)."""
    return key.endswith(".num_batches_tracked")


def hub_cache_path() -> Path:
    """Where torch-fidelity caches the weights: ``<torch.hub.get_dir()>/checkpoints/<file>``.

    Mirrors ``torch.hub.load_state_dict_from_url(URL_INCEPTION_V3)`` (``model_dir`` =
    ``get_dir()/checkpoints``, file name = basename of the URL); honours ``$TORCH_HOME``,
    ``$XDG_CACHE_HOME`` and ``torch.hub.set_dir``. Computing it touches nothing on disk.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILENAME


def missing_weights_message() -> str:
    """The text of the :class:`MissingAssetError` raised when no weights file is found."""
    return (weights.missing_message("inception", option=INCEPTION_WEIGHTS_SPELLING)
            + f" torch-fidelity's own cache, {hub_cache_path()}, is searched too.")


def resolve_inception_weights(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Find the InceptionV3 weights file: ``explicit``, then ``$GAN_EVAL_INCEPTION_WEIGHTS``,
    then ``$GAN_EVAL_WEIGHTS_DIR``, gan-eval's weights cache, torch-fidelity's hub cache
    (:func:`hub_cache_path`).

    Args:
        explicit: a path from the user (``--inception-weights``); ``None`` or ``""`` = not given.

    Returns:
        The path of an existing file (its content is checked by :func:`load_inception_weights`).

    Raises:
        InputError: ``explicit`` or the environment variable names a path that is missing or
            not a regular file.
        MissingAssetError: neither was given and no cache (``$GAN_EVAL_WEIGHTS_DIR``, gan-eval's
            weights cache, torch hub's) has the file.
    """
    located = weights.locate("inception", explicit, option=INCEPTION_WEIGHTS_OPTION)
    if located.path is not None:
        return located.path
    raise MissingAssetError(missing_weights_message())


@dataclass(frozen=True)
class InceptionWeights:
    """A loaded weights file.

    Attributes:
        path: the file.
        sha256: hex sha256 of the file's bytes (exactly the bytes that were loaded).
        state_dict: ``{key: CPU tensor}`` as torch-fidelity's ``FeatureExtractorInceptionV3``
            expects (conv weights, BN affine + running stats, ``fc.weight`` 1008×2048,
            ``fc.bias`` 1008).
    """

    path: Path
    sha256: str
    state_dict: dict[str, torch.Tensor] = field(repr=False)

    def as_buffer(self) -> io.BytesIO:
        """The state dict re-serialised with ``torch.save`` into memory.

        torch-fidelity's constructor unpickles ``feature_extractor_weights_path`` with
        ``weights_only=False``; handing it this buffer (plain CPU tensors that were themselves
        loaded with ``weights_only=True``) means user-supplied bytes are never unpickled without
        ``weights_only``, and the network gets exactly the tensors hashed here.
        """
        buffer = io.BytesIO()
        torch.save(self.state_dict, buffer)
        buffer.seek(0)
        return buffer


def load_inception_weights(path: str | os.PathLike[str]) -> InceptionWeights:
    """Read, hash and safely unpickle a weights file; check it is torch-fidelity's InceptionV3.

    The bytes are read once; the sha256 is of those bytes and ``torch.load(...,
    map_location="cpu", weights_only=True)`` parses the same bytes (no re-read).

    Raises:
        InputError: naming the file and what was expected: missing, empty, an HTML page, a plain
            pickle, truncated, not a ``{str: Tensor}`` mapping, or keys and shapes that are not
            exactly those of :func:`inception_state_shapes`.
    """
    entry = weights.known("inception")
    file = Path(path)
    data = read_file_bytes(file, entry)
    state = read_state_dict(data, file, entry)
    check_shapes(state, inception_state_shapes(), file, entry, optional=_optional)
    return InceptionWeights(path=file, sha256=hashlib.sha256(data).hexdigest(), state_dict=state)


def check_inception_weights(path: Path) -> str:
    """:func:`load_inception_weights`'s checks on a memory-mapped read (a description)."""
    entry = weights.known("inception")
    state = read_state_dict(path, path, entry)
    check_shapes(state, inception_state_shapes(), path, entry, optional=_optional)
    return f"{len(state)} tensors with the names and shapes of torch-fidelity's InceptionV3"


def inception_weights_sha256(explicit: str | os.PathLike[str] | None = None) -> str:
    """sha256 (hex) of the weights file :func:`resolve_inception_weights` finds (provenance)."""

    return sha256_file(resolve_inception_weights(explicit))
