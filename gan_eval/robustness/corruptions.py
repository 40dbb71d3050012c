"""Common corruptions at five severities, and how far they move face embeddings.

Every corruption maps uint8 B×3×H×W images to uint8 B×3×H×W images (rounded, clipped to 0..255)
at the images' own resolution:

================  ===========================  ==========================================
name              parameter                    severities 1..5
================  ===========================  ==========================================
gaussian_noise    σ, [0, 1] pixel units        0.02, 0.04, 0.08, 0.12, 0.18
gaussian_blur     σ, pixels                    0.5, 1.0, 1.5, 2.0, 3.0
jpeg              Pillow JPEG quality          90, 70, 50, 30, 10
================  ===========================  ==========================================

Noise is drawn from a generator seeded by (seed, corruption, severity), independently of the
batch. The blur is a separable Gaussian with radius ⌈3σ⌉ and reflected borders. JPEG is encoded
and decoded in memory by Pillow (``quality=q``, Pillow's default 4:2:0 chroma subsampling).

:func:`embedding_drift` measures, per image, the distance from the corrupted face's embedding to
the clean one (both :func:`gan_eval.features.embed_faces`), and the match rate
(:func:`gan_eval.faces.is_match`: drift ≤ 0.6).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from gan_eval.faces import MATCH_THRESHOLD, is_match
from gan_eval.features.dlib_face import embed_faces
from gan_eval.seeding import derive_seed


def gaussian_noise(images: torch.Tensor, sigma: float, *, seed: int = 0) -> torch.Tensor:
    """Add N(0, σ²) per pixel value (σ in [0, 1] units), round and clip."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=gen) * (sigma * 255.0)
    return (images.float().cpu() + noise).round_().clamp_(0, 255).to(torch.uint8)


def gaussian_blur(images: torch.Tensor, sigma: float, *, seed: int = 0) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation ``sigma`` pixels (radius ⌈3σ⌉)."""
    del seed
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    x = images.float().cpu()
    c = x.shape[1]
    # reflect padding needs radius < size; replicate beyond that (tiny images only)
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    x = F.pad(x, (radius, radius, 0, 0), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.pad(x, (0, 0, radius, radius), mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def jpeg(images: torch.Tensor, quality: float, *, seed: int = 0) -> torch.Tensor:
    """Encode each image as JPEG of ``quality`` with Pillow in memory and decode it."""
    del seed
    out = []
    for image in images.cpu().numpy():
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(
            buffer, format="JPEG", quality=int(quality)
        )
        buffer.seek(0)
        decoded = np.asarray(Image.open(buffer).convert("RGB"))
        out.append(torch.from_numpy(decoded.transpose(2, 0, 1).copy()))
    return torch.stack(out)


@dataclass(frozen=True)
class Corruption:
    """A corruption: its function, what its parameter means, and the five severities."""

    name: str
    parameter: str
    severities: tuple[float, ...]
    apply: Callable[..., torch.Tensor]


CORRUPTIONS: dict[str, Corruption] = {
    c.name: c
    for c in (
        Corruption("gaussian_noise", "sigma ([0, 1] pixel units)",
                   (0.02, 0.04, 0.08, 0.12, 0.18), gaussian_noise),
        Corruption("gaussian_blur", "sigma (pixels)", (0.5, 1.0, 1.5, 2.0, 3.0), gaussian_blur),
        Corruption("jpeg", "quality (Pillow)", (90, 70, 50, 30, 10), jpeg),
    )
}
"""The corruptions, in report order."""


def embedding_drift(
    images: torch.Tensor,
    *,
    clean_embeddings: torch.Tensor | None = None,
    threshold: float = MATCH_THRESHOLD,
    seed: int = 0,
    device: str | torch.device | None = None,
    corruptions: tuple[str, ...] = tuple(CORRUPTIONS),
) -> list[dict[str, Any]]:
    """Embedding drift and match rate of ``images`` (uint8 B×3×H×W) under each corruption.

    One record per corruption: ``severities``, ``drift_mean`` / ``drift_median`` (float, per
    severity: distance between corrupted and clean embeddings) and ``match_rate`` (fraction with
    drift < ``threshold``: still recognized as the same person), with ``n`` images.
    """

    if clean_embeddings is None:
        clean_embeddings = embed_faces(images, device=device)
    records = []
    for name in corruptions:
        corruption = CORRUPTIONS[name]
        means, medians, matches = [], [], []
        for level, severity in enumerate(corruption.severities, start=1):
            corrupted = corruption.apply(
                images, severity, seed=derive_seed(seed, f"corruption/{name}", level)
            )
            emb = embed_faces(corrupted, device=clean_embeddings.device)
            drift = torch.linalg.vector_norm(emb - clean_embeddings, dim=-1).double().cpu()
            means.append(float(drift.mean()))
            medians.append(float(np.median(drift.numpy())))
            matches.append(float(is_match(drift, threshold).double().mean()))
        records.append({
            "corruption": name,
            "parameter": corruption.parameter,
            "severities": [float(s) for s in corruption.severities],
            "drift_mean": means,
            "drift_median": medians,
            "match_rate": matches,
            "n": int(images.shape[0]),
        })
    return records
