"""Running a foolbox attack over an ε list in batches, and summarizing what it returns.

The numbers are foolbox's: for a fixed-ε attack the ``success`` tensor it returns for the list of
ε (one ``attack(model, x, criterion, epsilons=...)`` call per batch); for a minimization attack
one unbounded run (``None`` in the ε list) whose success and perturbation sizes
(``attack.distance(x, x_adv)``) are reported, with foolbox's success within each ε (the
perturbation scaled down to ε) from the same call.

Randomness (PGD's random start) comes from torch's global generator, which foolbox uses; each
batch runs under ``torch.random.fork_rng`` seeded with ``derive_seed(seed, purpose, batch)``, so
results are reproducible and the caller's random state is left untouched.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gan_eval.seeding import derive_seed

Problem = Callable[[slice], tuple[Any, Any]]
"""``rows -> (foolbox model, criterion)`` for the images ``inputs[rows]``."""

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
"""Quantiles of minimal perturbation sizes reported."""

HISTOGRAM_BINS = 10


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """torch's global RNG (CPU, and ``device`` if CUDA) seeded inside, restored after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@dataclass
class AttackOutcome:
    """What one attack did to N images.

    ``success``: bool K×N, foolbox's verdict at each of the K ``epsilons``. For a minimization
    attack also ``found`` (bool N: the unbounded run found an adversarial) and ``sizes`` (float64
    N: its perturbation norm, NaN where none was found) and ``fallback`` (bool N: the attack
    returned the all-zero image that foolbox's C&W returns when its search fails; not counted as
    found, whatever the criterion says of a black image). ``seeds``: the torch seed each batch
    ran under (batch b = images ``b·batch_size ..``).
    """

    epsilons: tuple[float, ...]
    success: torch.Tensor
    found: torch.Tensor | None = None
    sizes: torch.Tensor | None = None
    seeds: tuple[int, ...] = ()
    fallback: torch.Tensor | None = None

    def rates(self) -> list[float]:
        """Success rate at each ε (fraction of the N images)."""
        return [float(r) for r in self.success.double().mean(dim=1)]


def run_attack(
    attack: Any,
    inputs: torch.Tensor,
    problem: Problem,
    epsilons: Sequence[float],
    *,
    minimization: bool,
    batch_size: int,
    seed: int,
    purpose: str,
) -> AttackOutcome:
    """Run ``attack`` on ``inputs`` (float B×3×H×W in the model's bounds) batch by batch.

    ``problem(rows)`` gives the foolbox model and criterion of the batch ``inputs[rows]``; the
    success tensors foolbox returns are concatenated. With one batch (``N ≤ batch_size``) the
    result is exactly ``attack(model, inputs, criterion, epsilons=epsilons)``'s success, run
    under ``seeded(derive_seed(seed, purpose, 0))``.
    """
    eps = [float(e) for e in epsilons]
    n = inputs.shape[0]
    successes, found, sizes, seeds, fallbacks = [], [], [], [], []
    for index, start in enumerate(range(0, n, batch_size)):
        rows = slice(start, min(start + batch_size, n))
        x = inputs[rows]
        model, criterion = problem(rows)
        seeds.append(derive_seed(seed, purpose, index))
        with seeded(seeds[-1], x.device):
            if minimization:
                advs, _, success = attack(model, x, criterion, epsilons=[*eps, None])
                last = advs[-1]
                # C&W returns its all-zero initial value where its search found nothing; a black
                # image can still pass the criterion (dodging) but is no minimal perturbation
                fallback = (last == 0).flatten(1).all(dim=1) & (x != 0).flatten(1).any(dim=1)
                hit = success[-1] & ~fallback
                fallbacks.append(fallback.cpu())
                size = attack.distance(x, last).double()
                sizes.append(torch.where(hit, size, torch.full_like(size, math.nan)).cpu())
                found.append(hit.cpu())
                successes.append(success[:-1].cpu())
            else:
                _, _, success = attack(model, x, criterion, epsilons=eps)
                successes.append(success.cpu())
    return AttackOutcome(
        epsilons=tuple(eps),
        success=torch.cat(successes, dim=1),
        found=torch.cat(found) if minimization else None,
        sizes=torch.cat(sizes) if minimization else None,
        seeds=tuple(seeds),
        fallback=torch.cat(fallbacks) if minimization else None,
    )


def size_summary(outcome: AttackOutcome) -> dict[str, Any]:
    """Distribution of a minimization attack's perturbation sizes, for tables and plots.

    Statistics are over the images where an adversarial was found (``n_found`` of ``n``; the
    ``n_fallback`` all-zero results of a failed C&W search are not); the per-image ``sizes`` list
    keeps ``None`` where none was found. The histogram has
    :data:`HISTOGRAM_BINS` equal bins from 0 to the largest size found.
    """
    if outcome.sizes is None or outcome.found is None:
        raise ValueError("not a minimization outcome")
    sizes = outcome.sizes.numpy()
    found = sizes[np.isfinite(sizes)]
    summary: dict[str, Any] = {
        "n": int(sizes.size),
        "n_found": int(found.size),
        "found_rate": float(found.size / sizes.size) if sizes.size else 0.0,
        "n_fallback": int(outcome.fallback.sum()) if outcome.fallback is not None else 0,
        "sizes": [None if not math.isfinite(s) else float(s) for s in sizes],
    }
    if found.size:
        top = float(found.max())
        counts, edges = np.histogram(found, bins=HISTOGRAM_BINS, range=(0.0, top or 1.0))
        summary.update(
            median=float(np.median(found)),
            mean=float(found.mean()),
            min=float(found.min()),
            max=top,
            quantiles={f"{q:g}": float(np.quantile(found, q)) for q in QUANTILES},
            histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        )
    else:
        summary.update(median=None, mean=None, min=None, max=None,
                       quantiles={f"{q:g}": None for q in QUANTILES}, histogram=None)
    return summary
