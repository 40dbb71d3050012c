"""Per-face values of every method and degradation → intervals, paired differences and metrics.

Every method is measured on the same faces, so:

- each method × degradation × metric is a mean over faces with its interval
  (:func:`gan_eval.metrics.paired.mean_interval`; rates: the Wilson interval,
  :func:`~gan_eval.metrics.paired.rate_interval_of_means`), and its paired difference from
  ``builtin:none`` on the same faces (:func:`~gan_eval.metrics.paired.paired_difference`);
- FID of the restored set against the clean set per method × degradation × extractor, with the
  split-variance interval of :func:`gan_eval.metrics.fid_analysis` (at least 16 faces);
- the audited model's catalogue metrics (the ones gates read) average each face over every
  degradation the model restores, then over faces: the same intervals, ``n`` = faces.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult
from gan_eval.metrics.extrapolation import fid_analysis
from gan_eval.metrics.frechet import FeatureStats, frechet_distance
from gan_eval.metrics.paired import mean_interval, paired_difference, rate_interval_of_means
from gan_eval.restoration.measures import Measured
from gan_eval.results import Metric

__all__ = ["MEASURES", "Measure", "fid_values", "headline_metrics", "method_values"]

MIN_FID_INTERVAL = 16
"""Faces needed for FID's split-variance interval."""


@dataclass(frozen=True)
class Measure:
    """A per-face value and the catalogue metric it averages into."""

    key: str  # key in :attr:`Measured.values`
    metric: str  # catalogue name
    extractor: str  # "face" = the face recognizer's name
    rate: bool


MEASURES: tuple[Measure, ...] = (
    Measure("psnr", "psnr", "pixels", False),
    Measure("ssim", "ssim", "pixels", False),
    Measure("lpips", "lpips", "lpips-alex", False),
    Measure("identity_distance", "identity_distance", "face", False),
    Measure("identity_kept", "identity_kept_rate", "face", True),
    Measure("identity_swapped", "identity_swap_rate", "face", True),
    Measure("verified", "verification_tar", "face", True),
    Measure("landmark_distance", "landmark_distance", "dlib-shape-5", False),
)
"""Every per-face measure, in report order."""


def _interval(values: np.ndarray, measure: Measure) -> IntervalResult:
    what = f"{measure.metric}"
    return (rate_interval_of_means(values, what=what) if measure.rate
            else mean_interval(values, what=what))


def _entry(iv: IntervalResult) -> dict[str, Any]:
    return {"value": iv.estimate, "ci95": [iv.low, iv.high], "se": iv.se, "n": iv.n,
            "method": iv.method}


def method_values(measured: Measured, baseline: Measured | None) -> dict[str, Any]:
    """One method × degradation: each measure's mean and interval, and (``baseline``: the same
    faces without restoration) the paired difference ``method − none``."""
    out: dict[str, Any] = {}
    for m in MEASURES:
        if m.key not in measured.values:
            continue
        values = measured.values[m.key]
        if not np.isfinite(values).all():
            out[m.metric] = {"value": None, "reason": "too few pairs of different faces to "
                             "calibrate its threshold (kept: 1/far pairs of clean faces; "
                             "TAR: 100 impostor pairs at FAR 1%)"}
            continue
        entry = _entry(_interval(values, m))
        if baseline is not None and np.isfinite(baseline.values[m.key]).all():
            entry["difference"] = _entry(paired_difference(values, baseline.values[m.key],
                                                           what=f"{m.metric} − none"))
        out[m.metric] = entry
    return out


def fid_values(features: dict[str, torch.Tensor], clean: dict[str, FeatureStats], *,
               seed: int) -> dict[str, Any]:
    """FID of each extractor's restored features against the clean statistics, with its
    interval from :data:`MIN_FID_INTERVAL` faces (``"mean_at_n"``: compare at equal n)."""
    out: dict[str, Any] = {}
    for name, rows in features.items():
        g = rows.double()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if g.shape[0] >= MIN_FID_INTERVAL:
                iv = fid_analysis(g, clean[name], seed=seed, n_splits=20).fid
                out[name] = {**_entry(iv), "estimand": "mean_at_n"}
            else:
                value = frechet_distance(FeatureStats.from_features(g), clean[name])
                out[name] = {"value": value, "ci95": None,
                             "reason": f"an interval needs at least {MIN_FID_INTERVAL} faces"}
        if caught:
            out[name]["warning"] = str(caught[0].message)
    return out


def headline_metrics(
    per_condition: dict[str, Measured], fids: dict[str, dict[str, Any]], *, face: str,
    conditions: Sequence[str],
) -> list[Metric]:
    """The audited model's catalogue metrics over ``conditions`` (keys of ``per_condition``):
    each face's mean over the conditions, then the interval over faces; FID: the mean of the
    conditions' FIDs (no interval: they share faces)."""
    if not conditions:
        raise InputError("the audited MODEL restores none of the --degradation conditions")
    metrics = []
    for m in MEASURES:
        if any(m.key not in per_condition[c].values for c in conditions):
            continue
        stacked = np.stack([per_condition[c].values[m.key] for c in conditions])
        if not np.isfinite(stacked).all():
            continue
        per_face = stacked.mean(0)
        n = int(per_face.size)
        extractor = face if m.extractor == "face" else m.extractor
        metrics.append(Metric.of(
            m.metric, extractor, _interval(per_face, m), n_generated=n, n_reference=n,
            details={"conditions": list(conditions),
                     "aggregate": "each face's mean over the conditions, then over faces"}))
    for name in sorted({e for c in conditions for e in fids.get(c, {})}):
        found = [fids[c][name]["value"] for c in conditions if name in fids.get(c, {})]
        if len(found) != len(conditions) or not all(math.isfinite(v) for v in found):
            continue
        n = int(next(iter(per_condition.values())).values["psnr"].size)
        metrics.append(Metric.of(  # FID ≥ 0: a rounding −1e-16 of identical sets is 0
            "restoration_fid", name, max(0.0, float(np.mean(found))), n_generated=n,
            n_reference=n,
            no_interval="a mean of FIDs over degradations of the same faces has no calibrated "
                        "interval; each degradation's FID has one (restoration section)",
            details={"conditions": list(conditions), "per_condition": found}))
    return metrics
