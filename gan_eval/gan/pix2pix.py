"""The restoration GAN's networks, pix2pix-style (Isola et al. 2017): a U-Net generator and a
PatchGAN discriminator on (degraded, image) pairs, for 32, 64 and 128 px.

:class:`UNetGenerator` maps a degraded image (float B×3×R×R in [-1, 1]) to a restored one of the
same shape. It is pix2pix's ``UnetGenerator``: log2(R) stride-2 4×4 convolutions down to 1×1
(widths ngf, 2·ngf, 4·ngf, then 8·ngf; LeakyReLU(0.2), BatchNorm except on the outermost and
innermost layers), mirrored by stride-2 transposed convolutions (ReLU, BatchNorm) that take the
encoder's feature maps as skip connections. Two differences, both for the short runs this
toolkit trains: no dropout (pix2pix keeps dropout at test time as its only noise; gan-eval's EMA
generator is evaluated deterministically), and the output is the *input plus a correction*
clipped to [-1, 1] instead of a tanh of a new image, with the last layer initialised to zero:
an untrained generator is exactly the identity (the no-restoration baseline), and training only
has to learn what to change.

:class:`PatchDiscriminator` is pix2pix's ``NLayerDiscriminator`` on the 6-channel concatenation
(degraded, image): ``d_layers`` stride-2 4×4 convolutions, a stride-1 one, and a stride-1
convolution to one logit per patch; 2 layers at 32 px (34×34 receptive field, 6×6 patches),
3 above (pix2pix's 70×70 PatchGAN). Its logits are flattened to B·P numbers, so every loss of
:mod:`gan_eval.gan.losses` (batch means) averages over patches as pix2pix's does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gan_eval.gan.models import (
    MAX_PARAMETERS,
    MAX_WIDTH,
    RESOLUTIONS,
    DNorm,
    JsonSpec,
    d_norm_layers,
    dcgan_init_,
    spectral_norm_convs_,
)

CHANNELS = 3
"""Restoration networks map 3×R×R images to 3×R×R images (gray data is 3 equal channels)."""


def default_d_layers(resolution: int) -> int:
    """Stride-2 layers of the PatchGAN: 2 at 32 px (34×34 patches), 3 above (70×70)."""
    return 2 if resolution <= 32 else 3


@dataclass(frozen=True, kw_only=True)
class RestorationSpec(JsonSpec):
    """Everything that fixes the shapes of the U-Net and the PatchGAN; stored in checkpoints.

    ``d_norm`` as :class:`gan_eval.gan.models.ModelSpec`'s: ``"batch"``, ``"layer"`` (WGAN-GP)
    or ``"none"`` (spectral norm).
    """

    resolution: int = 32
    ngf: int = 32
    ndf: int = 32
    d_layers: int = 2
    d_norm: DNorm = "batch"
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        # Specs also come from checkpoint.json (untrusted): type- and range-check every field
        # and bound the size before any model is built.
        for name in ("resolution", "ngf", "ndf", "d_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"field {name!r} is {value!r}; expected an integer")
        if not isinstance(self.spectral_norm, bool):
            raise ValueError(f"field 'spectral_norm' is {self.spectral_norm!r}; expected a bool")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"field 'resolution' is {self.resolution}; expected one of "
                             f"{RESOLUTIONS}")
        if self.d_norm not in ("batch", "layer", "none"):
            raise ValueError(f"field 'd_norm' is {self.d_norm!r}; expected batch, layer or none")
        for name in ("ngf", "ndf"):
            value = getattr(self, name)
            if not 1 <= value <= MAX_WIDTH:
                raise ValueError(f"field {name!r} is {value}; expected an integer in "
                                 f"1..{MAX_WIDTH}")
        if not 1 <= self.d_layers <= self.depth - 1:
            raise ValueError(f"field 'd_layers' is {self.d_layers}; expected an integer in "
                             f"1..{self.depth - 1} at {self.resolution} px")
        g, d = self.parameter_counts()
        if max(g, d) > MAX_PARAMETERS:
            raise ValueError(f"the model would have {max(g, d):,} parameters (G {g:,}, D {d:,}); "
                             f"at most {MAX_PARAMETERS:,} are supported")

    @property
    def depth(self) -> int:
        """Stride-2 levels of the U-Net: log2(resolution), down to 1×1 (5, 6 or 7)."""
        return int(math.log2(self.resolution))

    def parameter_counts(self) -> tuple[int, int]:
        """(G, D) trainable parameter counts (from the models built on the meta device)."""
        with torch.device("meta"):
            g, d = self.build()
        return (sum(p.numel() for p in g.parameters()),
                sum(p.numel() for p in d.parameters()))

    def build(self) -> tuple[UNetGenerator, PatchDiscriminator]:
        """A freshly initialised (generator, discriminator) pair of this spec."""
        return UNetGenerator(self), PatchDiscriminator(self)


def _width(base: int, level: int) -> int:
    return base * min(2 ** level, 8)


class UNetGenerator(nn.Module):
    """Degraded float B×3×R×R in [-1, 1] → restored float B×3×R×R in [-1, 1] (see the module
    docstring). R must be a multiple of 2^depth (the resolution it was built for, or more)."""

    def __init__(self, spec: RestorationSpec) -> None:
        super().__init__()
        self.spec = spec
        depth, ngf = spec.depth, spec.ngf
        widths = [_width(ngf, i) for i in range(depth)]
        down: list[nn.Module] = [nn.Conv2d(CHANNELS, widths[0], 4, 2, 1, bias=False)]
        for i in range(1, depth):
            layers: list[nn.Module] = [nn.LeakyReLU(0.2),
                                       nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1,
                                                 bias=i == depth - 1)]
            if i < depth - 1:  # the innermost (1×1) level has no normalization, as in pix2pix
                layers.append(nn.BatchNorm2d(widths[i]))
            down.append(nn.Sequential(*layers))
        up: list[nn.Module] = []
        for i in range(depth - 1, 0, -1):
            inputs = widths[i] if i == depth - 1 else 2 * widths[i]
            up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(inputs, widths[i - 1], 4, 2, 1,
                                                                  bias=False),
                                    nn.BatchNorm2d(widths[i - 1])))
        self.last = nn.ConvTranspose2d(2 * widths[0], CHANNELS, 4, 2, 1)
        self.down = nn.ModuleList(down)
        self.up = nn.ModuleList(up)
        dcgan_init_(self)
        nn.init.zeros_(self.last.weight)  # starts as the identity: output = input
        assert self.last.bias is not None
        nn.init.zeros_(self.last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.up[0](skips[-1])
        for layer, skip in zip(self.up[1:], reversed(skips[1:-1]), strict=True):
            h = layer(torch.cat([skip, h], 1))
        correction = self.last(torch.relu(torch.cat([skips[0], h], 1)))
        return (x + correction).clamp(-1.0, 1.0)


class PatchDiscriminator(nn.Module):
    """(degraded, image) as one float B×6×R×R tensor (degraded first) → logits float B·P, one
    per patch (no sigmoid: losses take logits)."""

    def __init__(self, spec: RestorationSpec) -> None:
        super().__init__()
        self.spec = spec
        ndf, n = spec.ndf, spec.d_layers
        no_norm = spec.d_norm == "none"
        layers: list[nn.Module] = [nn.Conv2d(2 * CHANNELS, ndf, 4, 2, 1),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for i in range(1, n + 1):
            stride = 2 if i < n else 1
            width = _width(ndf, i)
            layers.append(nn.Conv2d(_width(ndf, i - 1), width, 4, stride, 1, bias=no_norm))
            layers += d_norm_layers(spec.d_norm, width)
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(_width(ndf, n), 1, 4, 1, 1))
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)
        if spec.spectral_norm:
            spectral_norm_convs_(self.main)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return self.main(pair).flatten()
