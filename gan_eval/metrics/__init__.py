"""Metric math of gan-eval as pure functions on feature tensors (no I/O, no models).

Conventions follow torch-fidelity where it defines the number (FID, KID, IS, precision/recall),
tested equal on the same features; statistics accumulate in float64. Modules:

* :mod:`~gan_eval.metrics.frechet` — :class:`FeatureStats`, :func:`frechet_distance` (FID).
* :mod:`~gan_eval.metrics.polynomial_mmd` — :func:`kid`.
* :mod:`~gan_eval.metrics.isc` — :func:`inception_score`.
* :mod:`~gan_eval.metrics.prc` — :func:`precision_recall`, :func:`density_coverage`, :func:`prdc`.
* :mod:`~gan_eval.metrics.prdc_resample`, :mod:`~gan_eval.metrics.subset_fid` — ``prdc`` and
  FID of many subsets of the generated set from one pass (the machinery behind the intervals).
* :mod:`~gan_eval.metrics.bf16_tiles` — the bfloat16 first pass of precision/recall and its
  error bound.
* :mod:`~gan_eval.metrics.neighbors` — exact blocked k-NN (:func:`nearest`,
  :func:`kth_neighbor_distance`) shared with memorization and recognition.
* :mod:`~gan_eval.metrics.copies` — :func:`memorization`.
* :mod:`~gan_eval.metrics.intervals` — calibrated intervals (each an
  :class:`gan_eval.estimates.IntervalResult`: bounds, se and the estimand it is an interval
  of): :func:`prdc_intervals`, :func:`kid_interval`,
  :func:`cmmd_interval`, :func:`rate_interval`, :func:`split_variance`.
* :mod:`~gan_eval.metrics.extrapolation` — :func:`fid_analysis` (FID at n and FID∞, each with
  its interval), :func:`inception_score_infinity`.
* :mod:`~gan_eval.metrics.identity` — :func:`vendi_score`, :func:`membership_test`,
  :func:`authenticity`.
* :mod:`~gan_eval.metrics.controls` — :func:`distribution_controls`: each distribution metric's
  floor (real vs real) and ceiling (the worse degenerate generator) at :func:`control_size`.
* :mod:`~gan_eval.metrics.regimes` — where each estimate holds (:func:`~.regimes.refusal`,
  the regime map of docs/regimes.md).
* :mod:`~gan_eval.metrics.simulation` — feature models with exact moments
  (:func:`~.simulation.model_pair`); :mod:`~gan_eval.metrics.coverage` — the coverage
  simulation of every interval (:func:`~.coverage.coverage_table`).
* restoration (restored vs clean images of the same faces):
  :mod:`~gan_eval.metrics.pixel_fidelity` — :func:`psnr`, :func:`ssim` (scikit-image's);
  :mod:`~gan_eval.metrics.perceptual` — :func:`lpips_distance` and
  :func:`normalized_activations` (lpips' math); :mod:`~gan_eval.metrics.identity_keeping` —
  :func:`identity_outcomes` (distance, kept, swapped); :mod:`~gan_eval.metrics.landmarks` —
  :func:`landmark_distance`; :mod:`~gan_eval.metrics.paired` — :func:`mean_interval`,
  :func:`rate_interval_of_means`, :func:`paired_difference` (intervals over faces).
"""

from gan_eval.metrics.controls import MetricControls, control_size, distribution_controls
from gan_eval.metrics.copies import DLIB_MATCH_THRESHOLD, MemorizationResult, memorization
from gan_eval.metrics.extrapolation import (
    FIDAnalysis,
    bias_dominated,
    fid_analysis,
    fid_infinity,
    fid_interval,
    inception_score_infinity,
    inception_score_interval,
)
from gan_eval.metrics.frechet import (
    FeatureStats,
    FeatureSums,
    SmallSampleFIDWarning,
    frechet_distance,
    trace_sqrt_product,
)
from gan_eval.metrics.identity import (
    AuthenticityResult,
    MembershipResult,
    authenticity,
    identity_centroids,
    membership_test,
    vendi_score,
)
from gan_eval.metrics.identity_keeping import IdentityOutcome, identity_outcomes
from gan_eval.metrics.intervals import (
    cmmd_interval,
    kid_interval,
    prdc_intervals,
    rate_interval,
    split_variance,
)
from gan_eval.metrics.isc import ISResult, inception_score
from gan_eval.metrics.landmarks import landmark_distance
from gan_eval.metrics.neighbors import (
    Neighbors,
    kth_neighbor_distance,
    nearest,
    self_neighbors,
)
from gan_eval.metrics.paired import mean_interval, paired_difference, rate_interval_of_means
from gan_eval.metrics.perceptual import lpips_distance, normalized_activations
from gan_eval.metrics.pixel_fidelity import psnr, ssim
from gan_eval.metrics.polynomial_mmd import KIDResult, kid
from gan_eval.metrics.prc import (
    PRDC,
    DensityCoverage,
    PrecisionRecall,
    density_coverage,
    prdc,
    precision_recall,
)

__all__ = [
    "DLIB_MATCH_THRESHOLD",
    "PRDC",
    "AuthenticityResult",
    "DensityCoverage",
    "FIDAnalysis",
    "FeatureStats",
    "FeatureSums",
    "ISResult",
    "IdentityOutcome",
    "KIDResult",
    "MembershipResult",
    "MemorizationResult",
    "MetricControls",
    "Neighbors",
    "PrecisionRecall",
    "SmallSampleFIDWarning",
    "authenticity",
    "bias_dominated",
    "cmmd_interval",
    "control_size",
    "density_coverage",
    "distribution_controls",
    "fid_analysis",
    "fid_infinity",
    "fid_interval",
    "frechet_distance",
    "identity_centroids",
    "identity_outcomes",
    "inception_score",
    "inception_score_infinity",
    "inception_score_interval",
    "kid",
    "kid_interval",
    "kth_neighbor_distance",
    "landmark_distance",
    "lpips_distance",
    "mean_interval",
    "membership_test",
    "memorization",
    "nearest",
    "normalized_activations",
    "paired_difference",
    "prdc",
    "prdc_intervals",
    "precision_recall",
    "psnr",
    "rate_interval",
    "rate_interval_of_means",
    "self_neighbors",
    "split_variance",
    "ssim",
    "trace_sqrt_product",
    "vendi_score",
]
