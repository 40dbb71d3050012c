"""A toy feature extractor registered through the one route (``register_extractor``), with a small
weights file of its own, for the tests of registration and of ``gan-eval weights``.

Its network is a fixed 3→4 projection of each image's mean colour (``proj.weight`` 4×3,
``proj.bias`` 4): real enough to give features that differ between images, small enough that a
weights file is ~1.5 KB. :func:`registered` registers it and, on exit, removes it again from every
registry it entered (gan-eval's, the catalogue, torch-fidelity's), so other tests see the
built-in set only.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.catalogue import ExtractorSpec, WeightsFile
from gan_eval.features.base import EXTRACTORS, FeatureExtractor, register_extractor
from gan_eval.features.weights_files import check_shapes, read_file_bytes, read_state_dict
from gan_eval.fileio import sha256_file

TOY = "toy-mean"
SHAPES = {"proj.weight": (4, 3), "proj.bias": (4,)}


def spec(name: str = TOY, *, sha256: str | None = None, face: bool = False) -> ExtractorSpec:
    """The toy's declaration: a weights file with no published hash unless ``sha256``."""
    return ExtractorSpec(name, "toy mean colour", face=face, weights=WeightsFile(
        name=name, filename=f"{name}-weights.pth", url=f"https://weights.invalid/{name}-weights.pth",
        description="a toy 3→4 projection of mean colours", approx_size="~1.5 KiB",
        license="CC0 (test fixture)", sha256=sha256))


def state(seed: int = 0, shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=gen) for k, s in (shapes or SHAPES).items()}


def file_bytes(seed: int = 0, shapes: dict[str, tuple[int, ...]] | None = None) -> bytes:
    """A ``torch.save`` file of :func:`state`."""
    buffer = io.BytesIO()
    torch.save(state(seed, shapes), buffer)
    return buffer.getvalue()


def make_class() -> type[FeatureExtractor]:
    """A fresh toy class (the decorator names the class it registers)."""

    class ToyExtractor(FeatureExtractor):
        primary: ClassVar[str] = "mean"

        def __init__(self, device: torch.device, weights: Path | None = None) -> None:
            super().__init__(device)
            entry = weights_table.known(self.name)
            path = weights_table.resolve(self.name, weights)
            data = read_file_bytes(path, entry)
            loaded = read_state_dict(data, path, entry)
            check_shapes(loaded, SHAPES, path, entry)
            self.weight = loaded["proj.weight"].to(device)
            self.bias = loaded["proj.bias"].to(device)
            self._sha = sha256_file(path)

        def __call__(self, images: Tensor) -> dict[str, Tensor]:
            colour = images.to(self.device).float().mean(dim=(2, 3)) / 255.0
            return {"mean": colour @ self.weight.T + self.bias}

        def weights_sha256(self) -> str:
            return self._sha

        @classmethod
        def check_weights(cls, path: Path) -> str:
            entry = weights_table.known(cls.name)
            check_shapes(read_state_dict(path, path, entry), SHAPES, path, entry)
            return "the toy's two tensors"

    return ToyExtractor


@contextmanager
def registered(declared: ExtractorSpec | None = None,
               cls: type[FeatureExtractor] | None = None) -> Iterator[type[FeatureExtractor]]:
    """Register the toy (one ``register_extractor`` call) for the ``with`` block."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    saved = [(registry, dict(registry)) for registry in
             (catalogue.EXTRACTORS, EXTRACTORS, FEATURE_EXTRACTORS_REGISTRY)]
    try:
        yield register_extractor(declared or spec())(cls or make_class())
    finally:
        for registry, contents in saved:
            registry.clear()
            registry.update(contents)  # type: ignore[attr-defined]
