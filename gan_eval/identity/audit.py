"""``recognition(generated, reference)``: the whole recognition audit of a set of generated faces.

Steps (every number lands in the ``recognition`` section of the returned :class:`Results`):

1. **Framing and embedding.** Both sets are framed (:mod:`~gan_eval.features.framing`) and
   embedded with the face network ``face_extractor`` (default dlib's face ResNet,
   :mod:`gan_eval.features.dlib_face`; or FaceNet, ``facenet-vggface2``), batch by batch, so only
   the N×D embeddings stay in memory.
2. **Thresholds.** The *match* threshold (``threshold``; default the network's published
   same-person distance, dlib's 0.6, or — for a network whose authors publish none, FaceNet —
   the calibrated one) and a *calibrated* threshold: the distance at which the false-accept
   rate on reference impostor pairs is ``far`` (default 1e-3). Impostor pairs are pairs with
   different identity labels; an unlabelled reference uses pairs of different images instead,
   assuming that most of them show different people (repeated people pull the threshold down,
   i.e. make it stricter). The match threshold's own false-accept rate on those pairs is reported
   and a warning is recorded when it exceeds ``FAR_WARNING`` (5%): at that point the threshold does
   not separate people for these images (tiny or gray inputs compress dlib's embedding space: on
   25×25 LFW crops, 0.6 accepts 17% of pairs of different people) and the calibrated results are
   the ones to read.
3. **Leakage** at both thresholds (:mod:`~gan_eval.identity.leakage`), with the closest leaked
   pairs for the report's gallery and, for context, the same rate for the reference against
   itself (each real face's nearest *other* real face).
4. **Diversity** of the generated and of the reference set
   (:mod:`~gan_eval.identity.distinct_identities`).
5. **Faceness** of both sets (:mod:`~gan_eval.identity.faceness`), or a skip note.
6. **Verification and utility** when the reference has identity labels
   (:mod:`~gan_eval.identity.verification_roc`, :mod:`~gan_eval.identity.utility`), else a skip
   note.
7. **Identity-level statistics** (:mod:`~gan_eval.identity.statistics`): the Vendi score of both
   sets (effective number of distinct identities, no threshold), the membership test of training
   identities against held-out identities (``heldout``: real faces of people not in the training
   set; skipped with a reason without them) and authenticity (Alaa et al. 2022), beside held-out
   real faces when given. Held-out faces go through the reference's resizing and are checked
   before any comparison: training images among them are refused ("cannot judge membership"),
   people named in both sets and held-out images that hardly look like faces are warned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_eval import distributed
from gan_eval.catalogue import EXTRACTORS as EXTRACTOR_SPECS
from gan_eval.data import ImageSource
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.estimates import wilson_interval
from gan_eval.faces import CALIBRATION_FAR, is_match, threshold_warning
from gan_eval.features.base import FeatureExtractor
from gan_eval.features.cache import FeatureCache, default_cache_dir
from gan_eval.features.extraction import Features, extract
from gan_eval.features.framing import Framing, detection_note
from gan_eval.features.nearest import shared_nearest_reference
from gan_eval.features.registry import build_extractor
from gan_eval.generators import is_generator
from gan_eval.identity.distinct_identities import (
    DEFAULT_MAX_IMAGES,
    DEFAULT_TRIALS,
    LINKAGE,
    diversity,
)
from gan_eval.identity.faceness import detect_faces, load_detector, skipped
from gan_eval.identity.leakage import (
    NearestReference,
    distance_quantiles,
    leakage_at,
    leaked_pairs,
    nearest_reference,
)
from gan_eval.identity.statistics import (
    DEFAULT_PERMUTATIONS,
    DEFAULT_VENDI_BANDWIDTH,
    HeldOut,
    identity_metrics,
    identity_section,
)
from gan_eval.identity.utility import (
    INTERPRETATION,
    distractor_identification,
    generated_impostors,
    generated_training_data,
)
from gan_eval.identity.verification_roc import verification
from gan_eval.metrics.intervals import rate_interval
from gan_eval.metrics.neighbors import DEFAULT_MEMORY_BUDGET, nearest
from gan_eval.metrics.pairs import CALIBRATION_PAIRS, far_threshold, unlabelled_impostors
from gan_eval.preflight import check_face_extractor
from gan_eval.results import Metric, Results, provenance
from gan_eval.seeding import numpy_rng
from gan_eval.sources import as_source

DEFAULT_FAR = CALIBRATION_FAR


@dataclass(frozen=True, kw_only=True)
class RecognitionConfig:
    """Options of :func:`recognition` (validated; bad values raise :class:`InputError`)."""

    face_extractor: str = "dlib-face"
    """The face network whose embeddings every identity number is computed on (a registered
    extractor with ``face=True``: ``dlib-face``, ``facenet-vggface2``)."""
    weights: Path | None = None
    """Its weights file (None: where it is found by default, see :mod:`gan_eval.weights`)."""
    threshold: float | None = None
    """Match threshold: two faces are the same person when their distance is ≤ this. None: the
    face network's published one (dlib's 0.6), or for a network without one (FaceNet) the
    threshold calibrated at ``far`` on the reference."""
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
    """Largest set clustered in full for identity diversity, and scored in full by the Vendi
    score (a seeded subset beyond: both are O(n²) memory, the Vendi eigenvalues O(n³) time)."""
    birthday_trials: int = DEFAULT_TRIALS
    faceness_max: int = 2000
    """Images per set examined by the face detector (a seeded subset beyond)."""
    detector: str | None = None
    """Face detector name (``dlib-hog`` / ``skimage-lbp``); None: the first that loads."""
    device: str | None = None
    batch_size: int = 64
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    """Working memory of the nearest-neighbour search, bytes."""
    use_cache: bool = True
    """Read and write embeddings in the feature cache (shared with ``evaluate``'s dlib-face)."""
    cache_dir: Path | None = None
    """None: :func:`gan_eval.features.cache.default_cache_dir`."""
    progress: bool = False
    heldout: str | ImageSource | None = None
    """Real faces of people NOT in the training (reference) set, from the same population (DATA
    string or source; identities from labels, else one per image): enables the membership test
    of training identities and gives authenticity its base rate. None: both say so."""
    vendi_bandwidth: float | None = None
    """RBF length scale of the Vendi score, embedding units; None: half the match threshold
    (dlib: 0.3)."""
    permutations: int = DEFAULT_PERMUTATIONS
    """Random relabelings behind the membership test's p-value."""

    def __post_init__(self) -> None:
        def positive_int(value: object, option: str, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InputError(f"{option}: expected an integer ≥ {minimum}, got {value!r}")

        check_face_extractor(self.face_extractor)
        if self.threshold is not None and not (
                isinstance(self.threshold, int | float) and math.isfinite(self.threshold)
                and self.threshold > 0):
            raise InputError(
                f"--threshold {self.threshold!r}: expected a positive distance (dlib's is 0.6)"
            )
        if not (isinstance(self.far, int | float) and 0 < self.far < 1):
            raise InputError(f"--far: expected a false-accept rate in (0, 1), got {self.far!r}")
        if self.n is not None:
            positive_int(self.n, "--count")
        positive_int(self.top_k, "--top-k", 0)
        positive_int(self.max_cluster, "max_cluster", 2)
        positive_int(self.birthday_trials, "birthday_trials")
        positive_int(self.faceness_max, "faceness_max", 0)
        positive_int(self.batch_size, "--batch-size")
        positive_int(self.permutations, "permutations")
        if self.vendi_bandwidth is not None and not (
                isinstance(self.vendi_bandwidth, int | float)
                and not isinstance(self.vendi_bandwidth, bool)
                and math.isfinite(self.vendi_bandwidth) and self.vendi_bandwidth > 0):
            raise InputError(f"vendi_bandwidth: expected a positive distance (default "
                             f"{DEFAULT_VENDI_BANDWIDTH}), got {self.vendi_bandwidth!r}")
        if self.heldout is not None and not isinstance(self.heldout, str | ImageSource):
            raise InputError(f"--heldout: expected a DATA string or an ImageSource, got "
                             f"{type(self.heldout).__name__}")


@dataclass
class _Embedded:
    """Embeddings of one source and what it took to get them."""

    source: ImageSource
    name: str
    count: int  # images considered
    features: Features  # every image's dlib-face features (zero rows where no face was found)
    ids: np.ndarray  # int64 K: source image index of each row of ``embeddings``

    @property
    def embeddings(self) -> torch.Tensor:
        """float32 K×128: the rows of the images with a face (all of them when cropping)."""
        main = self.features.main
        return main if self.ids.size == main.shape[0] else main[torch.from_numpy(self.ids)]

    @property
    def dropped(self) -> int:
        return self.count - int(self.ids.size)


def _embed(source: ImageSource, name: str, extractor: FeatureExtractor,
           config: RecognitionConfig, cache: FeatureCache | None) -> _Embedded:
    features = extract(source, extractor, batch_size=config.batch_size, cache=cache,
                       progress=config.progress)
    found = features.tensors.get("found")
    ids = (np.arange(len(features), dtype=np.int64) if found is None
           else np.flatnonzero(found[:, 0].numpy() > 0).astype(np.int64))
    return _Embedded(source, name, len(source), features, ids)


def _faceness(gen: _Embedded, ref: _Embedded, config: RecognitionConfig,
              held: _Embedded | None = None) -> tuple[dict[str, Any], Metric | None]:
    if config.faceness_max == 0:
        return {"skipped": True, "reason": "faceness_max = 0"}, None
    detector, reasons = load_detector(config.detector)
    if detector is None:
        return skipped(reasons), None
    rng = numpy_rng(config.seed, "faceness-subset")
    section: dict[str, Any] = {
        "detector": detector.name,
        "description": detector.description,
        "chosen_because": ("named by the detector option" if config.detector is not None
                           else detector.chosen_because),
        "detection": detection_note(),
    }
    if reasons:
        section["not_used"] = reasons
    results = {}
    sets = [("generated", gen), ("reference", ref)] + ([("heldout", held)] if held else [])
    for key, emb in sets:
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
    if "heldout" in results:
        warning = heldout_faceness_warning(results["heldout"], r)
        if warning:
            section["heldout_warning"] = warning
    rate = rate_interval(int(g.found.sum()), g.n)
    metric = Metric.of(
        "faceness", detector.name, rate, n_generated=g.n, n_reference=r.n,
        details={"reference_rate": r.rate, "upsample_factors": g.factors,
                 "detection": detection_note()},
    )
    return section, metric


HELDOUT_FACENESS_RATIO = 0.75
"""A held-out set is warned when its faceness is significantly (Wilson 95% upper bound) below
this fraction of the reference's: its images are not real faces like the training ones."""


def heldout_faceness_warning(heldout: Any, reference: Any) -> str | None:
    """The warning for held-out images in which a face detector finds faces far less often
    than in the reference (:data:`HELDOUT_FACENESS_RATIO`), or None. ``heldout`` and
    ``reference``: :class:`~gan_eval.identity.faceness.Faceness` results of one detector."""
    if heldout.n == 0 or reference.n == 0:
        return None
    found = int(heldout.found.sum())
    bounds = wilson_interval(found, heldout.n)
    assert bounds is not None
    if bounds[1] >= HELDOUT_FACENESS_RATIO * reference.rate:
        return None
    return (f"--heldout: a face was detected in {found} of {heldout.n} held-out images "
            f"({heldout.rate:.0%}) against {reference.rate:.0%} of the reference images "
            f"({heldout.detector}): these do not look like real faces of the training "
            "population, so the membership test and authenticity's base rate compare with "
            "something else than held-out people")


def _thresholds(
    reference: torch.Tensor, config: RecognitionConfig, impostor: np.ndarray | None
) -> tuple[dict[str, float], dict[str, Any], np.ndarray]:
    """{"match": t, "calibrated": τ?}, the JSON description of both, the impostor distances."""
    if impostor is None:
        count = max(CALIBRATION_PAIRS, math.ceil(10 / config.far))
        impostor = unlabelled_impostors(reference, count,
                                        rng=numpy_rng(config.seed, "impostor-pairs"))
        pairs_desc = (
            "pairs of different images of the unlabelled reference, taken as impostors (assumes "
            "most show different people; repeated people make the threshold stricter)"
        )
    else:
        pairs_desc = "impostor pairs of the labelled reference (different identity labels)"
    tau = far_threshold(impostor, config.far)
    name = config.face_extractor
    published = EXTRACTOR_SPECS[name].match_threshold
    threshold = config.threshold if config.threshold is not None else published
    if threshold is not None:
        source = ("given by --threshold" if config.threshold is not None
                  else f"{name}'s published same-person distance")
    elif tau is not None:
        threshold = tau
        source = (f"{name} has no published same-person distance: the threshold calibrated at "
                  f"FAR {config.far:g} on the reference's impostor pairs")
    else:
        raise InputError(
            f"--face-extractor {name}: it has no published same-person distance and "
            f"{impostor.size} reference impostor pairs cannot calibrate one at FAR "
            f"{config.far:g}: cannot judge; give --threshold or a larger --reference")
    match_far = float(np.mean(is_match(impostor, threshold))) if impostor.size else None
    described: dict[str, Any] = {
        "match": {
            "value": threshold,
            "source": source,
            "meaning": f"same person when the {name} distance ≤ value",
            "far_on_reference": match_far,
        },
    }
    values = {"match": float(threshold)}
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
    warning = threshold_warning(threshold, match_far) if match_far is not None else None
    if warning:
        described["warning"] = f"{warning}; read the results at the calibrated threshold"
    return values, described, impostor


def recognition(
    generated: str | ImageSource,
    reference: str | ImageSource,
    config: RecognitionConfig | None = None,
) -> Results:
    """Recognition audit of ``generated`` faces against ``reference`` (training) faces.

    ``generated`` / ``reference``: DATA strings (see :func:`gan_eval.open_source`) or sources.
    Returns :class:`Results` whose ``recognition`` section holds framing, thresholds, leakage
    (with the closest leaked pairs), diversity of both sets, faceness, and verification / utility
    (or a skip note for an unlabelled reference), identity-level statistics (``identity``:
    Vendi scores, the membership test — skipped with a reason unless ``config.heldout`` names
    held-out faces — and authenticity), and whose metrics are ``leakage_rate``,
    ``identity_diversity``, ``vendi_identities`` and ``authenticity`` (extractor: the face network
    ``config.face_extractor``) and ``faceness`` (extractor = detector).
    Embeddings go through the feature cache (:func:`gan_eval.features.extraction.extract`, the
    same entries as ``evaluate``'s dlib-face features under the default framing). Under torchrun
    the extraction is sharded over the processes and every process returns the same results.
    Held-out faces are resized to the reference's resolution, as the reference is, before they
    are embedded and compared; ``faceness`` examines them too, and a held-out set in which the
    detector finds faces far less often than in the reference is warned in the membership and
    authenticity parts (:func:`heldout_faceness_warning`).
    Raises :class:`InputError` for an empty generated set, a reference of fewer than 2 images,
    or a ``heldout`` that cannot be opened, is a generator, is empty, has no face, is the
    reference's own source or holds any of its images (the same pixels after resizing, up to
    :data:`IDENTICAL_PIXELS`: "cannot judge membership"; the message names ``--heldout``),
    :class:`MissingAssetError` when ``framing.align`` needs dlib-bin or a weights file is missing.
    """
    config = config or RecognitionConfig()
    device = resolve_device(config.device)
    gen_src = as_source(generated, "GENERATED", n=config.n, seed=config.seed, device=device)
    ref_src = as_source(reference, "--reference", seed=config.seed, device=device)
    if config.n is not None and config.n < len(gen_src):
        gen_src = gen_src.head(config.n)
    if len(gen_src) == 0:
        raise InputError(f"GENERATED {gen_src.data}: the generated set holds no images")
    if len(ref_src) < 2:
        raise InputError(
            f"--reference {ref_src.data}: {len(ref_src)} image(s); at least 2 reference images "
            "are needed"
        )
    held_src = (_open_heldout(config.heldout, ref_src, config.seed, device)
                if config.heldout is not None else None)  # resized like the reference
    cache = FeatureCache((config.cache_dir or default_cache_dir()) if config.use_cache else None)
    framing = config.framing
    with distributed.job(device) as env:
        extractor = build_extractor(config.face_extractor,
                                    device=distributed.rank_device(env, device),
                                    weights=config.weights, framing=framing)
        gen = _embed(gen_src, "generated", extractor, config, cache)
        ref = _embed(ref_src, "reference", extractor, config, cache)
        held = (_embed(held_src, "heldout", extractor, config, cache)
                if held_src is not None else None)
    if gen.ids.size == 0:
        raise InputError(
            f"GENERATED {gen_src.data}: no face found in any of the {gen.count} images (--align)"
        )
    if ref.ids.size < 2:
        raise InputError(
            f"--reference {ref_src.data}: a face was found in {ref.ids.size} of {ref.count} "
            "images (--align); at least 2 are needed"
        )

    if held is not None and held.ids.size == 0:
        raise InputError(f"--heldout {held.source.data}: no face found in any of the "
                         f"{held.count} images (--align)")
    if held is not None:  # before any comparison of training with held-out people
        _refuse_training_images(held, ref)

    labels = None
    if ref_src.labels is not None and ref_src.identities is not None:
        labels = np.asarray(ref_src.labels)[ref.ids]
    heldout = None
    if held is not None:
        src = held.source
        held_labels = (np.asarray(src.labels)[held.ids]
                       if src.labels is not None and src.identities is not None else None)
        heldout = HeldOut(held.embeddings, held_labels,
                          src.identities if held_labels is not None else None, src.data)
    dropped = {"generated": gen.dropped, "reference": ref.dropped}
    counts = {"generated": gen.count, "generated_embedded": int(gen.ids.size),
              "reference": ref.count, "reference_embedded": int(ref.ids.size)}
    if held is not None:
        dropped["heldout"] = held.dropped
        counts.update(heldout=held.count, heldout_embedded=int(held.ids.size))
    section: dict[str, Any] = {
        "framing": {**framing.describe(), "dropped": dropped},
        "counts": counts,
    }
    nearest = (shared_nearest_reference(gen.features, ref.features)
               if gen.dropped == 0 and ref.dropped == 0 else None)
    section.update(analyse_embeddings(gen.embeddings, ref.embeddings, labels=labels, config=config,
                                      generated_ids=gen.ids, reference_ids=ref.ids,
                                      nearest=nearest, names=ref_src.identities,
                                      heldout=heldout,
                                      heldout_ids=held.ids if held is not None else None))
    faceness_section, faceness_metric = _faceness(gen, ref, config, held)
    section["faceness"] = faceness_section
    if faceness_section.get("heldout_warning"):
        membership = section["identity"]["membership"]
        membership["warnings"] = [*membership.get("warnings", []),
                                  faceness_section["heldout_warning"]]
        section["identity"]["authenticity"]["warning"] = faceness_section["heldout_warning"]
    metrics = recognition_metrics(section)
    if faceness_metric is not None:
        metrics.append(faceness_metric)
    notes = [note for emb in (gen, ref, held) if emb is not None for note in emb.features.notes]
    data = {"generated": gen_src.record(), "reference": ref_src.record()}
    if held_src is not None:
        data["heldout"] = held_src.record()
    prov = provenance(
        command="recognition",
        notes=notes,
        seed=config.seed,
        device=str(device),
        data=data,
        weights={config.face_extractor: extractor.weights_sha256()},
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
    nearest: NearestReference | None = None,
    names: tuple[str, ...] | None = None,
    heldout: HeldOut | None = None,
    heldout_ids: np.ndarray | None = None,
) -> dict[str, Any]:
    """Thresholds, leakage, diversity, verification, utility and identity-level statistics
    from embeddings.

    ``generated`` (N×D) and ``reference`` (M×D, M ≥ 2) are face embeddings on one device;
    ``labels`` (M identity labels, indexing ``names``) enable verification and utility.
    ``generated_ids`` / ``reference_ids`` / ``heldout_ids`` are the source image index of each
    row (default: the row number), used in the leaked pairs and identity names. ``nearest``: each
    generated row's nearest reference row when already searched (the audit shares one search with
    evaluate's copy_rate). ``heldout``: embeddings of real faces of people not in the reference
    (training) set, for the membership test and authenticity's base rate (the ``identity``
    part; ``config.heldout`` is not read here). Returns those parts of the ``recognition``
    section (framing, counts and faceness come from :func:`recognition`);
    :func:`recognition_metrics` turns it into metrics.
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
    section: dict[str, Any] = {"extractor": config.face_extractor,
                               "labelled_reference": labels is not None}

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
    nn = nearest or nearest_reference(generated, reference, memory_budget=config.memory_budget)
    self_nn = nearest_reference(reference, reference, exclude_self=True,
                                memory_budget=config.memory_budget)
    widest = max(thresholds.values())
    pairs = leaked_pairs(nn, widest, top_k=config.top_k, query_ids=gen_ids,
                         reference_ids=ref_ids)
    for pair in pairs:
        pair["leaked_at"] = [k for k, t in thresholds.items() if is_match(pair["distance"], t)]
    at = {}
    for k, t in thresholds.items():
        far_pair = float(np.mean(is_match(impostor, t))) if impostor.size else None
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

    section["identity"] = identity_section(
        generated, reference, labels=labels, names=names, heldout=heldout,
        reference_ids=ref_ids, heldout_ids=heldout_ids,
        bandwidth=(config.vendi_bandwidth if config.vendi_bandwidth is not None
                   else thresholds["match"] / 2),
        max_images=config.max_cluster, permutations=config.permutations, seed=config.seed,
        warning=thresholds_desc.get("warning"))
    return section


def _label_threshold(values: dict[str, float], described: dict[str, Any]) -> float:
    """The threshold that pseudo-labels generated faces: the match threshold, unless it does not
    separate people on these images (the FAR warning) and a calibrated one exists."""
    if described.get("warning") and "calibrated" in values:
        return values["calibrated"]
    return values["match"]


def recognition_metrics(section: dict[str, Any]) -> list[Metric]:
    """``leakage_rate`` and ``identity_diversity`` (on the section's face network) from a
    recognition section, each followed by its ``*_calibrated`` counterpart at the calibrated
    threshold (when there is one), then ``vendi_identities`` and ``authenticity`` when it has
    the ``identity`` part.

    When the match threshold does not separate people here (the section's threshold warning:
    more than 5% of reference impostor pairs accepted) the two match-threshold metrics record
    ``cannot_judge`` (why, and the calibrated metric to gate instead): a gate on them exits 2.
    """
    extractor = section["extractor"]
    thresholds = {k: v["threshold"] for k, v in section["leakage"]["at"].items()}
    n_gen = section["leakage"]["at"]["match"]["n"]
    n_ref = section["diversity"]["reference"]["n_total"]
    leak = section["leakage"]["at"]
    calibrated = "calibrated" in thresholds
    described = section["thresholds"]
    details: dict[str, Any] = {"threshold": thresholds["match"],
                               "chance_rate": leak["match"]["chance_rate"]}
    if calibrated:
        cal = leak["calibrated"]
        details["calibrated"] = {"threshold": cal["threshold"], "value": cal["rate"],
                                 "ci95": cal["ci95"], "chance_rate": cal["chance_rate"]}
    warning = described.get("warning")
    if warning:
        details["warning"] = warning

    def cannot_judge(instead: str) -> dict[str, Any]:
        return {"reason": warning, "instead": instead,
                "far_on_reference_pairs": described["match"].get("far_on_reference")}

    if warning:
        details["cannot_judge"] = cannot_judge("leakage_rate_calibrated")
    metrics = [Metric.of("leakage_rate", extractor, rate_interval(leak["match"]["leaked"], n_gen),
                         n_generated=n_gen, n_reference=n_ref, details=details)]
    if calibrated:
        cal = leak["calibrated"]
        metrics.append(Metric.of(
            "leakage_rate_calibrated", extractor, rate_interval(cal["leaked"], n_gen),
            n_generated=n_gen, n_reference=n_ref,
            details={"threshold": cal["threshold"], "far": described["calibrated"]["far"],
                     "far_on_reference_pairs": cal["far_per_pair"],
                     "pairs": described["calibrated"]["pairs"],
                     "calibrated_on": described["calibrated"]["calibrated_on"],
                     "chance_rate": cal["chance_rate"]}))
    gen_div = section["diversity"]["generated"]
    ref_div = section["diversity"]["reference"]
    div_details: dict[str, Any] = {
        "threshold": thresholds["match"],
        "linkage": gen_div["linkage"],
        "n_clustered": gen_div["n"],
        "reference": ref_div["at"]["match"]["identities"],
        "n_reference_clustered": ref_div["n"],
        "birthday_support": gen_div["at"]["match"]["birthday"]["support"],
    }
    if calibrated:
        div_details["calibrated"] = {
            "threshold": thresholds["calibrated"],
            "value": gen_div["at"]["calibrated"]["identities"],
            "reference": ref_div["at"]["calibrated"]["identities"],
        }
    if warning:
        div_details["warning"] = warning
        div_details["cannot_judge"] = cannot_judge("identity_diversity_calibrated")
    no_interval = ("a count of clusters has no bootstrap interval (resampling with replacement "
                   "duplicates faces and biases the count down)")
    metrics.append(Metric.of(
        "identity_diversity", extractor, gen_div["at"]["match"]["identities"],
        no_interval=no_interval, n_generated=gen_div["n"], n_reference=ref_div["n"],
        details=div_details))
    if calibrated:
        metrics.append(Metric.of(
            "identity_diversity_calibrated", extractor, gen_div["at"]["calibrated"]["identities"],
            no_interval=no_interval, n_generated=gen_div["n"], n_reference=ref_div["n"],
            details={"threshold": thresholds["calibrated"], "linkage": gen_div["linkage"],
                     "n_clustered": gen_div["n"],
                     "reference": ref_div["at"]["calibrated"]["identities"],
                     "n_reference_clustered": ref_div["n"],
                     "birthday_support": gen_div["at"]["calibrated"]["birthday"]["support"]}))
    if "identity" in section:
        metrics += identity_metrics(section["identity"], n_ref, extractor)
    return metrics


def open_heldout(data: str | ImageSource, *, seed: int = 0,
                 device: str | torch.device | None = None,
                 resolution: int | None = None) -> ImageSource:
    """Open ``--heldout`` (real faces, not a generator, at least one image; a DATA string is
    resized to ``resolution`` when given); :class:`InputError` naming the option when it cannot
    be used. Cheap (no decoding): ``gan-eval report`` calls it before any work."""
    if isinstance(data, str) and is_generator(data):
        raise InputError(
            f"--heldout {data}: expected real faces of people not in the training set (an image "
            "folder, .zip, .npz/.npy or builtin:NAME), got a generator"
        )
    try:
        source = as_source(data, "--heldout", resolution=resolution, seed=seed, device=device)
    except InputError as exc:
        raise InputError(f"--heldout: {exc}") from exc
    if len(source) == 0:
        raise InputError(f"--heldout {source.data}: the held-out set holds no images")
    return source


def _open_heldout(data: str | ImageSource, reference: ImageSource, seed: int,
                  device: torch.device) -> ImageSource:
    """:func:`open_heldout`, resized to the reference's (square) resolution the way the
    reference is (so that held-out and training faces are embedded alike, and a training image
    given as held out is found: :func:`_refuse_training_images`), refusing the reference's own
    source."""
    size = reference.resolution[0] if reference.resolution[0] == reference.resolution[1] else None
    source = open_heldout(data, seed=seed, device=device, resolution=size)
    if size is not None and source.resolution != (size, size):  # an opened source passed in
        source = source.head(len(source)).with_resolution(size)  # a view: the caller's is kept
    if source.content_hash() == reference.content_hash():
        raise InputError(
            f"--heldout {source.data}: the same images as the training (reference) set "
            f"{reference.data}; held-out faces must show people who are not in the training set"
        )
    return source


IDENTICAL_PIXELS = 4.0
"""Mean absolute difference (0–255 levels, at the reference's resolution) at or below which a
held-out image is a training image: the same picture through another resize (≤ 3.1 measured:
LFW 25 px upsampled to 64 or 128 px, then resized to 32 px, against 25 → 32 px directly) or a
JPEG re-encoding (≤ 3.7 at quality 75); different LFW faces differ by ≥ 19."""
CANDIDATES = 3  # nearest training faces (by embedding) whose pixels each held-out face is held to


def _refuse_training_images(held: _Embedded, ref: _Embedded) -> None:
    """:class:`InputError` "cannot judge membership" when held-out images are training images
    (the same pixels, up to :data:`IDENTICAL_PIXELS`, at the reference's resolution): the
    membership test would count them as people never seen. Each held-out face is compared with
    its :data:`CANDIDATES` nearest training faces in dlib-face space (a copy is among them:
    identical pixels give identical embeddings), so only those pairs are read again."""
    k = min(CANDIDATES, int(ref.ids.size))
    found = nearest(held.embeddings, ref.embeddings, k=k)
    held_rows = held.ids
    ref_rows = ref.ids[found.indices.cpu().numpy()]  # (H, k) reference image indices
    copies: list[tuple[int, int, float]] = []
    height, width = ref.source.resolution
    chunk = max(1, min(64, (64 << 20) // (16 * (k + 1) * 3 * max(1, height * width))))  # ~64 MB
    for start in range(0, held_rows.size, chunk):
        rows = held_rows[start:start + chunk]
        mine = held.source.read(rows.tolist()).float()
        theirs = ref.source.read(ref_rows[start:start + chunk].reshape(-1).tolist()).float()
        if theirs.shape[1:] != mine.shape[1:]:
            return  # another resolution (a non-square reference): no pixel comparison
        diff = (theirs.view(len(rows), k, *mine.shape[1:]) - mine[:, None]).abs()
        mad = diff.mean(dim=(2, 3, 4))
        best, which = mad.min(dim=1)
        for i in np.flatnonzero(best.numpy() <= IDENTICAL_PIXELS):
            copies.append((int(rows[i]), int(ref_rows[start + i, int(which[i])]),
                           float(best[i])))
    if copies:
        shown = ", ".join(f"held-out image {h} = reference image {r}" for h, r, _ in copies[:3])
        raise InputError(
            f"--heldout {held.source.data}: cannot judge membership: {len(copies)} held-out "
            f"face(s) are also in the training set ({shown}{', …' if len(copies) > 3 else ''}; "
            f"mean pixel difference ≤ {IDENTICAL_PIXELS:g} of 255 at {ref.source.resolution[0]}"
            f"×{ref.source.resolution[1]} px, against the training (reference) set "
            f"{ref.source.data}); held-out faces must show people who are not in the training "
            "set: remove them from the held-out set"
        )
