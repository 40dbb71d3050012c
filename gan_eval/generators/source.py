"""A generator as an :class:`ImageSource`: images sampled on the fly, no PNG round trip.

Image i is ``G(z_i)`` with ``z_i ~ N(0, I)`` drawn on the CPU from a generator seeded by
``derive_seed(seed, "sample", i)`` alone, so image i does not depend on which batch asks for it
nor on the device the latents are drawn for. The generator runs (in eval mode, for
``nn.Module`` s: BatchNorm uses its running statistics, so images do not interact) on
``device``, in fixed-size chunks (the last one zero-padded): every image is computed by the same
kernels whatever batch size the caller uses, which makes the pixels batch-size invariant bit for
bit, not merely up to rounding (an external generator is called with ``min(batch, images left)``
latents instead, in calls of fixed images: :mod:`gan_eval.generators.external`). Outputs in
[-1, 1] become uint8 with :func:`gan_eval.data.convert.to_uint8`. A consumer reading contiguous
ranges in order gets the next range generated in a worker thread meanwhile (read-ahead), so
sampling overlaps extraction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from gan_eval.data.convert import to_uint8
from gan_eval.data.source import ImageSource
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.seeding import derive_seed

DEFAULT_N = 1000
"""Images a generator source holds when the caller does not say."""

MAX_COUNT = 10_000_000
"""The most images a generator source holds (a guard against a mistyped count)."""

SAMPLER_VERSION = "dcgan-ema-eval/latent-per-index/v1"
"""Changes whenever the mapping (generator, seed, i) → image changes; part of the content hash."""


class GeneratorSource(ImageSource):
    """``n`` images of ``generator`` (latents B×nz → float B×C×R×R in [-1, 1]), uint8 B×3×R×R.

    ``identity`` names the generator's weights for the content hash (e.g. the sha256 of a
    checkpoint's state file); ``data`` is the spec the user gave, ``kind`` the source kind.
    """

    def __init__(
        self,
        generator: Callable[[torch.Tensor], torch.Tensor],
        *,
        nz: int,
        resolution: int | tuple[int, int],
        channels: int,
        identity: str,
        data: str,
        kind: str,
        n: int = DEFAULT_N,
        seed: int = 0,
        device: str | torch.device | None = None,
        chunk: int | None = None,
    ) -> None:
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_COUNT:
            raise InputError(f"--count {n!r}: a generator source holds 1..{MAX_COUNT:,} images")
        self.generator = generator
        self.nz = nz
        self.identity = identity
        self.data = data
        self.kind = kind
        self.n = n
        self.seed = seed
        self.device = resolve_device(device)
        self.chunk = chunk or (256 if self.device.type == "cuda" else 64)
        self.resolution = ((resolution, resolution) if isinstance(resolution, int)
                           else (int(resolution[0]), int(resolution[1])))
        self.source_channels = channels
        self.prefetch = True  # see _read; False: generate only what is asked for
        self._pending: tuple[Sequence[int], Future[torch.Tensor]] | None = None
        self._executor: ThreadPoolExecutor | None = None

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
            rows.append(torch.randn(self.nz, generator=rng))
        return torch.stack(rows) if rows else torch.empty(0, self.nz)

    def _read(self, indices: Sequence[int]) -> torch.Tensor:
        # Read-ahead: a consumer that walks the images in contiguous ranges (feature extraction,
        # sampling to files) gets range k+1 generated in a worker thread while it processes
        # range k, so generating overlaps extraction. Same function, same chunks: same pixels.
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == indices:
            images = pending[1].result()
        else:
            images = self._generate_range(indices)
        if (self.prefetch and isinstance(indices, range) and indices.step == 1
                and len(indices) > 1 and indices.stop < self.n):
            ahead = range(indices.stop, min(self.n, indices.stop + len(indices)))
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix="gan-eval-sampler")
            self._pending = (ahead, self._executor.submit(self._generate_range, ahead))
        return images

    @torch.no_grad()
    def _generate_range(self, indices: Sequence[int]) -> torch.Tensor:
        """The images at ``indices`` (uint8 B×3×H×W), generated now (no read-ahead)."""
        z = self.latents(indices)
        parts = []
        for start in range(0, z.shape[0], self.chunk):
            piece = z[start : start + self.chunk]
            padded = torch.zeros(self.chunk, self.nz)
            padded[: piece.shape[0]] = piece
            chunk_indices = list(indices[start : start + self.chunk])
            parts.append(self._forward(padded, chunk_indices)[: piece.shape[0]].cpu())
        return self._joined(parts)

    def _joined(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """uint8 B×3×H×W: the generated ``parts`` in order (gray repeated to the image contract's
        3 channels; an empty batch of the source's resolution when there are none)."""
        if not parts:
            return torch.empty(0, 3, *self.resolution, dtype=torch.uint8)
        images = torch.cat(parts)
        if self.source_channels == 1:
            images = images.expand(-1, 3, -1, -1)
        return images.contiguous()

    def _forward(self, z: torch.Tensor, indices: Sequence[int]) -> torch.Tensor:
        """uint8 images B×C×H×W of one chunk of latents (float32 B×nz on the CPU; the rows past
        ``len(indices)`` are zero padding and may be anything in the result)."""
        images = self.generator(z.to(self.device))
        if not bool(torch.isfinite(images[: len(indices)]).all()):
            raise InputError(
                f"{self.data}: the generator outputs NaN or infinite values (images "
                f"{indices[0]}..{indices[-1]}, seed {self.seed}); a diverged generator gives no "
                "images to measure")
        return to_uint8(images)

    def _hash_content(self, digest: hashlib._Hash) -> None:
        digest.update(self.identity.encode())
        digest.update(f"{SAMPLER_VERSION}/seed={self.seed}/n={self.n}".encode())

    def record(self) -> dict[str, Any]:
        """The source record, with the sampling seed (image i depends on it)."""
        return {**super().record(), "seed": self.seed}
