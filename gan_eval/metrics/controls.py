"""Floor and ceiling of every distribution metric: the same metric on real data and on nothing.

A distribution metric means little without its two reference points on the data at hand: what
*real* images score against the reference (the best a generator can do here, the **floor**) and
what a *degenerate* generator scores (what nothing scores, the **ceiling**). On 25×25 faces in
dlib's embedding space, FID 0.34 is pure colour noise and FID 0.14 is real faces: the raw number
does not say which.

**Sizes ("matched n").** Real-vs-real needs two disjoint sets of real images, so the controls
are computed at the sizes the reference allows, and the generated set is measured again at the
same sizes, against the same reference images, so that the three numbers compare like with like
(every metric here depends on both set sizes: FID's bias, the k-NN radii of precision/recall):

* ``h = min(n_generated, ⌊n_reference / 2⌋, MAX_CONTROL_SIZE)`` images play the generated side,
  the other ``r = n_reference − h`` reference images the reference side;
* ``splits`` random splits of the reference into ``h`` and ``r`` images (seeded); on each split
  the metric of ``h`` held-out *real* images (the floor), of ``h`` generated images (a fresh
  random subset each split: the generated value at control sizes) and of each degenerate set of
  ``h`` images (the ceiling candidates), all against the same ``r`` reference images. Each is the
  mean over the splits (their sd is recorded).

When the reference holds at least ``2·n`` images the controls are at the generated set's own
``n``; on the embedded default (80 reference faces, n = 1,000) they are at 40 vs 40, where the
headline value (1,000 vs 80) is not comparable with them and the generated value at 40 vs 40 is.

**Degenerate generators** (measured on the embedded default, 40 vs 40 on dlib-face, 10 splits):
seeded uniform pixel noise and the reference's mean face (``h`` copies of one image). Neither is
the worse one for every metric: the mean face is worse for FID (0.457 against noise's 0.388;
real 0.141) and scores *perfect* precision (1.0: one face-like point inside the reference's
balls), noise is worse for precision (0.52), density and KID/CMMD. So the ceiling of each metric
is the worse of the two (``candidates`` records both). Colour noise is the "knows nothing"
generator; gray noise with the reference's pixel statistics scores precision 0.94 and density
1.24 on the gray LFW faces, above real data: on such data precision cannot tell noise from faces.

The span that gates read is defined in :func:`gan_eval.results.span_of`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from gan_eval.catalogue import metric_spec
from gan_eval.metrics.cmmd import cmmd
from gan_eval.metrics.extrapolation import fid_analysis
from gan_eval.metrics.frechet import FeatureStats, frechet_distance
from gan_eval.metrics.isc import inception_score
from gan_eval.metrics.polynomial_mmd import kid
from gan_eval.metrics.prc import prdc
from gan_eval.metrics.regimes import refusal

__all__ = [
    "CONTROL_SPLITS",
    "DEGENERATE",
    "MAX_CONTROL_SIZE",
    "MetricControls",
    "control_reasons",
    "control_size",
    "distribution_controls",
]

MAX_CONTROL_SIZE = 1000
"""At most this many images per side of a control (the noise set is extracted once at this
size, and cached)."""

CONTROL_SPLITS = 10
"""Random splits of the reference behind each control value."""

FID_INFINITY_SPLITS = 10
"""Split-variance splits of FID∞ at control sizes (its point estimate's Monte-Carlo part)."""

DEGENERATE: dict[str, str] = {
    "uniform noise": "seeded i.i.d. uniform pixel noise (every channel and pixel in 0..255)",
    "mean face": "the reference's mean image, repeated (a generator collapsed to one image)",
}
"""The degenerate generators behind a ceiling, and what each is."""

FLOOR_WHAT = ("real vs real: {h} reference images against the other {r} (disjoint), mean over "
              "{s} random splits")
GENERATED_WHAT = ("{h} generated images (a random subset per split) against the same {r} "
                  "reference images")
CEILING_WHAT = "{name}: {h} images against the same {r} reference images ({meaning})"


@dataclass(frozen=True)
class MetricControls:
    """One metric's controls, all at control sizes (``n_generated`` vs ``n_reference``).

    Attributes:
        floor, floor_sd: real vs real: mean and sd over the splits (metric units).
        generated, generated_sd: the generated set at the same sizes, same reference images.
        ceiling, ceiling_sd: the worse (by the catalogue's direction) degenerate generator.
        ceiling_of: which one (a key of :data:`DEGENERATE`).
        candidates: every degenerate generator's mean value.
    """

    metric: str
    floor: float
    floor_sd: float
    generated: float
    generated_sd: float
    ceiling: float
    ceiling_sd: float
    ceiling_of: str
    candidates: dict[str, float]
    n_generated: int
    n_reference: int
    splits: int
    seed: int

    @property
    def finite(self) -> bool:
        """Every value and sd is a finite number (a control that is not is never reported)."""
        return all(math.isfinite(v) for v in (self.floor, self.floor_sd, self.generated,
                                               self.generated_sd, self.ceiling, self.ceiling_sd,
                                               *self.candidates.values()))

    def details(self) -> dict[str, dict[str, Any]]:
        """``floor`` / ``ceiling`` / ``at_control_sizes`` records for a metric's details."""
        sizes = {"n_generated": self.n_generated, "n_reference": self.n_reference,
                 "splits": self.splits, "seed": self.seed}
        fill = {"h": self.n_generated, "r": self.n_reference, "s": self.splits}
        return {
            "floor": {"value": self.floor, "sd": self.floor_sd, **sizes,
                      "what": FLOOR_WHAT.format(**fill)},
            "ceiling": {"value": self.ceiling, "sd": self.ceiling_sd, **sizes,
                        "of": self.ceiling_of,
                        "what": CEILING_WHAT.format(name=self.ceiling_of,
                                                    meaning=DEGENERATE[self.ceiling_of], **fill),
                        "candidates": dict(self.candidates)},
            "at_control_sizes": {"value": self.generated, "sd": self.generated_sd, **sizes,
                                 "what": GENERATED_WHAT.format(**fill)},
        }


def control_size(n_generated: int, n_reference: int, cap: int = MAX_CONTROL_SIZE) -> int:
    """``h = min(n_generated, ⌊n_reference / 2⌋, cap)``: images per control's generated side
    (the reference side gets the other ``n_reference − h``)."""
    return max(0, min(n_generated, n_reference // 2, cap))


Values = dict[str, float]


@dataclass
class _Accumulator:
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, role: str, found: Values) -> None:
        for name, value in found.items():
            self.values.setdefault(name, {}).setdefault(role, []).append(value)

    def mean_sd(self, name: str, role: str) -> tuple[float, float]:
        v = np.asarray(self.values[name][role], dtype=np.float64)
        return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def _two_sample(metrics: frozenset[str], *, k_pr: int, k_dc: int, kid_subsets: int, seed: int
                ) -> Callable[[torch.Tensor, torch.Tensor, FeatureStats], Values]:
    """The metrics of ``a`` (the control's generated side) against ``b`` (its reference side),
    defined as evaluate reports them (FID∞ with fewer splits; KID over random subsets)."""

    def values(a: torch.Tensor, b: torch.Tensor, b_stats: FeatureStats) -> Values:
        out: Values = {}
        if "fid" in metrics:
            out["fid"] = frechet_distance(FeatureStats.from_features(a), b_stats, warn=False)
        if "fid_infinity" in metrics:
            inf = fid_analysis(a, b_stats, seed=seed, n_splits=FID_INFINITY_SPLITS).fid_infinity
            if inf is None:  # control_reasons applies the same regime rule first
                raise ValueError(f"FID∞ at control size {len(a)} is outside its regime")
            out["fid_infinity"] = inf.estimate
        if "kid" in metrics:
            out["kid"] = kid(a, b, subsets=kid_subsets, subset_size=min(len(a), len(b)),
                             seed=seed % 2**32).mean  # RandomState seeds are 32-bit
        if "cmmd" in metrics:
            out["cmmd"] = cmmd(a, b)
        if metrics & {"precision", "recall", "density", "coverage"}:
            scores = prdc(a, b, k_pr=k_pr, k_dc=k_dc)
            out.update({m: float(getattr(scores, m)) for m in
                        ("precision", "recall", "density", "coverage") if m in metrics})
        return out

    return values


def _inception_score(logits: torch.Tensor) -> float:
    """IS of ``logits`` as one chunk (the controls' sets are too small for 10)."""
    return inception_score(logits, splits=1, shuffle=False).mean


def control_reasons(metrics: frozenset[str], size: int, n_reference: int, *, dims: int,
                    k_pr: int = 3, k_dc: int = 5, logits: bool = False) -> dict[str, str]:
    """Why each metric of ``metrics`` gets no controls at ``size`` vs ``n_reference − size`` in
    ``dims`` feature dimensions (an empty dict when all can be computed). FID∞'s controls obey
    FID∞'s own regime (:func:`gan_eval.metrics.regimes.refusal` at ``n = size``): an
    extrapolation outside it is not a floor or a ceiling either."""
    h, r = size, n_reference - size
    why: dict[str, str] = {}
    sizes = f"{h} vs {r} images (h = min(n, ⌊n_reference/2⌋, {MAX_CONTROL_SIZE}))"
    for name in metrics:
        if h < 2:
            why[name] = f"the reference ({n_reference} images) is too small to split: {sizes}"
        elif name in PRDC_NAMES and h <= max(k_pr, k_dc):
            why[name] = (f"the k-NN radii (k = {k_pr}, {k_dc}) need more than {max(k_pr, k_dc)} "
                         f"images a side, got {sizes}")
        elif name == "fid_infinity" and h < 16:
            why[name] = f"FID∞ extrapolates over quarters of at least 4 images, got {sizes}"
        elif name == "fid_infinity" and (refused := refusal(name, n=h, d=dims)) is not None:
            why[name] = f"at the controls' {sizes}: {refused.reason}"
        elif name == "is" and not logits:
            why[name] = "no class logits"
    return why


PRDC_NAMES = frozenset({"precision", "recall", "density", "coverage"})


def distribution_controls(
    generated: torch.Tensor,
    reference: torch.Tensor,
    degenerate: Mapping[str, torch.Tensor],
    *,
    metrics: frozenset[str],
    size: int,
    splits: int = CONTROL_SPLITS,
    seed: int = 0,
    k_pr: int = 3,
    k_dc: int = 5,
    kid_subsets: int = 100,
    logits: tuple[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]] | None = None,
) -> dict[str, MetricControls]:
    """Floor, generated value and ceiling of each of ``metrics`` at control sizes.

    Args:
        generated: ``(n, D)`` generated features (``n ≥ size``).
        reference: ``(m, D)`` reference features (``m ≥ 2·size``).
        degenerate: features of each degenerate generator (keys of :data:`DEGENERATE`):
            ``(size, D)``, or ``(1, D)`` for a set of identical images (repeated).
        metrics: names among fid, fid_infinity, kid, cmmd, precision, recall, density, coverage
            and ``is`` (which needs ``logits``); those :func:`control_reasons` refuses at these
            sizes are left out.
        size: ``h`` (:func:`control_size`); the reference side is the other ``m − h`` rows.
        splits, seed: random splits of the reference (and subsets of the generated set).
        logits: ``(generated, reference, {name: degenerate})`` class logits, rows as above,
            for ``is`` (one chunk of ``h``: real images' IS is the floor).

    Returns:
        ``{metric: MetricControls}`` for the metrics that could be computed; the ceiling is the
        worse degenerate generator by the catalogue's direction.
    """
    h, m = size, int(reference.shape[0])
    wanted = metrics - set(control_reasons(metrics, h, m, dims=int(reference.shape[1]),
                                           k_pr=k_pr, k_dc=k_dc, logits=logits is not None))
    if not wanted:
        return {}
    if generated.shape[0] < h:
        raise ValueError(f"controls of size {h} need as many generated rows, got "
                         f"{generated.shape[0]}")
    g64, ref64 = generated.double(), reference.double()
    rows = {name: (f.double().expand(h, -1) if f.shape[0] == 1 else f.double()[:h])
            for name, f in degenerate.items()}
    two_sample = _two_sample(wanted - {"is"}, k_pr=k_pr, k_dc=k_dc, kid_subsets=kid_subsets,
                             seed=seed)
    rng = np.random.default_rng(seed)
    acc = _Accumulator()
    for _ in range(splits):
        perm = torch.from_numpy(rng.permutation(m))
        held, rest = perm[:h], perm[h:]
        pick = torch.from_numpy(np.sort(rng.choice(generated.shape[0], h, replace=False)))
        b = ref64[rest]
        b_stats = FeatureStats.from_features(b)
        acc.add("floor", two_sample(ref64[held], b, b_stats))
        acc.add("generated", two_sample(g64[pick], b, b_stats))
        for name, f in rows.items():
            acc.add(name, two_sample(f, b, b_stats))
        if "is" in wanted and logits is not None:
            gen_logits, ref_logits, deg_logits = logits
            acc.add("floor", {"is": _inception_score(ref_logits[held].double())})
            acc.add("generated", {"is": _inception_score(gen_logits[pick].double())})
            for name, lg in deg_logits.items():
                lg64 = lg.double().expand(h, -1) if lg.shape[0] == 1 else lg.double()[:h]
                acc.add(name, {"is": _inception_score(lg64)})
    out = {}
    for name in sorted(acc.values):
        candidates = {k: acc.mean_sd(name, k) for k in rows}
        higher = metric_spec(name).higher_is_better
        worst = (min if higher else max)(candidates, key=lambda k: candidates[k][0])
        floor, floor_sd = acc.mean_sd(name, "floor")
        value, value_sd = acc.mean_sd(name, "generated")
        out[name] = MetricControls(
            metric=name, floor=floor, floor_sd=floor_sd, generated=value, generated_sd=value_sd,
            ceiling=candidates[worst][0], ceiling_sd=candidates[worst][1], ceiling_of=worst,
            candidates={k: v[0] for k, v in candidates.items()}, n_generated=h, n_reference=m - h,
            splits=splits, seed=seed)
    return out
