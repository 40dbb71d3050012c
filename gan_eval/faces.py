"""Face-recognition constants and the one comparison that decides "same person".

dlib's face network maps a face to a 128-D embedding; its authors publish 0.6 as the Euclidean
distance under which two faces are the same person (99.38% on LFW). Every part of gan-eval that
asks "is this the same person?" — copy_rate, identity leakage and diversity, the attack goals,
the corruption match rate — uses :func:`is_match`, with the same closed comparison
(``distance ≤ threshold``).
"""

from __future__ import annotations

from typing import TypeVar

EMBEDDING_DIM = 128
"""Width of a dlib face embedding."""

MATCH_THRESHOLD: float = 0.6
"""dlib's published same-person distance: same person ⇔ distance ≤ 0.6 (the ``match_threshold``
of the ``dlib-face`` extractor spec in :mod:`gan_eval.catalogue`)."""

FAR_WARNING = 0.05
"""A match threshold that accepts more than this fraction of pairs of different people does not
separate people on the images at hand (tiny or gray faces compress dlib's embedding space)."""

CALIBRATION_FAR = 1e-3
"""False-accept rate on reference impostor pairs at which the *calibrated* threshold is set
(recognition's leakage and diversity, evaluate's ``copy_rate_calibrated``)."""

T = TypeVar("T")


def is_match(distance: T, threshold: float = MATCH_THRESHOLD) -> T:
    """Same person ⇔ ``distance ≤ threshold``; elementwise on NumPy arrays and torch tensors."""
    return distance <= threshold  # type: ignore[operator,return-value]


def threshold_warning(threshold: float, far: float) -> str | None:
    """Why ``threshold`` cannot be read as "same person" here, when it accepts more than
    :data:`FAR_WARNING` of the reference's impostor pairs (``far``); None when it can."""
    if far <= FAR_WARNING:
        return None
    return (f"the match threshold {threshold:g} accepts {far:.1%} of reference impostor pairs "
            f"(> {FAR_WARNING:.0%}): it does not separate people for these images (small or gray "
            "images compress dlib's embedding space)")
