"""gan-eval's feature extractors: a base class plus a validated registry.

The CLI's ``--extractor`` choices come from :data:`EXTRACTORS`. Each extractor maps uint8
B×3×H×W images to named float feature tensors; ``primary`` names the one that FID, KID and
precision/recall use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch

from gan_eval.errors import InputError


class FeatureExtractor(ABC):
    """uint8 B×3×H×W images → {feature name: float32 B×D} on ``device``."""

    name: ClassVar[str]
    primary: ClassVar[str]
    """The feature used for fid, kid, precision/recall, density/coverage."""
    logits: ClassVar[str | None] = None
    """The feature holding class logits for the Inception Score (None: no IS)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @abstractmethod
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of uint8 B×3×H×W ``images`` (any device); float32, on ``self.device``."""

    @abstractmethod
    def weights_sha256(self) -> str:
        """sha256 of the weights file, for provenance and cache keys."""


ExtractorFactory = Callable[[torch.device, "Path | None"], FeatureExtractor]
EXTRACTORS: dict[str, ExtractorFactory] = {}


def register_extractor(name: str) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Register ``factory(device, weights_path)`` under ``name`` (lower-case, unique)."""

    def decorate(factory: ExtractorFactory) -> ExtractorFactory:
        if name in EXTRACTORS:
            raise ValueError(f"feature extractor {name!r} is already registered")
        if name != name.lower():
            raise ValueError(f"feature extractor names are lower-case, got {name!r}")
        EXTRACTORS[name] = factory
        return factory

    return decorate


def build_extractor(
    name: str, *, device: str | torch.device | None = None, weights: Path | None = None
) -> FeatureExtractor:
    """Build the extractor ``name`` on ``device`` (default: CUDA when available, else CPU)."""
    if name not in EXTRACTORS:
        raise InputError(
            f"--extractor: unknown feature extractor {name!r}; registered: {', '.join(EXTRACTORS)}"
        )
    return EXTRACTORS[name](resolve_device(device), weights)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch.device; None picks CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            f"--device: {device!r} is not a device (expected cpu, cuda, cuda:N)"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device: {device!r} asked for, but CUDA is not available here")
    return resolved


@register_extractor("dlib-face")
class DlibFaceExtractor(FeatureExtractor):
    """dlib's face-recognition ResNet: 128-d embeddings (inputs resized to 150×150)."""

    name = "dlib-face"
    primary = "embedding"

    def __init__(self, device: torch.device, weights: Path | None = None) -> None:
        super().__init__(device)
        from gan_eval.features.dlib_face import dlib_weights_sha256, load_dlib_face_net

        self._weights = weights
        self._net = load_dlib_face_net(weights, device)
        self._sha = dlib_weights_sha256(weights)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        from gan_eval.features.dlib_face import embed_faces

        return {
            "embedding": embed_faces(
                images,
                batch_size=max(1, images.shape[0]),
                device=self.device,
                weights_path=self._weights,
            )
        }

    def weights_sha256(self) -> str:
        return self._sha


@register_extractor("inception")
class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's InceptionV3 (``inception-v3-compat``) with BatchNorm folded: 2048-d pool
    features for FID/KID/PRC and unbiased logits for IS. Needs the weights file (never
    downloaded): ``--inception-weights``, ``$GAN_EVAL_INCEPTION_WEIGHTS`` or torch's hub cache."""

    name = "inception"
    primary = "2048"
    logits = "logits_unbiased"

    def __init__(self, device: torch.device, weights: Path | None = None) -> None:
        super().__init__(device)
        from gan_eval.features.inception import load_inception

        self._net = load_inception(weights, device)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(self._net(images))

    def weights_sha256(self) -> str:
        return str(self._net.weights_sha256)
