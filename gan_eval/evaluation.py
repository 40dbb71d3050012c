"""``evaluate(GENERATED, REFERENCE)``: distribution metrics with intervals on each extractor.

Per extractor: fid and fid_infinity (FD_DINOv2 on ``dinov2-vit-l14``), kid (mean; std over
subsets in details), cmmd (Jayasumana et al. 2024), precision, recall (k = 3), density,
coverage (k = 5), is and is_infinity (extractors with logits only), each with its calibrated
95% interval (:mod:`gan_eval.metrics.intervals`) or the reason it has none; on ``dlib-face``
also memorization (``copy_rate`` with the closest generated ↔ reference pairs) and
``copy_rate_calibrated`` (the same at the threshold calibrated on the reference's impostor
pairs). The math is :mod:`gan_eval.metrics` (tested equal to torch-fidelity); features come from
:func:`gan_eval.features.extraction.extract` (cached).

Every distribution metric (fid, fid_infinity, kid, cmmd, precision, recall, density, coverage,
is) also carries its floor and ceiling (``details.floor`` / ``details.ceiling``, and the generated
set's value at the same sizes, ``details.at_control_sizes``): real vs real and the worse of two
degenerate generators, on the same extractor (:mod:`gan_eval.metrics.controls`), or
``details.no_controls`` saying why not. They reuse the extracted reference features; the
degenerate images (:mod:`gan_eval.data.controls`) are one small extraction, cached.

A thresholded identity number whose threshold does not separate people on this reference
(:func:`gan_eval.faces.threshold_warning`: more than 5% of reference impostor pairs accepted)
records ``details.cannot_judge`` (why, and the calibrated metric to gate instead): a gate on it
exits 2, never 1.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_eval import distributed
from gan_eval.catalogue import EXTRACTORS as EXTRACTOR_SPECS
from gan_eval.data import ImageSource
from gan_eval.data.controls import degenerate_sources
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.estimates import IntervalResult
from gan_eval.faces import CALIBRATION_FAR, is_match, threshold_warning
from gan_eval.features.cache import FeatureCache, default_cache_dir
from gan_eval.features.extraction import Features, extract
from gan_eval.features.nearest import shared_nearest_reference
from gan_eval.features.registry import (
    EXTRACTORS,
    FeatureExtractor,
    build_extractor,
    weights_for,
)
from gan_eval.metrics import (
    FeatureStats,
    cmmd_interval,
    fid_analysis,
    frechet_distance,
    inception_score,
    inception_score_infinity,
    inception_score_interval,
    kid,
    kid_interval,
    memorization,
    prdc,
    prdc_intervals,
    rate_interval,
)
from gan_eval.metrics.cmmd import CMMD_SCALE, CMMD_SIGMA, cmmd
from gan_eval.metrics.controls import (
    CONTROL_SPLITS,
    DEGENERATE,
    MAX_CONTROL_SIZE,
    MetricControls,
    control_reasons,
    control_size,
    distribution_controls,
)
from gan_eval.metrics.intervals import DEFAULT_SPLITS, JACKKNIFE_MIN_SAMPLES
from gan_eval.metrics.pairs import CALIBRATION_PAIRS, far_threshold, unlabelled_impostors
from gan_eval.metrics.regimes import Refusal, reference_note, refusal
from gan_eval.results import SPAN_MEANING, Metric, Omitted, Results, provenance
from gan_eval.seeding import derive_seed, numpy_rng
from gan_eval.sources import as_source

#: Fewest generated images for the split-variance intervals (quarters of at least 4).
MIN_INTERVAL_SAMPLES = 16


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """Options of ``gan-eval evaluate`` (see the CLI help for each)."""

    extractors: tuple[str, ...] = ("dlib-face",)
    n: int | None = None  # samples drawn from a generator checkpoint (default 1000 there)
    resolution: int | None = None  # resize both sets to this square size before extraction
    batch_size: int = 64
    device: str | None = None
    inception_weights: Path | None = None
    weights: tuple[tuple[str, Path], ...] = ()  # (extractor, weights file) for other extractors
    cache_dir: Path | None = None  # None: default_cache_dir()
    use_cache: bool = True
    splits: int = DEFAULT_SPLITS  # random halves/quarters behind the split-variance intervals
    seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at the smaller set size (recorded)
    match_threshold: float | None = None  # same-person distance of copy_rate; None: the face
    # network's published one (dlib's 0.6; FaceNet has none: copy_rate is left out, with why)
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [e for e in self.extractors if e not in EXTRACTORS]
        if unknown or not self.extractors:
            raise InputError(
                f"--extractor: unknown {', '.join(map(repr, unknown)) or '(none given)'}; "
                f"registered: {', '.join(EXTRACTORS)}"
            )
        if self.n is not None and self.n < 2:
            raise InputError(f"--n: need at least 2 generated images, got {self.n}")
        if self.splits < 2:
            raise InputError(f"--splits: need at least 2 random splits, got {self.splits}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size: must be >= 1, got {self.batch_size}")


def _interval_seed(config: EvaluateConfig) -> int:
    """One seed for the random halves and quarters behind every split-variance interval (so the
    metrics of one run are judged on the same splits)."""
    return derive_seed(config.seed, "intervals")


def _omitted(name: str, extractor: str, why: Refusal, counts: dict[str, int]) -> Omitted:
    """The record of a metric left out because its estimate is outside its regime."""
    return Omitted(name=name, extractor=extractor, reason=why.reason, needed_n=why.needed_n,
                   **counts)


def _metrics_for(
    gen: Features, ref: Features, extractor: FeatureExtractor, config: EvaluateConfig
) -> tuple[list[Metric], list[str], list[Omitted]]:
    g, r = gen.main.double(), ref.main.double()
    n_g, n_r = len(g), len(r)
    counts = {"n_generated": n_g, "n_reference": n_r}
    notes: list[str] = []
    metrics: list[Metric] = []
    omitted: list[Omitted] = []
    name = extractor.name
    seed = _interval_seed(config)
    splits = {"seed": seed, "n_splits": config.splits}
    intervals = n_g >= MIN_INTERVAL_SAMPLES
    too_few = (f"the split-variance intervals need at least {MIN_INTERVAL_SAMPLES} generated "
               f"images, got {n_g}")
    if not intervals:
        notes.append(f"{name}: no intervals: {too_few}")

    def metric(metric_name: str, estimate: IntervalResult | float, no_interval: str | None = None,
               **details: Any) -> Metric:
        return Metric.of(metric_name, name, estimate, no_interval=no_interval,
                         details=details, **counts)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref_stats = FeatureStats.from_features(r)
        if intervals:
            fa = fid_analysis(g, ref_stats, reference_features=r, seed=seed,
                              n_splits=config.splits)
            if fa.fid_both_sets is not None:  # beside it: the reference redrawn too
                metrics.append(metric("fid", fa.fid,
                                      interval_both_sets=fa.fid_both_sets.to_json()))
            else:
                metrics.append(metric("fid", fa.fid))
            if fa.fid_infinity is not None:
                metrics.append(metric("fid_infinity", fa.fid_infinity))
            elif fa.refusal is not None:
                omitted.append(_omitted("fid_infinity", name, fa.refusal, counts))
                notes.append(f"{name}: fid_infinity not reported: {fa.refusal.reason}")
            if fa.note:
                notes.append(f"{name}: {fa.note}")
        else:
            fid = frechet_distance(FeatureStats.from_features(g), ref_stats)
            metrics.append(metric("fid", fid, too_few))
    notes += sorted({f"{name}: {w.message}" for w in caught})
    small_reference = reference_note(n_r, g.shape[1])
    if small_reference:
        notes.append(f"{name}: {small_reference}")

    subset = min(config.kid_subset_size, n_g, n_r)
    kernel_uncalibrated = refusal("kid", n=n_g, d=g.shape[1])  # the same rule for cmmd
    if kernel_uncalibrated:
        notes.append(f"{name}: {kernel_uncalibrated.reason} (cmmd likewise)")

    def kernel(metric_name: str, iv: IntervalResult) -> tuple[IntervalResult | float,
                                                              str | None]:
        why = refusal(metric_name, n=n_g, d=g.shape[1])
        return (iv.estimate, why.reason) if why else (iv, None)

    cmmd_details: dict[str, Any] = {
        "sigma": CMMD_SIGMA, "scale": CMMD_SCALE,
        "estimator": "biased, kernel means over full matrices with diagonals "
                     "(google-research cmmd/distance.py); comparable with the paper on "
                     "clip-vit-l14-336 only"}
    if n_g >= JACKKNIFE_MIN_SAMPLES:
        kid_iv = kid_interval(g, r, subsets=config.kid_subsets, subset_size=subset,
                              variance_seed=seed)
        metrics.append(metric("kid", *kernel("kid", kid_iv),
                              std=kid_iv.record["std_over_subsets"],
                              subsets=config.kid_subsets, subset_size=subset))
        metrics.append(metric("cmmd", *kernel("cmmd", cmmd_interval(g, r)), **cmmd_details))
    else:  # too few rows for the jackknife at all: the numbers alone, with the reason
        why = (kernel_uncalibrated.reason if kernel_uncalibrated else
               f"the jackknife interval needs at least {JACKKNIFE_MIN_SAMPLES} generated "
               f"images, got {n_g}")
        kid_plain = kid(g, r, subsets=config.kid_subsets, subset_size=subset)
        metrics.append(metric("kid", kid_plain.mean, why, std=kid_plain.std,
                              subsets=config.kid_subsets, subset_size=subset))
        metrics.append(metric("cmmd", cmmd(g, r), why, **cmmd_details))

    k_pr, k_dc = 3, 5
    names = ("precision", "recall", "density", "coverage")
    if min(n_g, n_r) <= k_dc:
        notes.append(
            f"{name}: precision/recall/density/coverage skipped: need more than "
            f"{k_dc} images in each set (k-NN radii with k = {k_pr} and {k_dc})"
        )
    elif n_g // 4 <= k_dc:  # k-NN radii within quarters of the set: no interval
        scores = prdc(g, r, k_pr=k_pr, k_dc=k_dc)
        why = (f"the k-NN radii within quarters of the set need more than {4 * k_dc + 3} "
               f"generated images, got {n_g}")
        notes.append(f"{name}: precision/recall/density/coverage without intervals: {why}")
        metrics += [metric(m, getattr(scores, m), why,
                           k=k_pr if m in ("precision", "recall") else k_dc) for m in names]
    else:
        ivs = prdc_intervals(g, r, k_pr=k_pr, k_dc=k_dc, **splits)
        for m in names:
            # the value holds at any n; recall's interval only from its regime's n
            uncalibrated = refusal(m, n=n_g, d=g.shape[1], n_reference=n_r)
            metrics.append(metric(m, ivs[m].estimate if uncalibrated else ivs[m],
                                  uncalibrated.reason if uncalibrated else None,
                                  k=k_pr if m in ("precision", "recall") else k_dc))
            if uncalibrated:
                notes.append(f"{name}: {uncalibrated.reason}")

    if extractor.logits is not None:
        logits = gen.tensors[extractor.logits].double()
        chunks = min(10, n_g)
        if n_g >= max(MIN_INTERVAL_SAMPLES, 4 * chunks):
            is_iv = inception_score_interval(logits, splits=chunks, **splits)
            is_uncalibrated = refusal("is", n=n_g, d=logits.shape[1])
            metrics.append(metric("is", is_iv.estimate if is_uncalibrated else is_iv,
                                  is_uncalibrated.reason if is_uncalibrated else None,
                                  std=is_iv.record["std_over_splits"], splits=chunks))
            if is_uncalibrated:
                notes.append(f"{name}: {is_uncalibrated.reason}")
            is_refused = refusal("is_infinity", n=n_g, d=logits.shape[1])
            if is_refused is None:
                metrics.append(metric("is_infinity", inception_score_infinity(logits, **splits)))
            else:
                omitted.append(_omitted("is_infinity", name, is_refused, counts))
                notes.append(f"{name}: is_infinity not reported: {is_refused.reason}")
        else:
            score = inception_score(logits, splits=chunks)
            why = (f"its interval needs at least {max(MIN_INTERVAL_SAMPLES, 4 * chunks)} "
                   f"generated images, got {n_g}")
            notes.append(f"{name}: is without an interval: {why}")
            metrics.append(metric("is", score.mean, why, std=score.std, splits=chunks))

    if EXTRACTOR_SPECS[name].face:
        found, found_notes, found_omitted = _copy_rates(gen, ref, config, counts, name)
        metrics += found
        notes += found_notes
        omitted += found_omitted
    return metrics, notes, omitted


def _copy_rates(gen: Features, ref: Features, config: EvaluateConfig, counts: dict[str, int],
                name: str) -> tuple[list[Metric], list[str], list[Omitted]]:
    """``copy_rate`` at the match threshold and ``copy_rate_calibrated`` at the threshold whose
    false-accept rate on the reference's impostor pairs is :data:`~gan_eval.faces
    .CALIBRATION_FAR` (the same threshold as recognition's calibrated leakage). When the match
    threshold accepts more than 5% of impostor pairs, ``copy_rate`` records ``cannot_judge``:
    nearly any face "copies" some reference face there, so a gate on it exits 2. A face network
    without a published same-person distance (FaceNet) and no ``match_threshold`` given has no
    ``copy_rate``: it is recorded as omitted, with why."""
    g, r = gen.main.double(), ref.main.double()
    n_g, n_r = counts["n_generated"], counts["n_reference"]
    threshold = (config.match_threshold if config.match_threshold is not None
                 else EXTRACTOR_SPECS[name].match_threshold)
    impostor = _reference_impostors(r, config)
    tau = far_threshold(impostor, CALIBRATION_FAR)
    nearest_distance = threshold if threshold is not None else (tau or 0.0)
    mem = memorization(g, r, threshold=nearest_distance,
                       nearest_found=shared_nearest_reference(gen, ref))
    notes = []
    calibrated: list[Metric] = []
    calibrated_skip = {"skipped": True, "reason": (
        f"{impostor.size} reference impostor pairs; calibrating at FAR {CALIBRATION_FAR:g} "
        f"needs at least {round(1 / CALIBRATION_FAR)}")}
    if tau is not None:
        far_tau = float(np.mean(is_match(impostor, tau)))
        at_tau = {
            "threshold": tau, "far": CALIBRATION_FAR, "far_on_reference_pairs": far_tau,
            "pairs": int(impostor.size),
            "calibrated_on": "pairs of different reference images, taken as different people",
            "chance": {"rate": 1.0 - (1.0 - far_tau) ** int(r.shape[0]),
                       "meaning": CHANCE_MEANING},
        }
        copies_at_tau = int(is_match(mem.distance, tau).sum())
        calibrated.append(Metric.of("copy_rate_calibrated", name,
                                    rate_interval(copies_at_tau, n_g), n_generated=n_g,
                                    n_reference=n_r, details=at_tau))
    if threshold is None:
        why = (f"{name} has no published same-person distance (give --threshold); "
               "copy_rate_calibrated is the copy rate at the threshold calibrated on the "
               "reference's impostor pairs")
        notes.append(f"{name}: copy_rate not reported: {why}")
        return calibrated, notes, [_omitted("copy_rate", name, Refusal("copy_rate", why, None),
                                            counts)]
    copies = int(is_match(mem.distance, threshold).sum())
    chance = _chance_copy_rate(r, threshold, impostor)
    details: dict[str, Any] = {**mem.to_json(), "chance": chance}
    if tau is None:
        details["calibrated"] = calibrated_skip
    if chance["warning"]:
        notes.append(f"{name}: copy_rate {mem.copy_rate:.3g}: {chance['warning']}")
        reason = threshold_warning(threshold, chance["far_on_reference_pairs"])
        if tau is None:
            reason = (f"{reason}; {details['calibrated']['reason']}, so there is no calibrated "
                      "copy rate")
        details["cannot_judge"] = {
            "reason": reason, "instead": "copy_rate_calibrated" if tau is not None else None,
            "far_on_reference_pairs": chance["far_on_reference_pairs"]}
    return [Metric.of("copy_rate", name, rate_interval(copies, n_g), n_generated=n_g,
                      n_reference=n_r, details=details), *calibrated], notes, []


def _reference_impostors(reference: torch.Tensor, config: EvaluateConfig) -> np.ndarray:
    """Distances of pairs of different reference images (seeded), taken as impostors."""
    return unlabelled_impostors(reference, CALIBRATION_PAIRS,
                                rng=numpy_rng(config.seed, "impostor-pairs"))


CHANCE_MEANING = ("copy rate expected of faces of people absent from the reference (pairs of "
                  "different images taken as different people)")


def _chance_copy_rate(reference: torch.Tensor, threshold: float,
                      impostor: np.ndarray) -> dict[str, Any]:
    """The copy rate that faces of nobody in the reference would get: the match threshold's
    false-accept rate on pairs of different reference images (FAR), and 1 − (1 − FAR)^M over
    the M reference faces. A warning when the threshold does not separate people on these
    images (:func:`gan_eval.faces.threshold_warning`)."""
    far = float(np.mean(is_match(impostor, threshold)))
    m = int(reference.shape[0])
    rate = 1.0 - (1.0 - far) ** m
    warning = threshold_warning(threshold, far)
    if warning:
        warning += (f"; a face of nobody in the reference 'copies' one of its {m} faces with "
                    f"probability {rate:.3g} — read copy_rate_calibrated (the threshold "
                    "calibrated on the reference's impostor pairs)")
    return {"far_on_reference_pairs": far, "pairs": int(impostor.size), "rate": rate,
            "meaning": CHANCE_MEANING,
            "warning": warning}


CONTROLLED = frozenset({"fid", "fid_infinity", "kid", "cmmd", "precision", "recall", "density",
                        "coverage", "is"})
"""The distribution metrics that carry a floor and a ceiling."""


def _control_sources(reference: ImageSource, n_generated: int,
                     config: EvaluateConfig) -> tuple[int, dict[str, ImageSource]]:
    """The controls' size ``h`` (:func:`~gan_eval.metrics.controls.control_size`) and the
    degenerate generators' images at the reference's resolution (none when the reference is too
    small to split)."""
    size = control_size(n_generated, len(reference))
    if size < 2:
        return size, {}
    return size, dict(degenerate_sources(reference, size, config.seed))


def _attach_controls(metrics: list[Metric], gen: Features, ref: Features,
                     degenerate: dict[str, Features], extractor: FeatureExtractor, size: int,
                     config: EvaluateConfig) -> None:
    """Add ``floor``, ``ceiling``, ``at_control_sizes`` and ``span`` to the details of each
    distribution metric in ``metrics`` (or ``no_controls``: why not)."""
    names = frozenset(m.name for m in metrics) & CONTROLLED
    has_logits = extractor.logits is not None and bool(degenerate)
    reasons = control_reasons(names, size, len(ref), dims=int(ref.main.shape[1]),
                              logits=has_logits)
    found: dict[str, MetricControls] = {}
    if degenerate and set(names) - set(reasons):
        logits = None
        if has_logits:
            key = extractor.logits
            assert key is not None
            logits = (gen.tensors[key], ref.tensors[key],
                      {k: f.tensors[key] for k, f in degenerate.items()})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample notes: the controls are small
            found = distribution_controls(
                gen.main, ref.main, {k: f.main for k, f in degenerate.items()}, metrics=names,
                size=size, splits=CONTROL_SPLITS, seed=derive_seed(config.seed, "controls"),
                kid_subsets=config.kid_subsets, logits=logits)
    for m in metrics:
        if m.name not in names:
            continue
        controls = found.get(m.name)
        if controls is None or not controls.finite:
            m.details["no_controls"] = reasons.get(m.name, "a control value is not a finite "
                                                           "number")
            continue
        m.details.update(controls.details())
        span = m.span()
        m.details["span"] = {"value": span.value, "meaning": SPAN_MEANING,
                             **({"reason": span.reason} if span.reason else {})}


def _open(data: str | ImageSource, config: EvaluateConfig, role: str) -> ImageSource:
    source = as_source(data, "GENERATED" if role == "generated" else "--reference",
                       resolution=config.resolution, n=config.n, seed=config.seed,
                       device=config.device, batch_size=config.batch_size)
    if len(source) < 2:
        raise InputError(
            f"{source.data}: the {role} set has {len(source)} image(s); need at least 2"
        )
    return source


def evaluate(
    generated: str | ImageSource, reference: str | ImageSource, config: EvaluateConfig | None = None
) -> Results:
    """Distribution metrics of ``generated`` against ``reference`` on each configured extractor.

    Both are DATA strings or sources; a generator is sampled straight into tensors. Under
    torchrun (a ``torchrun … -m gan_eval evaluate`` job, or a Python caller started by torchrun)
    each process extracts a shard of the images and every process returns the same results.
    Raises :class:`InputError` (bad input, fewer than 2 images, NaN features) and
    :class:`MissingAssetError` (Inception weights not installed).
    """
    config = config or EvaluateConfig()
    device = resolve_device(config.device)
    with distributed.job(device) as env:
        return _evaluate(generated, reference, config, distributed.rank_device(env, device))


def _evaluate(
    generated: str | ImageSource, reference: str | ImageSource, config: EvaluateConfig,
    device: torch.device,
) -> Results:
    gen_source = _open(generated, config, "generated")
    ref_source = _open(reference, config, "reference")
    cache = FeatureCache((config.cache_dir or default_cache_dir()) if config.use_cache else None)
    metrics: list[Metric] = []
    omitted: list[Omitted] = []
    notes: list[str] = []
    extractor_info: dict[str, Any] = {}
    passes: dict[str, dict[str, int]] = {}
    size, control_sources = _control_sources(ref_source, len(gen_source), config)
    control_passes: dict[str, dict[str, int]] = {}
    for name in config.extractors:
        extractor = build_extractor(
            name,
            device=device,
            weights=weights_for(name, config.weights, config.inception_weights),
        )
        feats = {
            role: extract(
                source,
                extractor,
                batch_size=config.batch_size,
                cache=cache,
                progress=config.progress,
            )
            for role, source in (("generated", gen_source), ("reference", ref_source))
        }
        passes[name] = {role: f.forward_passes for role, f in feats.items()}
        extractor_info[name] = {
            "weights_sha256": extractor.weights_sha256(),
            "device": str(extractor.device),
            "cached": {role: f.from_cache for role, f in feats.items()},
        }
        notes += [note for f in feats.values() for note in f.notes]
        found, found_notes, left_out = _metrics_for(feats["generated"], feats["reference"],
                                                    extractor, config)
        degenerate = {role: extract(source, extractor, batch_size=config.batch_size, cache=cache,
                                    progress=config.progress)
                      for role, source in control_sources.items()}
        control_passes[name] = {role: f.forward_passes for role, f in degenerate.items()}
        notes += [note for f in degenerate.values() for note in f.notes]
        _attach_controls(found, feats["generated"], feats["reference"], degenerate, extractor,
                         size, config)
        metrics += found
        notes += found_notes
        omitted += left_out
    return Results(
        provenance=provenance(
            command="evaluate",
            seed=config.seed,
            extractors=extractor_info,
            forward_passes=passes,
            controls={"size": size, "reference_side": len(ref_source) - size,
                      "splits": CONTROL_SPLITS, "degenerate": DEGENERATE,
                      "forward_passes": control_passes,
                      "sizes_rule": "h = min(n_generated, ⌊n_reference/2⌋, "
                                    f"{MAX_CONTROL_SIZE}) against the other n_reference − h"},
            data={"generated": gen_source.record(), "reference": ref_source.record()},
            notes=notes,
        ),
        metrics=metrics,
        omitted=omitted,
    )

