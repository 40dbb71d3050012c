"""gan-eval's extractors in torch-fidelity's registry, so that torch-fidelity's own metric code
(``torch_fidelity.calculate_metrics(feature_extractor=NAME, ...)``) runs on them.

:func:`gan_eval.features.base.register_extractor` calls :func:`register` for every extractor,
with a hand-written ``FeatureExtractorBase`` subclass where one exists (``dlib-face``,
``inception``) and otherwise the generic :func:`adapter`, which builds the gan-eval extractor
from ``feature_extractor_weights_path`` and returns the features torch-fidelity asks for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from gan_eval.errors import InputError

#: torch-fidelity's metrics and the gan-eval feature they default to.
_PRIMARY_METRICS = ("fid", "kid", "prc")


def register(name: str, cls: type) -> None:
    """Register ``cls`` in torch-fidelity as ``name`` (idempotent for the same class, or one of
    the same module and qualified name after a reload).

    Raises:
        ValueError: torch-fidelity already has a different extractor under ``name``.
    """
    current = FEATURE_EXTRACTORS_REGISTRY.get(name)
    if current is cls:
        return
    if current is not None:
        if (current.__module__, current.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"torch-fidelity already has a different feature extractor named "
                             f"{name!r}: {current!r}")
        FEATURE_EXTRACTORS_REGISTRY[name] = cls
        return
    register_feature_extractor(name, cls)


def adapter(name: str, extractor_cls: Any) -> type[FeatureExtractorBase]:
    """A torch-fidelity ``FeatureExtractorBase`` subclass running ``extractor_cls`` (a
    :class:`gan_eval.features.base.FeatureExtractor` subclass).

    Its features are ``extractor_cls.provided_features()``; fid/kid/prc default to ``primary``
    and isc to ``logits`` (refused when there are none). The extractor is built on the CPU with
    ``feature_extractor_weights_path`` (else found as gan-eval finds it; never downloaded); its
    networks are submodules, so torch-fidelity's ``.cuda()`` moves them, and each call runs on
    the device they are on.
    """
    provided = tuple(extractor_cls.provided_features())
    primary, logits = extractor_cls.primary, extractor_cls.logits

    def __init__(self: Any, name_: str, features_list: list[str],
                 feature_extractor_weights_path: str | None = None, **kwargs: Any) -> None:
        FeatureExtractorBase.__init__(self, name_, features_list)
        weights = Path(feature_extractor_weights_path) if feature_extractor_weights_path else None
        self.extractor = extractor_cls(torch.device("cpu"), weights)
        self.networks = nn.ModuleList(
            [v for v in vars(self.extractor).values() if isinstance(v, nn.Module)])

    def get_default_feature_layer_for_metric(metric: str) -> str:
        if metric in _PRIMARY_METRICS:
            return str(primary)
        if metric == "isc" and logits:
            return str(logits)
        raise InputError(f"feature extractor {name!r} does not define metric {metric!r} (it "
                         f"gives {', '.join(provided)}; fid, kid, prc"
                         f"{', isc' if logits else ''} are defined on it)")

    def forward(self: Any, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        parameter = next(iter(self.networks.parameters()), None)
        self.extractor.device = parameter.device if parameter is not None else torch.device("cpu")
        out = self.extractor(images)
        return tuple(out[feature] for feature in self.features_list)

    qualname = f"FidelityAdapter[{name}]"
    return type(qualname, (FeatureExtractorBase,), {
        "__init__": __init__,
        "__module__": __name__,
        "__qualname__": qualname,
        "__doc__": f"torch-fidelity feature extractor {name!r}: gan-eval's {name} extractor.",
        "get_provided_features_list": staticmethod(lambda: provided),
        "get_default_feature_layer_for_metric": staticmethod(
            get_default_feature_layer_for_metric),
        "can_be_compiled": staticmethod(lambda: False),
        "get_dummy_input_for_compile": staticmethod(
            lambda: torch.zeros(1, 3, 8, 8, dtype=torch.uint8)),
        "forward": forward,
    })
