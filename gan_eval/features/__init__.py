"""Feature extractors: dlib's face-recognition ResNet (128-D face embeddings) in PyTorch, and
torch-fidelity's InceptionV3 executed faster (BatchNorm folded, channels_last); dlib's 5-point
landmark predictor (:mod:`.shape_predictor`, :func:`load_shape_predictor`) and LPIPS's AlexNet
(:mod:`.lpips_alex`, :func:`load_lpips_alex`) read from their official files; the registry
(:mod:`.registry`), face framing (:mod:`.framing`) and cached, sharded extraction
(:mod:`.extraction`: the one path from a source to its features or embeddings).

Importing this package registers every extractor (:mod:`.registry`: in gan-eval's registry, the
catalogue and torch-fidelity's registry, under the same names); no weights are loaded until one is
built.
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
)
from gan_eval.features.dlib_format import read_dlib_net
from gan_eval.features.extraction import Features, extract
from gan_eval.features.framing import Framing
from gan_eval.features.inception import FAST_EXTRACTOR_NAME, load_inception
from gan_eval.features.lpips_alex import load_lpips_alex
from gan_eval.features.registry import (
    EXTRACTORS,
    FeatureExtractor,
    build_extractor,
    register_extractor,
)
from gan_eval.features.shape_predictor import load_shape_predictor

__all__ = [
    "EMBEDDING_DIM",
    "EXTRACTORS",
    "FAST_EXTRACTOR_NAME",
    "FEATURE_EXTRACTOR_NAME",
    "DlibFaceNet",
    "FeatureExtractor",
    "FeatureExtractorDlibFace",
    "Features",
    "Framing",
    "build_extractor",
    "default_weights_path",
    "dlib_weights_sha256",
    "embed_faces",
    "extract",
    "load_dlib_face_net",
    "load_inception",
    "load_lpips_alex",
    "load_shape_predictor",
    "read_dlib_net",
    "register_extractor",
]


def __getattr__(name: str) -> Any:
    """Lazy ``WEIGHTS_SHA256``: sha256 of the installed dlib weights file (hashed on first use)."""
    if name == "WEIGHTS_SHA256":
        return dlib_weights_sha256()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
