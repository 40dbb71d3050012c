"""Our port of dlib's shape predictor gives dlib's landmarks (dlib-bin, test-only reference).

dlib returns integer pixel positions (the float shape rounded); ours are the unrounded floats.
Tolerance: every landmark within 1 pixel of dlib's, and at least 97% of them equal to dlib's
after rounding (the rest sit within 0.6 px: a float32 difference in the similarity transform
that flips the rounding of a feature pixel, then one tree's leaf).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_eval.errors import InputError
from gan_eval.features.shape_predictor import (
    default_shape_model_path,
    load_shape_predictor,
    read_shape_model,
)
from gan_eval.sources import open_source

dlib = pytest.importorskip("dlib")

TOLERANCE_PX = 1.0
EXACT_FRACTION = 0.97


@pytest.fixture(scope="module")
def reference() -> object:
    return dlib.shape_predictor(str(default_shape_model_path()))


def _dlib_points(reference: object, images: torch.Tensor, box: tuple[int, int, int, int]
                 ) -> np.ndarray:
    out = []
    for image in images:
        array = np.ascontiguousarray(image.permute(1, 2, 0).numpy())
        shape = reference(array, dlib.rectangle(*box))  # type: ignore[operator]
        out.append([[shape.part(k).x, shape.part(k).y] for k in range(shape.num_parts)])
    return np.asarray(out, dtype=np.float64)


def _colour(faces: torch.Tensor) -> torch.Tensor:
    """Gray faces with a different tint per channel (intensity = (R + G + B) // 3 matters)."""
    tint = torch.tensor([0.8, 1.0, 1.15]).view(1, 3, 1, 1)
    return (faces.float() * tint).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize(("size", "box", "colour"), [
    (25, (0, 0, 24, 24), False),
    (64, (0, 0, 63, 63), False),
    (64, (8, 6, 55, 60), False),
    (64, (-6, -4, 70, 66), True),
    (48, (2, 3, 45, 44), True),
])
def test_landmarks_equal_dlibs_predictor(reference: object, size: int,
                                         box: tuple[int, int, int, int], colour: bool) -> None:
    faces = open_source("builtin:lfw-subset", resolution=size).load()
    if colour:
        faces = _colour(faces)
    ours = load_shape_predictor()(faces, box).numpy()
    theirs = _dlib_points(reference, faces, box)
    assert ours.shape == theirs.shape == (100, 5, 2)
    assert np.abs(ours - theirs).max() <= TOLERANCE_PX
    assert np.mean(np.floor(ours + 0.5) == theirs) >= EXACT_FRACTION


def test_landmarks_on_a_photo_with_dlibs_detector_box(reference: object) -> None:
    from skimage.data import astronaut

    photo = astronaut()
    found = dlib.get_frontal_face_detector()(photo, 1)
    assert len(found) >= 1
    image = torch.from_numpy(photo).permute(2, 0, 1)[None].contiguous()
    for rect in found:  # the face, and whatever else HOG takes for one
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())
        ours = load_shape_predictor()(image, box).numpy()
        theirs = _dlib_points(reference, image, box)
        assert np.abs(ours - theirs).max() <= TOLERANCE_PX


def test_per_image_boxes_equal_one_call_per_box() -> None:
    faces = open_source("builtin:lfw-subset", resolution=64).head(4).load()
    boxes = torch.tensor([[0, 0, 63, 63], [4, 4, 59, 59], [0, 2, 60, 63], [10, 10, 50, 50]])
    predictor = load_shape_predictor()
    together = predictor(faces, boxes)
    alone = torch.cat([predictor(faces[i : i + 1], boxes[i]) for i in range(4)])
    assert torch.equal(together, alone)


def test_the_model_file_decodes_to_dlibs_structure() -> None:
    model = read_shape_model(default_shape_model_path())
    assert model.landmarks == 5 and model.depth == 4
    assert model.split_idx.shape == (15, 500, 15, 2) and model.leaves.shape == (15, 500, 16, 5, 2)
    assert model.anchor_idx.shape == model.deltas.shape[:2] == (15, 800)
    assert ((model.initial_shape >= 0) & (model.initial_shape <= 1)).all()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "other_dlib_file"])
def test_files_that_are_not_shape_predictors_are_refused(tmp_path: Path, damage: str) -> None:
    data = default_shape_model_path().read_bytes()
    path = tmp_path / "model.dat"
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 3])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        from gan_eval.features.dlib_face import default_weights_path

        path.write_bytes(default_weights_path().read_bytes()[:200_000])
    with pytest.raises(InputError, match=r"model\.dat"):
        read_shape_model(path)
