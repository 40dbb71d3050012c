"""Restoration metrics equal the libraries that define them, on the same images and weights.

- PSNR / SSIM vs ``skimage.metrics.peak_signal_noise_ratio`` / ``structural_similarity``
  (``data_range=255``, ``channel_axis=-1``): tolerance 1e-9 (both float64);
- LPIPS vs ``lpips.LPIPS(net="alex")`` with the same AlexNet trunk (random weights in
  torchvision's file format, tests/lpips_fixture.py) and lpips' own v0.1 heads: tolerance 1e-6;
- intervals over faces: the mean's se is sd/√n, rates are rate_interval's Wilson interval;
- identity outcomes on constructed embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lpips_fixture import lpips_reference, write_random_alexnet
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.errors import InputError
from gan_eval.features.lpips_alex import LPIPS_MIN_SIDE, load_lpips_alex
from gan_eval.metrics import (
    identity_outcomes,
    landmark_distance,
    lpips_distance,
    mean_interval,
    paired_difference,
    psnr,
    rate_interval,
    rate_interval_of_means,
    ssim,
)
from gan_eval.metrics.pixel_fidelity import PSNR_CAP
from gan_eval.sources import open_source

PIXEL_TOL = 1e-9
LPIPS_TOL = 1e-6


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()


def _faces(size: int = 64, n: int = 12) -> torch.Tensor:
    return open_source("builtin:lfw-subset", resolution=size).head(n).load()


def _noisy(faces: torch.Tensor, sd: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (faces.double() + sd * torch.randn(faces.shape, generator=g, dtype=torch.float64)
            ).round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("size", [7, 25, 64, 33])
def test_psnr_and_ssim_equal_scikit_image_on_faces(size: int) -> None:
    clean = _faces(size)
    restored = _noisy(clean, 12.0)
    ours_p, ours_s = psnr(restored, clean).numpy(), ssim(restored, clean).numpy()
    for i in range(clean.shape[0]):
        a, b = _hwc(clean[i]), _hwc(restored[i])
        assert abs(ours_p[i] - peak_signal_noise_ratio(a, b, data_range=255)) < PIXEL_TOL
        assert abs(ours_s[i] - structural_similarity(a, b, data_range=255, channel_axis=-1)) \
            < PIXEL_TOL


@settings(max_examples=25, deadline=None)
@given(height=st.integers(7, 40), width=st.integers(7, 40), seed=st.integers(0, 2**31 - 1),
       spread=st.sampled_from([1, 8, 128, 255]))
def test_psnr_and_ssim_equal_scikit_image_on_random_images(height: int, width: int, seed: int,
                                                           spread: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 256, (2, 3, height, width), generator=g, dtype=torch.uint8)
    noise = torch.randint(-spread, spread + 1, a.shape, generator=g)
    b = (a.int() + noise).clamp(0, 255).to(torch.uint8)
    for i in range(2):
        x, y = _hwc(a[i]), _hwc(b[i])
        if np.array_equal(x, y):
            assert psnr(b[i : i + 1], a[i : i + 1]).item() == PSNR_CAP
        else:
            assert abs(psnr(b[i : i + 1], a[i : i + 1]).item()
                       - peak_signal_noise_ratio(x, y, data_range=255)) < PIXEL_TOL
        assert abs(ssim(b[i : i + 1], a[i : i + 1]).item()
                   - structural_similarity(x, y, data_range=255, channel_axis=-1)) < PIXEL_TOL


def test_identical_images_have_the_capped_psnr_and_unit_ssim() -> None:
    faces = _faces(32, 3)
    assert psnr(faces, faces).tolist() == [PSNR_CAP] * 3
    assert torch.allclose(ssim(faces, faces), torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("bad", [
    lambda x: x.float(), lambda x: x[:, :1], lambda x: x[:1], lambda x: x[..., :5, :5],
])
def test_pixel_metrics_refuse_what_is_not_two_matching_image_batches(bad) -> None:
    faces = _faces(16, 2)
    with pytest.raises(InputError):
        ssim(bad(faces), faces)
    if bad(faces).shape[-1] >= 7:
        with pytest.raises(InputError):
            psnr(bad(faces), faces)


@pytest.fixture(scope="module")
def alexnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("alexnet")
    return write_random_alexnet(folder / catalogue.ALEXNET_FILENAME, seed=3)


@pytest.mark.parametrize("size", [LPIPS_MIN_SIDE, 64, 80])
def test_lpips_equals_the_lpips_package_with_the_same_weights(alexnet: Path, size: int) -> None:
    net, hashes = load_lpips_alex(alexnet)
    reference = lpips_reference(alexnet)
    clean = _faces(size, 10)
    restored = _noisy(clean, 20.0, seed=1)
    ours = lpips_distance(net.activations(restored), net.activations(clean), list(net.heads))
    with torch.no_grad():
        theirs = reference(restored.float() / 127.5 - 1, clean.float() / 127.5 - 1).flatten()
    assert ours.shape == (10,) and float(ours.min()) > 0
    assert torch.allclose(ours.double(), theirs.double(), atol=LPIPS_TOL, rtol=0)
    assert set(hashes) == {"alexnet", "heads"}


def test_lpips_refuses_images_too_small_for_alexnet(alexnet: Path) -> None:
    net, _ = load_lpips_alex(alexnet)
    with pytest.raises(InputError, match="at least 31"):
        net.activations(_faces(25, 2))


def test_lpips_weights_missing_or_not_alexnet_is_said(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_lpips_alex(tmp_path / "nope.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(InputError, match=r"features\.0\.weight"):
        load_lpips_alex(wrong)


def test_the_alexnet_entry_is_torchvisions_file() -> None:
    from torchvision.models import AlexNet_Weights

    entry = weights_table.known("lpips-alex")
    assert entry.url == AlexNet_Weights.IMAGENET1K_V1.url
    assert entry.filename in entry.url and entry.sha256_prefix in entry.filename


def test_mean_interval_is_mean_plus_minus_z_sd_over_root_n() -> None:
    values = np.random.default_rng(0).normal(3.0, 2.0, size=40)
    iv = mean_interval(values)
    se = values.std(ddof=1) / np.sqrt(40)
    assert iv.estimate == pytest.approx(values.mean()) and iv.se == pytest.approx(se)
    assert iv.high - iv.low == pytest.approx(2 * 1.959963984540054 * se)
    assert iv.estimand == "population" and iv.n == 40


@given(st.lists(st.booleans(), min_size=2, max_size=60))
def test_rate_of_indicators_is_the_wilson_interval(flags: list[bool]) -> None:
    ours = rate_interval_of_means(np.asarray(flags, dtype=float))
    theirs = rate_interval(sum(flags), len(flags))
    assert (ours.estimate, ours.low, ours.high) == pytest.approx(
        (theirs.estimate, theirs.low, theirs.high), abs=1e-12)


def test_paired_difference_uses_the_per_face_differences() -> None:
    rng = np.random.default_rng(1)
    face = rng.normal(0, 5, size=30)  # faces differ a lot; the methods differ by 0.3
    a, b = face + 0.3 + rng.normal(0, 0.05, 30), face
    paired = paired_difference(a, b)
    assert paired.estimate == pytest.approx(0.3, abs=0.05)
    assert paired.low > 0  # the shared face effect cancels
    assert mean_interval(a).se > 10 * paired.se


def test_intervals_refuse_too_few_or_non_finite_values() -> None:
    for bad in ([1.0], [1.0, np.nan], [0.5, np.inf]):
        with pytest.raises(InputError):
            mean_interval(np.asarray(bad))
    with pytest.raises(InputError):
        rate_interval_of_means(np.asarray([0.5, 1.5]))
    with pytest.raises(InputError):
        paired_difference(np.zeros(3), np.zeros(4))


def test_identity_outcomes_on_constructed_embeddings() -> None:
    clean = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    restored = torch.tensor([[0.1, 0.0], [0.2, 0.0], [0.0, 1.0], [5.0, 4.0]])
    out = identity_outcomes(restored, clean, threshold=0.5)
    assert out.distance == pytest.approx([0.1, 0.8, 0.0, 1.0])
    assert out.kept.tolist() == [True, False, True, False]
    assert out.swapped.tolist() == [False, True, False, False]  # face 1 landed near face 0
    assert out.other[1] == 0 and out.other_distance[1] == pytest.approx(0.2)
    # with labels, faces 0 and 1 are one person: being near face 0 is no swap for face 1
    same = identity_outcomes(restored, clean, threshold=0.5, labels=np.array([0, 0, 1, 2]))
    assert same.swapped.tolist() == [False, False, False, False]
    with pytest.raises(InputError):
        identity_outcomes(restored, clean, threshold=0.5, labels=np.zeros(4))


def test_landmark_distance_is_the_mean_point_distance() -> None:
    a = torch.zeros(2, 5, 2)
    b = a.clone()
    b[0, :, 0] = 3.0
    b[1, 0] = torch.tensor([3.0, 4.0])
    assert landmark_distance(b, a).tolist() == pytest.approx([3.0, 1.0])
    with pytest.raises(InputError):
        landmark_distance(a, a[:, :4])
