"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016) for 32, 64 and 128 px.

The generator maps a latent ``z`` (float B×nz) through a 4×4 transposed convolution and then
stride-2 transposed convolutions (each BatchNorm + ReLU) that double the size up to the target
resolution; the last layer has ``channels`` outputs and tanh, so images are float in [-1, 1].
The discriminator mirrors it with stride-2 convolutions + LeakyReLU(0.2) (no normalization on the
first layer) down to 4×4 and a final 4×4 convolution to one logit per image.

At 64 px with ``ngf = ndf = 64`` both networks are exactly the PyTorch DCGAN example's (same
layers, widths and ``bias=False``), which ``benchmarks/train_step.py`` relies on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, Self

import torch
from torch import nn

RESOLUTIONS: tuple[int, ...] = (32, 64, 128)
"""The image sizes the DCGAN stacks are built for (4 × a power of two, 3 to 5 doublings)."""

DNorm = Literal["batch", "layer", "none"]

MAX_NZ = 4096
"""Largest latent size a :class:`ModelSpec` accepts."""
MAX_WIDTH = 1024
"""Largest ``ngf`` / ``ndf`` a :class:`ModelSpec` accepts."""
MAX_PARAMETERS = 1_000_000_000
"""Largest parameter count of G or D (4 GB of float32 each): a checkpoint.json asking for more
is refused before anything is allocated."""


class JsonSpec:
    """A model spec (a dataclass) as the plain dict that checkpoint.json holds, and back."""

    def to_json(self) -> dict[str, Any]:
        """Plain dict for checkpoint.json."""
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """Inverse of :meth:`to_json`; raises ValueError naming the field on foreign content."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object of model fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(map(str, data)) - known)
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class ModelSpec(JsonSpec):
    """Everything that fixes the shapes of G and D; stored in every checkpoint.

    ``d_norm``: normalization of D's inner layers: ``"batch"`` (DCGAN), ``"layer"`` (per-sample,
    required by WGAN-GP whose penalty is a per-sample gradient) or ``"none"`` (spectral norm).
    """

    resolution: int = 32
    channels: int = 3
    nz: int = 100
    ngf: int = 64
    ndf: int = 64
    d_norm: DNorm = "batch"
    spectral_norm: bool = False

    def __post_init__(self) -> None:
        # Specs also come from checkpoint.json (untrusted): every field is type- and
        # range-checked, and the size is bounded before any model is built. Messages name the
        # field; the checkpoint loader adds the file.
        for name in ("resolution", "channels", "nz", "ngf", "ndf"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"field {name!r} is {value!r}; expected an integer")
        if not isinstance(self.spectral_norm, bool):
            raise ValueError(f"field 'spectral_norm' is {self.spectral_norm!r}; expected a bool")
        if self.resolution not in RESOLUTIONS:
            raise ValueError(f"field 'resolution' is {self.resolution}; expected one of "
                             f"{RESOLUTIONS}")
        if self.channels not in (1, 3):
            raise ValueError(f"field 'channels' is {self.channels}; expected 1 or 3")
        if self.d_norm not in ("batch", "layer", "none"):
            raise ValueError(f"field 'd_norm' is {self.d_norm!r}; expected batch, layer or none")
        for name, top in (("nz", MAX_NZ), ("ngf", MAX_WIDTH), ("ndf", MAX_WIDTH)):
            value = getattr(self, name)
            if not 1 <= value <= top:
                raise ValueError(f"field {name!r} is {value}; expected an integer in 1..{top}")
        g, d = self.parameter_counts()
        if max(g, d) > MAX_PARAMETERS:
            raise ValueError(f"the model would have {max(g, d):,} parameters (G {g:,}, D {d:,}); "
                             f"at most {MAX_PARAMETERS:,} are supported")

    def parameter_counts(self) -> tuple[int, int]:
        """(G, D) trainable parameter counts, computed from the spec without building anything."""
        mult = 2 ** (self.doublings - 1)
        g = self.nz * self.ngf * mult * 16 + 2 * self.ngf * mult
        for _ in range(self.doublings - 1):
            g += self.ngf * mult * (self.ngf * mult // 2) * 16 + 2 * (self.ngf * mult // 2)
            mult //= 2
        g += self.ngf * self.channels * 16
        bias = 1 if self.d_norm == "none" else 0
        d = self.channels * self.ndf * 16 + bias * self.ndf
        mult = 1
        for _ in range(self.doublings - 1):
            width = self.ndf * mult * 2
            d += self.ndf * mult * width * 16 + bias * width
            d += 0 if self.d_norm == "none" else 2 * width
            mult *= 2
        d += self.ndf * mult * 16 + bias
        return g, d

    @property
    def doublings(self) -> int:
        """Number of ×2 resolution steps between 4×4 and the output (3, 4 or 5)."""
        return int(math.log2(self.resolution)) - 2

    def build(self) -> tuple[Generator, Discriminator]:
        """A freshly initialised (generator, discriminator) pair of this spec."""
        return Generator(self), Discriminator(self)


def d_norm_layers(kind: DNorm, width: int) -> list[nn.Module]:
    """The normalization after a discriminator conv of ``width`` channels: batch norm, one-group
    GroupNorm (= LayerNorm over C×H×W per sample, as in the WGAN-GP paper) or none."""
    if kind == "batch":
        return [nn.BatchNorm2d(width)]
    if kind == "layer":
        return [nn.GroupNorm(1, width)]
    return []


def spectral_norm_convs_(main: nn.Sequential) -> None:
    """Wrap every Conv2d of ``main`` in spectral normalization, in place."""
    for i, layer in enumerate(main):
        if isinstance(layer, nn.Conv2d):
            main[i] = nn.utils.parametrizations.spectral_norm(layer)


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN initialization: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z: float B×nz (or B×nz×1×1) → images float B×channels×R×R in [-1, 1]."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        mult = 2 ** (spec.doublings - 1)  # width multiplier at 4×4: 4, 8 or 16 × ngf
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(spec.nz, spec.ngf * mult, 4, 1, 0, bias=False),
            nn.BatchNorm2d(spec.ngf * mult),
            nn.ReLU(True),
        ]
        for _ in range(spec.doublings - 1):
            layers += [
                nn.ConvTranspose2d(spec.ngf * mult, spec.ngf * mult // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(spec.ngf * mult // 2),
                nn.ReLU(True),
            ]
            mult //= 2
        layers += [nn.ConvTranspose2d(spec.ngf, spec.channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim == 2:
            z = z[:, :, None, None]
        return self.main(z)


class Discriminator(nn.Module):
    """images float B×channels×R×R in [-1, 1] → logits float B (no sigmoid: losses take logits)."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        # A conv followed by a normalization with a shift needs no bias of its own.
        bias = spec.d_norm == "none"
        layers: list[nn.Module] = [
            nn.Conv2d(spec.channels, spec.ndf, 4, 2, 1, bias=bias),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        mult = 1
        for _ in range(spec.doublings - 1):
            width = spec.ndf * mult * 2
            layers.append(nn.Conv2d(spec.ndf * mult, width, 4, 2, 1, bias=bias))
            layers += d_norm_layers(spec.d_norm, width)
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            mult *= 2
        layers.append(nn.Conv2d(spec.ndf * mult, 1, 4, 1, 0, bias=bias))
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)
        if spec.spectral_norm:
            spectral_norm_convs_(self.main)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
