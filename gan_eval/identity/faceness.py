"""Faceness: the fraction of images in which a face detector finds a face.

Detectors form a small registry (:data:`FACE_DETECTORS`), tried in order: dlib's HOG frontal
face detector when ``dlib`` (PyPI ``dlib-bin``) is importable, else scikit-image's LBP cascade
(``skimage.feature.Cascade`` with its bundled ``lbpcascade_frontalface_opencv.xml``). Each image is
seen padded and upsampled as :func:`gan_eval.features.framing.detection_views` describes (25-px
images ×4, 64-px ×2), which is what makes small GAN outputs detectable at all. When no detector
can be loaded, faceness is recorded as skipped with the reason, never an error.

On ``builtin:lfw-subset`` (25×25) HOG finds a face in 91 of the 100 faces and in none of the 100
non-face patches; the LBP cascade in 96 and none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.features.framing import detection_views, hog_upsample


class FaceDetector(ABC):
    """Counts faces in H×W×3 uint8 views (already padded and upsampled)."""

    name: ClassVar[str]
    description: ClassVar[str]
    chosen_because: ClassVar[str]
    """Why this detector runs when none is named, and how its rates compare with the other's."""

    @abstractmethod
    def has_face(self, view: np.ndarray, factor: int) -> bool:
        """Whether at least one face is found in ``view`` (upsampled ×``factor``)."""


class DlibHogDetector(FaceDetector):
    name = "dlib-hog"
    description = "dlib HOG frontal face detector (dlib.get_frontal_face_detector)"
    chosen_because = (
        "dlib (PyPI dlib-bin) is installed, and gan-eval prefers its detector. A base install "
        "(pip install gan-eval, without dlib-bin) uses scikit-image's LBP cascade (skimage-lbp) "
        "instead, which finds a face in more small, blurry images: faceness rates of different "
        "detectors are not comparable (the metric's extractor names the detector)"
    )

    def __init__(self) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()

    def has_face(self, view: np.ndarray, factor: int) -> bool:
        return len(self._detector(view, hog_upsample(factor))) > 0


class SkimageLbpDetector(FaceDetector):
    name = "skimage-lbp"
    description = (
        "scikit-image LBP cascade (skimage.feature.Cascade, lbpcascade_frontalface_opencv.xml); "
        "detect_multi_scale(scale_factor=1.2, step_ratio=1, min_size = side/4, max_size = side)"
    )
    chosen_because = (
        "dlib (PyPI dlib-bin) cannot be imported here. With it, gan-eval uses dlib's HOG detector "
        "(dlib-hog) instead, which finds a face in fewer small, blurry images: faceness rates of "
        "different detectors are not comparable (the metric's extractor names the detector)"
    )

    def __init__(self) -> None:
        from skimage.data import lbp_frontal_face_cascade_filename
        from skimage.feature import Cascade

        self._cascade = Cascade(lbp_frontal_face_cascade_filename())

    def has_face(self, view: np.ndarray, factor: int) -> bool:
        gray = view.astype(np.float64).mean(axis=2) / 255.0
        side = min(gray.shape)
        low = max(24, side // 4)
        found = self._cascade.detect_multi_scale(
            gray, scale_factor=1.2, step_ratio=1, min_size=(low, low), max_size=(side, side)
        )
        return len(found) > 0


FACE_DETECTORS: dict[str, Callable[[], FaceDetector]] = {
    DlibHogDetector.name: DlibHogDetector,
    SkimageLbpDetector.name: SkimageLbpDetector,
}
"""Face detectors by name, in order of preference."""


def load_detector(name: str | None = None) -> tuple[FaceDetector | None, list[str]]:
    """The detector ``name`` (or the first that loads) and the reasons the others did not."""
    names = [name] if name is not None else list(FACE_DETECTORS)
    reasons: list[str] = []
    for candidate in names:
        if candidate not in FACE_DETECTORS:
            raise InputError(
                f"detector: unknown face detector {candidate!r}; known: "
                + ", ".join(FACE_DETECTORS)
            )
        try:
            return FACE_DETECTORS[candidate](), reasons
        except (ImportError, OSError) as exc:
            reasons.append(f"{candidate}: {type(exc).__name__}: {exc}")
    return None, reasons


@dataclass
class Faceness:
    """Which of the examined images hold a face, per a named detector."""

    detector: str
    description: str
    found: np.ndarray  # bool (N,)
    factors: list[int] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.found.size)

    @property
    def rate(self) -> float:
        return float(self.found.mean()) if self.found.size else float("nan")


def detect_faces(batches: Iterable[torch.Tensor], detector: FaceDetector) -> Faceness:
    """Run ``detector`` over uint8 B×3×H×W ``batches``."""
    found: list[bool] = []
    factors: set[int] = set()
    for batch in batches:
        views, factor, _ = detection_views(batch)
        factors.add(factor)
        found.extend(detector.has_face(view, factor) for view in views)
    return Faceness(
        detector=detector.name,
        description=detector.description,
        found=np.asarray(found, dtype=bool),
        factors=sorted(factors),
    )


def skipped(reasons: list[str]) -> dict[str, Any]:
    """The ``faceness`` section when no detector could be loaded."""
    return {
        "skipped": True,
        "reason": "no face detector could be loaded (install dlib-bin, or scikit-image with "
        "its bundled LBP cascade): " + "; ".join(reasons),
    }
