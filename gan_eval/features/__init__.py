"""Feature extractors: dlib's face-recognition ResNet (128-D face embeddings) in PyTorch.

Importing this package registers the ``dlib-face`` feature extractor in torch-fidelity; no
weights are loaded until first use.
"""

from typing import Any

from gan_eval.features.dlib_face import (
    EMBEDDING_DIM,
    FEATURE_EXTRACTOR_NAME,
    DlibFaceNet,
    FeatureExtractorDlibFace,
    default_weights_path,
    dlib_weights_sha256,
    embed_faces,
    load_dlib_face_net,
    register_dlib_face_extractor,
)
from gan_eval.features.dlib_format import read_dlib_net

__all__ = [
    "EMBEDDING_DIM",
    "FEATURE_EXTRACTOR_NAME",
    "DlibFaceNet",
    "FeatureExtractorDlibFace",
    "default_weights_path",
    "dlib_weights_sha256",
    "embed_faces",
    "load_dlib_face_net",
    "read_dlib_net",
    "register_dlib_face_extractor",
]


def __getattr__(name: str) -> Any:
    """Lazy ``WEIGHTS_SHA256``: sha256 of the installed dlib weights file (hashed on first use)."""
    if name == "WEIGHTS_SHA256":
        return dlib_weights_sha256()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
