"""gan-eval: train DCGANs on face images and audit what they produce.

The Python API mirrors the CLI: :func:`open_source` (any DATA string), :func:`embed_faces`
(dlib face embeddings), :func:`evaluate`, :func:`recognition`, :func:`attack`, :func:`train`,
:func:`sample`. Importing the package registers the ``dlib-face`` feature extractor in
torch-fidelity; the other modules are imported on first use.
"""

from typing import TYPE_CHECKING, Any

from gan_eval.data import ImageSource, open_source
from gan_eval.errors import GanEvalError, InputError, MissingAssetError
from gan_eval.features import embed_faces  # also registers "dlib-face" in torch-fidelity

__version__ = "0.1.0"

_LAZY = {
    "evaluate": "gan_eval.evaluate",
    "EvaluateConfig": "gan_eval.evaluate",
    "recognition": "gan_eval.recognition",
    "attack": "gan_eval.robustness",
    "train": "gan_eval.gan",
    "TrainConfig": "gan_eval.gan",
    "sample": "gan_eval.gan",
    "Results": "gan_eval.report.results",
}

if TYPE_CHECKING:
    from gan_eval.evaluate import EvaluateConfig, evaluate
    from gan_eval.gan.sample import sample
    from gan_eval.gan.train import TrainConfig, train
    from gan_eval.recognition import recognition
    from gan_eval.report.results import Results
    from gan_eval.robustness import attack


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'gan_eval' has no attribute {name!r}")


__all__ = [
    "EvaluateConfig",
    "GanEvalError",
    "ImageSource",
    "InputError",
    "MissingAssetError",
    "Results",
    "TrainConfig",
    "__version__",
    "attack",
    "embed_faces",
    "evaluate",
    "open_source",
    "recognition",
    "sample",
    "train",
]
