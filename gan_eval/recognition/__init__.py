"""Recognition testing of generated faces: identity leakage, identity diversity, faceness,
verification and utility, on dlib's 128-D face embeddings.

The entry point is :func:`recognition` (the ``gan-eval recognition`` command is a thin layer over
it). The pure pieces work on embeddings and can be used on their own.
"""

from gan_eval.recognition.diversity import (
    birthday_support,
    diversity,
    first_duplicate_sizes,
    identity_clusters,
)
from gan_eval.recognition.faceness import FACE_DETECTORS, FaceDetector, detect_faces, load_detector
from gan_eval.recognition.framing import Framing, align_faces, frame, frame_crops
from gan_eval.recognition.leakage import (
    NearestReference,
    leakage_at,
    leaked_pairs,
    nearest_reference,
)
from gan_eval.recognition.run import (
    RecognitionConfig,
    analyse_embeddings,
    format_table,
    recognition,
    recognition_metrics,
    run_recognition,
)
from gan_eval.recognition.utility import distractor_identification, generated_impostors
from gan_eval.recognition.verification import (
    PairScores,
    far_threshold,
    kfold_accuracy,
    roc_summary,
    verification,
)

__all__ = [
    "FACE_DETECTORS",
    "FaceDetector",
    "Framing",
    "NearestReference",
    "PairScores",
    "RecognitionConfig",
    "align_faces",
    "analyse_embeddings",
    "birthday_support",
    "detect_faces",
    "distractor_identification",
    "diversity",
    "far_threshold",
    "first_duplicate_sizes",
    "format_table",
    "frame",
    "frame_crops",
    "generated_impostors",
    "identity_clusters",
    "kfold_accuracy",
    "leakage_at",
    "leaked_pairs",
    "load_detector",
    "nearest_reference",
    "recognition",
    "recognition_metrics",
    "roc_summary",
    "run_recognition",
    "verification",
]
