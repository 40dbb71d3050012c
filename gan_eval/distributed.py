"""torch.distributed helpers for runs launched by ``torchrun`` (one process per GPU or CPU slot).

Without torchrun (no ``WORLD_SIZE`` > 1 in the environment) every helper degrades to the
single-process case, so callers write one code path: :func:`init_from_env` returns ``None`` and
rank 0 of world size 1 is assumed.

Backends: NCCL when the run's device is CUDA, gloo on CPU. Under NCCL each process uses
``cuda:LOCAL_RANK``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


def is_main_process() -> bool:
    """True in a single process and on rank 0 of a torchrun job (the one that prints and
    writes), whether or not a process group is still initialised."""
    return int(os.environ.get("RANK", "0")) == 0


def current() -> DistEnv | None:
    """This process's place in an already initialised process group; ``None`` without one.

    Never creates a group (library code such as feature extraction uses this: it shards only
    when the caller, e.g. the CLI via :func:`job`, joined the torchrun job).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return None
    return DistEnv(
        rank=dist.get_rank(), local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        world_size=dist.get_world_size(), backend=str(dist.get_backend()), owns_group=False,
    )


def init_from_env(device: str | torch.device) -> DistEnv | None:
    """Join the torchrun job described by the environment; ``None`` when not under torchrun.

    ``device`` is the device type the run asked for (``cpu`` or ``cuda``): it picks the backend
    (gloo / NCCL). A process group someone else initialized is reused and left alone.
    """
    if (env := current()) is not None:
        return env
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


@contextmanager
def job(device: str | torch.device) -> Iterator[DistEnv | None]:
    """:func:`init_from_env` for the block, then :func:`shutdown` (also on errors)."""
    env = init_from_env(device)
    try:
        yield env
    finally:
        shutdown(env)


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


def batch_shard(n: int, batch_size: int, rank: int, world_size: int) -> range:
    """Contiguous indices of ``n`` items owned by ``rank``, cut at multiples of ``batch_size``.

    The ``ceil(n / batch_size)`` batches a single process would form are dealt out with
    :func:`shard_range` (counts differ by at most one batch), so every batch a rank forms is one
    the single process forms too. Results that depend on a batch's shape (BLAS and oneDNN pick
    blocking by shape: ~3e-6 relative on Inception features on CPU) are then bitwise the same
    for any number of processes. Ranks beyond the number of batches get an empty range; the
    shards of ranks 0..world_size-1, in order, concatenate to ``range(n)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches = shard_range(-(-n // batch_size), rank, world_size)
    return range(min(batches.start * batch_size, n), min(batches.stop * batch_size, n))


def collective_device(env: DistEnv) -> torch.device:
    """Where tensors for collectives live: this rank's current GPU under NCCL, else the CPU."""
    if env.backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_true(flag: bool, env: DistEnv | None) -> bool:
    """True when ``flag`` is true on every rank (``flag`` itself in a single process).

    For decisions every rank must take alike (a cache hit on one rank but not another would
    leave the others waiting in a collective the first never enters).
    """
    if env is None:
        return flag
    value = torch.tensor([int(flag)], device=collective_device(env))
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def all_reduce_sum_int(count: int, env: DistEnv | None) -> int:
    """Sum of an integer over ranks (``count`` itself in a single process)."""
    if env is None:
        return count
    value = torch.tensor([count], dtype=torch.long, device=collective_device(env))
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return int(value.item())


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
