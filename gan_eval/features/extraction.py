"""``extract(source, extractor)``: batched feature extraction with caching and sharding.

Under torchrun (a ``torch.distributed`` process group the caller initialised, e.g. with
:func:`gan_eval.distributed.job`) each rank extracts one contiguous shard of the source made of
whole batches (:func:`gan_eval.distributed.batch_shard`) and the shards are gathered in order, so
every rank ends with bitwise the same features as a single process with the same batch size,
device and thread count. A rank left without images (fewer batches than ranks) still takes part
in the gather with an empty shard.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from gan_eval import distributed as dist
from gan_eval.data import RESIZE_FILTER, ImageSource
from gan_eval.errors import InputError
from gan_eval.features.cache import FeatureCache, cache_key
from gan_eval.features.registry import FeatureExtractor
from gan_eval.version import __version__


@dataclass
class Features:
    """Features of one source under one extractor: {name: float32 N×D on the CPU}."""

    extractor: str
    primary: str
    tensors: dict[str, torch.Tensor]
    key: str
    """What the features are of: the cache key over source content, extractor, weights and
    settings (set whether or not a cache is used)."""
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


def _empty_features(source: ImageSource, extractor: FeatureExtractor) -> dict[str, torch.Tensor]:
    """0×D tensors with the names, widths and dtypes the extractor gives (for an empty shard).

    The widths are only known from a forward pass: one image, whose features are discarded.
    """
    probe = extractor(source.read(range(1)).to(extractor.device))
    return {name: value[:0].float() for name, value in probe.items()}


def extract(
    source: ImageSource,
    extractor: FeatureExtractor,
    *,
    batch_size: int = 64,
    cache: FeatureCache | None = None,
    progress: bool = True,
) -> Features:
    """Features of every image of ``source`` (in order), from the cache when present.

    The cache key is the source's content hash, its size and resize, and the extractor, its
    weights and settings. A source whose content hash is only known once its images are read (an
    external generator: a hash of its pixels, :meth:`ImageSource.hashed_by_reading`) is looked up
    under its :meth:`~ImageSource.origin_hash` instead, and an entry found there is used only when
    the pixels it was extracted from (recorded with it) hash as the images do now; so the images
    are generated once whether the features are cached or not. A source that is not
    ``cacheable`` (a generator accepted as non-deterministic) is neither read from nor written
    to the cache.

    Raises :class:`InputError` when the source is empty or the extractor yields NaN or infinite
    features (for example a generator that diverged), naming the source. Under torchrun every
    rank must call this with the same source, extractor and ``batch_size``; each returns all
    ``len(source)`` features, and only rank 0 writes the cache entry.
    """
    n = len(source)
    if n == 0:
        raise InputError(f"{source.data}: no images to extract {extractor.name} features from")
    if not source.cacheable:
        cache = None
    env = dist.current()
    settings: dict[str, str | int | tuple[int, int]] = {
        "n": n,
        "resolution": source.resolution,
        "resize": RESIZE_FILTER,
        "extractor": extractor.name,
        "weights": extractor.weights_sha256(),
        "settings": json.dumps(extractor.settings(), sort_keys=True),
        "version": __version__,
    }
    late = source.hashed_by_reading()  # its content hash is of pixels not read yet
    key = cache_key(source=source.origin_hash() if late else source.content_hash(), **settings)
    features = Features(
        extractor=extractor.name,
        primary=extractor.primary,
        tensors={},
        key=key,
        source=source.data,
        source_hash="",
        weights_sha256=extractor.weights_sha256(),
    )
    needed = {extractor.primary} | ({extractor.logits} if extractor.logits else set())
    found = (cache.lookup(key, expected_rows=n, expected_names=needed) if cache is not None
             else None)
    cached = found.tensors if found is not None else None
    if found is not None and found.reason:
        features.notes.append(f"{source.data}: cached {extractor.name} features were not used "
                              f"and are recomputed: {found.reason}")
    if late and found is not None and cached is not None \
            and found.meta.get("pixels") != source.content_hash():  # generates, no extraction
        cached = None
        features.notes.append(f"{source.data}: cached {extractor.name} features were of other "
                              "images (the generator's images changed, its files did not); "
                              "recomputed")
    # Under torchrun every rank must take the same branch: the gather below is collective.
    if dist.all_true(cached is not None, env) and cached is not None:
        features.tensors, features.from_cache = cached, True
        _identify(features, source, settings)
        return features

    start = time.perf_counter()
    shard = range(n) if env is None else dist.batch_shard(n, batch_size, env.rank, env.world_size)
    parts: dict[str, list[torch.Tensor]] = {}
    passes = 0
    bar = tqdm(
        total=len(shard),
        desc=f"{extractor.name} ← {source.data}",
        unit="img",
        disable=not progress or (env is not None and not env.is_main),
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
        if parts:
            local = {name: torch.cat(values) for name, values in parts.items()}
        else:  # only a rank with an empty shard (n = 0 was refused above)
            local = _empty_features(source, extractor)
    if env is None:
        tensors = local
    else:
        device = dist.collective_device(env)
        # same names in the same order on every rank (one extractor): the gathers pair up
        tensors = {name: dist.all_gather_cat(v.to(device), env) for name, v in local.items()}
        passes = dist.all_reduce_sum_int(passes, env)  # = the single process's count
    tensors = {name: value.cpu().contiguous() for name, value in tensors.items()}
    bad = int((~torch.isfinite(tensors[extractor.primary])).any(dim=1).sum())
    if bad:
        raise InputError(
            f"{source.data}: {bad} of {n} images give NaN or infinite {extractor.name} features "
            "(a diverged generator or corrupt images?)"
        )
    _identify(features, source, settings)  # after reading: the pixels are hashed by now
    if cache is not None and (env is None or env.is_main):
        meta = {"source": source.data, "extractor": extractor.name}
        if late:
            meta["pixels"] = features.source_hash
        cache.store(key, tensors, meta)
    features.tensors, features.forward_passes = tensors, passes
    features.seconds = time.perf_counter() - start
    return features


def _identify(features: Features, source: ImageSource,
              settings: dict[str, str | int | tuple[int, int]]) -> None:
    """Set what the features are of: the source's content hash and the key over it."""
    features.source_hash = source.content_hash()
    features.key = cache_key(source=features.source_hash, **settings)
