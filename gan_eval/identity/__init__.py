"""Recognition testing of generated faces: identity leakage, identity diversity, faceness,
verification and utility, and identity-level statistics (Vendi score, membership test of
training identities, authenticity), on dlib's 128-D face embeddings.

The entry point is :func:`recognition` (:mod:`.audit`; the ``gan-eval recognition`` command is a
thin layer over it). The pure pieces (:mod:`.leakage`, :mod:`.distinct_identities`,
:mod:`.verification_roc`, :mod:`.utility`, :mod:`.faceness`, :mod:`.statistics`) work on
embeddings or images and can be used on their own. Names are imported on first use; no public
name shares its name with a submodule, so ``gan_eval.recognition`` and
``gan_eval.identity.diversity`` are always the functions their docstrings describe.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "RecognitionConfig": "audit", "analyse_embeddings": "audit", "recognition": "audit",
    "recognition_metrics": "audit", "open_heldout": "audit",
    "birthday_support": "distinct_identities", "diversity": "distinct_identities",
    "first_duplicate_sizes": "distinct_identities",
    "identity_clusters": "distinct_identities",
    "HeldOut": "statistics", "identity_metrics": "statistics", "identity_section": "statistics",
    "FACE_DETECTORS": "faceness", "FaceDetector": "faceness", "detect_faces": "faceness",
    "load_detector": "faceness",
    "NearestReference": "leakage", "leakage_at": "leakage", "leaked_pairs": "leakage",
    "nearest_reference": "leakage",
    "distractor_identification": "utility", "generated_impostors": "utility",
    "PairScores": "verification_roc", "far_threshold": "verification_roc",
    "kfold_accuracy": "verification_roc", "roc_summary": "verification_roc",
    "verification": "verification_roc",
}

if TYPE_CHECKING:
    from gan_eval.identity.audit import (
        RecognitionConfig,
        analyse_embeddings,
        open_heldout,
        recognition,
        recognition_metrics,
    )
    from gan_eval.identity.distinct_identities import (
        birthday_support,
        diversity,
        first_duplicate_sizes,
        identity_clusters,
    )
    from gan_eval.identity.faceness import (
        FACE_DETECTORS,
        FaceDetector,
        detect_faces,
        load_detector,
    )
    from gan_eval.identity.leakage import (
        NearestReference,
        leakage_at,
        leaked_pairs,
        nearest_reference,
    )
    from gan_eval.identity.statistics import HeldOut, identity_metrics, identity_section
    from gan_eval.identity.utility import distractor_identification, generated_impostors
    from gan_eval.identity.verification_roc import (
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

