"""Where each calibrated estimate means what it says: the regime map, and the run-time decision.

An interval is reported as an interval of its estimand (:data:`gan_eval.estimates.ESTIMANDS`)
only where simulation showed it holds: coverage of that estimand in [92 %, 98 %] at a width at
most 1.2× the true spread. :func:`refusal` is the decision gan-eval makes at run time from the
sizes of a run; ``evaluate`` leaves a refused metric out of ``metrics`` and records it, with the
reason and the ``n`` it would need, under ``omitted`` in the results JSON, and a gate on it
exits 2 naming that reason (:mod:`gan_eval.gates`).

The rules (each from the simulated map in docs/regimes.md; coverage / width ratio, 100 draws
unless marked, so a coverage is known to about ±4.3 %; models of
:mod:`gan_eval.metrics.simulation`: Gaussian, ReLU (non-negative, skewed) and clustered
identity-like mixtures in D = 128, reference 2,000, and the real dlib-face embeddings of the
built-in faces with a reference of 100):

============================  ===============================  ===================================
estimate                      reported when                    measured where it is refused
============================  ===============================  ===================================
fid_infinity (population)     n ≥ 6·D                          4·D: 0.76 (Gaussian); 2·D: 0.40
                                                               (ReLU); D: 0.00; D/2: 0.09 (ReLU)
is_infinity (population),     n ≥ 2·C (C classes)              C: 0.86 / 0.85; C/2: 0.76 / 0.66
is interval (mean_at_n)                                        (IS interval C/2: 0.78 / 0.66)
precision, density,           n ≥ 256, n_reference ≥ 2,000     clustered n = 64: 0.65 (density,
coverage intervals                                             coverage); faces, reference 100:
                                                               coverage 1.24–1.45× wide
recall interval               n ≥ 1,000, n_reference ≥ 2,000   clustered n = 256: 1.40× wide
kid, cmmd intervals           n ≥ 1,000                        n = 64: 1.60× (ReLU), 1.29–1.34×
                                                               (Gaussian) wide, coverage 0.98–0.99
fid, fid both sets,           always (n ≥ 16)                  —
copy_rate
============================  ===============================  ===================================

FID∞ at D = 128 (coverage of the population value / width): Gaussian 0.76 / 1.00 at n = 512,
0.94 / 1.05 at 768, 0.925 / 1.03 at 1,000 (400 draws); ReLU 0.40 / 1.01 at 256 (150), 0.92 /
0.97 at 768 and 1,024 (150), 0.95 / 0.96 at 2,048 (150); mixture 0.90 / 1.12 at 256 (150),
0.95 / 0.99 at 768. The rule is in n/D: at D = 2,048 (Inception) FID∞ needs n ≥ 12,288, at
DINOv2-L's 1,024 6,144, at CLIP-L's 768 4,608; the cells above 6·D at D ≥ 768 were not
simulated (a D × D eigendecomposition per subset), the refused ones were (the issue's ReLU
case, D = 2,048, n = 1,000: a tight interval far from the population value). IS∞ and IS with
C = 100 classes: 0.92 / 0.96 at n = 2·C, 0.92 / 0.93 at 4·C, 0.93 / 0.96 at 8·C.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "FID_INFINITY_MIN_RATIO",
    "IS_MIN_RATIO",
    "KERNEL_INTERVAL_MIN_N",
    "PRDC_INTERVAL_MIN_N",
    "PRDC_INTERVAL_MIN_REFERENCE",
    "RECALL_INTERVAL_MIN_N",
    "Refusal",
    "reference_note",
    "refusal",
]

#: FID∞ is reported when ``n ≥ FID_INFINITY_MIN_RATIO · D`` (module docstring: below, the
#: quadratic in 1/N through n/4, n/2, n does not reach the population value).
FID_INFINITY_MIN_RATIO = 6
#: IS∞ is reported, and IS gets its interval, when ``n ≥ IS_MIN_RATIO · C`` (``C`` classes
#: of the logits).
IS_MIN_RATIO = 2
#: KID and CMMD get their intervals from this many generated samples (below, where a good
#: model's degenerate variance part dominates, their jackknife runs 1.3–1.6× wide).
KERNEL_INTERVAL_MIN_N = 1000
#: Precision, density and coverage get their intervals from this many generated samples.
PRDC_INTERVAL_MIN_N = 256
#: Recall gets its interval from this many generated samples.
RECALL_INTERVAL_MIN_N = 1000
#: ... and the k-NN intervals from this many reference samples (below, coverage's and recall's
#: jackknife run 1.2–1.45× wide on real faces with a reference of 100).
PRDC_INTERVAL_MIN_REFERENCE = 2000


@dataclass(frozen=True)
class Refusal:
    """Why an estimate is not reported as its estimand here.

    Attributes:
        metric: the metric's catalogue name.
        reason: a sentence for the reader: what fails here, and what would let it be reported.
        needed_n: generated samples at which it would be reported (None when more samples
            would not help).
    """

    metric: str
    reason: str
    needed_n: int | None


def refusal(metric: str, *, n: int, d: int, n_reference: int | None = None) -> Refusal | None:
    """None when ``metric`` at ``n`` generated samples in ``d`` dimensions lies inside its
    measured regime (module docstring), else the :class:`Refusal` that ``evaluate`` records.

    Args:
        metric: catalogue name; metrics without a regime limit are always reported.
        n: generated samples.
        d: feature dimensions (``fid_infinity``) or classes of the logits (``is_infinity``,
            ``is``).
        n_reference: reference samples (the k-NN metrics' intervals need enough; None: not
            checked).
    """
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be >= 1, got n={n}, d={d}")
    if metric == "fid_infinity":
        needed = FID_INFINITY_MIN_RATIO * d
        if n >= needed:
            return None
        return Refusal(metric, (
            f"FID∞ (the value as n → ∞) is extrapolated from FID at n/4, n/2 and n, which holds "
            f"only for n ≥ {FID_INFINITY_MIN_RATIO}·D; here n = {n} in D = {d} dimensions, "
            f"where the extrapolation misses the population value by several standard errors "
            f"(simulated); it needs n ≥ {needed:,} generated samples"), needed)
    if metric in ("is_infinity", "is"):
        needed = IS_MIN_RATIO * d
        if n >= needed:
            return None
        if metric == "is":
            return Refusal(metric, (
                f"the Inception Score's interval is not calibrated below n = {IS_MIN_RATIO}·C "
                f"(simulated: too narrow); IS is reported without an interval at n = {n} with "
                f"C = {d} classes; it needs n ≥ {needed:,} generated samples"), needed)
        return Refusal(metric, (
            f"IS∞ (the value as n → ∞) is extrapolated from IS at n/4, n/2 and n, which holds "
            f"only for n ≥ {IS_MIN_RATIO}·C; here n = {n} with C = {d} classes, "
            f"where the extrapolation misses the population value (simulated); it needs "
            f"n ≥ {needed:,} generated samples"), needed)
    if metric in ("kid", "cmmd") and n < KERNEL_INTERVAL_MIN_N:
        return Refusal(metric, (
            f"{metric}'s interval is calibrated only from n = {KERNEL_INTERVAL_MIN_N:,} generated "
            "samples (simulated: 1.3–1.6× the true spread at n = 64 for a model close to its "
            f"reference); {metric} is reported without an interval at n = {n}; it needs "
            f"n ≥ {KERNEL_INTERVAL_MIN_N:,}"), KERNEL_INTERVAL_MIN_N)
    if metric in ("precision", "recall", "density", "coverage"):
        needed = RECALL_INTERVAL_MIN_N if metric == "recall" else PRDC_INTERVAL_MIN_N
        short_reference = (n_reference is not None
                           and n_reference < PRDC_INTERVAL_MIN_REFERENCE)
        if n >= needed and not short_reference:
            return None
        return Refusal(metric, (
            f"{metric}'s interval is calibrated only from n = {needed:,} generated and "
            f"{PRDC_INTERVAL_MIN_REFERENCE:,} reference samples (simulated: on clustered, "
            "identity-like features the interval misses or runs wide below); "
            f"{metric} is reported without an interval at n = {n}"
            + (f", n_reference = {n_reference}" if n_reference is not None else "")
            + (f"; it needs n ≥ {needed:,}" if n < needed else "")
            + (f"; it needs a reference of ≥ {PRDC_INTERVAL_MIN_REFERENCE:,}"
               if short_reference else "")), needed if n < needed else None)
    return None


def reference_note(n_reference: int, d: int) -> str | None:
    """A warning when the reference set has fewer samples than dimensions (its covariance is
    rank-deficient, and every interval conditional on it leaves out how much another draw of
    the reference would move the number), else None."""
    if n_reference >= d:
        return None
    return (f"the reference has {n_reference} samples in {d} dimensions (fewer than D): its "
            "covariance is rank-deficient, and another draw of the reference would move FID by "
            "more than the interval conditional on it says; read the interval with both sets "
            "redrawn (details.interval_both_sets) for what this model's FID is, and use a "
            f"reference of at least {d} samples (better {math.ceil(d * 10):,})")
