"""The metric catalogue: every number gan-eval reports, with what a reader and a gate need to know.

One table (:data:`METRICS`) says, for each metric name, which direction is better, the range it
can take (intervals are clipped to it), its unit, which step of an audit produces it, the label
of its summary card, and which extractors it can be computed on. The results schema
(:mod:`gan_eval.results`), the gates (:mod:`gan_eval.gates`, which refuse unknown names when the
config is loaded), the HTML report's summary cards and the CLI help all read it; nothing else
lists metric names. In the style of torchmetrics' ``higher_is_better`` / ``plot_lower_bound``
attributes and stylegan2-ada's metric registry.

:data:`EXTRACTORS` is the matching table of feature spaces (name, label, whether it gives class
logits for the Inception Score, whether it embeds faces, the packages and the pretrained weights
file it needs: :class:`WeightsFile`, where it comes from and how it is checked). The built-in
ones are declared here, so that ``gan-eval gate`` and ``gan-eval weights`` know them without
torch; the networks themselves are registered with
:func:`gan_eval.features.base.register_extractor`, which declares a new spec here too (one
registration route: see :mod:`gan_eval.features.registry`).

This module imports nothing heavy (no torch), so that ``gan-eval gate RESULTS.json`` can validate
a config without loading a network.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass
from enum import StrEnum


class Producer(StrEnum):
    """The step of an audit that computes a metric (``gan-eval gate CKPT`` runs only those
    needed by its gates)."""

    EVALUATE = "evaluate"
    RECOGNITION = "recognition"
    ATTACK = "attack"
    RESTORATION = "restoration"  # gan-eval restoration MODEL: a restoration model, not a GAN


@dataclass(frozen=True)
class WeightsFile:
    """A pretrained weights file an extractor needs, as its publisher distributes it.

    Attributes:
        name: the extractor's name (also ``gan-eval weights fetch NAME``).
        filename: the official file name (also the name in gan-eval's weights cache).
        url: the official download URL.
        description: what network it is (messages and ``weights list``).
        approx_size: human-readable size (no exact byte count is published for any of them).
        license: licence note.
        kind: file format, which says how it is read: ``"state_dict"`` (``torch.save`` of a dict
            of tensors, read with ``weights_only=True``) or ``"torchscript"`` (a TorchScript
            archive, whose tensors are read without running its code).
        sha256: the full hex sha256 where the publisher states it, else None.
        sha256_prefix: a published leading part of the sha256 (torch hub file-name
            convention), else None.
        hash_source: where the hash comes from, or that none is published.
        upstream_names: file names the upstream loaders give the same bytes in their caches
            (searched in torch hub's ``checkpoints`` folder; for TorchScript also
            ``~/.cache/clip``).
    """

    name: str
    filename: str
    url: str
    description: str
    approx_size: str
    license: str
    kind: str = "state_dict"
    sha256: str | None = None
    sha256_prefix: str | None = None
    hash_source: str = ("not published; `gan-eval weights fetch` checks the file's content and "
                        "records the sha256 it downloaded")
    upstream_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in WEIGHTS_KINDS:
            raise ValueError(f"weights file {self.name!r}: kind must be one of "
                             f"{', '.join(WEIGHTS_KINDS)}, got {self.kind!r}")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ValueError(f"weights file {self.name!r}: sha256 must be 64 lower-case hex "
                             f"digits, got {self.sha256!r}")

    @property
    def env(self) -> str:
        """The environment variable naming this one file (``GAN_EVAL_<NAME>_WEIGHTS``)."""
        return "GAN_EVAL_" + re.sub(r"[^A-Z0-9]", "_", self.name.upper()) + "_WEIGHTS"

    @property
    def published_hash(self) -> str:
        """The published sha256 (or ``prefix…``), or ``"not published"``."""
        if self.sha256:
            return self.sha256
        if self.sha256_prefix:
            return f"{self.sha256_prefix}… (prefix only)"
        return "not published"

    @property
    def expected(self) -> str:
        """What a file given for it must be, in words (the end of every message about a bad
        file): its official name, network and format."""
        return f"{self.filename} ({self.description}; {WEIGHTS_KINDS[self.kind]})"


WEIGHTS_KINDS: dict[str, str] = {
    "state_dict": "a torch state dict, read with weights_only=True",
    "torchscript": "a TorchScript archive, whose tensors are read without running its code",
}
"""The file formats a :class:`WeightsFile` can have, with what each means."""


@dataclass(frozen=True)
class ExtractorSpec:
    """A feature space: its registry name, a reader's label, what it can feed, and what it needs
    to be built (packages beyond the base install, a weights file).

    An extractor is registered by handing its spec to
    :func:`gan_eval.features.base.register_extractor` (see :mod:`gan_eval.features.registry`);
    that one call declares it here, in torch-fidelity's registry and in ``gan-eval weights``.
    """

    name: str
    label: str
    logits: bool = False
    """Gives class logits, so the Inception Score can be computed on it."""
    face: bool = False
    """Embeds faces (identity space): copy_rate and the identity metrics are computed on it."""
    match_threshold: float | None = None
    """A face network's published same-person distance (Euclidean between its embeddings: same
    person when ≤ this); None where its authors publish none: gan-eval then calibrates one on the
    reference's impostor pairs (``gan-eval recognition``, ``restoration``) or leaves the number
    that needs it out (``evaluate``'s copy_rate)."""
    weights: WeightsFile | None = None
    """The pretrained file it needs when no package ships it (``gan-eval weights`` lists,
    fetches and verifies it); None: its weights come with a package."""
    packages: tuple[str, ...] = ()
    """Modules (import names) it needs beyond the base install."""
    extra: str | None = None
    """The pip extra of gan-eval that installs :attr:`packages`."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", self.name):
            raise ValueError(f"extractor name {self.name!r}: expected lower-case letters, digits, "
                             "'-' and '.'")
        if self.weights is not None and self.weights.name != self.name:
            raise ValueError(f"extractor {self.name!r} declares the weights file of "
                             f"{self.weights.name!r}")
        if self.match_threshold is not None and not self.face:
            raise ValueError(f"extractor {self.name!r}: a match threshold on a non-face space")
        if self.packages and not self.extra:
            raise ValueError(f"extractor {self.name!r} needs {self.packages} but names no extra")

    def missing_packages(self) -> tuple[str, ...]:
        """The :attr:`packages` that cannot be imported here (found without importing them)."""
        return tuple(p for p in self.packages if importlib.util.find_spec(p) is None)

    def install_hint(self) -> str:
        """``"pip install 'gan-eval[EXTRA]'"`` (empty when it needs no extra)."""
        return f"pip install 'gan-eval[{self.extra}]'" if self.extra else ""


EXTRACTORS: dict[str, ExtractorSpec] = {}
"""Feature spaces gan-eval computes distribution metrics on, in report order: the built-in ones
below, then any registered at run time (:func:`declare_extractor`)."""


def declare_extractor(spec: ExtractorSpec) -> ExtractorSpec:
    """Add ``spec`` to :data:`EXTRACTORS` (a second declaration of an equal spec is a no-op).

    Called by :func:`gan_eval.features.base.register_extractor`, the one registration route; the
    built-in specs are declared here at import so that the catalogue, the gates and
    ``gan-eval weights`` know them without importing torch.

    Raises:
        ValueError: another spec is already declared under ``spec.name``.
    """
    current = EXTRACTORS.get(spec.name)
    if current is not None and current != spec:
        raise ValueError(f"feature extractor {spec.name!r} is already declared differently")
    EXTRACTORS[spec.name] = spec
    return spec


_CLIP_BASE = "https://openaipublic.azureedge.net/clip/models"
_CLIP_LICENSE = (
    "MIT (openai/CLIP repository licence); OpenAI's model card limits intended use to research"
)
_CLIP_HASH = ("full sha256 in OpenAI's URL (openai/CLIP clip.py checks it; the same values are in "
              "torch-fidelity's feature_extractor_clip.MODEL_METADATA)")
_DINOV2_BASE = "https://dl.fbaipublicfiles.com/dinov2"
_DINOV2_LICENSE = "Apache-2.0 (facebookresearch/dinov2, weights relicensed 2023-08)"
INCEPTION_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
ALEXNET_FILENAME = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet_Weights.IMAGENET1K_V1


def _dinov2(name: str, arch: str, label: str, size: str, desc: str) -> ExtractorSpec:
    filename = f"dinov2_{arch}_pretrain.pth"
    return ExtractorSpec(name, label, weights=WeightsFile(
        name=name, filename=filename, url=f"{_DINOV2_BASE}/dinov2_{arch}/{filename}",
        description=desc, approx_size=size, license=_DINOV2_LICENSE,
        hash_source="not published by Meta (the dinov2 hub config loads it unchecked); fetch "
                    "checks its content and records the sha256 it downloaded",
        upstream_names=(filename,),
    ), packages=("timm",), extra="feature-spaces")


def _clip(name: str, stem: str, label: str, sha: str, size: str, desc: str) -> ExtractorSpec:
    tf_name = {"clip-vit-b32": "clip-vit-b-32", "clip-vit-l14": "clip-vit-l-14",
               "clip-vit-l14-336": "clip-vit-l-14-336px"}[name]
    return ExtractorSpec(name, label, weights=WeightsFile(
        name=name, filename=f"{stem}.pt", url=f"{_CLIP_BASE}/{sha}/{stem}.pt", description=desc,
        approx_size=size, license=_CLIP_LICENSE, kind="torchscript", sha256=sha,
        hash_source=_CLIP_HASH, upstream_names=(f"{tf_name}-{sha}.pt", f"{stem}.pt"),
    ), packages=("timm",), extra="feature-spaces")


for _spec in (
    ExtractorSpec("dlib-face", "face embeddings", face=True, match_threshold=0.6),
    ExtractorSpec("facenet-vggface2", "FaceNet (VGGFace2)", face=True, weights=WeightsFile(
        name="facenet-vggface2", filename="20180402-114759-vggface2.pt",
        url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
            "20180402-114759-vggface2.pt",
        description="FaceNet Inception-ResNet-v1 trained on VGGFace2 (512-D face embeddings; "
                    "David Sandberg's model 20180402-114759, converted by facenet-pytorch)",
        approx_size="~107 MiB",
        license="MIT (facenet-pytorch and davidsandberg/facenet code); trained on VGGFace2, "
                "whose images are for non-commercial research",
        hash_source="none published: fetch checks its content (names, shapes) and records the "
                    "sha256 it downloaded",
        upstream_names=("20180402-114759-vggface2.pt",),
    )),
    ExtractorSpec("inception", "Inception", logits=True, weights=WeightsFile(
        name="inception", filename=INCEPTION_FILENAME,
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
            + INCEPTION_FILENAME,
        description="torch-fidelity's InceptionV3 (standard FID/IS/KID)", approx_size="~91 MiB",
        license="Apache-2.0 (TensorFlow inception-2015-12-05 graph, converted by "
                "torch-fidelity)",
        sha256_prefix="6726825d",
        hash_source="first 8 hex digits of the sha256 in the file name (torch hub convention; "
                    "torch-fidelity does not check it); no full hash published: fetch checks "
                    "its content and records the sha256 it downloaded",
        upstream_names=(INCEPTION_FILENAME,),
    )),
    _dinov2("dinov2-vit-s14", "vits14", "DINOv2 ViT-S/14", "~84 MiB",
            "DINOv2 ViT-S/14, 21 M parameters"),
    _dinov2("dinov2-vit-b14", "vitb14", "DINOv2 ViT-B/14", "~330 MiB",
            "DINOv2 ViT-B/14, 86 M parameters"),
    _dinov2("dinov2-vit-l14", "vitl14", "DINOv2 ViT-L/14", "~1.1 GiB",
            "DINOv2 ViT-L/14, 304 M parameters; FD_DINOv2's network"),
    _dinov2("dinov2-vit-g14", "vitg14", "DINOv2 ViT-g/14", "~4.2 GiB",
            "DINOv2 ViT-g/14, 1.1 B parameters"),
    _clip("clip-vit-b32", "ViT-B-32", "CLIP ViT-B/32",
          "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "~338 MiB",
          "OpenAI CLIP ViT-B/32, fp16"),
    _clip("clip-vit-l14", "ViT-L-14", "CLIP ViT-L/14",
          "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "~890 MiB",
          "OpenAI CLIP ViT-L/14, fp16"),
    _clip("clip-vit-l14-336", "ViT-L-14-336px", "CLIP ViT-L/14@336",
          "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "~891 MiB",
          "OpenAI CLIP ViT-L/14@336px, fp16; CMMD's network"),
    ExtractorSpec("lpips-alex", "LPIPS AlexNet", weights=WeightsFile(
        name="lpips-alex", filename=ALEXNET_FILENAME,
        url="https://download.pytorch.org/models/" + ALEXNET_FILENAME,
        description="torchvision's ImageNet AlexNet (IMAGENET1K_V1), LPIPS's trunk (its linear "
                    "heads ship in the lpips package)",
        approx_size="~233 MiB", license="BSD-3-Clause (torchvision)", sha256_prefix="7be5be79",
        hash_source="first 8 hex digits of the sha256 in the file name (torchvision's naming; "
                    "torch.hub checks the prefix when it downloads); fetch checks its content "
                    "and records the sha256 it downloaded",
        upstream_names=(ALEXNET_FILENAME,),
    )),
):
    declare_extractor(_spec)
del _spec


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
                   "Identity leakage", FACE_EXTRACTORS, headline=("dlib-face",)),
        MetricSpec("leakage_rate_calibrated", False, _UNIT, "fraction", Producer.RECOGNITION,
                   "Identity leakage (calibrated threshold)", FACE_EXTRACTORS),
        MetricSpec("identity_diversity", True, _POSITIVE, "identities", Producer.RECOGNITION,
                   "Distinct identities", FACE_EXTRACTORS, headline=("dlib-face",)),
        MetricSpec("identity_diversity_calibrated", True, _POSITIVE, "identities",
                   Producer.RECOGNITION, "Distinct identities (calibrated threshold)",
                   FACE_EXTRACTORS),
        MetricSpec("vendi_identities", True, (1.0, math.inf), "effective identities (Vendi, "
                   "RBF σ = half the match distance)", Producer.RECOGNITION, "Vendi identities",
                   FACE_EXTRACTORS),
        MetricSpec("authenticity", True, _UNIT, "fraction", Producer.RECOGNITION,
                   "Authenticity", FACE_EXTRACTORS),
        MetricSpec("faceness", True, _UNIT, "fraction", Producer.RECOGNITION, "Faceness",
                   ("dlib-hog", "skimage-lbp")),
        MetricSpec("dodging_success", False, _UNIT, "fraction", Producer.ATTACK,
                   "Dodging success", ("dlib-face",), headline=("dlib-face",)),
        MetricSpec("discriminator_fooled", False, _UNIT, "fraction", Producer.ATTACK,
                   "Discriminator fooled", ("discriminator",)),
        MetricSpec("corruption_match_rate", True, _UNIT, "fraction", Producer.ATTACK,
                   "Match rate under corruptions", ("dlib-face",)),
        # restoration: restored vs clean faces, mean over faces and the model's degradations
        MetricSpec("psnr", True, (0.0, 100.0), "dB (scikit-image; identical images: 100)",
                   Producer.RESTORATION, "PSNR", ("pixels",), headline=("pixels",)),
        MetricSpec("ssim", True, (-1.0, 1.0), "mean SSIM (scikit-image defaults)",
                   Producer.RESTORATION, "SSIM", ("pixels",)),
        MetricSpec("lpips", False, _POSITIVE, "LPIPS v0.1 distance", Producer.RESTORATION,
                   "LPIPS", ("lpips-alex",)),
        MetricSpec("identity_distance", False, _POSITIVE,
                   "face-embedding distance, restored ↔ clean", Producer.RESTORATION,
                   "Identity distance", FACE_EXTRACTORS),
        MetricSpec("identity_kept_rate", True, _UNIT, "fraction within the calibrated "
                   "same-person threshold of the clean face", Producer.RESTORATION,
                   "Identity kept", FACE_EXTRACTORS),
        MetricSpec("identity_swap_rate", False, _UNIT, "fraction closer to another person than "
                   "to the clean face", Producer.RESTORATION, "Identity swap rate",
                   FACE_EXTRACTORS, headline=("dlib-face",)),
        MetricSpec("landmark_distance", False, _POSITIVE, "pixels (mean over dlib's 5 "
                   "landmarks)", Producer.RESTORATION, "Landmark distance", ("dlib-shape-5",)),
        MetricSpec("verification_tar", True, _UNIT, "true-accept rate at FAR 1% (restored "
                   "probes vs clean gallery)", Producer.RESTORATION, "TAR@FAR=1%",
                   FACE_EXTRACTORS),
        MetricSpec("restoration_fid", False, _POSITIVE, "squared feature distance, restored "
                   "vs clean set", Producer.RESTORATION, "FID (restored vs clean)",
                   ANY_EXTRACTOR),
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
