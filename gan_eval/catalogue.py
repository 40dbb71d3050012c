"""The metric catalogue: every number gan-eval reports, with what a reader and a gate need to know.

One table (:data:`METRICS`) says, for each metric name, which direction is better, the range it
can take (intervals are clipped to it), its unit, which step of an audit produces it, the label
of its summary card, and which extractors it can be computed on. The results schema
(:mod:`gan_eval.results`), the gates (:mod:`gan_eval.gates`, which refuse unknown names when the
config is loaded), the HTML report's summary cards and the CLI help all read it; nothing else
lists metric names. In the style of torchmetrics' ``higher_is_better`` / ``plot_lower_bound``
attributes and stylegan2-ada's metric registry.

:data:`EXTRACTORS` is the matching table of feature spaces (name, label, whether it gives class
logits for the Inception Score, whether it embeds faces). The networks themselves are registered
in :mod:`gan_eval.features.registry`, whose names must appear here.

This module imports nothing heavy (no torch), so that ``gan-eval gate RESULTS.json`` can validate
a config without loading a network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Producer(StrEnum):
    """The step of an audit that computes a metric (``gan-eval gate CKPT`` runs only those
    needed by its gates)."""

    EVALUATE = "evaluate"
    RECOGNITION = "recognition"
    ATTACK = "attack"


@dataclass(frozen=True)
class ExtractorSpec:
    """A feature space: its registry name, a reader's label, and what it can feed."""

    name: str
    label: str
    logits: bool = False
    """Gives class logits, so the Inception Score can be computed on it."""
    face: bool = False
    """Embeds faces (identity space): copy_rate is computed on it."""


EXTRACTORS: dict[str, ExtractorSpec] = {
    spec.name: spec
    for spec in (
        ExtractorSpec("dlib-face", "face embeddings", face=True),
        ExtractorSpec("inception", "Inception", logits=True),
        ExtractorSpec("dinov2-vit-s14", "DINOv2 ViT-S/14"),
        ExtractorSpec("dinov2-vit-b14", "DINOv2 ViT-B/14"),
        ExtractorSpec("dinov2-vit-l14", "DINOv2 ViT-L/14"),
        ExtractorSpec("dinov2-vit-g14", "DINOv2 ViT-g/14"),
        ExtractorSpec("clip-vit-b32", "CLIP ViT-B/32"),
        ExtractorSpec("clip-vit-l14", "CLIP ViT-L/14"),
        ExtractorSpec("clip-vit-l14-336", "CLIP ViT-L/14@336"),
    )
}
"""Feature spaces gan-eval computes distribution metrics on, in report order."""

ANY_EXTRACTOR = "any feature extractor"
LOGIT_EXTRACTORS = "extractors with class logits"
FACE_EXTRACTORS = "face-embedding extractors"


@dataclass(frozen=True)
class MetricSpec:
    """What gan-eval knows about one metric name."""

    name: str
    higher_is_better: bool
    bounds: tuple[float, float]
    """The range the metric can take; intervals are clipped to it."""
    unit: str
    producer: Producer
    label: str
    """A reader's name for it (summary cards, tables)."""
    extractors: str | tuple[str, ...]
    """Where it is computed: :data:`ANY_EXTRACTOR`, :data:`LOGIT_EXTRACTORS`,
    :data:`FACE_EXTRACTORS`, or the fixed values its ``extractor`` field takes (the network or
    detector that produced it)."""
    headline: tuple[str, ...] = ()
    """Extractors for which the report shows it as a summary card, in order."""

    @property
    def takes_extractor(self) -> bool:
        """True when it is computed on feature extractors (one entry per extractor)."""
        return isinstance(self.extractors, str)

    def allowed_extractors(self) -> tuple[str, ...]:
        """Every value the ``extractor`` field of this metric can take."""
        if self.extractors == ANY_EXTRACTOR:
            return tuple(EXTRACTORS)
        if self.extractors == LOGIT_EXTRACTORS:
            return tuple(name for name, spec in EXTRACTORS.items() if spec.logits)
        if self.extractors == FACE_EXTRACTORS:
            return tuple(name for name, spec in EXTRACTORS.items() if spec.face)
        assert isinstance(self.extractors, tuple)
        return self.extractors

    def card_label(self, extractor: str) -> str:
        """The summary card's title: the label, with the feature space when it has several
        (FID on DINOv2 ViT-L/14 is the FD_DINOv2 of Stein et al. 2023)."""
        if len(self.headline) > 1 and extractor in EXTRACTORS:
            return f"{self.label} ({EXTRACTORS[extractor].label})"
        return self.label


_UNIT = (0.0, 1.0)
_POSITIVE = (0.0, math.inf)

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("fid", False, _POSITIVE, "squared feature distance", Producer.EVALUATE,
                   "FID", ANY_EXTRACTOR, headline=("inception", "dinov2-vit-l14", "dlib-face")),
        MetricSpec("fid_infinity", False, (-math.inf, math.inf),
                   "squared feature distance, extrapolated to n → ∞ (may be < 0)",
                   Producer.EVALUATE, "FID∞", ANY_EXTRACTOR),
        MetricSpec("kid", False, (-math.inf, math.inf), "squared MMD (unbiased, may be < 0)",
                   Producer.EVALUATE, "KID", ANY_EXTRACTOR),
        MetricSpec("cmmd", False, _POSITIVE, "squared MMD × 1000 (RBF σ = 10, biased)",
                   Producer.EVALUATE, "CMMD", ANY_EXTRACTOR, headline=("clip-vit-l14-336",)),
        MetricSpec("is", True, (1.0, math.inf), "exp(nats)", Producer.EVALUATE,
                   "Inception Score", LOGIT_EXTRACTORS),
        MetricSpec("is_infinity", True, (-math.inf, math.inf),
                   "exp(nats), one chunk, extrapolated to n → ∞", Producer.EVALUATE, "IS∞",
                   LOGIT_EXTRACTORS),
        MetricSpec("precision", True, _UNIT, "fraction", Producer.EVALUATE, "Precision",
                   ANY_EXTRACTOR, headline=("dlib-face",)),
        MetricSpec("recall", True, _UNIT, "fraction", Producer.EVALUATE, "Recall",
                   ANY_EXTRACTOR, headline=("dlib-face",)),
        MetricSpec("density", True, _POSITIVE, "mean balls per sample / k", Producer.EVALUATE,
                   "Density", ANY_EXTRACTOR),
        MetricSpec("coverage", True, _UNIT, "fraction", Producer.EVALUATE, "Coverage",
                   ANY_EXTRACTOR),
        MetricSpec("copy_rate", False, _UNIT, "fraction", Producer.EVALUATE, "Copy rate",
                   FACE_EXTRACTORS),
        MetricSpec("copy_rate_calibrated", False, _UNIT, "fraction", Producer.EVALUATE,
                   "Copy rate (calibrated threshold)", FACE_EXTRACTORS),
        MetricSpec("leakage_rate", False, _UNIT, "fraction", Producer.RECOGNITION,
                   "Identity leakage", ("dlib-face",), headline=("dlib-face",)),
        MetricSpec("leakage_rate_calibrated", False, _UNIT, "fraction", Producer.RECOGNITION,
                   "Identity leakage (calibrated threshold)", ("dlib-face",)),
        MetricSpec("identity_diversity", True, _POSITIVE, "identities", Producer.RECOGNITION,
                   "Distinct identities", ("dlib-face",), headline=("dlib-face",)),
        MetricSpec("identity_diversity_calibrated", True, _POSITIVE, "identities",
                   Producer.RECOGNITION, "Distinct identities (calibrated threshold)",
                   ("dlib-face",)),
        MetricSpec("vendi_identities", True, (1.0, math.inf), "effective identities (Vendi, "
                   "RBF σ = 0.3)", Producer.RECOGNITION, "Vendi identities", ("dlib-face",)),
        MetricSpec("authenticity", True, _UNIT, "fraction", Producer.RECOGNITION,
                   "Authenticity", ("dlib-face",)),
        MetricSpec("faceness", True, _UNIT, "fraction", Producer.RECOGNITION, "Faceness",
                   ("dlib-hog", "skimage-lbp")),
        MetricSpec("dodging_success", False, _UNIT, "fraction", Producer.ATTACK,
                   "Dodging success", ("dlib-face",), headline=("dlib-face",)),
        MetricSpec("discriminator_fooled", False, _UNIT, "fraction", Producer.ATTACK,
                   "Discriminator fooled", ("discriminator",)),
        MetricSpec("corruption_match_rate", True, _UNIT, "fraction", Producer.ATTACK,
                   "Match rate under corruptions", ("dlib-face",)),
    )
}
"""Every metric name gan-eval reports, in report order."""


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name``; ``KeyError`` naming the known metrics otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def metrics_by(producer: Producer) -> frozenset[str]:
    """Names of the metrics ``producer`` computes."""
    return frozenset(name for name, spec in METRICS.items() if spec.producer is producer)


def headlines() -> list[tuple[str, str, str]]:
    """Summary cards in report order: (metric, extractor, label)."""
    return [(spec.name, extractor, spec.card_label(extractor))
            for spec in METRICS.values() for extractor in spec.headline]
