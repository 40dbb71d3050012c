"""Every feature extractor gan-eval has, by name: dlib's face network and Inception (here),
DINOv2 and CLIP (:mod:`gan_eval.features.spaces`), registered into :data:`EXTRACTORS`
(:mod:`gan_eval.features.base`); :func:`build_extractor` builds one by name.

The CLI's ``--extractor`` choices are the catalogue's names (:data:`gan_eval.catalogue.EXTRACTORS`,
which also says what each can feed); a test keeps the two equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.features.base import EXTRACTORS, FeatureExtractor, register_extractor
from gan_eval.features.dlib_face import dlib_weights_sha256, embed_faces, load_dlib_face_net
from gan_eval.features.framing import Framing, frame
from gan_eval.features.inception import load_inception
from gan_eval.features.spaces import register_feature_spaces


def build_extractor(
    name: str, *, device: str | torch.device | None = None, weights: Path | None = None,
    **options: Any,
) -> FeatureExtractor:
    """Build the extractor ``name`` on ``device`` (default: CUDA when available, else CPU)."""
    if name not in EXTRACTORS:
        raise InputError(
            f"--extractor: unknown feature extractor {name!r}; registered: {', '.join(EXTRACTORS)}"
        )
    return EXTRACTORS[name](resolve_device(device), weights, **options)


@register_extractor("dlib-face")
class DlibFaceExtractor(FeatureExtractor):
    """dlib's face-recognition ResNet: 128-d embeddings of face chips framed by ``framing``
    (default: the images as they are, resized to 150×150; see :mod:`gan_eval.features.framing`).

    With dlib alignment (``Framing(align=True)``) images without a detected face get a zero
    embedding and ``found`` 0; every other image ``found`` 1.
    """

    name = "dlib-face"
    primary = "embedding"

    def __init__(self, device: torch.device, weights: Path | None = None,
                 framing: Framing | None = None) -> None:
        super().__init__(device)
        self._weights = weights
        self._net = load_dlib_face_net(weights, device)
        self._sha = dlib_weights_sha256(weights)
        self.framing = framing or Framing()

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        chips, kept = frame(images, self.framing)
        embedded = embed_faces(chips, batch_size=max(1, chips.shape[0]), device=self.device,
                               weights_path=self._weights)
        if not self.framing.align:
            return {"embedding": embedded}
        found = torch.zeros(images.shape[0], 1, device=self.device)
        found[torch.as_tensor(kept, dtype=torch.long, device=self.device)] = 1.0
        embedding = torch.zeros(images.shape[0], embedded.shape[1], device=self.device)
        embedding[found[:, 0] > 0] = embedded
        return {"embedding": embedding, "found": found}

    def weights_sha256(self) -> str:
        return self._sha

    def settings(self) -> dict[str, Any]:
        return {"framing": self.framing.describe()}


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
        self._net = load_inception(weights, device)

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(self._net(images))

    def weights_sha256(self) -> str:
        return str(self._net.weights_sha256)


register_feature_spaces(register_extractor)

__all__ = ["EXTRACTORS", "DlibFaceExtractor", "FeatureExtractor", "InceptionExtractor",
           "build_extractor", "register_extractor"]
