"""Every feature extractor gan-eval has, by name, and how to add one.

Importing this module imports each extractor module, and each registers its extractor(s) with
:func:`~gan_eval.features.base.register_extractor` when imported: ``dlib-face``
(:mod:`.dlib_extractor`), ``facenet-vggface2`` (:mod:`.facenet`), ``inception``
(:mod:`.inception`), ``dinov2-vit-{s,b,l,g}14``
(:mod:`.dinov2`) and ``clip-vit-b32`` / ``clip-vit-l14`` / ``clip-vit-l14-336`` (:mod:`.clip`).
:func:`build_extractor` builds one by name.

Adding an extractor: one registration
-------------------------------------
``register_extractor(spec)`` on a :class:`~gan_eval.features.base.FeatureExtractor` subclass is
the only registration. The spec (:class:`gan_eval.catalogue.ExtractorSpec`) carries everything
the rest of gan-eval needs: the label, ``logits`` (Inception Score) and ``face`` (copy_rate)
flags, the packages it needs beyond the base install with the pip extra that installs them, and
its pretrained weights file (:class:`gan_eval.catalogue.WeightsFile`: official name, URL, hash,
format, licence). From that one call:

- ``gan-eval evaluate -e NAME`` / ``build_extractor(NAME)`` build it (:data:`EXTRACTORS`);
- the catalogue lists it, so gates accept ``extractor = "NAME"`` and metrics on any extractor
  are allowed on it (:data:`gan_eval.catalogue.EXTRACTORS`);
- ``torch_fidelity.calculate_metrics(feature_extractor="NAME")`` runs it (a generic adapter,
  :mod:`.fidelity`, unless a hand-written torch-fidelity class is given);
- ``gan-eval weights list / fetch / verify NAME`` know its file, and ``--weights NAME=PATH`` and
  ``$GAN_EVAL_<NAME>_WEIGHTS`` hand it one; fetch and verify check the file's content with the
  class's ``check_weights`` (:func:`weights_check`).

A built-in extractor's spec is written in :mod:`gan_eval.catalogue` (torch-free, so that
``gan-eval gate`` and ``gan-eval weights list`` know it without importing torch) and its class
is decorated with ``register_extractor(catalogue.EXTRACTORS[NAME])`` in its own module, imported
below. Code outside gan-eval may write the spec inline in the decorator. For example, a FaceNet
face recognizer (facenet-pytorch's InceptionResnetV1, VGGFace2, a plain state dict):

1. in ``gan_eval/catalogue.py``'s built-in list::

       ExtractorSpec("facenet-vggface2", "FaceNet (VGGFace2)", face=True, weights=WeightsFile(
           name="facenet-vggface2", filename="20180402-114759-vggface2.pt",
           url="https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/"
               "20180402-114759-vggface2.pt",
           description="FaceNet InceptionResnetV1 trained on VGGFace2", approx_size="~107 MiB",
           license="MIT (facenet-pytorch)", kind="state_dict"))

2. in ``gan_eval/features/facenet.py``::

       @register_extractor(catalogue.EXTRACTORS["facenet-vggface2"])
       class FacenetExtractor(FeatureExtractor):
           primary = "embedding"

           def __init__(self, device, weights=None):
               super().__init__(device)
               entry = weights_table.known(self.name)
               path = weights_table.resolve(self.name, weights)   # --weights / env / caches
               data = read_file_bytes(path, entry)                 # weights_files: safe reads
               state = read_state_dict(data, path, entry)
               check_shapes(state, FACENET_SHAPES, path, entry)
               ...

           @classmethod
           def check_weights(cls, path):                          # fetch/verify run this
               entry = weights_table.known(cls.name)
               check_shapes(read_state_dict(path, path, entry), FACENET_SHAPES, path, entry)
               return "FaceNet InceptionResnetV1 state dict"

3. import the module in the list below.

An LPIPS backbone (torchvision's AlexNet/VGG ImageNet weights, whose file names carry a sha256
prefix) is added the same way: an ``ExtractorSpec`` whose ``WeightsFile`` has
``sha256_prefix=`` and the torchvision URL, and a class whose ``check_weights`` compares the
state dict with torchvision's architecture built on the meta device (as
:func:`gan_eval.features.inception_weights.inception_state_shapes` does for Inception).

The CLI's ``--extractor`` choices are the catalogue's names; a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from gan_eval import weights as weights_table
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features import (  # noqa: F401  (each registers itself)
    clip,
    dinov2,
    facenet,
    inception,
    lpips_alex,
)
from gan_eval.features.base import EXTRACTORS, FeatureExtractor, register_extractor
from gan_eval.features.dlib_extractor import DlibFaceExtractor
from gan_eval.features.inception import InceptionExtractor
from gan_eval.weights import ContentCheck

__all__ = ["EXTRACTORS", "DlibFaceExtractor", "FeatureExtractor", "InceptionExtractor",
           "build_extractor", "register_extractor", "weights_check", "weights_for"]


def build_extractor(
    name: str, *, device: str | torch.device | None = None, weights: Path | None = None,
    **options: Any,
) -> FeatureExtractor:
    """Build the extractor ``name`` on ``device`` (default: CUDA when available, else CPU).

    Raises:
        InputError: ``name`` is not registered, or ``weights`` is not its file.
        MissingAssetError: a package it needs is not installed (the message names the pip
            extra, and the weights file too when that is missing as well), or its weights file
            is not found.
    """
    if name not in EXTRACTORS:
        raise InputError(
            f"--extractor: unknown feature extractor {name!r}; registered: {', '.join(EXTRACTORS)}"
        )
    spec = EXTRACTORS[name].spec
    if missing := spec.missing_packages():
        message = (f"{name} needs {', '.join(missing)}, which this install lacks: "
                   f"{spec.install_hint()}.")
        if spec.weights is not None and not weights_table.locate(name, weights).found:
            message += " " + weights_table.missing_message(name)
        raise MissingAssetError(message)
    factory: Callable[..., FeatureExtractor] = EXTRACTORS[name]  # cls(device, weights, **options)
    return factory(resolve_device(device), weights, **options)


def weights_check(name: str) -> ContentCheck | None:
    """The content check of extractor ``name``'s weights file (its class's ``check_weights``),
    or None when it declares no weights file; what ``gan-eval weights fetch`` and ``verify``
    hand to :func:`gan_eval.weights.fetch` / :func:`~gan_eval.weights.verify_one`."""
    cls = EXTRACTORS.get(name)
    if cls is None or cls.spec.weights is None:
        return None
    return cls.check_weights


def weights_for(name: str, weights: Mapping[str, Path] | tuple[tuple[str, Path], ...],
                inception_weights: Path | None = None) -> Path | None:
    """The weights file the user gave for extractor ``name``: ``--weights NAME=PATH``, or for
    ``inception`` also ``--inception-weights`` (both given and different: InputError)."""
    given = dict(weights)
    path = given.get(name)
    if name == "inception" and inception_weights is not None:
        if path is not None and Path(path) != Path(inception_weights):
            raise InputError(f"--weights inception={path} and --inception-weights "
                             f"{inception_weights} name different files; give one")
        path = path or inception_weights
    return path

