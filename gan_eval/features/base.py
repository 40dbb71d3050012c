"""The feature-extractor contract and the one route that registers an extractor.

Each extractor maps uint8 B×3×H×W images to named float feature tensors; ``primary`` names the
one that FID, KID, CMMD and precision/recall use. :func:`register_extractor` is the only way to
register one: it declares the extractor's :class:`~gan_eval.catalogue.ExtractorSpec` in the
catalogue (so gates accept its name and ``gan-eval weights`` knows its weights file), adds the
class to :data:`EXTRACTORS` (``build_extractor``, ``evaluate -e NAME``) and registers it in
torch-fidelity's registry under the same name. :mod:`gan_eval.features.registry` imports every
built-in extractor module and says how to add one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from gan_eval import catalogue
from gan_eval.catalogue import ExtractorSpec
from gan_eval.features import fidelity


class FeatureExtractor(ABC):
    """uint8 B×3×H×W images → {feature name: float32 B×D} on ``device``.

    A subclass is built as ``cls(device, weights_path_or_None, **options)``.
    """

    name: ClassVar[str]
    """Set by :func:`register_extractor` from the spec."""
    spec: ClassVar[ExtractorSpec]
    """Set by :func:`register_extractor`: what the catalogue says of it."""
    primary: ClassVar[str]
    """The feature used for fid, kid, precision/recall, density/coverage."""
    logits: ClassVar[str | None] = None
    """The feature holding class logits for the Inception Score (None: no IS)."""
    features: ClassVar[tuple[str, ...]] = ()
    """Every feature ``__call__`` returns (empty: ``primary`` and ``logits``); what
    torch-fidelity is told it provides."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @abstractmethod
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of uint8 B×3×H×W ``images`` (any device); float32, on ``self.device``."""

    @abstractmethod
    def weights_sha256(self) -> str:
        """sha256 of the weights file, for provenance and cache keys."""

    def settings(self) -> dict[str, Any]:
        """Options that change the features (part of the cache key and the provenance)."""
        return {}

    @classmethod
    def provided_features(cls) -> tuple[str, ...]:
        """:attr:`features`, or ``primary`` (and ``logits``) when it is empty."""
        return cls.features or (cls.primary, *((cls.logits,) if cls.logits else ()))

    @classmethod
    def check_weights(cls, path: Path) -> str:
        """Check that ``path`` holds this extractor's weights the way building it would read them
        (format, safely parsed, exact parameter names and shapes) without building the network;
        return a one-line description of what was found.

        Required when the spec declares a weights file: ``gan-eval weights fetch`` places a file
        without a published sha256 only after this passes, and ``weights verify`` runs it.

        Raises:
            InputError: naming the file and what was expected
                (:func:`gan_eval.features.weights_files.bad_file`).
        """
        raise NotImplementedError(f"{cls.__name__} does not check its weights files")


E = TypeVar("E", bound=type[FeatureExtractor])

EXTRACTORS: dict[str, type[FeatureExtractor]] = {}
"""Every registered extractor class, by name, in the catalogue's order."""


def register_extractor(
    spec: ExtractorSpec, *, fidelity_class: type | None = None
) -> Callable[[E], E]:
    """Register the decorated :class:`FeatureExtractor` subclass as ``spec.name``: in
    :data:`EXTRACTORS`, in the catalogue (:func:`gan_eval.catalogue.declare_extractor`, which
    makes its weights file known to ``gan-eval weights``) and in torch-fidelity's registry.

    Args:
        spec: what the extractor is (label, logits/face flags, packages, weights file). A
            built-in extractor's spec is declared in :mod:`gan_eval.catalogue` (so that torch-free
            commands know it) and passed here as ``catalogue.EXTRACTORS[name]``; any other's may
            be written here.
        fidelity_class: a hand-written torch-fidelity ``FeatureExtractorBase`` subclass to
            register instead of the generic adapter (:func:`gan_eval.features.fidelity.adapter`).

    Raises:
        TypeError: the class is not a FeatureExtractor, has no ``primary``, or declares a weights
            file without overriding :meth:`FeatureExtractor.check_weights`.
        ValueError: the name is taken (here, in the catalogue with another spec, or in
            torch-fidelity by another class), or ``spec.logits`` disagrees with ``logits``.
    """

    def decorate(cls: E) -> E:
        if not (isinstance(cls, type) and issubclass(cls, FeatureExtractor)):
            raise TypeError(f"register_extractor({spec.name!r}) decorates a FeatureExtractor "
                            f"subclass, got {cls!r}")
        if not isinstance(getattr(cls, "primary", None), str):
            raise TypeError(f"{cls.__name__} must name its primary feature")
        if spec.logits != (cls.logits is not None):
            raise ValueError(f"{spec.name}: the spec says logits={spec.logits} but "
                             f"{cls.__name__}.logits is {cls.logits!r}")
        if spec.weights is not None and (
            cls.check_weights.__func__ is FeatureExtractor.check_weights.__func__  # type: ignore[attr-defined]
        ):
            raise TypeError(f"{spec.name} declares the weights file {spec.weights.filename} but "
                            f"{cls.__name__} does not override check_weights")
        if spec.name in EXTRACTORS:
            raise ValueError(f"feature extractor {spec.name!r} is already registered")
        if catalogue.EXTRACTORS.get(spec.name, spec) != spec:
            raise ValueError(f"feature extractor {spec.name!r} is declared differently in the "
                             "catalogue")
        cls.name = spec.name
        cls.spec = spec
        fidelity.register(spec.name, fidelity_class or fidelity.adapter(spec.name, cls))
        catalogue.declare_extractor(spec)
        EXTRACTORS[spec.name] = cls
        ordered = {n: EXTRACTORS[n] for n in catalogue.EXTRACTORS if n in EXTRACTORS}
        EXTRACTORS.clear()  # in the catalogue's (report) order, whatever the import order
        EXTRACTORS.update(ordered)
        return cls

    return decorate
