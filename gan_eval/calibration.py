"""``calibrate(DATA)``: do gan-eval's intervals hold on *your* features, at *your* n?

The regime map (:mod:`gan_eval.metrics.regimes`) was measured on simulated feature models. This
runs the same coverage simulation (:func:`gan_eval.metrics.coverage.coverage_table`) on a
user's own real features: ``DATA`` is extracted once (cached), and its rows become a
population by the smoothed bootstrap (each draw a random row plus ``N(0, h² I)``, ``h`` half the
median nearest-neighbour distance divided by ``√D``, so draws stay near the real ones without
repeating them; its mean and covariance are exact, so FID∞'s population value is known). The
reference model is all rows; the pseudo-generated model is a random 80 % of them with 1.3× the
noise (a model that misses some people and blurs), so the two differ as a real generator and
its training data do. Pseudo-generated sets of ``--count`` rows are drawn against a reference
of ``--reference-count`` (default: all of DATA), and the table says per interval how often it
held its estimand, how wide it was against the true spread, and whether gan-eval reports that
estimate at these sizes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan_eval.catalogue import EXTRACTORS
from gan_eval.errors import InputError

if TYPE_CHECKING:  # torch and the metrics are imported where used: options are checked first
    import torch

    from gan_eval.metrics.coverage import CoverageRow
    from gan_eval.metrics.simulation import MixtureModel

__all__ = ["CalibrateConfig", "Calibration", "calibrate", "pool_models"]

#: Fewest generated samples: the split-variance intervals need quarters of at least 4.
MIN_COUNT = 16
#: The pseudo-generated model keeps this fraction of the rows ...
KEPT_FRACTION = 0.8
#: ... with this many times the smoothing noise.
BLUR = 1.3


@dataclass(frozen=True, kw_only=True)
class CalibrateConfig:
    """Options of ``gan-eval calibrate`` (see the CLI help for each)."""

    extractor: str = "dlib-face"
    n: int = 1000
    n_reference: int | None = None  # None: every row of DATA
    trials: int = 200
    seed: int = 0
    workers: int | None = None  # None: min(2, cpu count)
    device: str | None = None
    batch_size: int = 64
    weights: Path | None = None  # the extractor's weights file, where it needs one
    cache_dir: Path | None = None
    use_cache: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.extractor not in EXTRACTORS:
            raise InputError(f"--extractor: unknown {self.extractor!r}; known: "
                             f"{', '.join(EXTRACTORS)}")
        if self.n < MIN_COUNT:
            raise InputError(f"--count: the intervals need at least {MIN_COUNT} generated "
                             f"samples, got {self.n}")
        if self.n_reference is not None and self.n_reference < 2:
            raise InputError(f"--reference-count: need at least 2, got {self.n_reference}")
        if self.trials < 20:
            raise InputError(f"--trials: need at least 20 to say anything about coverage, got "
                             f"{self.trials}")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers: need at least 1, got {self.workers}")


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found.

    Attributes:
        rows: one :class:`~gan_eval.metrics.coverage.CoverageRow` per interval.
        data, extractor: what was simulated on.
        pool: rows of DATA; d: feature dimensions; noise: the smoothing ``h`` per dimension.
        n, n_reference, trials: the simulated sizes and draws.
    """

    rows: list[CoverageRow]
    data: str
    extractor: str
    pool: int
    d: int
    noise: float
    n: int
    n_reference: int
    trials: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {"schema": "gan-eval/calibration/v1", "data": self.data,
                "extractor": self.extractor, "pool": self.pool, "d": self.d,
                "noise": self.noise, "n": self.n, "n_reference": self.n_reference,
                "trials": self.trials, "rows": [r.to_json() for r in self.rows],
                "notes": self.notes}


def pool_models(pool: torch.Tensor, *, seed: int = 0) -> tuple[MixtureModel, MixtureModel, float]:
    """(pseudo-generated model, reference model, smoothing ``h``) from real features
    ``pool`` (float ``(N, D)``, ``N ≥ 5``): module docstring."""
    import torch

    from gan_eval.metrics.neighbors import self_neighbors
    from gan_eval.metrics.simulation import smoothed_pool

    x = pool.double()
    n, d = x.shape
    if n < 5:
        raise InputError(f"calibration needs at least 5 distinct feature rows, got {n}")
    median = float(self_neighbors(x, 1).distances[:, 0].median())
    if not median > 0.0:
        raise InputError("DATA: its feature rows are (nearly) all duplicates; nothing to "
                         "calibrate on")
    h = 0.5 * median / math.sqrt(d)
    g = torch.Generator().manual_seed(seed)
    kept = torch.randperm(n, generator=g)[: max(2, round(KEPT_FRACTION * n))].sort().values
    return smoothed_pool(x, noise=BLUR * h, rows=kept), smoothed_pool(x, noise=h), h


def calibrate(data: str, config: CalibrateConfig) -> Calibration:
    """Coverage of every interval on ``data``'s features at ``config.n`` (module docstring).

    Raises:
        InputError: bad DATA or options; MissingAssetError: the extractor's weights missing.
    """
    from gan_eval.devices import resolve_device
    from gan_eval.features.cache import FeatureCache, default_cache_dir
    from gan_eval.features.extraction import extract
    from gan_eval.features.registry import build_extractor
    from gan_eval.metrics.coverage import INTERVALS, coverage_table
    from gan_eval.sources import as_source

    source = as_source(data, "DATA", device=config.device)
    device = resolve_device(config.device)
    extractor = build_extractor(config.extractor, device=device, weights=config.weights)
    cache = FeatureCache((config.cache_dir or default_cache_dir()) if config.use_cache else None)
    feats = extract(source, extractor, batch_size=config.batch_size, cache=cache,
                    progress=config.progress)
    pool = feats.main.double().cpu()
    generated, reference, h = pool_models(pool, seed=config.seed)
    n_ref = config.n_reference or pool.shape[0]
    workers = config.workers or min(2, os.cpu_count() or 1)
    rows = coverage_table(generated, reference, n=config.n, n_reference=n_ref,
                          trials=config.trials, seed=config.seed, workers=workers,
                          intervals=INTERVALS)
    notes = list(feats.notes)
    if n_ref < 16:
        notes.append(f"no interval with both sets redrawn: the reference has {n_ref} rows "
                     "(the split variance needs 16)")
    return Calibration(rows=rows, data=source.data, extractor=config.extractor,
                       pool=pool.shape[0], d=pool.shape[1], noise=h, n=config.n,
                       n_reference=n_ref, trials=config.trials, notes=notes)
