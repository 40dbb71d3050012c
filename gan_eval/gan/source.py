"""A generator checkpoint as an :class:`ImageSource`: images sampled on the fly, no PNG round trip.

Image i is ``G_ema(z_i)`` with ``z_i ~ N(0, I)`` drawn on the CPU from a generator seeded by
(seed, i) alone, so image i does not depend on which batch asks for it nor on the device the latents
are drawn for. The generator runs in eval mode (BatchNorm uses its running statistics, so images
do not interact) on ``device``, in fixed-size chunks (the last one zero-padded): every image is
computed by the same kernels whatever batch size the caller uses, which makes the pixels
batch-size invariant bit for bit, not merely up to rounding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import torch

from gan_eval.data.source import ImageSource
from gan_eval.errors import InputError
from gan_eval.gan.checkpoint import Checkpoint, load_checkpoint
from gan_eval.gan.models import Generator, ModelSpec
from gan_eval.gan.rng import derive_seed
from gan_eval.gan.sample import to_uint8

DEFAULT_N = 1000
"""Images a checkpoint source holds when the caller does not say."""

SAMPLER_VERSION = "dcgan-ema-eval/latent-per-index/v1"
"""Changes whenever the mapping (checkpoint, seed, i) → image changes; part of the content hash."""


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` → CUDA when available, else CPU; bad names raise :class:`InputError`."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"--device {device!r}: not a torch device (cpu, cuda, cuda:1, …)") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine; use cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise InputError(f"--device {device}: only cpu and cuda are supported")
    return resolved


class CheckpointSource(ImageSource):
    """``n`` images sampled from a checkpoint's EMA generator, uint8 B×3×R×R on the CPU."""

    kind = "checkpoint"

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        n: int = DEFAULT_N,
        seed: int = 0,
        device: str | torch.device | None = None,
        chunk: int | None = None,
    ) -> None:
        super().__init__()
        if n < 1:
            raise InputError(f"--n {n}: a checkpoint source needs at least 1 image")
        self.checkpoint = checkpoint
        self.spec: ModelSpec = checkpoint.spec
        self.data = str(checkpoint.folder)
        self.n = n
        self.seed = seed
        self.device = resolve_device(device)
        self.chunk = chunk or (256 if self.device.type == "cuda" else 64)
        self.resolution = (self.spec.resolution, self.spec.resolution)
        self.source_channels = self.spec.channels
        generator = Generator(self.spec)
        generator.load_state_dict(checkpoint.tensors("g_ema"))
        self.generator = generator.eval().requires_grad_(False).to(self.device)

    def __len__(self) -> int:
        return self.n

    def latents(self, indices: Sequence[int]) -> torch.Tensor:
        """float32 B×nz on the CPU: row k is z for image ``indices[k]``."""
        rows = []
        rng = torch.Generator()
        for i in indices:
            if not 0 <= i < self.n:
                raise IndexError(f"image index {i} outside 0..{self.n - 1}")
            rng.manual_seed(derive_seed(self.seed, "sample", i))
            rows.append(torch.randn(self.spec.nz, generator=rng))
        return torch.stack(rows) if rows else torch.empty(0, self.spec.nz)

    @torch.no_grad()
    def _read(self, indices: Sequence[int]) -> torch.Tensor:
        z = self.latents(indices)
        parts = []
        for start in range(0, z.shape[0], self.chunk):
            piece = z[start : start + self.chunk]
            padded = torch.zeros(self.chunk, self.spec.nz)
            padded[: piece.shape[0]] = piece
            images = self.generator(padded.to(self.device))[: piece.shape[0]]
            parts.append(to_uint8(images).cpu())
        if not parts:
            return torch.empty(0, 3, *self.resolution, dtype=torch.uint8)
        images = torch.cat(parts)
        if self.spec.channels == 1:  # the image contract is 3 channels: repeat gray
            images = images.expand(-1, 3, -1, -1)
        return images.contiguous()

    def _hash_content(self, digest: hashlib._Hash) -> None:
        digest.update(self.checkpoint.meta["state_sha256"].encode())
        digest.update(f"{SAMPLER_VERSION}/seed={self.seed}/n={self.n}".encode())


def open_checkpoint_source(
    path: Path,
    *,
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> CheckpointSource:
    """Open a checkpoint (folder, run folder, JSON or state file) as a source of ``n`` images.

    ``n`` defaults to :data:`DEFAULT_N`; ``device`` to CUDA when available. Invalid checkpoints
    raise :class:`InputError` naming the file.
    """
    checkpoint = load_checkpoint(path, groups=("g_ema",))
    return CheckpointSource(checkpoint, n=DEFAULT_N if n is None else n, seed=seed, device=device)
