"""The feature-extractor contract and the registry every extractor module registers into.

Each extractor maps uint8 B×3×H×W images to named float feature tensors; ``primary`` names the
one that FID, KID, CMMD and precision/recall use. Names must be in the catalogue
(:data:`gan_eval.catalogue.EXTRACTORS`). :mod:`gan_eval.features.registry` imports every
extractor module and builds extractors by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from gan_eval import catalogue


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

    def settings(self) -> dict[str, Any]:
        """Options that change the features (part of the cache key and the provenance)."""
        return {}


ExtractorFactory = Callable[..., FeatureExtractor]
EXTRACTORS: dict[str, ExtractorFactory] = {}


def register_extractor(name: str) -> Callable[[ExtractorFactory], ExtractorFactory]:
    """Register ``factory(device, weights_path, **options)`` under ``name``, a name of the
    catalogue (:data:`gan_eval.catalogue.EXTRACTORS`)."""

    def decorate(factory: ExtractorFactory) -> ExtractorFactory:
        if name in EXTRACTORS:
            raise ValueError(f"feature extractor {name!r} is already registered")
        if name not in catalogue.EXTRACTORS:
            raise ValueError(f"feature extractor {name!r} is not in gan_eval.catalogue.EXTRACTORS")
        EXTRACTORS[name] = factory
        return factory

    return decorate
