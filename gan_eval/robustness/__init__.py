"""Adversarial and corruption robustness of face GAN outputs, with foolbox doing the attacking.

    from gan_eval.robustness import AttackConfig, attack
    results = attack("runs/lfw", AttackConfig(attacks=("fgsm", "pgd", "cw"),
                                              epsilons=("2/255", "8/255")))

Without ``attacks``, the quick ones run (:data:`~gan_eval.robustness.attacks.DEFAULT_ATTACKS`:
fgsm, pgd); the minimization attacks cw and deepfool take minutes per face set and run only when
named.

- :mod:`.attacks`: registry of attack names → foolbox attack + norm; ε units and rules.
- :mod:`.models`: the dlib recognizer and a checkpoint's discriminator, each wrapped once as a
  foolbox ``PyTorchModel`` with bounds (0, 1); the 2-logit verification view.
- :mod:`.criteria`: ``Dodging`` / ``Impersonation``, foolbox criteria on embeddings.
- :mod:`.sweep`: batched ε sweeps returning foolbox's success; perturbation-size summaries.
- :mod:`.corruptions`: noise, blur, JPEG at five severities; embedding drift.
- :mod:`.audit`: :func:`attack` and :class:`AttackConfig`, the API behind ``gan-eval attack``.

Names are imported on first use, so that the registry (what the CLI lists) loads without torch or
foolbox.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gan_eval.robustness.attacks import (
        ATTACKS,
        DEFAULT_ATTACKS,
        DEFAULT_EPSILONS,
        AttackKind,
        AttackOptions,
        AttackSpec,
        Norm,
        TargetModel,
        parse_epsilon,
        plan_epsilons,
        register_attack,
    )
    from gan_eval.robustness.audit import AttackConfig, attack
    from gan_eval.robustness.corruptions import CORRUPTIONS, embedding_drift
    from gan_eval.robustness.criteria import Dodging, EmbeddingCriterion, Impersonation
    from gan_eval.robustness.models import (
        VerificationModel,
        discriminator_model,
        recognizer_model,
    )

_LAZY = {
    **dict.fromkeys(("ATTACKS", "DEFAULT_ATTACKS", "DEFAULT_EPSILONS", "AttackKind",
                     "AttackOptions", "AttackSpec", "Norm", "TargetModel", "parse_epsilon",
                     "plan_epsilons", "register_attack"),
                    "attacks"),
    "CORRUPTIONS": "corruptions",
    "embedding_drift": "corruptions",
    "attack": "audit",
    "AttackConfig": "audit",
    "Dodging": "criteria",
    "Impersonation": "criteria",
    "EmbeddingCriterion": "criteria",
    "VerificationModel": "models",
    "recognizer_model": "models",
    "discriminator_model": "models",
}

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "DEFAULT_ATTACKS",
    "DEFAULT_EPSILONS",
    "AttackConfig",
    "AttackKind",
    "AttackOptions",
    "AttackSpec",
    "Dodging",
    "EmbeddingCriterion",
    "Impersonation",
    "Norm",
    "TargetModel",
    "VerificationModel",
    "attack",
    "discriminator_model",
    "embedding_drift",
    "parse_epsilon",
    "plan_epsilons",
    "recognizer_model",
    "register_attack",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
