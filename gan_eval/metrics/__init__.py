"""Metric math of gan-eval as pure functions on feature tensors (no I/O, no models).

Conventions follow torch-fidelity where it defines the number (FID, KID, IS, precision/recall),
tested equal on the same features; statistics accumulate in float64. Modules:

* :mod:`~gan_eval.metrics.frechet` — :class:`FeatureStats`, :func:`frechet_distance` (FID).
* :mod:`~gan_eval.metrics.polynomial_mmd` — :func:`kid`.
* :mod:`~gan_eval.metrics.kid_resample` — :func:`kid_resample_means` (``kid`` of many resamples
  of the generated set from one pass, for bootstrap intervals).
* :mod:`~gan_eval.metrics.isc` — :func:`inception_score`.
* :mod:`~gan_eval.metrics.prc` — :func:`precision_recall`, :func:`density_coverage`, :func:`prdc`.
* :mod:`~gan_eval.metrics.prdc_resample` — :class:`PRDCResampler` (``prdc`` of many resamples
  of the generated set from one pass, for bootstrap intervals).
* :mod:`~gan_eval.metrics.bf16_tiles` — the bfloat16 first pass of precision/recall and its
  error bound.
* :mod:`~gan_eval.metrics.neighbors` — exact blocked k-NN (:func:`nearest`,
  :func:`kth_neighbor_distance`) shared with memorization and recognition.
* :mod:`~gan_eval.metrics.copies` — :func:`memorization`.
* :mod:`~gan_eval.metrics.bootstrap` — :func:`bootstrap_ci`, :func:`fid_bootstrap_ci`.
* :mod:`~gan_eval.metrics.intervals` — calibrated intervals (each an
  :class:`gan_eval.estimates.IntervalResult`: bounds, se and the estimand it is an interval
  of): :func:`prdc_intervals`, :func:`kid_interval`,
  :func:`cmmd_interval`, :func:`rate_interval`, :func:`split_variance`.
* :mod:`~gan_eval.metrics.extrapolation` — :func:`fid_analysis` (FID at n and FID∞, each with
  its interval), :func:`inception_score_infinity`.
* :mod:`~gan_eval.metrics.identity` — :func:`vendi_score`, :func:`membership_test`,
  :func:`authenticity`.
"""

from gan_eval.metrics.bootstrap import BootstrapCI, FIDResampler, bootstrap_ci, fid_bootstrap_ci
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
from gan_eval.metrics.intervals import (
    cmmd_interval,
    kid_interval,
    prdc_intervals,
    rate_interval,
    split_variance,
)
from gan_eval.metrics.isc import ISResult, inception_score
from gan_eval.metrics.kid_resample import kid_resample_means
from gan_eval.metrics.neighbors import (
    Neighbors,
    kth_neighbor_distance,
    nearest,
    self_neighbors,
)
from gan_eval.metrics.polynomial_mmd import KIDResult, kid
from gan_eval.metrics.prc import (
    PRDC,
    DensityCoverage,
    PrecisionRecall,
    density_coverage,
    prdc,
    precision_recall,
)
from gan_eval.metrics.prdc_resample import PRDCResampler

__all__ = [
    "DLIB_MATCH_THRESHOLD",
    "PRDC",
    "AuthenticityResult",
    "BootstrapCI",
    "DensityCoverage",
    "FIDAnalysis",
    "FIDResampler",
    "FeatureStats",
    "FeatureSums",
    "ISResult",
    "KIDResult",
    "MembershipResult",
    "MemorizationResult",
    "Neighbors",
    "PRDCResampler",
    "PrecisionRecall",
    "SmallSampleFIDWarning",
    "authenticity",
    "bias_dominated",
    "bootstrap_ci",
    "cmmd_interval",
    "density_coverage",
    "fid_analysis",
    "fid_bootstrap_ci",
    "fid_infinity",
    "fid_interval",
    "frechet_distance",
    "identity_centroids",
    "inception_score",
    "inception_score_infinity",
    "inception_score_interval",
    "kid",
    "kid_interval",
    "kid_resample_means",
    "kth_neighbor_distance",
    "membership_test",
    "memorization",
    "nearest",
    "prdc",
    "prdc_intervals",
    "precision_recall",
    "rate_interval",
    "self_neighbors",
    "split_variance",
    "trace_sqrt_product",
    "vendi_score",
]
