"""LPIPS's AlexNet trunk and linear heads, read from their official files (no download).

- Trunk: torchvision's ImageNet AlexNet (``alexnet-owt-7be5be79.pth``, the file
  ``torchvision.models.alexnet(weights="IMAGENET1K_V1")`` loads; a plain state dict, read with
  ``torch.load(weights_only=True)``). Only ``features.*`` is used: LPIPS reads the ReLU outputs
  after conv1…conv5 (lpips' ``pretrained_networks.alexnet`` slices). It is not shipped by any
  package: ``gan-eval weights fetch lpips-alex`` downloads it (sha256 prefix ``7be5be79`` in the
  name), or torchvision's own cache (torch hub ``checkpoints/``) is used when it is there.
- Heads: lpips v0.1's ``alex.pth`` (five 1×C×1×1 weights), which ships in the ``lpips`` wheel
  (found with ``importlib.util.find_spec``, not imported).

:class:`LpipsAlex` maps uint8 B×3×H×W images to the five unit-normalised activation maps
(:func:`gan_eval.metrics.perceptual.normalized_activations`); the distance of two such lists is
:func:`gan_eval.metrics.perceptual.lpips_distance`. The input scaling is lpips' with
``normalize=False`` on images in [−1, 1]: ``x = pixel/127.5 − 1``, then ``(x − shift)/scale``
with lpips' ``ScalingLayer`` constants. Images need a side of at least 31 pixels (AlexNet's
strides leave no pixel for the third layer below that).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.data.convert import check_image_batch
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.base import FeatureExtractor, register_extractor
from gan_eval.fileio import sha256_file
from gan_eval.metrics.perceptual import normalized_activations

__all__ = ["HEADS_FILE", "LPIPS_MIN_SIDE", "WEIGHTS_NAME", "LpipsAlex", "LpipsAlexExtractor",
           "heads_path", "load_lpips_alex"]

WEIGHTS_NAME = "lpips-alex"
"""The extractor whose weights file is the trunk (:data:`gan_eval.catalogue.EXTRACTORS`)."""

HEADS_FILE = "weights/v0.1/alex.pth"
"""lpips v0.1's AlexNet heads, inside the installed ``lpips`` package."""

LPIPS_MIN_SIDE = 31
"""Smallest image side LPIPS-Alex accepts, pixels."""

_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
_CONVS = {0: (64, 3, 11, 4, 2), 3: (192, 64, 5, 1, 2), 6: (384, 192, 3, 1, 1),
          8: (256, 384, 3, 1, 1), 10: (256, 256, 3, 1, 1)}
"""torchvision ``alexnet.features`` convolutions: index → (out, in, kernel, stride, padding)."""


def heads_path() -> Path:
    """``alex.pth`` of the installed ``lpips`` package; :class:`MissingAssetError` without it."""
    try:
        spec = importlib.util.find_spec("lpips")
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(folders[0]) / HEADS_FILE if folders else None
    if path is None or not path.is_file():
        raise MissingAssetError("LPIPS needs the linear heads shipped in the lpips package "
                                f"({HEADS_FILE}): pip install lpips")
    return path


def _load(path: Path, what: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: name it
        raise InputError(f"{what} {path}: not a readable weights file ({type(exc).__name__}: "
                         f"{exc})") from exc
    if not isinstance(state, dict):
        raise InputError(f"{what} {path}: expected a state dict of tensors")
    return state


class LpipsAlex(nn.Module):
    """LPIPS-Alex's trunk and heads: ``activations(images)`` → five normalised maps."""

    def __init__(self, trunk: dict[str, torch.Tensor], heads: dict[str, torch.Tensor], *,
                 what: str = "alexnet weights") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index, (out, inp, kernel, stride, padding) in _CONVS.items():
            conv = nn.Conv2d(inp, out, kernel, stride=stride, padding=padding)
            for name, expected in (("weight", (out, inp, kernel, kernel)), ("bias", (out,))):
                tensor = trunk.get(f"features.{index}.{name}")
                if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != expected:
                    raise InputError(f"{what}: features.{index}.{name} should be a tensor of "
                                     f"shape {expected} (torchvision's AlexNet state dict)")
                getattr(conv, name).data.copy_(tensor.float())
            layers.append(conv)
        self.convs = nn.ModuleList(layers)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        weights = []
        for k, channels in enumerate((64, 192, 384, 256, 256)):
            w = heads.get(f"lin{k}.model.1.weight")
            if not isinstance(w, torch.Tensor) or w.numel() != channels:
                raise InputError(f"lpips heads: lin{k}.model.1.weight should hold {channels} "
                                 "weights (lpips v0.1 alex.pth)")
            weights.append(w.reshape(channels).float())
        self.heads = nn.ParameterList([nn.Parameter(w, requires_grad=False) for w in weights])
        self.shift: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.eval().requires_grad_(False)

    def activations(self, images: torch.Tensor) -> list[torch.Tensor]:
        """uint8 B×3×H×W → the five ReLU maps (float32), each unit-normalised over channels."""
        check_image_batch(images, what="lpips images")
        if min(images.shape[-2:]) < LPIPS_MIN_SIDE:
            raise InputError(f"lpips: images must be at least {LPIPS_MIN_SIDE} pixels on a side, "
                             f"got {tuple(images.shape[-2:])}; audit at a larger --resolution")
        x = images.to(self.shift.device).float() / 127.5 - 1.0
        x = (x - self.shift) / self.scale
        out = []
        with torch.no_grad():
            for k, conv in enumerate(self.convs):
                if k in (1, 2):
                    x = self.pool(x)
                x = torch.relu(conv(x))
                out.append(x)
        return normalized_activations(out)


@functools.lru_cache(maxsize=4)
def _cached(trunk: str, heads: str, device: str) -> LpipsAlex:
    net = LpipsAlex(_load(Path(trunk), "alexnet weights"), _load(Path(heads), "lpips heads"),
                    what=f"alexnet weights {trunk}")
    return net.to(device)


def load_lpips_alex(
    trunk: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
) -> tuple[LpipsAlex, dict[str, str]]:
    """The network on ``device`` and the sha256 of both files (``{"alexnet": …, "heads": …}``).

    ``trunk``: an explicit path (``--weights lpips-alex=PATH``); else the weights table's
    search (:func:`gan_eval.weights.resolve`): ``$GAN_EVAL_LPIPS_ALEX_WEIGHTS``,
    ``$GAN_EVAL_WEIGHTS_DIR``, gan-eval's cache, torch hub's cache. Raises
    :class:`MissingAssetError` (exit 3) saying how to fetch it when it is nowhere.
    """
    path = weights_table.resolve(WEIGHTS_NAME, trunk).resolve()
    heads = heads_path()
    net = _cached(str(path), str(heads), str(torch.device(device)))
    return net, {"alexnet": _sha(str(path)), "heads": _sha(str(heads))}


@functools.lru_cache(maxsize=8)
def _sha(path: str) -> str:
    return sha256_file(path)


@register_extractor(catalogue.EXTRACTORS[WEIGHTS_NAME])
class LpipsAlexExtractor(FeatureExtractor):
    """LPIPS's AlexNet trunk as a feature space: ``conv5`` is the spatial mean of the fifth
    unit-normalised ReLU map (256-d). It is registered so that its weights file is declared the
    one way (``gan-eval weights list / fetch / verify lpips-alex``); the restoration audit uses
    :class:`LpipsAlex` directly for LPIPS itself."""

    primary = "conv5"

    def __init__(self, device: torch.device, weights: Path | None = None) -> None:
        super().__init__(device)
        self._net, self._hashes = load_lpips_alex(weights, device)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"conv5": self._net.activations(images)[-1].mean(dim=(-2, -1))}

    def weights_sha256(self) -> str:
        return self._hashes["alexnet"]

    @classmethod
    def check_weights(cls, path: Path) -> str:
        trunk = _load(Path(path), "alexnet weights")
        heads = {f"lin{k}.model.1.weight": torch.zeros(c)
                 for k, c in enumerate((64, 192, 384, 256, 256))}
        LpipsAlex(trunk, heads, what=f"{path}")  # raises InputError naming what is wrong
        return "torchvision AlexNet state dict (features.* as LPIPS reads them)"
