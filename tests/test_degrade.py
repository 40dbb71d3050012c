"""Degradations (gan_eval.data.degrade): each equal to the library that defines it, per-image
severities equal to one call per image, seeded randomness, and bad severities refused by class."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import scipy.ndimage
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gan_eval.data import open_images
from gan_eval.data.degrade import (
    DEFAULT_RANGES,
    DEGRADATIONS,
    SeverityRange,
    apply_degradation,
    downsample,
    format_ranges,
    gaussian_blur,
    gaussian_kernel,
    gaussian_noise,
    jpeg,
    parse_ranges,
    random_degradations,
    shrink,
    upsample,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """12 real faces, 32×32, three equal channels."""
    return open_images("builtin:lfw-subset", resolution=32).load()[:12]


@pytest.fixture(scope="module")
def colour() -> torch.Tensor:
    """8 colour images, 40×36 (not square), values across 0..255."""
    return torch.randint(0, 256, (8, 3, 40, 36), generator=torch.Generator().manual_seed(3),
                         dtype=torch.uint8)


def hwc(image: torch.Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


# -- each degradation against the library that defines it -----------------------------------

@pytest.mark.parametrize("sigma", [0.3, 0.5, 1.0, 1.7, 2.0, 4.5])
def test_blur_equals_scipy_gaussian_filter(faces: torch.Tensor, colour: torch.Tensor,
                                           sigma: float) -> None:
    """Tolerance: 1 level where the float results straddle a rounding boundary (float32 vs
    float64 sums); at least 99% of values equal."""
    for images in (faces, colour):
        ours = gaussian_blur(images, sigma).numpy().astype(int)
        ref = scipy.ndimage.gaussian_filter(images.numpy().astype(np.float64),
                                            sigma=(0, 0, sigma, sigma), mode="nearest")
        ref = np.clip(np.rint(ref), 0, 255).astype(int)
        assert np.abs(ours - ref).max() <= 1
        assert (ours == ref).mean() >= 0.99


def test_gaussian_kernel_is_scipys() -> None:
    for sigma in (0.4, 1.0, 2.3):
        radius = int(4.0 * sigma + 0.5)
        impulse = np.zeros(2 * radius + 1)
        impulse[radius] = 1.0
        ref = scipy.ndimage.gaussian_filter1d(impulse, sigma, mode="constant")
        np.testing.assert_allclose(gaussian_kernel(sigma).numpy(), ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downsample_equals_pil_bicubic(faces: torch.Tensor, colour: torch.Tensor,
                                       scale: int) -> None:
    """PIL's BICUBIC resize of float ('F') images down to ⌊H/s⌋×⌊W/s⌋, rounded (the
    observation, :func:`shrink`), and back up, rounded. Tolerance: 1 level (PIL works in
    float32), ≥ 99% equal."""
    for images in (faces, colour):
        small_ours = shrink(images, scale)
        ours = downsample(images, scale)
        assert torch.equal(ours, upsample(small_ours, tuple(images.shape[-2:])))
        h, w = images.shape[-2:]
        small_ref = np.empty(small_ours.shape, dtype=int)
        ref = np.empty(images.shape, dtype=int)
        for i, image in enumerate(images.numpy().astype(np.float32)):
            for c, channel in enumerate(image):
                small = Image.fromarray(channel, mode="F").resize((w // scale, h // scale),
                                                                   Image.Resampling.BICUBIC)
                small_ref[i, c] = np.clip(np.rint(np.asarray(small)), 0, 255)
                rounded = Image.fromarray(small_ref[i, c].astype(np.float32), mode="F")
                big = np.asarray(rounded.resize((w, h), Image.Resampling.BICUBIC))
                ref[i, c] = np.clip(np.rint(big), 0, 255)
        for got, want in ((small_ours.numpy().astype(int), small_ref),
                          (ours.numpy().astype(int), ref)):
            assert np.abs(got - want).max() <= 1
            assert (got == want).mean() >= 0.99


def test_upsample_nearest_replicates_pixels(colour: torch.Tensor) -> None:
    small = shrink(colour, 4)  # 10×9
    big = upsample(small, (20, 18), "nearest")
    assert torch.equal(big, small.repeat_interleave(2, 2).repeat_interleave(2, 3))
    with pytest.raises(ValueError, match="mode 'bilinear'"):
        upsample(small, (20, 18), "bilinear")
    with pytest.raises(ValueError, match="scale 41"):
        shrink(colour, 41)


@pytest.mark.parametrize("quality", [1, 10, 50, 95])
def test_jpeg_is_pils_encoder_at_that_quality(colour: torch.Tensor, quality: int) -> None:
    ours = jpeg(colour, quality)
    for i, image in enumerate(colour):
        buffer = io.BytesIO()
        Image.fromarray(hwc(image)).save(buffer, format="JPEG", quality=quality)
        assert np.array_equal(hwc(ours[i]), np.asarray(Image.open(buffer).convert("RGB")))


def test_jpeg_error_grows_as_quality_falls(faces: torch.Tensor) -> None:
    errors = [(jpeg(faces, q).float() - faces.float()).abs().mean().item()
              for q in (95, 50, 20, 5)]
    assert errors == sorted(errors) and errors[0] < errors[-1] / 3


def test_noise_has_the_standard_deviation_asked_for() -> None:
    """On mid-grey images (no clipping) the added noise has sd within 2% of the request and
    mean near 0; rounding adds variance 1/12."""
    grey = torch.full((16, 3, 32, 32), 128, dtype=torch.uint8)
    for sd in (5.0, 25.0):
        noisy = gaussian_noise(grey, sd, generator=torch.Generator().manual_seed(0))
        diff = noisy.double() - 128
        assert math.isclose(diff.std().item(), math.sqrt(sd**2 + 1 / 12), rel_tol=0.02)
        assert abs(diff.mean().item()) < 0.1 * sd


def test_noise_is_seeded_by_its_generator(faces: torch.Tensor) -> None:
    a = gaussian_noise(faces, 10.0, generator=torch.Generator().manual_seed(1))
    b = gaussian_noise(faces, 10.0, generator=torch.Generator().manual_seed(1))
    c = gaussian_noise(faces, 10.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_with_one_generator_per_image_is_batch_invariant(faces: torch.Tensor) -> None:
    def generators(indices: range) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(100 + i) for i in indices]

    whole = gaussian_noise(faces, 10.0, generator=generators(range(12)))
    alone = gaussian_noise(faces[5:7], 10.0, generator=generators(range(5, 7)))
    assert torch.equal(whole[5:7], alone)
    with pytest.raises(ValueError, match="3 generators for 12 images"):
        gaussian_noise(faces, 10.0, generator=generators(range(3)))


# -- contracts shared by every degradation --------------------------------------------------

SEVERITIES = {"blur": (0.0, 1.2), "downsample": (1, 3), "noise": (0.0, 12.0), "jpeg": (100, 20)}


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_shape_dtype_and_identity_severity(colour: torch.Tensor, name: str) -> None:
    mild, strong = SEVERITIES[name]
    gen = torch.Generator().manual_seed(0)
    out = apply_degradation(colour, name, strong, generator=gen)
    assert out.dtype == torch.uint8 and out.shape == colour.shape
    assert not torch.equal(out, colour)
    same = apply_degradation(colour, name, mild, generator=gen)
    if name != "jpeg":  # quality 100 still re-encodes
        assert torch.equal(same, colour)


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_per_image_severities_equal_one_call_per_image(colour: torch.Tensor, name: str) -> None:
    mild, strong = SEVERITIES[name]
    middle = (mild + strong) / 2
    if DEGRADATIONS[name].integer:
        middle = round(middle)
    values = [strong, mild, middle, strong] * 2
    batch = apply_degradation(colour, name, torch.tensor(values),
                              generator=torch.Generator().manual_seed(5))
    if name == "noise":  # image i's noise is the i-th slice of the batch's draws
        draws = torch.randn(colour.shape, generator=torch.Generator().manual_seed(5),
                            dtype=torch.float64)
        ref = (colour.double() + torch.tensor(values, dtype=torch.float64).view(-1, 1, 1, 1)
               * draws).round()
        assert torch.equal(batch, ref.clamp(0, 255).to(torch.uint8))
        return
    for i, value in enumerate(values):
        alone = apply_degradation(colour[i : i + 1], name, value)
        assert (batch[i].int() - alone[0].int()).abs().max() <= 1, (i, value)


BAD_SEVERITY = {
    "blur": [-0.1, 16.5, float("nan"), float("inf"), True],
    "downsample": [0, 2.5, 17, -2, float("nan"), 41],  # 41 > the 40×36 image
    "noise": [-1.0, 256.0, float("nan"), False],
    "jpeg": [0, 101, 50.5, float("-inf")],
}


@pytest.mark.parametrize(("name", "bad"), [(n, v) for n, vs in BAD_SEVERITY.items() for v in vs])
def test_bad_severity_is_refused(colour: torch.Tensor, name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=name):
        apply_degradation(colour, name, bad, generator=torch.Generator())


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_wrong_number_of_severities_is_refused(colour: torch.Tensor, name: str) -> None:
    with pytest.raises(ValueError, match="3 severities for 8 images"):
        apply_degradation(colour, name, [SEVERITIES[name][1]] * 3, generator=torch.Generator())


@pytest.mark.parametrize("images", [
    torch.zeros(2, 3, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.uint8),
    torch.zeros(3, 8, 8, dtype=torch.uint8), np.zeros((2, 3, 8, 8), dtype=np.uint8),
])
@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_images_outside_the_contract_are_refused(images: object, name: str) -> None:
    with pytest.raises(ValueError, match="uint8 images of shape B×3×H×W"):
        apply_degradation(images, name, SEVERITIES[name][1],  # type: ignore[arg-type]
                          generator=torch.Generator())


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown degradation 'sharpen'; choose one of blur"):
        apply_degradation(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "sharpen", 1.0)


# -- ranges and random draws -----------------------------------------------------------------

def _range() -> st.SearchStrategy[SeverityRange]:
    def build(name: str, a: float, b: float) -> SeverityRange:
        kind = DEGRADATIONS[name]
        lo, hi = sorted((a, b))
        span = kind.high - kind.low
        lo, hi = kind.low + lo * span, kind.low + hi * span
        if kind.integer:
            lo, hi = float(round(lo)), float(round(hi))
        return SeverityRange(name, lo, hi)

    unit = st.floats(0, 1, allow_nan=False)
    return st.builds(build, st.sampled_from(list(DEGRADATIONS)), unit, unit)


@given(st.lists(_range(), min_size=1, max_size=4, unique_by=lambda r: r.name))
def test_ranges_round_trip_through_text(ranges: list[SeverityRange]) -> None:
    assert parse_ranges(format_ranges(ranges)) == tuple(ranges)


def test_default_ranges_parse() -> None:
    ranges = parse_ranges(DEFAULT_RANGES)
    assert [r.name for r in ranges] == ["blur", "downsample", "noise", "jpeg"]
    assert format_ranges(ranges) == DEFAULT_RANGES
    assert parse_ranges("jpeg=30") == (SeverityRange("jpeg", 30, 30),)


@pytest.mark.parametrize(("text", "message"), [
    ("", "expected name=low:high"),
    ("blur", "expected name=low:high"),
    ("blur=a:2", "with numbers"),
    ("blur=1:2,blur=2:3", "given twice"),
    ("sharpen=1:2", "unknown degradation"),
    ("blur=2:1", "low exceeds high"),
    ("blur=0.5:40", r"in \[0, 16\]"),
    ("downsample=1.5:4", "whole numbers"),
    ("jpeg=0:50", r"in \[1, 100\]"),
    ("noise=nan:3", "noise"),
])
def test_bad_range_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_ranges(text)


@settings(deadline=None, max_examples=25)
@given(st.integers(0, 2**31), st.lists(_range(), min_size=1, max_size=4,
                                       unique_by=lambda r: r.name))
def test_random_draws_are_seeded_and_within_their_ranges(seed: int,
                                                         ranges: list[SeverityRange]) -> None:
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    a, plan = random_degradations(images, ranges, torch.Generator().manual_seed(seed))
    b, again = random_degradations(images, ranges, torch.Generator().manual_seed(seed))
    assert torch.equal(a, b) and torch.equal(plan.kinds, again.kinds)
    assert torch.equal(plan.severities, again.severities)
    for kind, severity in zip(plan.kinds.tolist(), plan.severities.tolist(), strict=True):
        r = ranges[kind]
        assert r.low <= severity <= r.high
        if r.degradation.integer:
            assert severity == round(severity)


def test_random_draws_cover_every_kind_and_both_ends_of_integer_ranges() -> None:
    ranges = parse_ranges("blur=0.5:2,downsample=2:4,jpeg=10:12")
    images = torch.zeros(600, 3, 8, 8, dtype=torch.uint8)
    _, plan = random_degradations(images, ranges, torch.Generator().manual_seed(0))
    counts = torch.bincount(plan.kinds, minlength=3)
    assert counts.min() > 150  # 200 expected each
    assert set(plan.severities[plan.kinds == 1].tolist()) == {2.0, 3.0, 4.0}
    assert set(plan.severities[plan.kinds == 2].tolist()) == {10.0, 11.0, 12.0}


def test_the_audits_torch_free_table_of_kinds_agrees() -> None:
    """gan_eval.restoration.plan lists the kinds without torch (for the CLI's early checks);
    its names, units and bounds are these degradations'."""
    from gan_eval.restoration.plan import KINDS

    assert list(KINDS) == list(DEGRADATIONS)
    for name, kind in KINDS.items():
        ours = DEGRADATIONS[name]
        assert (kind.parameter, kind.unit, kind.high, kind.integer, kind.worse_when_higher) == (
            ours.parameter, ours.unit, ours.high, ours.integer, ours.worse_when_higher)
        assert kind.low >= ours.low  # the audit may exclude the identity severities
