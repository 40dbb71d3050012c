"""``recognition(generated, reference)``: the whole recognition audit of a set of generated faces.

Steps (every number lands in the ``recognition`` section of the returned :class:`Results`):

1. **Framing and embedding.** Both sets are framed (:mod:`~gan_eval.recognition.framing`) and
   embedded with dlib's face ResNet (:func:`gan_eval.features.dlib_face.embed_faces`), batch by
   batch, so only the N×128 embeddings stay in memory.
2. **Thresholds.** The *match* threshold (``threshold``, default 0.6: dlib's published
   same-person distance) and a *calibrated* threshold: the distance at which the false-accept
   rate on reference impostor pairs is ``far`` (default 1e-3). Impostor pairs are pairs with
   different identity labels; an unlabelled reference uses pairs of different images instead,
   assuming that most of them show different people (repeated people pull the threshold down,
   i.e. make it stricter). The match threshold's own false-accept rate on those pairs is reported
   and a warning is recorded when it exceeds ``FAR_WARNING`` (5%): at that point the threshold does
   not separate people for these images (tiny or gray inputs compress dlib's embedding space: on
   25×25 LFW crops, 0.6 accepts 17% of pairs of different people) and the calibrated results are
   the ones to read.
3. **Leakage** at both thresholds (:mod:`~gan_eval.recognition.leakage`), with the closest leaked
   pairs for the report's gallery and, for context, the same rate for the reference against
   itself (each real face's nearest *other* real face).
4. **Diversity** of the generated and of the reference set (:mod:`~gan_eval.recognition.diversity`).
5. **Faceness** of both sets (:mod:`~gan_eval.recognition.faceness`), or a skip note.
6. **Verification and utility** when the reference has identity labels
   (:mod:`~gan_eval.recognition.verification`, :mod:`~gan_eval.recognition.utility`), else a skip
   note.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gan_eval.data import ImageSource, open_source
from gan_eval.errors import InputError
from gan_eval.metrics.neighbors import DEFAULT_MEMORY_BUDGET
from gan_eval.recognition.diversity import DEFAULT_MAX_IMAGES, DEFAULT_TRIALS, LINKAGE, diversity
from gan_eval.recognition.faceness import detect_faces, load_detector, skipped
from gan_eval.recognition.framing import Framing, detection_note, frame
from gan_eval.recognition.leakage import (
    distance_quantiles,
    leakage_at,
    leaked_pairs,
    nearest_reference,
)
from gan_eval.recognition.stats import wilson_interval
from gan_eval.recognition.utility import (
    INTERPRETATION,
    distractor_identification,
    generated_impostors,
    generated_training_data,
)
from gan_eval.recognition.verification import (
    CALIBRATION_PAIRS,
    far_threshold,
    threshold_warning,
    unlabelled_impostors,
    verification,
)
from gan_eval.report.results import Metric, Results, provenance

if TYPE_CHECKING:
    from gan_eval.features.cache import FeatureCache

EXTRACTOR = "dlib-face"
DEFAULT_THRESHOLD = 0.6
"""dlib's published same-person distance for its face embeddings."""
DEFAULT_FAR = 1e-3


@dataclass(frozen=True)
class RecognitionConfig:
    """Options of :func:`recognition` (validated; bad values raise :class:`InputError`)."""

    threshold: float = DEFAULT_THRESHOLD
    """Match threshold: two faces are the same person when their distance is ≤ this."""
    far: float = DEFAULT_FAR
    """False-accept rate on reference impostor pairs at which the second threshold is set."""
    framing: Framing = field(default_factory=Framing)
    n: int | None = None
    """Use the first ``n`` generated images (a checkpoint samples ``n`` with ``seed``)."""
    seed: int = 0
    """Seed of every random choice (pairs, subsets, birthday trials, bootstrap)."""
    top_k: int = 16
    """Leaked pairs kept for the report's gallery."""
    max_cluster: int = DEFAULT_MAX_IMAGES
    """Largest set clustered in full for identity diversity (a seeded subset beyond)."""
    birthday_trials: int = DEFAULT_TRIALS
    faceness_max: int = 2000
    """Images per set examined by the face detector (a seeded subset beyond)."""
    detector: str | None = None
    """Face detector name (``dlib-hog`` / ``skimage-lbp``); None: the first that loads."""
    device: str | None = None
    batch_size: int = 64
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    """Working memory of the nearest-neighbour search, bytes."""

    def __post_init__(self) -> None:
        def positive_int(value: object, option: str, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InputError(f"{option}: expected an integer ≥ {minimum}, got {value!r}")

        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold)
                and self.threshold > 0):
            raise InputError(
                f"--threshold: expected a positive distance (dlib's default is 0.6), got "
                f"{self.threshold!r}"
            )
        if not (isinstance(self.far, int | float) and 0 < self.far < 1):
            raise InputError(f"--far: expected a false-accept rate in (0, 1), got {self.far!r}")
        if self.n is not None:
            positive_int(self.n, "--n")
        positive_int(self.top_k, "--top-k", 0)
        positive_int(self.max_cluster, "max_cluster", 2)
        positive_int(self.birthday_trials, "birthday_trials")
        positive_int(self.faceness_max, "faceness_max", 0)
        positive_int(self.batch_size, "--batch-size")


@dataclass
class _Embedded:
    """Embeddings of one source and what it took to get them."""

    source: ImageSource
    name: str
    count: int  # images considered
    embeddings: torch.Tensor  # float32 K×128 on the device
    ids: np.ndarray  # int64 K: source image index of each embedding row

    @property
    def dropped(self) -> int:
        return self.count - int(self.ids.size)


def _open(data: str | ImageSource, option: str, *, n: int | None, seed: int,
          device: torch.device) -> ImageSource:
    if isinstance(data, ImageSource):
        return data
    if not isinstance(data, str):
        raise InputError(f"{option}: expected a DATA string or an ImageSource, got "
                         f"{type(data).__name__}")
    return open_source(data, n=n, seed=seed, device=device)


def _embed(source: ImageSource, name: str, count: int, config: Framing, *, batch_size: int,
           device: torch.device, cache: FeatureCache | None) -> _Embedded:
    from gan_eval import __version__
    from gan_eval.data import RESIZE_FILTER
    from gan_eval.features.cache import cache_key
    from gan_eval.features.dlib_face import embed_faces

    key = cache_key(
        kind="recognition-embeddings",
        source=source.content_hash(),
        n=count,
        resolution=source.resolution,
        framing=json.dumps(config.describe(), sort_keys=True),
        resize=RESIZE_FILTER,
        weights=_weights_sha256(),
        version=__version__,
    )
    cached = cache.load(key) if cache is not None else None
    if cached is not None and {"embeddings", "ids"} <= cached.keys():
        return _Embedded(source, name, count, cached["embeddings"].to(device),
                         cached["ids"].numpy().astype(np.int64))
    parts: list[torch.Tensor] = []
    ids: list[np.ndarray] = []
    for start in range(0, count, batch_size):
        batch = source.read(range(start, min(count, start + batch_size)))
        chips, kept = frame(batch, config)
        if chips.shape[0]:
            parts.append(embed_faces(chips, batch_size=batch_size, device=device))
            ids.append(kept + start)
    embeddings = (torch.cat(parts) if parts
                  else torch.zeros(0, 128, dtype=torch.float32, device=device))
    index = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    if cache is not None:
        cache.store(key, {"embeddings": embeddings.float().cpu(),
                          "ids": torch.from_numpy(index.astype(np.int64))},
                    {"source": source.data, "extractor": EXTRACTOR, "framing": config.mode})
    return _Embedded(source, name, count, embeddings.float(), index.astype(np.int64))


def _resolve_device(device: str | None) -> torch.device:
    from gan_eval.features.extractors import resolve_device

    return resolve_device(device)


def _faceness(gen: _Embedded, ref: _Embedded, config: RecognitionConfig
              ) -> tuple[dict[str, Any], Metric | None]:
    if config.faceness_max == 0:
        return {"skipped": True, "reason": "faceness_max = 0"}, None
    detector, reasons = load_detector(config.detector)
    if detector is None:
        return skipped(reasons), None
    rng = np.random.default_rng([config.seed, 3])
    section: dict[str, Any] = {
        "detector": detector.name,
        "description": detector.description,
        "detection": detection_note(),
    }
    if reasons:
        section["not_used"] = reasons
    results = {}
    for key, emb in (("generated", gen), ("reference", ref)):
        rows = np.arange(emb.count)
        sample = None
        if emb.count > config.faceness_max:
            rows = np.sort(rng.choice(emb.count, size=config.faceness_max, replace=False))
            sample = f"seeded random subset of {config.faceness_max} of {emb.count}"
        batches = (emb.source.read(rows[s : s + config.batch_size].tolist())
                   for s in range(0, rows.size, config.batch_size))
        found = detect_faces(batches, detector)
        results[key] = found
        section[key] = {
            "rate": found.rate if found.n else None,
            "ci95": wilson_interval(int(found.found.sum()), found.n),
            "with_face": int(found.found.sum()),
            "n": found.n,
            "subset": sample,
            "upsample_factors": found.factors,
            "without_face": rows[~found.found][:20].tolist(),
        }
    g, r = results["generated"], results["reference"]
    metric = Metric.of(
        "faceness", detector.name, g.rate,
        ci95=wilson_interval(int(g.found.sum()), g.n), n_generated=g.n, n_reference=r.n,
        details={"reference_rate": r.rate, "upsample_factors": g.factors,
                 "detection": detection_note()},
    )
    return section, metric


def _thresholds(
    reference: torch.Tensor, config: RecognitionConfig, impostor: np.ndarray | None
) -> tuple[dict[str, float], dict[str, Any], np.ndarray]:
    """{"match": t, "calibrated": τ?}, the JSON description of both, the impostor distances."""
    if impostor is None:
        count = max(CALIBRATION_PAIRS, math.ceil(10 / config.far))
        impostor = unlabelled_impostors(reference, count, config.seed)
        pairs_desc = (
            "pairs of different images of the unlabelled reference, taken as impostors (assumes "
            "most show different people; repeated people make the threshold stricter)"
        )
    else:
        pairs_desc = "impostor pairs of the labelled reference (different identity labels)"
    match_far = float(np.mean(impostor <= config.threshold)) if impostor.size else None
    described: dict[str, Any] = {
        "match": {
            "value": config.threshold,
            "meaning": "same person when distance ≤ value (dlib's published threshold is 0.6)",
            "far_on_reference": match_far,
        },
    }
    values = {"match": float(config.threshold)}
    tau = far_threshold(impostor, config.far)
    calibrated: dict[str, Any] = {
        "far": config.far, "calibrated_on": pairs_desc, "pairs": int(impostor.size),
    }
    if tau is None:
        calibrated.update(
            value=None, skipped=True,
            reason=f"{impostor.size} pairs; at least {math.ceil(1 / config.far)} are needed to "
            f"calibrate at FAR {config.far:g}",
        )
    else:
        calibrated["value"] = tau
        values["calibrated"] = tau
    described["calibrated"] = calibrated
    warning = threshold_warning(config.threshold, match_far) if match_far is not None else None
    if warning:
        described["warning"] = f"{warning}; read the results at the calibrated threshold"
    return values, described, impostor


def recognition(
    generated: str | ImageSource,
    reference: str | ImageSource,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    far: float = DEFAULT_FAR,
    margin: float = 0.0,
    align: bool = False,
    n: int | None = None,
    seed: int = 0,
    top_k: int = 16,
    max_cluster: int = DEFAULT_MAX_IMAGES,
    birthday_trials: int = DEFAULT_TRIALS,
    faceness_max: int = 2000,
    detector: str | None = None,
    device: str | None = None,
    batch_size: int = 64,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    cache: FeatureCache | None = None,
) -> Results:
    """Recognition audit of ``generated`` faces against ``reference`` (training) faces.

    ``generated`` / ``reference``: DATA strings (see :func:`gan_eval.open_source`) or sources.
    Returns :class:`Results` whose ``recognition`` section holds framing, thresholds, leakage
    (with the closest leaked pairs), diversity of both sets, faceness, and verification / utility
    (or a skip note for an unlabelled reference), and whose metrics are ``leakage_rate`` and
    ``identity_diversity`` (extractor ``dlib-face``) and ``faceness`` (extractor = detector).
    ``cache`` stores the embeddings of each set (keyed by content hash, count, resolution,
    framing, resize filter, weights sha256 and gan-eval version); None (default) computes them.
    Raises :class:`InputError` for an empty generated set or a reference of fewer than 2 images,
    :class:`MissingAssetError` when ``align`` needs dlib-bin or a weights file is missing.
    """
    config = RecognitionConfig(
        threshold=threshold, far=far, framing=Framing(align=align, margin=margin), n=n, seed=seed,
        top_k=top_k, max_cluster=max_cluster, birthday_trials=birthday_trials,
        faceness_max=faceness_max, detector=detector, device=device, batch_size=batch_size,
        memory_budget=memory_budget,
    )
    return run_recognition(generated, reference, config, cache=cache)


def run_recognition(
    generated: str | ImageSource,
    reference: str | ImageSource,
    config: RecognitionConfig,
    *,
    cache: FeatureCache | None = None,
) -> Results:
    """:func:`recognition` with its options as one :class:`RecognitionConfig`."""
    device = _resolve_device(config.device)
    gen_src = _open(generated, "GENERATED", n=config.n, seed=config.seed, device=device)
    ref_src = _open(reference, "--reference", n=None, seed=config.seed, device=device)
    gen_count = len(gen_src) if config.n is None else min(config.n, len(gen_src))
    if gen_count == 0:
        raise InputError(f"GENERATED {gen_src.data}: the generated set holds no images")
    if len(ref_src) < 2:
        raise InputError(
            f"--reference {ref_src.data}: {len(ref_src)} image(s); at least 2 reference images "
            "are needed"
        )
    framing = config.framing
    gen = _embed(gen_src, "generated", gen_count, framing, batch_size=config.batch_size,
                 device=device, cache=cache)
    ref = _embed(ref_src, "reference", len(ref_src), framing, batch_size=config.batch_size,
                 device=device, cache=cache)
    if gen.ids.size == 0:
        raise InputError(
            f"GENERATED {gen_src.data}: no face found in any of the {gen.count} images (--align)"
        )
    if ref.ids.size < 2:
        raise InputError(
            f"--reference {ref_src.data}: a face was found in {ref.ids.size} of {ref.count} "
            "images (--align); at least 2 are needed"
        )

    labels = None
    if ref_src.labels is not None and ref_src.identities is not None:
        labels = np.asarray(ref_src.labels)[ref.ids]
    section: dict[str, Any] = {
        "extractor": EXTRACTOR,
        "framing": {**framing.describe(),
                    "dropped": {"generated": gen.dropped, "reference": ref.dropped}},
        "counts": {"generated": gen.count, "generated_embedded": int(gen.ids.size),
                   "reference": ref.count, "reference_embedded": int(ref.ids.size)},
    }
    section.update(analyse_embeddings(gen.embeddings, ref.embeddings, labels=labels, config=config,
                           generated_ids=gen.ids, reference_ids=ref.ids))
    faceness_section, faceness_metric = _faceness(gen, ref, config)
    section["faceness"] = faceness_section
    metrics = recognition_metrics(section)
    if faceness_metric is not None:
        metrics.append(faceness_metric)
    prov = provenance(
        command="recognition",
        seed=config.seed,
        device=str(device),
        data={
            "generated": {"data": gen_src.data, "content_hash": gen_src.content_hash(),
                          "n": gen.count},
            "reference": {"data": ref_src.data, "content_hash": ref_src.content_hash(),
                          "n": ref.count},
        },
        weights={EXTRACTOR: _weights_sha256()},
        framing=framing.mode,
    )
    return Results(provenance=prov, metrics=metrics, recognition=section)


def analyse_embeddings(
    generated: torch.Tensor,
    reference: torch.Tensor,
    *,
    labels: np.ndarray | None = None,
    config: RecognitionConfig | None = None,
    generated_ids: np.ndarray | None = None,
    reference_ids: np.ndarray | None = None,
) -> dict[str, Any]:
    """Thresholds, leakage, diversity, verification and utility from embeddings.

    ``generated`` (N×D) and ``reference`` (M×D, M ≥ 2) are face embeddings on one device;
    ``labels`` (M identity labels) enable verification and utility. ``generated_ids`` /
    ``reference_ids`` are the source image index of each row (default: the row number), used in
    the leaked pairs. Returns those parts of the ``recognition`` section (framing, counts and
    faceness come from :func:`run_recognition`); :func:`recognition_metrics` turns it into
    metrics.
    """
    config = config or RecognitionConfig()
    if generated.ndim != 2 or generated.shape[0] == 0:
        raise InputError(f"generated embeddings: expected N×D with N ≥ 1, got "
                         f"{tuple(generated.shape)}")
    if reference.ndim != 2 or reference.shape[0] < 2:
        raise InputError(f"reference embeddings: expected M×D with M ≥ 2, got "
                         f"{tuple(reference.shape)}")
    gen_ids = (generated_ids if generated_ids is not None
               else np.arange(generated.shape[0], dtype=np.int64))
    ref_ids = (reference_ids if reference_ids is not None
               else np.arange(reference.shape[0], dtype=np.int64))
    section: dict[str, Any] = {"labelled_reference": labels is not None}

    scores = None
    ver_section: dict[str, Any] = {}
    if labels is not None:
        ver_section, scores = verification(reference, labels, seed=config.seed)
    usable = scores is not None and not ver_section.get("skipped")
    impostor = scores.impostor if scores is not None and scores.impostor.size else None
    thresholds, thresholds_desc, impostor = _thresholds(reference, config, impostor)
    section["thresholds"] = thresholds_desc
    m = int(reference.shape[0])

    # Leakage: nearest training face of every generated face.
    nn = nearest_reference(generated, reference, memory_budget=config.memory_budget)
    self_nn = nearest_reference(reference, reference, exclude_self=True,
                                memory_budget=config.memory_budget)
    widest = max(thresholds.values())
    pairs = leaked_pairs(nn, widest, top_k=config.top_k, query_ids=gen_ids,
                         reference_ids=ref_ids)
    for pair in pairs:
        pair["leaked_at"] = [k for k, t in thresholds.items() if pair["distance"] <= t]
    at = {}
    for k, t in thresholds.items():
        far_pair = float(np.mean(impostor <= t)) if impostor.size else None
        at[k] = {
            **leakage_at(nn, t),
            "far_per_pair": far_pair,
            # A face of a new person has M chances to fall within t of some reference face.
            "chance_rate": 1.0 - (1.0 - far_pair) ** m if far_pair is not None else None,
        }
    section["leakage"] = {
        "at": at,
        "chance_rate_meaning": "expected leakage rate of faces of people absent from the "
        "reference: 1 − (1 − FAR per pair)^M over the M reference faces (impostor pairs taken "
        "as independent); leakage well above it is evidence of copied identities",
        "top_pairs": pairs,
        "top_k": config.top_k,
        "pairs_meaning": "generated index, nearest reference index (source image indices), "
        "distance; the closest first",
        "nearest_distance_quantiles": distance_quantiles(nn.distances),
        "reference_self_match": {
            "meaning": "fraction of reference images whose nearest *other* reference image is "
            "within the threshold (the background rate among real faces)",
            **{k: leakage_at(self_nn, t)["rate"] for k, t in thresholds.items()},
            "nearest_distance_quantiles": distance_quantiles(self_nn.distances),
        },
    }

    # Diversity of both sets.
    div_args = {"max_images": config.max_cluster, "trials": config.birthday_trials,
                "seed": config.seed}
    section["diversity"] = {
        "method": f"{LINKAGE}-linkage clusters cut at the threshold; "
        "birthday-paradox support ≈ s² (Arora & Zhang 2017)",
        "generated": diversity(generated, thresholds, **div_args),
        "reference": diversity(reference, thresholds, **div_args),
    }
    if labels is not None:
        section["diversity"]["reference_labelled_identities"] = int(np.unique(labels).size)

    if labels is None:
        section["verification"] = {
            "skipped": True,
            "reason": "the reference has no identity labels (put each identity's images in its "
            "own subfolder); leakage and diversity are still computed",
        }
        section["utility"] = {"skipped": True, "reason": "needs identity labels (see verification)"}
    else:
        section["verification"] = ver_section
        if usable and scores is not None:
            section["utility"] = {
                "generated_as_impostors": generated_impostors(
                    reference, generated, scores, seed=config.seed
                ),
                "generated_as_distractors": distractor_identification(
                    reference, labels, generated, seed=config.seed
                ),
                "generated_as_training_data": generated_training_data(
                    reference, labels, generated, threshold=_label_threshold(thresholds,
                                                                             thresholds_desc),
                    seed=config.seed,
                ),
                "interpretation": INTERPRETATION,
            }
        else:
            section["utility"] = {"skipped": True, "reason": ver_section.get("reason")}
    return section


def _label_threshold(values: dict[str, float], described: dict[str, Any]) -> float:
    """The threshold that pseudo-labels generated faces: the match threshold, unless it does not
    separate people on these images (the FAR warning) and a calibrated one exists."""
    if described.get("warning") and "calibrated" in values:
        return values["calibrated"]
    return values["match"]


def _weights_sha256() -> str:
    from gan_eval.features.dlib_face import dlib_weights_sha256

    return dlib_weights_sha256()


def recognition_metrics(section: dict[str, Any]) -> list[Metric]:
    """``leakage_rate`` and ``identity_diversity`` (dlib-face) from a recognition section."""
    thresholds = {k: v["threshold"] for k, v in section["leakage"]["at"].items()}
    n_gen = section["leakage"]["at"]["match"]["n"]
    n_ref = section["diversity"]["reference"]["n_total"]
    leak = section["leakage"]["at"]
    details: dict[str, Any] = {"threshold": thresholds["match"],
                               "chance_rate": leak["match"]["chance_rate"]}
    if "calibrated" in thresholds:
        cal = leak["calibrated"]
        details["calibrated"] = {"threshold": cal["threshold"], "value": cal["rate"],
                                 "ci95": cal["ci95"], "chance_rate": cal["chance_rate"]}
    warning = section["thresholds"].get("warning")
    if warning:
        details["warning"] = warning
    details["interval"] = "95% Wilson score interval over the generated images"
    metrics = [Metric.of("leakage_rate", EXTRACTOR, leak["match"]["rate"],
                         ci95=leak["match"]["ci95"], n_generated=n_gen, n_reference=n_ref,
                         details=details)]
    gen_div = section["diversity"]["generated"]
    ref_div = section["diversity"]["reference"]
    div_details: dict[str, Any] = {
        "threshold": thresholds["match"],
        "linkage": gen_div["linkage"],
        "n_clustered": gen_div["n"],
        "reference": ref_div["at"]["match"]["identities"],
        "n_reference_clustered": ref_div["n"],
        "birthday_support": gen_div["at"]["match"]["birthday"]["support"],
        "interval": "none: a count of clusters has no bootstrap interval (resampling with "
        "replacement duplicates faces and biases the count down)",
    }
    if "calibrated" in thresholds:
        div_details["calibrated"] = {
            "threshold": thresholds["calibrated"],
            "value": gen_div["at"]["calibrated"]["identities"],
            "reference": ref_div["at"]["calibrated"]["identities"],
        }
    if warning:
        div_details["warning"] = warning
    metrics.append(Metric.of("identity_diversity", EXTRACTOR,
                             gen_div["at"]["match"]["identities"], ci95=None,
                             n_generated=gen_div["n"], n_reference=ref_div["n"],
                             details=div_details))
    return metrics


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not math.isfinite(value):
        return "—"
    return format(value, spec)


def _ci(ci: Any) -> str:
    return f"[{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""


def format_table(results: Results) -> str:
    """A readable summary of a recognition :class:`Results` for the terminal."""
    rec = results.recognition
    th = rec["thresholds"]
    names = ["match"] + (["calibrated"] if th["calibrated"].get("value") is not None else [])
    head = {"match": f"match {th['match']['value']:g}"}
    if "calibrated" in names:
        head["calibrated"] = f"FAR {th['calibrated']['far']:g} ({th['calibrated']['value']:.3f})"
    width = 26
    lines = []
    framing = rec["framing"]
    how = (f"crop, margin {framing['margin']:g}" if framing["mode"] == "crop"
           else "dlib align (HOG + 5 landmarks, chip padding 0.25)")
    counts = rec["counts"]
    lines.append(f"framing        {how}")
    lines.append(f"images         generated {counts['generated_embedded']}/{counts['generated']}, "
                 f"reference {counts['reference_embedded']}/{counts['reference']}")
    lines.append(f"threshold      match {th['match']['value']:g} accepts "
                 f"{_fmt(th['match']['far_on_reference'], '.2%')} of reference impostor pairs")
    cal = th["calibrated"]
    if cal.get("value") is not None:
        lines.append(f"               calibrated {cal['value']:.3f} at FAR {cal['far']:g} "
                     f"({cal['pairs']} pairs)")
    else:
        lines.append(f"               calibrated: skipped ({cal.get('reason')})")
    lines.append("")
    lines.append(f"{'':<{width}}" + "".join(f"{head[k]:>26}" for k in names))

    def row(label: str, values: list[str]) -> None:
        lines.append(f"{label:<{width}}" + "".join(f"{v:>26}" for v in values))

    leak = rec["leakage"]["at"]
    row("leakage rate", [f"{_fmt(leak[k]['rate'])} {_ci(leak[k]['ci95'])}" for k in names])
    row("  expected by chance", [_fmt(leak[k].get("chance_rate")) for k in names])
    self_match = rec["leakage"]["reference_self_match"]
    row("  reference vs itself", [_fmt(self_match[k]) for k in names])
    div = rec["diversity"]
    for key in ("generated", "reference"):
        at = div[key]["at"]
        row(f"identities ({key}, n={div[key]['n']})",
            [f"{at[k]['identities']}" for k in names])
    for key in ("generated", "reference"):
        at = div[key]["at"]
        values = []
        for k in names:
            b = at[k]["birthday"]
            values.append(f"s={b['batch_size']} → {b['support']}" if b["support"] is not None
                          else f"> {b['support_lower_bound']}")
        row(f"birthday support ({key})", values)
    lines.append("")
    face = rec["faceness"]
    if face.get("skipped"):
        lines.append(f"faceness       skipped: {face['reason']}")
    else:
        g, r = face["generated"], face["reference"]
        lines.append(f"faceness       {face['detector']}: generated {_fmt(g['rate'])} "
                     f"{_ci(g['ci95'])} (n={g['n']}), reference {_fmt(r['rate'])} (n={r['n']}); "
                     f"upsampled ×{','.join(str(f) for f in g['upsample_factors'])}")
    ver = rec["verification"]
    if ver.get("skipped"):
        lines.append(f"verification   skipped: {ver['reason']}")
    else:
        tar = ver["tar_at_far"]
        acc = ver["accuracy_10fold"]
        lines.append(
            f"verification   {ver['identities']} identities, {ver['pairs']['genuine']} genuine / "
            f"{ver['pairs']['impostor']} impostor pairs: AUC {_fmt(ver['auc'], '.4f')}, "
            f"EER {_fmt(ver['eer'], '.4f')}, "
            + ", ".join(f"TAR@FAR={k} {_fmt(v['tar'])}" for k, v in tar.items())
        )
        if not acc.get("skipped"):
            lines.append(f"               {acc['folds']}-fold accuracy {_fmt(acc['mean'], '.4f')}"
                         f" ± {_fmt(acc['std'], '.4f')}")
        util = rec["utility"]
        if not util.get("skipped"):
            imp = util["generated_as_impostors"]
            label = "utility"
            for k, v in imp["acceptance_at_real_far"].items():
                if not v.get("skipped"):
                    lines.append(f"{label:<15}at real FAR {k}: generated accepted as a real "
                                 f"person {_fmt(v['generated_far'], '.4f')} "
                                 f"(×{_fmt(v['ratio'], '.2f')} the real rate)")
                    label = ""
            dis = util["generated_as_distractors"]
            if not dis.get("skipped"):
                lines.append(
                    f"               rank-1 {_fmt(dis['rank1'])} → "
                    f"{_fmt(dis['rank1_with_distractors'])} with {dis['distractors']} generated "
                    f"distractors (Δ {dis['delta']:+.3f} {_ci(dis['delta_ci95'])})"
                )
            tra = util.get("generated_as_training_data", {})
            if tra.get("skipped"):
                lines.append(f"               as training data: skipped ({tra['reason']})")
            elif tra:
                lines.append(
                    f"               classifier accuracy {_fmt(tra['accuracy_real_only'])} → "
                    f"{_fmt(tra['accuracy_with_generated'])} with {tra['generated_added']} "
                    f"pseudo-labelled generated faces (Δ {tra['delta']:+.3f} "
                    f"{_ci(tra['delta_ci95'])})"
                )
    if th.get("warning"):
        lines.append("")
        lines.append(f"warning        {th['warning']}")
    pairs = rec["leakage"]["top_pairs"]
    if pairs:
        lines.append("")
        lines.append("closest leaked pairs (generated → reference, distance):")
        for p in pairs[:5]:
            lines.append(f"  {p['generated']:>6} → {p['reference']:<6} {p['distance']:.3f}")
    return "\n".join(lines)
