"""``evaluate(GENERATED, REFERENCE)``: distribution metrics with intervals on each extractor.

Per extractor: fid (FD_DINOv2 on ``dinov2-vit-l14``), kid (mean; std over subsets in details),
cmmd (Jayasumana et al. 2024), precision, recall (k = 3), density,
coverage (k = 5), is (extractors with logits only), each with a 95% bootstrap interval from
resampling the generated set; on ``dlib-face`` also memorization (``copy_rate`` with the closest
generated ↔ reference pairs). The math is :mod:`gan_eval.metrics` (tested equal to
torch-fidelity); features come from :func:`gan_eval.features.extraction.extract` (cached).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_eval import distributed
from gan_eval.callable_module import make_callable
from gan_eval.catalogue import EXTRACTORS as EXTRACTOR_SPECS
from gan_eval.data import ImageSource
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.faces import MATCH_THRESHOLD, is_match, threshold_warning
from gan_eval.features.cache import FeatureCache, default_cache_dir
from gan_eval.features.extraction import Features, extract
from gan_eval.features.nearest import shared_nearest_reference
from gan_eval.features.registry import EXTRACTORS, FeatureExtractor, build_extractor
from gan_eval.metrics import (
    FeatureStats,
    PRDCResampler,
    bootstrap_ci,
    fid_bootstrap_ci,
    frechet_distance,
    inception_score,
    kid,
    kid_resample_means,
    memorization,
)
from gan_eval.metrics.bootstrap import interval_from_values, resample_indices
from gan_eval.metrics.cmmd import CMMD_SCALE, CMMD_SIGMA, cmmd, cmmd_bootstrap_ci
from gan_eval.metrics.pairs import CALIBRATION_PAIRS, unlabelled_impostors
from gan_eval.results import Metric, Results, provenance
from gan_eval.seeding import derive_seed, numpy_rng
from gan_eval.sources import as_source


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
    bootstrap: int = 200  # resamples of the generated set for every 95% interval
    seed: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at the smaller set size (recorded)
    match_threshold: float = MATCH_THRESHOLD  # dlib's same-person distance, for copy_rate
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
        if self.bootstrap < 2:
            raise InputError(f"--bootstrap: need at least 2 resamples, got {self.bootstrap}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size: must be >= 1, got {self.batch_size}")


def _bootstrap_seed(config: EvaluateConfig) -> int:
    """One stream of resamples of the generated set, shared by every metric's interval (so the
    intervals are of the same resamples)."""
    return derive_seed(config.seed, "bootstrap")


def _interval(
    fn: Callable[[torch.Tensor], float],
    n: int,
    config: EvaluateConfig,
    resamples: int | None = None,
) -> tuple[tuple[float, float], dict[str, Any]]:
    ci = bootstrap_ci(fn, n, n_resamples=resamples or config.bootstrap,
                      seed=_bootstrap_seed(config))
    return ci.interval, ci.record


def _joint_intervals(
    fn: Callable[[torch.Tensor], dict[str, float]],
    estimates: dict[str, float],
    n: int,
    resamples: int,
    seed: int,
) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """Bias-shifted 95% bootstrap intervals of several metrics computed together per resample.

    Same index stream and interval rule as :func:`gan_eval.metrics.bootstrap_ci` with
    ``method="bias_shifted"``: recall and coverage drop on a resample (only ~63% distinct rows),
    so plain percentiles can exclude the estimate itself.
    """
    rows = [fn(idx) for idx in resample_indices(n, resamples, seed)]
    intervals = {}
    record: dict[str, Any] = {}
    for key, estimate in estimates.items():
        values = torch.tensor([row[key] for row in rows], dtype=torch.float64)
        ci = interval_from_values(values, estimate, resamples, seed, 0.95, "bias_shifted")
        intervals[key], record = ci.interval, ci.record
    return intervals, record


def _metrics_for(
    gen: Features, ref: Features, extractor: FeatureExtractor, config: EvaluateConfig
) -> tuple[list[Metric], list[str]]:
    g, r = gen.main.double(), ref.main.double()
    n_g, n_r = len(g), len(r)
    counts = {"n_generated": n_g, "n_reference": n_r}
    notes: list[str] = []
    metrics: list[Metric] = []
    name = extractor.name

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref_stats = FeatureStats.from_features(r)
        fid = frechet_distance(FeatureStats.from_features(g), ref_stats)
    notes += sorted({f"{name}: {w.message}" for w in caught})
    fid_ci = fid_bootstrap_ci(g, ref_stats, n_resamples=config.bootstrap,
                              seed=_bootstrap_seed(config))
    metrics.append(
        Metric.of(
            "fid", name, fid, ci95=fid_ci.interval, details={"bootstrap": fid_ci.record}, **counts
        )
    )

    subset = min(config.kid_subset_size, n_g, n_r)
    kid_args = dict(subsets=config.kid_subsets, subset_size=subset)
    k = kid(g, r, **kid_args)  # type: ignore[arg-type]
    # Each resample's KID with 10 subsets (all from one pass); the interval reflects the
    # generated set's noise.
    kid_resamples = min(config.bootstrap, 100)
    kid_values = kid_resample_means(
        g, r, list(resample_indices(n_g, kid_resamples, _bootstrap_seed(config))), subsets=10,
        subset_size=subset)
    # a percentile interval: the estimate only labels it (no second KID run for it)
    kid_ci = interval_from_values(kid_values, k.mean, kid_resamples, _bootstrap_seed(config), 0.95,
                                  "percentile")
    metrics.append(
        Metric.of(
            "kid",
            name,
            k.mean,
            ci95=kid_ci.interval,
            details={
                "std": k.std,
                "subsets": k.subsets,
                "subset_size": k.subset_size,
                "bootstrap": {**kid_ci.record, "subsets_per_resample": 10},
            },
            **counts,
        )
    )

    value = cmmd(g, r)
    cmmd_ci = cmmd_bootstrap_ci(g, r, n_resamples=config.bootstrap, seed=_bootstrap_seed(config))
    metrics.append(
        Metric.of(
            "cmmd", name, value, ci95=cmmd_ci.interval,
            details={"sigma": CMMD_SIGMA, "scale": CMMD_SCALE, "bootstrap": cmmd_ci.record,
                     "estimator": "biased, kernel means over full matrices with diagonals "
                                  "(google-research cmmd/distance.py); comparable with the "
                                  "paper on clip-vit-l14-336 only"},
            **counts,
        )
    )

    k_needed = 5
    if min(n_g, n_r) > k_needed:
        # one pass for the estimate and every resample (each equals prdc(g[idx], r))
        resampler = PRDCResampler(g, r)
        scores = resampler(torch.arange(n_g))
        names = ("precision", "recall", "density", "coverage")
        intervals, record = _joint_intervals(
            lambda idx: {m: float(v) for m, v in resampler(idx).to_dict().items()},
            {m: getattr(scores, m) for m in names},
            n_g,
            min(config.bootstrap, 100),
            _bootstrap_seed(config),
        )
        for metric in names:
            metrics.append(
                Metric.of(
                    metric,
                    name,
                    getattr(scores, metric),
                    ci95=intervals[metric],
                    details={
                        "k": scores.k_pr if metric in ("precision", "recall") else scores.k_dc,
                        "bootstrap": record,
                    },
                    **counts,
                )
            )
    else:
        notes.append(
            f"{name}: precision/recall/density/coverage skipped: need more than "
            f"{k_needed} images in each set (k-NN radii with k = 3 and 5)"
        )

    if extractor.logits is not None:
        logits = gen.tensors[extractor.logits].double()
        splits = min(10, n_g)
        score = inception_score(logits, splits=splits)
        ci, record = _interval(
            lambda idx: inception_score(logits[idx], splits=splits).mean, n_g, config
        )
        metrics.append(
            Metric.of(
                "is",
                name,
                score.mean,
                ci95=ci,
                details={"std": score.std, "splits": splits, "bootstrap": record},
                **counts,
            )
        )

    if EXTRACTOR_SPECS[name].face:
        mem = memorization(g, r, threshold=config.match_threshold,
                           nearest_found=shared_nearest_reference(gen, ref))
        ci, record = _interval(
            lambda idx: float(is_match(mem.distance[idx], config.match_threshold).double().mean()),
            n_g,
            config,
        )
        chance = _chance_copy_rate(r, config)
        if chance["warning"]:
            notes.append(f"{name}: copy_rate {mem.copy_rate:.3g}: {chance['warning']}")
        metrics.append(
            Metric.of(
                "copy_rate",
                name,
                mem.copy_rate,
                ci95=ci,
                details={**mem.to_json(), "chance": chance, "bootstrap": record},
                **counts,
            )
        )
    return metrics, notes


def _chance_copy_rate(reference: torch.Tensor, config: EvaluateConfig) -> dict[str, Any]:
    """The copy rate that faces of nobody in the reference would get: the match threshold's
    false-accept rate on pairs of different reference images (FAR), and 1 − (1 − FAR)^M over
    the M reference faces. A warning when the threshold does not separate people on these
    images (:func:`gan_eval.faces.threshold_warning`)."""
    impostor = unlabelled_impostors(reference, CALIBRATION_PAIRS,
                                    rng=numpy_rng(config.seed, "impostor-pairs"))
    far = float(np.mean(is_match(impostor, config.match_threshold)))
    m = int(reference.shape[0])
    rate = 1.0 - (1.0 - far) ** m
    warning = threshold_warning(config.match_threshold, far)
    if warning:
        warning += (f"; a face of nobody in the reference 'copies' one of its {m} faces with "
                    f"probability {rate:.3g} — read gan-eval recognition's leakage at its "
                    "calibrated threshold")
    return {"far_on_reference_pairs": far, "pairs": int(impostor.size), "rate": rate,
            "meaning": "copy rate expected of faces of people absent from the reference "
                       "(pairs of different images taken as different people)",
            "warning": warning}


def _open(data: str | ImageSource, config: EvaluateConfig, role: str) -> ImageSource:
    source = as_source(data, "GENERATED" if role == "generated" else "--reference",
                       resolution=config.resolution, n=config.n, seed=config.seed,
                       device=config.device)
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
    notes: list[str] = []
    extractor_info: dict[str, Any] = {}
    passes: dict[str, dict[str, int]] = {}
    for name in config.extractors:
        extractor = build_extractor(
            name,
            device=device,
            weights=(config.inception_weights if name == "inception"
                     else dict(config.weights).get(name)),
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
        found, found_notes = _metrics_for(feats["generated"], feats["reference"], extractor, config)
        metrics += found
        notes += found_notes
    return Results(
        provenance=provenance(
            command="evaluate",
            seed=config.seed,
            extractors=extractor_info,
            forward_passes=passes,
            data={"generated": gen_source.record(), "reference": ref_source.record()},
            notes=notes,
        ),
        metrics=metrics,
    )


make_callable(__name__)  # gan_eval.evaluate(...) calls evaluate() even once this module is
# imported (gan_eval.callable_module)
