"""FaceNet (Inception-ResNet-v1 trained on VGGFace2) in PyTorch: a modern face recognizer beside
dlib's.

The weights are the official release of facenet-pytorch (``20180402-114759-vggface2.pt``, a
plain ``state_dict``: David Sandberg's TensorFlow FaceNet model 20180402-114759 converted by Tim
Esler), read with ``torch.load(weights_only=True)`` — never unpickled — and checked name by name
and shape by shape against :func:`expected_shapes` before use. No package ships the file:
``gan-eval weights fetch facenet-vggface2`` fetches it (sha256 recorded), tests use random
weights written in the same format.

Architecture (Szegedy et al. 2016, "Inception-v4, Inception-ResNet ..."; the parameter names
are those of the released file):

- stem: 3×3/2 conv (32) → 3×3 (32) → 3×3 pad 1 (64) → max-pool 3/2 → 1×1 (80) → 3×3 (192) →
  3×3/2 (256); every conv is ``conv (no bias) → batch norm (ε = 0.001) → ReLU``;
- 5 × block35 (scale 0.17), reduction A (``mixed_6a``: 3×3/2 conv | 1×1 → 3×3 → 3×3/2 |
  max-pool, 896 ch), 10 × block17 (scale 0.10), reduction B (``mixed_7a``, 1792 ch),
  5 × block8 (scale 0.20), one block8 without the final ReLU; a residual block adds
  ``scale · conv1×1(concat(branches))`` (with bias) to its input;
- global average pool → dropout (identity at inference) → linear 1792 → 512 without bias →
  batch norm (ε = 0.001) → L2 normalisation: 512-D unit embeddings. The file's classifier
  (``logits``, 8,631 VGGFace2 identities) is not used.

Input (facenet-pytorch's ``fixed_image_standardization``): RGB face crops resized to 160×160,
``x = (pixel − 127.5) / 128``. The network was trained on MTCNN crops with a 32-pixel margin at
160 px (about 20% context around the face box); on gan-eval's aligned crops the whole image is
taken as the crop. Batch norms are folded into the convolutions at load time (inference only).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.data.convert import check_image_batch, resize_uint8
from gan_eval.features.base import FeatureExtractor, register_extractor
from gan_eval.features.framing import Framing, embed_framed
from gan_eval.features.weights_files import (
    bad_file,
    check_shapes,
    read_file_bytes,
    read_state_dict,
)
from gan_eval.fileio import sha256_file

__all__ = [
    "EMBEDDING_DIM",
    "INPUT_SIZE",
    "NAME",
    "WEIGHTS_FILENAME",
    "FaceNet",
    "FaceNetExtractor",
    "expected_shapes",
    "load_facenet",
    "read_facenet_state",
]

WEIGHTS_FILENAME = "20180402-114759-vggface2.pt"
"""The official file name (facenet-pytorch's GitHub release v2.2.9)."""

INPUT_SIZE = 160
"""Side of the square RGB face crop the network takes, pixels."""

EMBEDDING_DIM = 512
"""Length of an embedding (float32, unit L2 norm)."""

NAME = "facenet-vggface2"
"""The extractor's name (``-e``, ``--face-extractor``, ``gan-eval weights fetch``)."""

_BN_EPS = 1e-3
_CLASSIFIER = "logits."
_CLASSES = 8631  # VGGFace2 identities of the released classifier


class _Conv(nn.Module):
    """``conv (no bias) → batch norm → ReLU`` with the file's names ``conv`` and ``bn``."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))

    def fold(self) -> nn.Conv2d:
        """One convolution with the batch norm's inference affine folded in (bias added)."""
        bn = self.bn
        assert bn.running_var is not None and bn.running_mean is not None
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        folded = nn.Conv2d(self.conv.in_channels, self.conv.out_channels,
                           self.conv.kernel_size, self.conv.stride,  # type: ignore[arg-type]
                           self.conv.padding, bias=True)  # type: ignore[arg-type]
        assert folded.bias is not None
        with torch.no_grad():
            folded.weight.copy_(self.conv.weight * scale[:, None, None, None])
            folded.bias.copy_(bn.bias - bn.running_mean * scale)
        return folded


class _Folded(nn.Module):
    """A folded :class:`_Conv`: ``relu(conv(x))``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv(x))


def _chain(*convs: _Conv) -> nn.Sequential:
    return nn.Sequential(*convs)


class _Residual(nn.Module):
    """Inception-ResNet block: ``relu?(x + scale · conv1×1(concat(branches(x))))``."""

    def __init__(self, channels: int, branches: list[nn.Module], width: int, scale: float,
                 relu: bool = True) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)
        self.n_branches = len(branches)
        self.conv2d = nn.Conv2d(width, channels, 1)
        self.scale = scale
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n_branches)], 1)
        out = x + self.scale * self.conv2d(mixed)
        return F.relu(out) if self.relu else out


class _Reduction(nn.Module):
    """Inception reduction: the branches and a 3×3/2 max-pool, concatenated."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(f"branch{i}", branch)
        self.n_branches = len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [getattr(self, f"branch{i}")(x) for i in range(self.n_branches)]
        return torch.cat([*parts, F.max_pool2d(x, 3, 2)], 1)


def _block35(scale: float) -> _Residual:
    return _Residual(256, [
        _Conv(256, 32, 1),
        _chain(_Conv(256, 32, 1), _Conv(32, 32, 3, padding=1)),
        _chain(_Conv(256, 32, 1), _Conv(32, 32, 3, padding=1), _Conv(32, 32, 3, padding=1)),
    ], 96, scale)


def _block17(scale: float) -> _Residual:
    return _Residual(896, [
        _Conv(896, 128, 1),
        _chain(_Conv(896, 128, 1), _Conv(128, 128, (1, 7), padding=(0, 3)),
               _Conv(128, 128, (7, 1), padding=(3, 0))),
    ], 256, scale)


def _block8(scale: float, relu: bool = True) -> _Residual:
    return _Residual(1792, [
        _Conv(1792, 192, 1),
        _chain(_Conv(1792, 192, 1), _Conv(192, 192, (1, 3), padding=(0, 1)),
               _Conv(192, 192, (3, 1), padding=(1, 0))),
    ], 384, scale, relu)


class FaceNet(nn.Module):
    """Inception-ResNet-v1 embedding network: float ``(B, 3, 160, 160)`` standardised pixels →
    float ``(B, 512)`` unit embeddings. Module names follow the released state dict."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2d_1a = _Conv(3, 32, 3, stride=2)
        self.conv2d_2a = _Conv(32, 32, 3)
        self.conv2d_2b = _Conv(32, 64, 3, padding=1)
        self.conv2d_3b = _Conv(64, 80, 1)
        self.conv2d_4a = _Conv(80, 192, 3)
        self.conv2d_4b = _Conv(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*[_block35(0.17) for _ in range(5)])
        self.mixed_6a = _Reduction([
            _Conv(256, 384, 3, stride=2),
            _chain(_Conv(256, 192, 1), _Conv(192, 192, 3, padding=1),
                   _Conv(192, 256, 3, stride=2)),
        ])
        self.repeat_2 = nn.Sequential(*[_block17(0.10) for _ in range(10)])
        self.mixed_7a = _Reduction([
            _chain(_Conv(896, 256, 1), _Conv(256, 384, 3, stride=2)),
            _chain(_Conv(896, 256, 1), _Conv(256, 256, 3, stride=2)),
            _chain(_Conv(896, 256, 1), _Conv(256, 256, 3, padding=1),
                   _Conv(256, 256, 3, stride=2)),
        ])
        self.repeat_3 = nn.Sequential(*[_block8(0.20) for _ in range(5)])
        self.block8 = _block8(1.0, relu=False)
        self.last_linear = nn.Linear(1792, EMBEDDING_DIM, bias=False)
        self.last_bn = nn.BatchNorm1d(EMBEDDING_DIM, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.repeat_1(x)
        x = self.mixed_6a(x)
        x = self.repeat_2(x)
        x = self.mixed_7a(x)
        x = self.block8(self.repeat_3(x))
        x = self.last_bn(self.last_linear(x.mean((2, 3))))
        return F.normalize(x, p=2.0, dim=1)

    def fold_batch_norms(self) -> FaceNet:
        """Replace every ``conv → bn → relu`` by one convolution with a bias (inference only;
        the same function to float32 rounding). Returns ``self``."""
        for parent in list(self.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, _Conv):
                    setattr(parent, name, _Folded(child.fold()))
        return self


@functools.cache
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the released file: name → shape, from the architecture itself, plus the
    file's VGGFace2 classifier (``logits.*``, not used)."""
    shapes = {name: tuple(t.shape) for name, t in FaceNet().state_dict().items()}
    return {**shapes, f"{_CLASSIFIER}weight": (_CLASSES, EMBEDDING_DIM),
            f"{_CLASSIFIER}bias": (_CLASSES,)}


def _optional(key: str) -> bool:
    """Keys a file may lack or hold as integers: the classifier (a file saved without it is
    still the embedding network) and batch norms' step counters."""
    return key.startswith(_CLASSIFIER) or key.endswith("num_batches_tracked")


def read_facenet_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The embedding network's tensors from a FaceNet weights file, checked.

    Read with :func:`gan_eval.features.weights_files.read_state_dict` (``torch.load`` with
    ``weights_only=True``: no code runs) after the container checks every weights file gets;
    the names and shapes must be exactly :func:`expected_shapes` and every float tensor finite.
    The classifier is dropped.

    Raises:
        InputError: naming the file and what was expected.
    """
    entry = weights_table.known(NAME)
    data = read_file_bytes(path, entry)
    state = read_state_dict(data, path, entry)
    check_shapes(state, expected_shapes(), path, entry, optional=_optional)
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise bad_file(entry, path, f"holds NaN or inf in {key}")
    return {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER)}


@functools.cache
def _load_cached(path: str, device: str) -> FaceNet:
    net = FaceNet()
    net.load_state_dict(read_facenet_state(path))
    net = net.eval().fold_batch_norms().to(torch.device(device))
    return net.to(memory_format=torch.channels_last)


def load_facenet(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> FaceNet:
    """The FaceNet embedding network from ``path`` on ``device``, in eval mode with batch norms
    folded (cached per file and device; :class:`InputError` for a bad file)."""
    return _load_cached(str(Path(path).resolve()), str(torch.device(device)))


def facenet_weights_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of the weights file (provenance)."""
    return sha256_file(Path(path))


@register_extractor(catalogue.EXTRACTORS[NAME])
class FaceNetExtractor(FeatureExtractor):
    """``facenet-vggface2``: 512-D unit FaceNet embeddings of face chips framed by ``framing``
    (the framings of ``dlib-face``, :mod:`gan_eval.features.framing`: by default the whole image
    is the crop; a chip is resized to 160×160). Its weights file is located like every other
    (``--weights facenet-vggface2=PATH``, ``$GAN_EVAL_FACENET_VGGFACE2_WEIGHTS``, the weights
    cache filled by ``gan-eval weights fetch facenet-vggface2``)."""

    primary = "embedding"

    def __init__(self, device: torch.device, weights: Path | None = None,
                 framing: Framing | None = None) -> None:
        super().__init__(device)
        self.weights_path = weights_table.resolve(self.name, weights)
        self._net = load_facenet(self.weights_path, device)
        self._sha = facenet_weights_sha256(self.weights_path)
        self.framing = framing or Framing()

    def embed_chips(self, chips: torch.Tensor) -> torch.Tensor:
        """uint8 K×3×H×W face chips → float32 K×512 unit embeddings (on the extractor's device)."""
        check_image_batch(chips, what=f"{self.name} images")
        if chips.shape[0] == 0:
            return torch.zeros(0, EMBEDDING_DIM, device=self.device)
        x = (resize_uint8(chips, INPUT_SIZE).to(self.device, torch.float32) - 127.5) / 128.0
        with torch.inference_mode():
            return self._net(x.contiguous(memory_format=torch.channels_last))

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        check_image_batch(images, what=f"{self.name} images")
        return embed_framed(images, self.framing, self.embed_chips, self.device, INPUT_SIZE)

    def settings(self) -> dict[str, Any]:
        return {"framing": self.framing.describe()}

    def weights_sha256(self) -> str:
        return self._sha

    @classmethod
    def check_weights(cls, path: Path) -> str:
        """The released state dict: exact names and shapes (:func:`expected_shapes`), finite."""
        read_facenet_state(path)
        return "the tensors of FaceNet Inception-ResNet-v1 (VGGFace2) with their shapes"
