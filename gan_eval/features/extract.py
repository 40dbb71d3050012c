"""``extract(source, extractor)``: batched feature extraction with caching and sharding.

Under torchrun (an initialised ``torch.distributed`` process group) each rank extracts one
contiguous shard of the source and the shards are gathered in order, so every rank ends with the
same features as a single process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from tqdm import tqdm

from gan_eval import __version__
from gan_eval.data import RESIZE_FILTER, ImageSource
from gan_eval.errors import InputError
from gan_eval.features.cache import FeatureCache, cache_key
from gan_eval.features.extractors import FeatureExtractor


@dataclass
class Features:
    """Features of one source under one extractor: {name: float32 N×D on the CPU}."""

    extractor: str
    primary: str
    tensors: dict[str, torch.Tensor]
    source: str
    source_hash: str
    weights_sha256: str
    from_cache: bool = False
    forward_passes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def main(self) -> torch.Tensor:
        """The features used for fid / kid / precision-recall (N×D)."""
        return self.tensors[self.primary]

    def __len__(self) -> int:
        return int(self.main.shape[0])


def _shard(n: int) -> range:
    if not (dist.is_available() and dist.is_initialized()):
        return range(n)
    rank, world = dist.get_rank(), dist.get_world_size()
    per = -(-n // world)
    return range(min(rank * per, n), min((rank + 1) * per, n))


def _gather(tensors: dict[str, torch.Tensor], n: int) -> dict[str, torch.Tensor]:
    """Concatenate each rank's contiguous shard in rank order (shards padded to equal size)."""
    if not (dist.is_available() and dist.is_initialized()):
        return tensors
    world = dist.get_world_size()
    per = -(-n // world)
    gathered = {}
    backend_device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    for name, local in tensors.items():
        padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=backend_device)
        padded[: local.shape[0]] = local
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        gathered[name] = torch.cat(parts)[:n].cpu()
    return gathered


def extract(
    source: ImageSource,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 64,
    cache: FeatureCache | None = None,
    progress: bool = True,
) -> Features:
    """Features of every image of ``source`` (in order), from the cache when present.

    Raises :class:`InputError` when the extractor yields NaN or infinite features (for example
    a generator that diverged), naming the source.
    """
    n = len(source)
    key = cache_key(
        source=source.content_hash(),
        n=n,
        resolution=source.resolution,
        resize=RESIZE_FILTER,
        extractor=extractor.name,
        weights=extractor.weights_sha256(),
        version=__version__,
    )
    features = Features(
        extractor=extractor.name,
        primary=extractor.primary,
        tensors={},
        source=source.data,
        source_hash=source.content_hash(),
        weights_sha256=extractor.weights_sha256(),
    )
    cached = cache.load(key) if cache is not None else None
    if cached is not None:
        features.tensors, features.from_cache = cached, True
        return features

    start = time.perf_counter()
    shard = _shard(n)
    parts: dict[str, list[torch.Tensor]] = {}
    passes = 0
    bar = tqdm(
        total=len(shard),
        desc=f"{extractor.name} ← {source.data}",
        unit="img",
        disable=not progress,
        delay=2.0,
        leave=False,
    )
    with torch.inference_mode(), bar:
        for lo in range(shard.start, shard.stop, batch_size):
            batch = source.read(range(lo, min(lo + batch_size, shard.stop)))
            for name, value in extractor(batch.to(extractor.device, non_blocking=True)).items():
                parts.setdefault(name, []).append(value.float())
            passes += 1
            bar.update(batch.shape[0])
    local = {name: torch.cat(values) for name, values in parts.items()}
    tensors = _gather(local, n) if len(shard) < n or dist.is_initialized() else local
    tensors = {name: value.cpu().contiguous() for name, value in tensors.items()}
    bad = int((~torch.isfinite(tensors[extractor.primary])).any(dim=1).sum())
    if bad:
        raise InputError(
            f"{source.data}: {bad} of {n} images give NaN or infinite {extractor.name} features "
            "(a diverged generator or corrupt images?)"
        )
    if cache is not None:
        cache.store(key, tensors, {"source": source.data, "extractor": extractor.name})
    features.tensors, features.forward_passes = tensors, passes
    features.seconds = time.perf_counter() - start
    return features
