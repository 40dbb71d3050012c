"""The DINOv2 and CLIP feature spaces, for the extractor registry.

``register_feature_spaces(register_extractor)`` adds ``dinov2-vit-{s,b,l,g}14`` (primary feature
``"cls"``) and ``clip-vit-b32`` / ``clip-vit-l14`` / ``clip-vit-l14-336`` (primary feature
``"embedding"``, unit-norm; also ``"clip"``, the raw projection). Each factory is
``cls(device, weights_path_or_None)``; the weights file is located through
:mod:`gan_eval.weights` (never downloaded) and its sha256 is ``weights_sha256()``.
timm (the ``feature-spaces`` extra) is imported only when an extractor is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gan_eval.features.clip import CLIP_EXTRACTORS, register_clip
from gan_eval.features.dinov2 import DINOV2_EXTRACTORS, register_dinov2

#: Every extractor this module provides, by name.
FEATURE_SPACES: dict[str, Any] = {**DINOV2_EXTRACTORS, **CLIP_EXTRACTORS}


def register_feature_spaces(register: Callable[[str], Callable[[Any], Any]]) -> None:
    """Register the DINOv2 and CLIP extractors with ``register(name)(factory)``."""
    register_dinov2(register)
    register_clip(register)
