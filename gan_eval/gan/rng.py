"""Counter-based seeding: every random draw is keyed by (seed, purpose, counters).

Training seeds a fresh generator state for each (step, rank) and sampling one for each image
index, so no random stream has to be carried from one step or batch to the next: a resumed run
draws exactly what an uninterrupted one would, and image i of a generator source is the same
whatever batch it is computed in.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, purpose: str, *counters: int) -> int:
    """A 63-bit seed determined by ``seed``, ``purpose`` and ``counters`` only (sha256-mixed)."""
    key = "/".join([str(seed), purpose, *map(str, counters)]).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1
