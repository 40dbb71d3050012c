"""Reading images: every DATA string becomes an :class:`ImageSource` of uint8 B×3×H×W batches."""

from gan_eval.data.convert import RESIZE_FILTER, check_image_batch, resize_uint8
from gan_eval.data.open import DATA_HELP, inspect_source, open_source
from gan_eval.data.source import ArraySource, ImageSource, Problem, SourceInfo

__all__ = [
    "DATA_HELP",
    "RESIZE_FILTER",
    "ArraySource",
    "ImageSource",
    "Problem",
    "SourceInfo",
    "check_image_batch",
    "inspect_source",
    "open_source",
    "resize_uint8",
]
