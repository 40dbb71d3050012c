"""Reading images: image data (folders, zips, arrays, built-ins) as an :class:`ImageSource` of
uint8 B×3×H×W batches. Generators are one layer up (:mod:`gan_eval.generators`), and
:func:`gan_eval.sources.open_source` opens any DATA string. :mod:`gan_eval.data.degrade` degrades
such batches (blur, downsampling, noise, JPEG) for restoration training and audits."""

from gan_eval.data.convert import RESIZE_FILTER, check_image_batch, resize_uint8
from gan_eval.data.open import IMAGES_HELP, inspect_images, open_images
from gan_eval.data.source import ArraySource, ImageSource, Problem, SourceInfo

__all__ = [
    "IMAGES_HELP",
    "RESIZE_FILTER",
    "ArraySource",
    "ImageSource",
    "Problem",
    "SourceInfo",
    "check_image_batch",
    "inspect_images",
    "open_images",
    "resize_uint8",
]
