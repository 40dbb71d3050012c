"""Degradations of face images for restoration: Gaussian blur, downsampling, noise and JPEG.

Every degradation is a named function ``fn(images, severity, *, generator=None)`` that takes
uint8 B×3×H×W images (any device) and returns uint8 B×3×H×W of the same shape on the same
device, computed in float64, rounded to the nearest level (ties to even) and clipped to 0..255.
``severity`` is one number for the whole batch or a 1-D tensor / sequence of B numbers, one per
image. Given the same images, severities and (for ``noise``) the same ``torch.Generator`` state
— one generator for the batch, or one per image — the output is the same on every call.

This is the one implementation of these degradations: the restoration GAN trains on them
(:mod:`gan_eval.gan.tasks`) and the restoration audit measures with them
(:mod:`gan_eval.restoration.degradations`, which adds per-image seeding and keeps a downsampled
observation at its small size).

The degradations, by name (the keys of :data:`DEGRADATIONS`):

- ``blur`` — :func:`gaussian_blur`, severity ``sigma``: the standard deviation of a Gaussian
  kernel in pixels of the image as given (edges repeated, kernel cut at 4σ: equal to
  ``scipy.ndimage.gaussian_filter(mode="nearest")``). Valid: 0 ≤ σ ≤ 16.
- ``downsample`` — :func:`downsample`, severity ``scale``: an integer factor s; bicubic down
  to ⌊H/s⌋×⌊W/s⌋ and rounded to uint8 (:func:`shrink`: the low-resolution observation), then
  bicubic back up to H×W (:func:`upsample`); both antialiased, equal to PIL's
  ``resize(BICUBIC)`` (a = −0.5) on float images. Valid: 1 ≤ s ≤ 16, s ≤ H, W.
- ``noise`` — :func:`gaussian_noise`, severity ``sd``: the standard deviation of additive
  Gaussian noise in pixel levels of 0..255, drawn independently for every pixel and channel.
  Valid: 0 ≤ sd ≤ 255.
- ``jpeg`` — :func:`jpeg`, severity ``quality``: JPEG quality 1..100, PIL's encoder with its
  defaults (4:2:0 chroma subsampling), on the CPU. Valid: 1 ≤ q ≤ 100.

A larger severity is a worse image for ``blur``, ``downsample`` and ``noise``; for ``jpeg`` a
*smaller* quality is worse. ``downsample`` and ``jpeg`` take whole numbers (a fractional
severity is refused). Severity 0 (blur, noise) and 1 (downsample) return the images unchanged;
JPEG quality 100 still re-encodes.

Training draws degradations at random (:func:`random_degradations`): each image gets one of the
configured kinds, chosen uniformly, at a severity drawn uniformly from that kind's
:class:`SeverityRange` (whole numbers for ``downsample`` and ``jpeg``, both ends included). A
set of ranges is written as text such as ``"blur=0.5:2,downsample=2:4,noise=5:25,jpeg=10:50"``
(:func:`parse_ranges`, :func:`format_ranges`); :data:`DEFAULT_RANGES` is what
``gan-eval train --task restoration`` uses.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

Severity = float | Sequence[float] | torch.Tensor
"""One severity for the whole batch, or one per image (a sequence or 1-D tensor of B values)."""

Generators = torch.Generator | Sequence[torch.Generator] | None
"""Where ``noise`` draws from: one generator for the batch, one per image, or torch's default."""


def _as_uint8_batch(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4 \
            or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        dtype = images.dtype if isinstance(images, torch.Tensor) else ""
        raise ValueError(f"expected uint8 images of shape B×3×H×W, got {dtype} {shape}")


def _per_image(severity: Severity, n: int, *, name: str, low: float, high: float,
               integer: bool) -> torch.Tensor:
    """``severity`` as float64 CPU tensor of ``n`` values, each checked to lie in [low, high]."""
    if isinstance(severity, bool):
        raise ValueError(f"{name}: severity {severity!r} is not a number")
    if isinstance(severity, torch.Tensor):
        values = severity.detach().to("cpu", torch.float64).reshape(-1)
        if severity.ndim == 0:
            values = values.expand(n)
    elif isinstance(severity, int | float):
        values = torch.full((n,), float(severity), dtype=torch.float64)
    else:
        values = torch.as_tensor([float(v) for v in severity], dtype=torch.float64)
    if values.numel() != n:
        raise ValueError(f"{name}: {values.numel()} severities for {n} images")
    bad = ~torch.isfinite(values) | (values < low) | (values > high)
    if integer:
        bad |= values != values.round()
    if bool(bad.any()):
        what = "whole numbers" if integer else "numbers"
        raise ValueError(f"{name}: severity {values[bad][0].item():g} is outside the valid range; "
                         f"expected {what} in [{low:g}, {high:g}]")
    return values


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


# -- the four degradations --------------------------------------------------------------------

MAX_SIGMA = 16.0
TRUNCATE = 4.0  # kernel radius = int(4σ + 0.5), scipy.ndimage.gaussian_filter's default


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """The 1-D float64 kernel of :func:`gaussian_blur`: ``exp(−x²/2σ²)`` for
    x = −r..r, r = int(4σ + 0.5), normalised to sum 1 (``[1.0]`` for σ = 0)."""
    if sigma == 0:
        return torch.ones(1, dtype=torch.float64)
    radius = int(TRUNCATE * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(images: torch.Tensor, sigma: Severity, *,
                  generator: Generators = None) -> torch.Tensor:
    """Blur uint8 B×3×H×W with a separable Gaussian of standard deviation ``sigma`` pixels.

    Edges are repeated (``scipy.ndimage.gaussian_filter(mode="nearest")``), the kernel is cut at
    4σ. Per-image sigmas are one depthwise convolution (each image's kernel zero-padded to the
    largest). ``generator`` is unused (the blur is deterministic).
    """
    del generator
    _as_uint8_batch(images)
    b, c, h, w = images.shape
    sigmas = _per_image(sigma, b, name="blur", low=0.0, high=MAX_SIGMA, integer=False)
    kernels = [gaussian_kernel(float(s)) for s in sigmas]
    radius = max(len(k) for k in kernels) // 2
    if radius == 0:
        return images.clone()
    bank = torch.zeros(b, 2 * radius + 1, dtype=torch.float64)
    for i, k in enumerate(kernels):
        r = len(k) // 2
        bank[i, radius - r : radius + r + 1] = k
    bank = bank.to(images.device).repeat_interleave(c, dim=0)  # (B·3)×K
    x = images.double().reshape(1, b * c, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"),
                 bank[:, None, None, :], groups=b * c)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"),
                 bank[:, None, :, None], groups=b * c)
    return _to_uint8(x.reshape(b, c, h, w))


MAX_SCALE = 16


def shrink(images: torch.Tensor, scale: int) -> torch.Tensor:
    """uint8 B×3×H×W → uint8 B×3×⌊H/s⌋×⌊W/s⌋: antialiased bicubic (PIL's BICUBIC, a = −0.5) by
    the integer ``scale`` s, rounded: the low-resolution observation of :func:`downsample`."""
    _as_uint8_batch(images)
    h, w = images.shape[-2:]
    if isinstance(scale, bool) or not isinstance(scale, int) or not 1 <= scale <= min(h, w):
        raise ValueError(f"downsample: scale {scale!r} is not a whole number in 1..{min(h, w)} "
                         f"for a {h}×{w} image")
    if scale == 1:
        return images.clone()
    x = F.interpolate(images.double(), size=(h // scale, w // scale), mode="bicubic",
                      antialias=True, align_corners=False)
    return _to_uint8(x)


def upsample(images: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """uint8 B×3×h×w → uint8 B×3×H×W (``size`` = (H, W)): ``"bicubic"`` (antialiased, PIL's
    BICUBIC, a = −0.5; computed in float64 and rounded) or ``"nearest"`` (pixel replication)."""
    _as_uint8_batch(images)
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    if mode == "nearest":
        return F.interpolate(images.float(), size=size, mode="nearest-exact").to(torch.uint8)
    if mode != "bicubic":
        raise ValueError(f"upsample: mode {mode!r}; expected bicubic or nearest")
    x = F.interpolate(images.double(), size=size, mode="bicubic", antialias=True,
                      align_corners=False)
    return _to_uint8(x)


def downsample(images: torch.Tensor, scale: Severity, *,
               generator: Generators = None) -> torch.Tensor:
    """Lose resolution: :func:`shrink` by the integer ``scale`` s to ⌊H/s⌋×⌊W/s⌋ (rounded to
    uint8, as an observation would be), then :func:`upsample` back to H×W. ``generator`` is
    unused."""
    del generator
    _as_uint8_batch(images)
    b, _, h, w = images.shape
    scales = _per_image(scale, b, name="downsample", low=1.0, high=MAX_SCALE, integer=True)
    if int(scales.max()) > min(h, w):
        raise ValueError(f"downsample: scale {int(scales.max())} leaves no pixel of a "
                         f"{h}×{w} image")
    out = images.clone()
    for s in sorted({int(v) for v in scales.tolist()} - {1}):
        index = torch.nonzero(scales == s).flatten().to(images.device)
        out[index] = upsample(shrink(images[index], s), (h, w))
    return out


def gaussian_noise(images: torch.Tensor, sd: Severity, *,
                   generator: Generators = None) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``sd`` (pixel units of 0..255) to every pixel
    and channel independently, then round and clip.

    The float64 standard normal draws come from ``generator`` (on its device; torch's default
    generator when None) and move to the images' device. One generator draws B×3×H×W values:
    image i's noise depends on the generator state and i's position in the batch. A sequence of
    B generators draws 3×H×W values from each: image i's noise depends on its own generator
    only, whatever batch it is in.
    """
    _as_uint8_batch(images)
    b = images.shape[0]
    sds = _per_image(sd, b, name="noise", low=0.0, high=255.0, integer=False)
    if generator is None or isinstance(generator, torch.Generator):
        device = generator.device if generator is not None else images.device
        noise = torch.randn(images.shape, generator=generator, device=device,
                            dtype=torch.float64)
    else:
        generators = list(generator)
        if len(generators) != b:
            raise ValueError(f"noise: {len(generators)} generators for {b} images")
        noise = torch.stack([torch.randn(images.shape[1:], generator=g, device=g.device,
                                         dtype=torch.float64) for g in generators])
    scale = sds.to(images.device).view(-1, 1, 1, 1)
    return _to_uint8(images.double() + scale * noise.to(images.device))


def jpeg(images: torch.Tensor, quality: Severity, *,
         generator: Generators = None) -> torch.Tensor:
    """Encode each image as a JPEG of ``quality`` (1..100) with PIL and decode it again.

    PIL's encoder with its defaults at that quality (4:2:0 chroma subsampling for RGB, baseline,
    no optimisation), run on the CPU; the result returns to the images' device. ``generator``
    is unused.
    """
    del generator
    _as_uint8_batch(images)
    qualities = _per_image(quality, images.shape[0], name="jpeg", low=1.0, high=100.0,
                           integer=True)
    host = images.cpu().permute(0, 2, 3, 1).numpy()
    out = np.empty_like(host)
    for i, q in enumerate(qualities.tolist()):
        buffer = io.BytesIO()
        Image.fromarray(host[i]).save(buffer, format="JPEG", quality=int(q))
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(images.device)


# -- the registry --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Degradation:
    """One registered degradation: its function and what its severity is."""

    name: str
    apply: Callable[..., torch.Tensor]  # (images, severity, *, generator=None) -> images
    parameter: str  # the severity's name: sigma, scale, sd, quality
    unit: str  # what the severity is measured in
    low: float  # smallest valid severity
    high: float  # largest valid severity
    integer: bool  # severities are whole numbers
    worse_when_higher: bool  # False for jpeg (lower quality is worse)


DEGRADATIONS: dict[str, Degradation] = {
    d.name: d for d in (
        Degradation("blur", gaussian_blur, "sigma", "pixels", 0.0, MAX_SIGMA, False, True),
        Degradation("downsample", downsample, "scale", "integer factor", 1.0, MAX_SCALE, True,
                    True),
        Degradation("noise", gaussian_noise, "sd", "pixel levels of 0..255", 0.0, 255.0, False,
                    True),
        Degradation("jpeg", jpeg, "quality", "JPEG quality 1..100", 1.0, 100.0, True, False),
    )
}
"""The degradations by name, in the order :func:`random_degradations` numbers them."""


def apply_degradation(images: torch.Tensor, name: str, severity: Severity, *,
                      generator: Generators = None) -> torch.Tensor:
    """Degrade uint8 B×3×H×W with the degradation called ``name`` (a key of
    :data:`DEGRADATIONS`) at ``severity`` (one or one per image); ValueError for a name or
    severity that is not valid."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name].apply(images, severity, generator=generator)


@dataclass(frozen=True)
class SeverityRange:
    """Severities ``low``..``high`` (both included) of the degradation ``name``."""

    name: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {self.name!r}; choose one of "
                             f"{', '.join(DEGRADATIONS)}")
        kind = DEGRADATIONS[self.name]
        for end in (self.low, self.high):
            if isinstance(end, bool) or not isinstance(end, int | float) \
                    or not math.isfinite(end) or not kind.low <= end <= kind.high \
                    or (kind.integer and end != round(end)):
                what = "whole numbers" if kind.integer else "numbers"
                raise ValueError(f"{self.name}={self.low!r}:{self.high!r}: expected {what} in "
                                 f"[{kind.low:g}, {kind.high:g}] ({kind.parameter}, "
                                 f"{kind.unit})")
        if self.low > self.high:
            raise ValueError(f"{self.name}={self.low!r}:{self.high!r}: low exceeds high")
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))

    @property
    def degradation(self) -> Degradation:
        return DEGRADATIONS[self.name]

    def draw(self, u: torch.Tensor) -> torch.Tensor:
        """Severities for uniform draws ``u`` in [0, 1): uniform on [low, high], or uniform on
        the whole numbers low..high for an integer severity (float64)."""
        u = u.to(torch.float64)
        if self.degradation.integer:
            count = self.high - self.low + 1
            return (self.low + torch.floor(u * count)).clamp_(max=self.high)
        return self.low + u * (self.high - self.low)

    def levels(self, k: int) -> list[float]:
        """``k`` severities evenly spaced from ``low`` to ``high`` (rounded for integers)."""
        if k == 1:
            return [self.low]
        values = [self.low + (self.high - self.low) * i / (k - 1) for i in range(k)]
        return [float(round(v)) for v in values] if self.degradation.integer else values

    def to_json(self) -> dict[str, Any]:
        """A record for checkpoint.json: name, parameter, unit, low, high."""
        kind = self.degradation
        return {"name": self.name, "parameter": kind.parameter, "unit": kind.unit,
                "low": self.low, "high": self.high}


DEFAULT_RANGES = "blur=0.5:2,downsample=2:4,noise=5:25,jpeg=10:50"
"""The degradations ``gan-eval train --task restoration`` trains on unless told otherwise."""


def parse_ranges(text: str) -> tuple[SeverityRange, ...]:
    """``"name=low:high,…"`` (or ``name=value`` for one severity) → ranges, in the order given.

    ValueError naming the faulty part for an unknown name, a repeated name, a value out of the
    degradation's valid range or text that does not parse.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected name=low:high[,name=low:high…], e.g. " + DEFAULT_RANGES)
    ranges: list[SeverityRange] = []
    for part in text.split(","):
        name, eq, span = part.strip().partition("=")
        low_text, colon, high_text = span.partition(":")
        try:
            low = float(low_text)
            high = float(high_text) if colon else low
        except ValueError:
            raise ValueError(f"{part.strip()!r}: expected name=low:high with numbers, e.g. "
                             "blur=0.5:2") from None
        if not eq:
            raise ValueError(f"{part.strip()!r}: expected name=low:high, e.g. blur=0.5:2")
        if any(r.name == name.strip() for r in ranges):
            raise ValueError(f"{name.strip()!r} is given twice")
        ranges.append(SeverityRange(name.strip(), low, high))
    return tuple(ranges)


def format_ranges(ranges: Sequence[SeverityRange]) -> str:
    """The text :func:`parse_ranges` reads back as ``ranges`` (shortest round-trip numbers)."""
    return ",".join(f"{r.name}={_num(r.low)}:{_num(r.high)}" for r in ranges)


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


@dataclass(frozen=True)
class DegradationPlan:
    """What :func:`random_degradations` did to each image: ``kinds[i]`` indexes the ranges it
    was given, ``severities[i]`` is the severity (int64 and float64 CPU tensors of B)."""

    kinds: torch.Tensor
    severities: torch.Tensor


def draw_plan(ranges: Sequence[SeverityRange], n: int, generator: torch.Generator) -> \
        DegradationPlan:
    """For ``n`` images: a kind chosen uniformly from ``ranges`` and a severity drawn from its
    range, both from ``generator`` (drawn on its device, returned on the CPU)."""
    if not ranges:
        raise ValueError("no degradations to draw from")
    device = generator.device
    kinds = torch.randint(len(ranges), (n,), generator=generator, device=device).cpu()
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64).cpu()
    severities = torch.zeros(n, dtype=torch.float64)
    for k, r in enumerate(ranges):
        chosen = kinds == k
        severities[chosen] = r.draw(u[chosen])
    return DegradationPlan(kinds, severities)


def apply_plan(images: torch.Tensor, ranges: Sequence[SeverityRange], plan: DegradationPlan, *,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Degrade image i of uint8 B×3×H×W by ``ranges[plan.kinds[i]]`` at ``plan.severities[i]``.

    Images of one kind are degraded together, kinds in the order of ``ranges``; the noise of
    the images that get ``noise`` is drawn from ``generator`` in image order.
    """
    _as_uint8_batch(images)
    out = images.clone()
    for k, r in enumerate(ranges):
        chosen = torch.nonzero(plan.kinds == k).flatten()
        if chosen.numel():
            index = chosen.to(images.device)
            out[index] = r.degradation.apply(images[index], plan.severities[chosen],
                                             generator=generator)
    return out


def random_degradations(images: torch.Tensor, ranges: Sequence[SeverityRange],
                        generator: torch.Generator) -> tuple[torch.Tensor, DegradationPlan]:
    """Degrade each image of uint8 B×3×H×W by a random kind of ``ranges`` at a random severity
    (:func:`draw_plan`, then :func:`apply_plan`); returns (degraded uint8 B×3×H×W, the plan).

    Deterministic given the images, the ranges and the generator's state.
    """
    _as_uint8_batch(images)
    plan = draw_plan(ranges, images.shape[0], generator)
    return apply_plan(images, ranges, plan, generator=generator), plan
