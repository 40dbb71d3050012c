"""Restoration audit: degrade real faces, restore them with a model, measure what was kept.

The entry point is :func:`audit_restoration` (:mod:`.audit`; ``gan-eval restoration MODEL --data
DATA`` is a thin layer over it). :mod:`.plan` (torch-free) holds the degradation grid and the
built-in methods' names; :mod:`.degradations` degrades faces (seeded per image);
:mod:`.baselines` runs the built-in methods; :mod:`.models` opens MODEL specs (built-ins, native
restoration checkpoints, ``py:``/``file.py:attr``, TorchScript, ONNX) with their contract;
:mod:`.measures` measures restored faces against clean ones; :mod:`.summary` turns per-face
values into intervals and catalogue metrics. Names are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "RestorationConfig": "audit", "RestorationRun": "audit", "audit_restoration": "audit",
    "Condition": "plan", "parse_degradations": "plan", "default_grid": "plan",
    "ModelOptions": "models", "open_restorer": "models",
}

if TYPE_CHECKING:
    from gan_eval.restoration.audit import RestorationConfig, RestorationRun, audit_restoration
    from gan_eval.restoration.models import ModelOptions, open_restorer
    from gan_eval.restoration.plan import Condition, default_grid, parse_degradations


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "Condition",
    "ModelOptions",
    "RestorationConfig",
    "RestorationRun",
    "audit_restoration",
    "default_grid",
    "open_restorer",
    "parse_degradations",
]
