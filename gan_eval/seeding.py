"""Counter-based seeding: every random draw in gan-eval is keyed by (seed, purpose, counters).

One convention everywhere: the user's ``--seed`` is never used directly; each random choice asks
:func:`derive_seed` for a seed of its own, named by what it is for (``"bootstrap"``,
``"sample"``, ``"impostor-pairs"``, …) and indexed by counters (step, rank, image index).
Streams for different purposes are therefore independent, adding a random choice somewhere
never shifts the draws of another, and no random stream has to be carried from one step or batch
to the next: a resumed run draws exactly what an uninterrupted one would, and image i of a
generator source is the same whatever batch it is computed in.

:func:`numpy_rng` and :func:`torch_generator` are the two ways to turn such a seed into a
generator.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


def derive_seed(seed: int, purpose: str, *counters: int) -> int:
    """A 63-bit seed determined by ``seed``, ``purpose`` and ``counters`` only (sha256-mixed)."""
    key = "/".join([str(seed), purpose, *map(str, counters)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def numpy_rng(seed: int, purpose: str, *counters: int) -> np.random.Generator:
    """``numpy.random.default_rng`` seeded with :func:`derive_seed` (seed, purpose, counters)."""
    import numpy as np

    return np.random.default_rng(derive_seed(seed, purpose, *counters))


def torch_generator(seed: int, purpose: str, *counters: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`derive_seed` (seed, purpose, counters)."""
    import torch

    return torch.Generator().manual_seed(derive_seed(seed, purpose, *counters))
