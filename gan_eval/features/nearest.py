"""The nearest-reference search between two extracted feature sets, done once per process.

An audit asks the same question twice: evaluate's ``copy_rate`` and recognition's identity
leakage both need each generated face's nearest reference face in dlib-face space. Both ask
:func:`shared_nearest_reference`, which searches once per pair of feature sets (identified by
their extraction keys, :attr:`Features.key`) and keeps the last few answers.
"""

from __future__ import annotations

from collections import OrderedDict

from gan_eval.features.extraction import Features
from gan_eval.metrics.copies import NearestReference, nearest_reference

_KEEP = 8
_DONE: OrderedDict[tuple[str, str], NearestReference] = OrderedDict()


def shared_nearest_reference(generated: Features, reference: Features) -> NearestReference:
    """Nearest row of ``reference.main`` for every row of ``generated.main`` (exact, float64
    distances), searched once per process for each pair of feature sets."""
    key = (generated.key, reference.key)
    if key not in _DONE:
        _DONE[key] = nearest_reference(generated.main, reference.main)
        while len(_DONE) > _KEEP:
            _DONE.popitem(last=False)
    _DONE.move_to_end(key)
    return _DONE[key]
