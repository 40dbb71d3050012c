"""gan-eval: train DCGANs on face images and audit what they produce."""

from gan_eval.data import ImageSource, open_source
from gan_eval.errors import GanEvalError, InputError, MissingAssetError

__version__ = "0.1.0"

__all__ = [
    "GanEvalError",
    "ImageSource",
    "InputError",
    "MissingAssetError",
    "__version__",
    "open_source",
]
