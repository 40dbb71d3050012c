"""torch.distributed helpers for runs launched by ``torchrun`` (one process per GPU or CPU slot).

Without torchrun (no ``WORLD_SIZE`` > 1 in the environment) every helper degrades to the
single-process case, so callers write one code path: :func:`init_from_env` returns ``None`` and
rank 0 of world size 1 is assumed.

Backends: NCCL when the run's device is CUDA, gloo on CPU. Under NCCL each process uses
``cuda:LOCAL_RANK``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from gan_eval.errors import InputError


@dataclass(frozen=True)
class DistEnv:
    """This process's place in a torchrun job."""

    rank: int
    local_rank: int
    world_size: int
    backend: str
    owns_group: bool  # True when init_from_env created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files (checkpoints, samples, logs)."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when the environment holds a torchrun job of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: str | torch.device) -> DistEnv | None:
    """Join the torchrun job described by the environment; ``None`` when not under torchrun.

    ``device`` is the device type the run asked for (``cpu`` or ``cuda``): it picks the backend
    (gloo / NCCL). A process group someone else initialized is reused and left alone.
    """
    if dist.is_available() and dist.is_initialized():
        return DistEnv(
            rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
            world_size=dist.get_world_size(), backend=str(dist.get_backend()), owns_group=False,
        )
    if not launched_by_torchrun():
        return None
    if not dist.is_available():
        raise InputError("torchrun: this PyTorch build has no torch.distributed support")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    is_cuda = torch.device(device).type == "cuda"
    if is_cuda:
        if local_rank >= torch.cuda.device_count():
            raise InputError(
                f"torchrun: LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA "
                "device(s); start at most one process per GPU (--nproc-per-node)"
            )
        torch.cuda.set_device(local_rank)
    backend = "nccl" if is_cuda else "gloo"
    if is_cuda:
        dist.init_process_group(backend, device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group(backend)
    return DistEnv(
        rank=dist.get_rank(), local_rank=local_rank, world_size=dist.get_world_size(),
        backend=backend, owns_group=True,
    )


def shutdown(env: DistEnv | None) -> None:
    """Destroy the process group if :func:`init_from_env` created it."""
    if env is not None and env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def rank_device(env: DistEnv | None, device: torch.device) -> torch.device:
    """The device this rank computes on: ``cuda:LOCAL_RANK`` under NCCL, else ``device``."""
    if env is not None and device.type == "cuda":
        return torch.device("cuda", env.local_rank)
    return device


def barrier(env: DistEnv | None) -> None:
    """Wait for every rank (no-op in a single process)."""
    if env is not None:
        dist.barrier()


def shard_range(n: int, rank: int, world_size: int) -> range:
    """Contiguous indices of ``n`` items owned by ``rank``: sizes differ by at most one.

    The shards of ranks 0..world_size-1, in order, concatenate to ``range(n)``.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def per_rank_batch(global_batch: int, world_size: int) -> int:
    """Split a global batch evenly over ranks; :class:`InputError` naming --batch-size otherwise."""
    if global_batch % world_size:
        raise InputError(
            f"--batch-size {global_batch} is not divisible by the {world_size} torchrun processes; "
            "the batch size is global and each process takes an equal share"
        )
    return global_batch // world_size


def all_reduce_mean(tensor: torch.Tensor, env: DistEnv | None) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (in place; NaN anywhere makes NaN everywhere)."""
    if env is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(env.world_size)
    return tensor


def all_gather_cat(tensor: torch.Tensor, env: DistEnv | None) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along dim 0, in rank order (shards may differ in size).

    With :func:`shard_range` shards this rebuilds the single-process result exactly.
    """
    if env is None:
        return tensor
    sizes = torch.zeros(env.world_size, dtype=torch.long, device=tensor.device)
    sizes[env.rank] = tensor.shape[0]
    dist.all_reduce(sizes)
    longest = int(sizes.max())
    # all_gather needs equal shapes: pad every shard to the longest, trim after
    padded = tensor.new_zeros((longest, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(env.world_size)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[: int(size)] for part, size in zip(parts, sizes, strict=True)])
