"""DCGAN shapes for every resolution and channel count, normalization choices and init."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gan_eval.gan.models import RESOLUTIONS, Discriminator, Generator, ModelSpec, count_parameters


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(resolution: int, channels: int) -> None:
    spec = ModelSpec(resolution=resolution, channels=channels, nz=16, ngf=8, ndf=8)
    g, d = Generator(spec), Discriminator(spec)
    z = torch.randn(3, 16)
    images = g(z)
    assert images.shape == (3, channels, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1  # tanh output
    assert torch.equal(g(z[:, :, None, None]), images)  # B×nz and B×nz×1×1 accepted
    assert d(images).shape == (3,)
    # one stride-2 (transposed) conv per doubling between 4×4 and the output
    n_up = sum(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in g.modules())
    n_down = sum(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in d.modules())
    assert n_up == n_down == spec.doublings == {32: 3, 64: 4, 128: 5}[resolution]


def test_64px_matches_the_pytorch_dcgan_example() -> None:
    """nz=100, ngf=ndf=64, 3 channels: the parameter counts of pytorch/examples dcgan/main.py."""
    spec = ModelSpec(resolution=64, channels=3, nz=100, ngf=64, ndf=64)
    assert count_parameters(Generator(spec)) == 3_576_704
    assert count_parameters(Discriminator(spec)) == 2_765_568


def test_discriminator_normalization_choices() -> None:
    def kinds(spec: ModelSpec) -> set[type]:
        return {type(m) for m in Discriminator(spec).modules()}

    batch = kinds(ModelSpec(d_norm="batch", ngf=8, ndf=8))
    assert nn.BatchNorm2d in batch and nn.GroupNorm not in batch
    first = Discriminator(ModelSpec(ngf=8, ndf=8)).main
    assert isinstance(first[0], nn.Conv2d) and isinstance(first[1], nn.LeakyReLU)  # no BN first
    assert first[1].negative_slope == 0.2
    layer = kinds(ModelSpec(d_norm="layer", ngf=8, ndf=8))
    assert nn.GroupNorm in layer and nn.BatchNorm2d not in layer
    sn = Discriminator(ModelSpec(d_norm="none", spectral_norm=True, ngf=8, ndf=8))
    assert not any(isinstance(m, nn.BatchNorm2d | nn.GroupNorm) for m in sn.modules())
    convs = [m for m in sn.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(hasattr(m, "parametrizations") for m in convs)


def test_dcgan_init() -> None:
    torch.manual_seed(0)
    g = Generator(ModelSpec(resolution=64, ngf=64))
    weights = torch.cat([m.weight.flatten() for m in g.modules()
                         if isinstance(m, nn.ConvTranspose2d)])
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    scales = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)


def test_invalid_spec_is_an_internal_error() -> None:
    with pytest.raises(ValueError, match="resolution"):
        ModelSpec(resolution=48)
