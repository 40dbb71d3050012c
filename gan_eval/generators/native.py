"""gan-eval's own DCGAN checkpoints as generators (the EMA generator, ``g_ema``)."""

from __future__ import annotations

from pathlib import Path

import torch

from gan_eval.gan.checkpoint import Checkpoint, load_checkpoint
from gan_eval.gan.models import Generator
from gan_eval.generators.source import DEFAULT_N, GeneratorSource


class CheckpointSource(GeneratorSource):
    """Images of a checkpoint's EMA generator; ``checkpoint`` gives its discriminator and the
    training data it names."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        *,
        n: int = DEFAULT_N,
        seed: int = 0,
        device: str | torch.device | None = None,
        chunk: int | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.spec = checkpoint.spec
        generator = Generator(self.spec)
        generator.load_state_dict(checkpoint.tensors("g_ema"))
        super().__init__(
            generator.eval().requires_grad_(False), nz=self.spec.nz,
            resolution=self.spec.resolution, channels=self.spec.channels,
            identity=checkpoint.meta["state_sha256"], data=str(checkpoint.folder),
            kind="checkpoint", n=n, seed=seed, device=device, chunk=chunk)
        self.generator = generator.to(self.device)


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
