"""``audit_restoration(models, data)``: degrade real faces, restore them, measure against the
clean ones.

Steps (every number lands in the ``restoration`` section of the returned results; the first
MODEL's averages are its catalogue metrics, the ones ``gan-eval gate`` reads):

1. **Faces.** The first ``n`` images of DATA at ``resolution`` (default: the first model's own,
   else :data:`DEFAULT_RESOLUTION`), as uint8 N×3×R×R.
2. **Methods.** Every MODEL (:func:`gan_eval.restoration.models.open_restorer`), plus
   ``builtin:none`` (no restoration: the paired reference of every comparison) and, with
   ``baselines``, every other built-in method. An external model's contract is checked on a
   probe batch of two faces before any other work.
3. **Clean reference** (once): face embeddings (dlib's network by default, or the ``embed``
   function given), the same-person threshold calibrated at ``far`` on pairs of different clean
   faces, LPIPS activations, 5-point landmarks in the box ``(0, 0, R−1, R−1)`` (the faces are
   aligned crops), feature statistics for FID.
4. **Each degradation** (seeded per image): degrade, restore with each method that restores it,
   measure per face (:mod:`.measures`), summarise with paired intervals (:mod:`.summary`).
5. **Pictures**: tiles (clean / degraded / each method) of the first faces, and the identity
   swaps (a restored face, its own clean face, the other person it is closer to) — kept as
   images in the returned :class:`RestorationRun` (pixels never enter the results JSON; the
   report writes them as PNG files).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan_eval import weights as weights_table
from gan_eval.catalogue import EXTRACTORS
from gan_eval.data import ImageSource
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.lpips_alex import (
    LPIPS_MIN_SIDE,
    WEIGHTS_NAME,
    LpipsAlex,
    load_lpips_alex,
)
from gan_eval.features.registry import build_extractor
from gan_eval.features.shape_predictor import load_shape_predictor
from gan_eval.generators import is_generator
from gan_eval.identity.verification_roc import verification
from gan_eval.metrics.frechet import FeatureStats
from gan_eval.preflight import check_face_extractor
from gan_eval.restoration.degradations import Degraded, degrade, upsample
from gan_eval.restoration.measures import (
    VERIFICATION_FAR,
    FaceEmbedder,
    Measured,
    Reference,
    calibrated_threshold,
)
from gan_eval.restoration.models import ModelOptions, Restorer, open_restorer
from gan_eval.restoration.plan import BUILTINS, NONE, Condition, default_grid
from gan_eval.restoration.summary import MEASURES, fid_values, headline_metrics, method_values
from gan_eval.results import Results, provenance
from gan_eval.sources import as_source

__all__ = ["DEFAULT_RESOLUTION", "RestorationConfig", "RestorationRun", "Tiles",
           "audit_restoration"]

DEFAULT_RESOLUTION = 64
"""Audit resolution when neither ``resolution`` nor the model says one (LPIPS needs ≥ 31)."""

DEFAULT_FAR = 0.01
"""False-accept rate of the calibrated same-person threshold behind ``identity_kept_rate``."""

Progress = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class RestorationConfig:
    """Options of :func:`audit_restoration` (validated; bad values raise :class:`InputError`)."""

    conditions: tuple[Condition, ...] = field(default_factory=default_grid)
    n: int | None = None  # the first n faces of DATA (None: all)
    resolution: int | None = None  # None: the first model's, else DEFAULT_RESOLUTION
    seed: int = 0  # seeds the noise of every image and the calibration pairs
    device: str | None = None
    model: ModelOptions = field(default_factory=ModelOptions)  # external models' contract
    baselines: bool = True  # also run every built-in method
    extractors: tuple[str, ...] = ("dlib-face",)  # feature spaces of restoration_fid
    face_extractor: str = "dlib-face"  # the name identity metrics carry
    embed: FaceEmbedder | None = field(default=None, compare=False)  # None: face_extractor's
    far: float = DEFAULT_FAR
    weights: Mapping[str, Path] = field(default_factory=dict)
    """Weights files by extractor name (``--weights EXTRACTOR=PATH``: the face network,
    ``lpips-alex``, the feature spaces of restoration_fid); the others are found by default."""
    tile_faces: int = 2  # faces shown in the tiles
    swaps_shown: int = 8  # identity swaps kept for the gallery
    progress: Progress | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.conditions:
            raise InputError("--degradation: no degradation to audit")
        if self.n is not None and (isinstance(self.n, bool) or self.n < 2):
            raise InputError(f"--count {self.n!r}: expected at least 2 faces")
        if self.resolution is not None and not LPIPS_MIN_SIDE <= self.resolution <= 1024:
            raise InputError(f"--resolution {self.resolution}: expected {LPIPS_MIN_SIDE}..1024 "
                             f"pixels (LPIPS needs at least {LPIPS_MIN_SIDE})")
        if not (isinstance(self.far, int | float) and 0 < self.far < 0.5):
            raise InputError(f"--far {self.far!r}: expected a false-accept rate in (0, 0.5)")
        unknown = [e for e in self.extractors if e not in EXTRACTORS]
        if unknown:
            raise InputError(f"--extractor {unknown[0]}: unknown; expected one of "
                             f"{', '.join(EXTRACTORS)}")
        check_face_extractor(self.face_extractor)

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


@dataclass
class Tiles:
    """Pictures of the run (uint8 images, CPU), drawn by :mod:`gan_eval.report.restoration`.

    ``grid``: rows × columns × 3×R×R, rows = (face, condition), columns = clean, degraded, then
    each method (``present`` False where a method does not restore that condition);
    ``swaps``: per swap, the restored face, its clean face and the other person's clean face.
    """

    columns: list[str]
    rows: list[tuple[int, str]]
    grid: torch.Tensor
    present: torch.Tensor
    swaps: list[dict[str, Any]] = field(default_factory=list)
    swap_images: list[torch.Tensor] = field(default_factory=list)


@dataclass
class RestorationRun:
    """What :func:`audit_restoration` returns: the results and the pictures of the run."""

    results: Results
    tiles: Tiles


def _open_methods(models: Sequence[str], config: RestorationConfig,
                  device: torch.device) -> list[Restorer]:
    specs = list(dict.fromkeys(models))
    extra = list(BUILTINS) if config.baselines else [NONE]
    opened = [open_restorer(spec, config.model, device) for spec in specs]
    opened += [open_restorer(spec, None, device) for spec in extra if spec not in specs]
    return opened


def _faces(data: str | ImageSource, config: RestorationConfig, resolution: int,
           device: torch.device) -> ImageSource:
    if isinstance(data, str) and is_generator(data):
        raise InputError(f"--data {data}: expected real faces (an image folder, .zip, .npz/.npy "
                         "or builtin:NAME), got a generator")
    source = as_source(data, "--data", resolution=resolution, seed=config.seed, device=device)
    if config.n is not None and config.n < len(source):
        source = source.head(config.n)
    if len(source) < 2:
        raise InputError(f"--data {source.data}: {len(source)} image(s); a restoration audit "
                         "needs at least 2 faces")
    return source


def _face_network(config: RestorationConfig, device: torch.device) -> tuple[FaceEmbedder, str]:
    """The embedder of ``config.face_extractor`` (uint8 B×3×H×W faces, the whole image the crop →
    float32 B×D) and its weights file's sha256."""
    name = config.face_extractor
    extractor = build_extractor(name, device=device, weights=config.weights.get(name))

    def embed(images: torch.Tensor) -> torch.Tensor:
        return extractor(images)[extractor.primary]

    return embed, extractor.weights_sha256()


def _lpips(config: RestorationConfig, device: torch.device, notes: list[str]
           ) -> tuple[LpipsAlex | None, dict[str, str]]:
    """LPIPS-Alex, or None with a note when its AlexNet weights are not installed and no
    ``weights['lpips-alex']`` was given (a given path that is missing stays an error)."""
    try:
        net, hashes = load_lpips_alex(config.weights.get("lpips-alex"), device)
    except MissingAssetError as exc:
        if "lpips-alex" in config.weights:
            raise
        notes.append(f"restoration: LPIPS is not computed: {exc}")
        return None, {}
    prefix = weights_table.known(WEIGHTS_NAME).sha256_prefix or ""
    if not hashes["alexnet"].startswith(prefix):
        notes.append(f"restoration: LPIPS's AlexNet file is not torchvision's (its sha256 "
                     f"{hashes['alexnet'][:12]}… does not start with the published {prefix}): "
                     "its LPIPS is not comparable with published LPIPS")
    return net, hashes


def _reference(clean: torch.Tensor, labels: np.ndarray | None, config: RestorationConfig,
               device: torch.device, notes: list[str]) -> tuple[Reference, dict[str, Any]]:
    embed, face_sha = (config.embed, None) if config.embed else _face_network(config, device)
    embeddings = torch.cat([embed(clean[s : s + 32]) for s in range(0, clean.shape[0], 32)])
    threshold = calibrated_threshold(embeddings, labels, config.far, seed=config.seed)
    lpips, lpips_sha = _lpips(config, device, notes)
    shapes = load_shape_predictor(device=device)
    side = clean.shape[-1]
    box = (0, 0, int(clean.shape[-1]) - 1, int(clean.shape[-2]) - 1)
    features: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    hashes: dict[str, str] = {}
    for name in config.extractors:
        if name == config.face_extractor:
            features[name] = embed
            continue
        extractor = build_extractor(name, device=device, weights=config.weights.get(name))
        features[name] = lambda x, e=extractor: e(x)[e.primary]  # type: ignore[misc]
        hashes[name] = extractor.weights_sha256()
    ref = Reference(
        images=clean, labels=labels, embed=embed, embeddings=embeddings, lpips=lpips,
        activations=[] if lpips is None else [torch.cat(parts) for parts in zip(*[
            lpips.activations(clean[s : s + 32]) for s in range(0, clean.shape[0], 32)],
            strict=True)],
        shapes=shapes, landmarks=shapes(clean, box), box=box, threshold=threshold["value"],
        features=features, clean_features={})
    ref.clean_features = {name: (embeddings if fn is embed else fn(clean))
                          for name, fn in features.items()}
    weights: dict[str, Any] = {"landmarks": shapes.model.sha256, **hashes}
    if lpips_sha:
        weights["lpips"] = lpips_sha
    if face_sha is not None:
        weights[config.face_extractor] = face_sha
    return ref, {"threshold": threshold, "weights": weights, "box": list(box), "side": side}


def _clean_verification(embeddings: torch.Tensor, labels: np.ndarray | None,
                        seed: int) -> dict[str, Any]:
    """Verification among the clean faces themselves (the recognizer's own level on this data,
    :func:`gan_eval.identity.verification_roc.verification`): needs identity labels with two
    faces of someone."""
    if labels is None:
        return {"skipped": True, "reason": "the data has no identity labels: a clean face "
                "verified against itself is trivially accepted (put each person's faces in a "
                "subfolder for this row)"}
    section, _ = verification(embeddings, labels, seed=seed)
    return section


def _shown_degraded(degraded: Degraded) -> torch.Tensor:
    """The degraded images as a reader sees them: at size, pixel-replicated if downsampled."""
    size = (int(degraded.at_size.shape[-2]), int(degraded.at_size.shape[-1]))
    return upsample(degraded.observed, size, "nearest")


def audit_restoration(
    models: Sequence[str], data: str | ImageSource, config: RestorationConfig | None = None,
) -> RestorationRun:
    """Audit the restoration ``models`` (MODEL specs; the first is the audited one) on the faces
    of ``data`` (a DATA string or source). See the module docstring for the steps.

    Raises :class:`InputError` (exit 2) for bad options, data or models (a model that breaks
    its contract names MODEL), :class:`MissingAssetError` (exit 3) for missing weights (LPIPS's
    AlexNet: ``gan-eval weights fetch lpips-alex``).
    """
    config = config or RestorationConfig()
    if not models:
        raise InputError("MODEL: name at least one restoration model or builtin: method")
    start = time.perf_counter()
    device = resolve_device(config.device)
    methods = _open_methods(models, config, device)
    audited = methods[0]
    resolution = config.resolution or audited.resolution or DEFAULT_RESOLUTION
    if audited.resolution is not None and resolution != audited.resolution:
        raise InputError(f"--resolution {resolution}: MODEL {audited.spec} works at "
                         f"{audited.resolution} px")
    source = _faces(data, config, resolution, device)
    clean = source.load().cpu()
    n = int(clean.shape[0])
    labels = (np.asarray(source.labels) if source.labels is not None
              and source.identities is not None else None)
    if not any(audited.applies(c) for c in config.conditions):
        raise InputError(f"--degradation: MODEL {audited.spec} restores none of "
                         f"{', '.join(c.key for c in config.conditions)}")
    probe = degrade(clean[:2], config.conditions[0], seed=config.seed, indices=[0, 1])
    for method in methods:  # a broken contract stops the run before any heavy work
        usable = next((c for c in config.conditions if method.applies(c)), None)
        if usable is not None and not method.spec.startswith("builtin:"):
            probe = degrade(clean[:2], usable, seed=config.seed, indices=[0, 1])
            method.restore(probe, usable)
    config.say(f"clean reference: {n} faces at {resolution} px (embeddings, LPIPS, landmarks)")
    notes: list[str] = []
    ref, ref_info = _reference(clean, labels, config, device, notes)
    stats = {name: FeatureStats.from_features(rows.double())
             for name, rows in ref.clean_features.items()}

    measured: dict[str, dict[str, Measured]] = {m.spec: {} for m in methods}
    values: dict[str, dict[str, Any]] = {m.spec: {} for m in methods}
    fids: dict[str, dict[str, Any]] = {m.spec: {} for m in methods}
    tile_rows = min(config.tile_faces, n)
    columns = ["clean", "degraded", *[m.spec for m in methods]]
    grid = torch.zeros(tile_rows * len(config.conditions), len(columns), *clean.shape[1:],
                       dtype=torch.uint8)
    present = torch.zeros(grid.shape[:2], dtype=torch.bool)
    rows: list[tuple[int, str]] = []
    indices = list(range(n))
    for k, condition in enumerate(config.conditions):
        config.say(f"{condition.describe()}: "
                   f"{', '.join(m.spec for m in methods if m.applies(condition))}")
        degraded = degrade(clean, condition, seed=config.seed, indices=indices)
        shown = _shown_degraded(degraded)
        row = slice(k * tile_rows, (k + 1) * tile_rows)
        grid[row, 0], grid[row, 1] = clean[:tile_rows], shown[:tile_rows]
        present[row, :2] = True
        rows += [(i, condition.key) for i in range(tile_rows)]
        for col, method in enumerate(methods, start=2):
            if not method.applies(condition):
                continue
            restored = method.restore(degraded, condition).cpu()
            measured[method.spec][condition.key] = ref.measure(restored)
            grid[row, col] = restored[:tile_rows]
            present[row, col] = True
        base = measured[NONE][condition.key]
        for method in methods:
            done = measured[method.spec].get(condition.key)
            if done is None:
                continue
            values[method.spec][condition.key] = {
                **method_values(done, None if method.spec == NONE else base),
                "verification": done.verification,
            }
            fids[method.spec][condition.key] = fid_values(done.features, stats,
                                                          seed=config.seed)
    tiles = Tiles(columns=columns, rows=rows, grid=grid, present=present)
    _collect_swaps(tiles, methods, measured, clean, config, degrade_seed=config.seed)

    face = config.face_extractor
    audited_conditions = [c.key for c in config.conditions if audited.applies(c)]
    metrics = headline_metrics(measured[audited.spec], fids[audited.spec], face=face,
                               conditions=audited_conditions)
    section = {
        "audited": audited.spec,
        "reference_method": NONE,
        "data": source.record(),
        "n": n,
        "resolution": resolution,
        "seed": config.seed,
        "face_extractor": face,
        "conditions": [c.to_json() for c in config.conditions],
        "methods": {m.spec: {**m.record(),
                             "conditions": [c.key for c in config.conditions if m.applies(c)]}
                    for m in methods},
        "measures": {m.metric: {"extractor": face if m.extractor == "face" else m.extractor,
                                "rate": m.rate} for m in MEASURES},
        "values": values,
        "fid": fids,
        "identity": {
            "clean_verification": _clean_verification(ref.embeddings, labels, config.seed),
            "threshold": ref_info["threshold"],
            "verification_far": VERIFICATION_FAR,
            "labels": "identity labels of the data" if labels is not None else
            "none: every clean face is its own person",
            "swap_meaning": "a restored face is swapped when a clean face of another person is "
                            "closer to it than its own clean face",
        },
        "landmarks": {"model": "dlib shape_predictor_5_face_landmarks (5 points, CC0)",
                      "box": ref_info["box"],
                      "meaning": "mean distance in pixels between the 5 landmarks predicted on "
                                 "the restored face and on its clean face, in the same box"},
        "intervals": "mean over faces ± 1.96·sd/√n (paired_mean); rates: Wilson at n faces; "
                     "difference: the paired mean of (method − builtin:none) over the same faces",
        "swaps": tiles.swaps,
        "weights_sha256": ref_info["weights"],
        "seconds": round(time.perf_counter() - start, 1),
    }
    notes += sorted({f"restoration: FID: {entry['warning']}" for per in fids.values()
                     for by_name in per.values() for entry in by_name.values()
                     if entry.get("warning")})
    if source.record().get("resize"):
        notes.append(f"restoration: faces resized to {resolution}×{resolution} before they "
                     "were degraded")
    section["notes"] = notes
    prov = provenance(command="restoration", seed=config.seed, device=str(device),
                      data={"reference": source.record()}, weights=ref_info["weights"],
                      notes=notes, title="gan-eval restoration",
                      subject=f"{audited.spec} on {source.data}")
    results = Results(provenance=prov, metrics=metrics, restoration=section)
    return RestorationRun(results=results, tiles=tiles)


def _collect_swaps(tiles: Tiles, methods: list[Restorer],
                   measured: dict[str, dict[str, Measured]], clean: torch.Tensor,
                   config: RestorationConfig, *, degrade_seed: int) -> None:
    """The first ``config.swaps_shown`` identity swaps (audited model first, then the others,
    the clearest swaps first) with their three faces."""
    found: list[tuple[float, str, str, int, Measured]] = []
    for rank, method in enumerate(methods):
        for key, result in measured[method.spec].items():
            swapped = np.flatnonzero(result.values["identity_swapped"] > 0)
            for i in swapped.tolist():
                margin = float(result.values["identity_distance"][i] - result.other_distance[i])
                found.append((rank - math.tanh(margin), method.spec, key, i, result))
    found.sort(key=lambda t: t[0])
    by_key = {c.key: c for c in config.conditions}
    for _, spec, key, i, result in found[: config.swaps_shown]:
        method = next(m for m in methods if m.spec == spec)
        degraded = degrade(clean[i : i + 1], by_key[key], seed=degrade_seed, indices=[i])
        restored = method.restore(degraded, by_key[key]).cpu()[0]
        j = int(result.other[i])
        tiles.swaps.append({"method": spec, "condition": key, "face": i, "other": j,
                            "own_distance": float(result.values["identity_distance"][i]),
                            "other_distance": float(result.other_distance[i])})
        tiles.swap_images.append(torch.stack([restored, clean[i], clean[j]]))
