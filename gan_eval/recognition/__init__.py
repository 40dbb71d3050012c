"""Recognition testing of generated faces: identity leakage, identity diversity, faceness,
verification and utility, and identity-level statistics (Vendi score, membership test of
training identities, authenticity), on dlib's 128-D face embeddings.

The entry point is :func:`recognition` (:mod:`.audit`; the ``gan-eval recognition`` command is a
thin layer over it). The pure pieces (:mod:`.leakage`, :mod:`.diversity`, :mod:`.verification`,
:mod:`.utility`, :mod:`.faceness`, :mod:`.identity`) work on embeddings or images and can be
used on their own. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gan_eval.callable_module import make_callable

_LAZY = {
    "RecognitionConfig": "audit", "analyse_embeddings": "audit", "recognition": "audit",
    "recognition_metrics": "audit", "open_heldout": "audit",
    "birthday_support": "diversity", "diversity": "diversity",
    "first_duplicate_sizes": "diversity", "identity_clusters": "diversity",
    "HeldOut": "identity", "identity_metrics": "identity", "identity_section": "identity",
    "FACE_DETECTORS": "faceness", "FaceDetector": "faceness", "detect_faces": "faceness",
    "load_detector": "faceness",
    "NearestReference": "leakage", "leakage_at": "leakage", "leaked_pairs": "leakage",
    "nearest_reference": "leakage",
    "distractor_identification": "utility", "generated_impostors": "utility",
    "PairScores": "verification", "far_threshold": "verification",
    "kfold_accuracy": "verification", "roc_summary": "verification",
    "verification": "verification",
}

if TYPE_CHECKING:
    from gan_eval.recognition.audit import (
        RecognitionConfig,
        analyse_embeddings,
        open_heldout,
        recognition,
        recognition_metrics,
    )
    from gan_eval.recognition.diversity import (
        birthday_support,
        diversity,
        first_duplicate_sizes,
        identity_clusters,
    )
    from gan_eval.recognition.faceness import (
        FACE_DETECTORS,
        FaceDetector,
        detect_faces,
        load_detector,
    )
    from gan_eval.recognition.identity import HeldOut, identity_metrics, identity_section
    from gan_eval.recognition.leakage import (
        NearestReference,
        leakage_at,
        leaked_pairs,
        nearest_reference,
    )
    from gan_eval.recognition.utility import distractor_identification, generated_impostors
    from gan_eval.recognition.verification import (
        PairScores,
        far_threshold,
        kfold_accuracy,
        roc_summary,
        verification,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "FACE_DETECTORS",
    "FaceDetector",
    "HeldOut",
    "NearestReference",
    "PairScores",
    "RecognitionConfig",
    "analyse_embeddings",
    "birthday_support",
    "detect_faces",
    "distractor_identification",
    "diversity",
    "far_threshold",
    "first_duplicate_sizes",
    "generated_impostors",
    "identity_clusters",
    "identity_metrics",
    "identity_section",
    "kfold_accuracy",
    "leakage_at",
    "leaked_pairs",
    "load_detector",
    "nearest_reference",
    "open_heldout",
    "recognition",
    "recognition_metrics",
    "roc_summary",
    "verification",
]

make_callable(__name__)  # gan_eval.recognition(...) calls recognition() (gan_eval.callable_module)
