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
was given (option or environment variable) but does not exist, or is not an InceptionV3 state
dict → :class:`~gan_eval.errors.InputError` (exit 2) naming it. The file is only ever unpickled
with ``torch.load(..., map_location="cpu", weights_only=True)``; its sha256 is kept for
provenance.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gan_eval import weights
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.fileio import sha256_file

#: File name torch-fidelity gives the weights (``os.path.basename`` of its release URL).
INCEPTION_WEIGHTS_FILENAME = weights.INCEPTION_FILENAME

try:  # the URL exactly as torch-fidelity's source writes it (text only: never fetched)
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3 as _TF_URL
except ImportError:  # pragma: no cover - torch-fidelity is a hard dependency
    _TF_URL = None

INCEPTION_WEIGHTS_URL: str = _TF_URL or weights.WEIGHTS["inception"].url

#: Environment variable that points at the weights file.
INCEPTION_WEIGHTS_ENV = weights.WEIGHTS["inception"].env

#: CLI option that points at the weights file (the CLI passes its value as ``explicit``).
INCEPTION_WEIGHTS_OPTION = "--inception-weights"

#: A few (key, shape) pairs every torch-fidelity InceptionV3 state dict has; the full key set is
#: checked by torch-fidelity's strict ``load_state_dict`` when the network is built.
_SIGNATURE: dict[str, tuple[int, ...]] = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_var": (32,),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def hub_cache_path() -> Path:
    """Where torch-fidelity caches the weights: ``<torch.hub.get_dir()>/checkpoints/<file>``.

    Mirrors ``torch.hub.load_state_dict_from_url(URL_INCEPTION_V3)`` (``model_dir`` =
    ``get_dir()/checkpoints``, file name = basename of the URL); honours ``$TORCH_HOME``,
    ``$XDG_CACHE_HOME`` and ``torch.hub.set_dir``. Computing it touches nothing on disk.
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILENAME


def missing_weights_message() -> str:
    """The text of the :class:`MissingAssetError` raised when no weights file is found."""
    return (
        f"Inception weights not found: {INCEPTION_WEIGHTS_FILENAME} (torch-fidelity's "
        f"InceptionV3 for standard FID/IS/KID, ~91 MiB). It is published at "
        f"{INCEPTION_WEIGHTS_URL}; gan-eval never downloads it implicitly: run "
        f"`gan-eval weights fetch inception` (puts it in {weights.cache_dir()}), or put it at "
        f"{hub_cache_path()} (torch-fidelity's cache), or set {INCEPTION_WEIGHTS_ENV}=/path/to/"
        f"{INCEPTION_WEIGHTS_FILENAME}, or pass {INCEPTION_WEIGHTS_OPTION} PATH."
    )


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
    """Read, hash and safely unpickle a weights file; check it looks like InceptionV3's.

    The bytes are read once; the sha256 is of those bytes and ``torch.load(...,
    map_location="cpu", weights_only=True)`` parses the same bytes (no re-read).

    Raises:
        InputError: missing/unreadable file, not a ``weights_only``-loadable torch file, not a
            ``{str: Tensor}`` mapping, or missing/mis-shaped InceptionV3 keys.
    """
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read Inception weights file {file}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means "not a state dict"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"Inception weights file {file} is not a torch state dict loadable with "
            f"weights_only=True: {first}"
        ) from None
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise InputError(
            f"Inception weights file {file} does not hold a state dict ({{name: tensor}}), "
            f"got {type(obj).__name__}"
        )
    state = {str(k): v for k, v in obj.items()}
    for key, shape in _SIGNATURE.items():
        if key not in state:
            raise InputError(
                f"Inception weights file {file} is not torch-fidelity's InceptionV3 state dict "
                f"(no key {key!r}); expected {INCEPTION_WEIGHTS_FILENAME}"
            )
        if tuple(state[key].shape) != shape:
            raise InputError(
                f"Inception weights file {file}: {key} has shape {tuple(state[key].shape)}, "
                f"expected {shape}"
            )
    bad = [k for k, v in state.items() if not v.is_floating_point() and "num_batches" not in k]
    if bad:
        raise InputError(f"Inception weights file {file}: non-float tensors {bad[:3]}")
    return InceptionWeights(path=file, sha256=digest, state_dict=state)


def inception_weights_sha256(explicit: str | os.PathLike[str] | None = None) -> str:
    """sha256 (hex) of the weights file :func:`resolve_inception_weights` finds (provenance)."""

    return sha256_file(resolve_inception_weights(explicit))
