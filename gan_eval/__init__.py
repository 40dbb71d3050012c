"""gan-eval: train DCGANs on face images and audit what they produce.

The Python API mirrors the CLI: :func:`open_source` (any DATA string), :func:`embed_faces` (dlib
face embeddings), :func:`evaluate`, :func:`recognition`, :func:`attack`, :func:`audit_restoration`,
:func:`run_audit`, :func:`train`, :func:`sample`. Every name is imported on first use, so ``import
gan_eval`` is cheap; importing :mod:`gan_eval.features` registers every feature extractor
(gan-eval's registry, the catalogue and torch-fidelity's registry, under the same names).

Layers (imports point down only; ``tests/test_layers.py`` checks it):

1. ground floor — :mod:`~gan_eval.version`, :mod:`~gan_eval.errors`, :mod:`~gan_eval.fileio`,
   :mod:`~gan_eval.seeding`, :mod:`~gan_eval.faces` (the match threshold and its comparison),
   :mod:`~gan_eval.catalogue` (every metric and extractor, with its weights file),
   :mod:`~gan_eval.estimates` (an estimate's interval and what it is of; the gate's two-sample
   test; torch-free),
   :mod:`~gan_eval.results` (the results schema), :mod:`~gan_eval.environment` (what a
   number was computed with: gan-eval commit, torch build, package versions),
   :mod:`~gan_eval.gates` (gate logic), :mod:`~gan_eval.devices`, :mod:`~gan_eval.distributed`,
   :mod:`~gan_eval.weights` (the pretrained weights files: find, fetch, verify) and
   :mod:`~gan_eval.metrics` (pure math);
2. :mod:`~gan_eval.data` — image data → :class:`ImageSource` (uint8 B×3×H×W), source records;
3. :mod:`~gan_eval.features` (extractors, cached extraction) and :mod:`~gan_eval.gan`
   (models, training, checkpoints);
4. :mod:`~gan_eval.generators` — generators as image sources (:mod:`~gan_eval.gan.layout` and
   :mod:`~gan_eval.generators.spec` tell what a path or spec names without torch);
   :mod:`~gan_eval.preflight` — a command's inputs checked before any heavy import;
5. :mod:`~gan_eval.sources` — any DATA string (or an opened source) → :class:`ImageSource`;
6. the analyses :mod:`~gan_eval.evaluation`, :mod:`~gan_eval.identity`,
   :mod:`~gan_eval.robustness` — sources in, :class:`Results` out; none imports another;
   beside them :mod:`~gan_eval.calibration` (``gan-eval calibrate``: interval coverage
   simulated on a DATA's own features);
7. :mod:`~gan_eval.restoration` — the restoration audit of an image-to-image model (degrade
   real faces, restore, measure; reuses identity's verification ROC);
8. :mod:`~gan_eval.report` — rendering: HTML, plots, face tiles, terminal tables, JUnit;
9. :mod:`~gan_eval.audit` — the whole audit (train or reuse, the analyses, gates, report);
10. :mod:`~gan_eval.cli` — parses options, builds a config, calls one API function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gan_eval.version import __version__

_LAZY = {
    "open_source": "gan_eval.sources",
    "ImageSource": "gan_eval.data",
    "GanEvalError": "gan_eval.errors",
    "InputError": "gan_eval.errors",
    "MissingAssetError": "gan_eval.errors",
    "embed_faces": "gan_eval.features",
    "evaluate": "gan_eval.evaluation",
    "EvaluateConfig": "gan_eval.evaluation",
    "recognition": "gan_eval.identity",
    "RecognitionConfig": "gan_eval.identity",
    "attack": "gan_eval.robustness",
    "AttackConfig": "gan_eval.robustness",
    "audit_restoration": "gan_eval.restoration",
    "RestorationConfig": "gan_eval.restoration",
    "run_audit": "gan_eval.audit",
    "AuditConfig": "gan_eval.audit",
    "train": "gan_eval.gan",
    "TrainConfig": "gan_eval.gan",
    "sample": "gan_eval.generators.sample",
    "Results": "gan_eval.results",
}

if TYPE_CHECKING:
    from gan_eval.audit import AuditConfig, run_audit
    from gan_eval.data import ImageSource
    from gan_eval.errors import GanEvalError, InputError, MissingAssetError
    from gan_eval.evaluation import EvaluateConfig, evaluate
    from gan_eval.features import embed_faces
    from gan_eval.gan.training import TrainConfig, train
    from gan_eval.generators.sample import sample
    from gan_eval.identity import RecognitionConfig, recognition
    from gan_eval.restoration import RestorationConfig, audit_restoration
    from gan_eval.results import Results
    from gan_eval.robustness import AttackConfig, attack
    from gan_eval.sources import open_source


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gan_eval' has no attribute {name!r}")


__all__ = [
    "AttackConfig",
    "AuditConfig",
    "EvaluateConfig",
    "GanEvalError",
    "ImageSource",
    "InputError",
    "MissingAssetError",
    "RecognitionConfig",
    "RestorationConfig",
    "Results",
    "TrainConfig",
    "__version__",
    "attack",
    "audit_restoration",
    "embed_faces",
    "evaluate",
    "open_source",
    "recognition",
    "run_audit",
    "sample",
    "train",
]
