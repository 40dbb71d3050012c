"""Generators as image sources: a GENERATOR spec is sampled on the fly, never through PNGs.

A GENERATOR is a gan-eval DCGAN checkpoint (:mod:`.native`) or an external model
(:mod:`.external`): ``py:package.module:attr`` / ``file.py:attr`` (runs that Python code,
contained: :mod:`.usercode`), a TorchScript archive, a ``torch.export`` archive (:mod:`.exported`),
an ONNX model (:mod:`.spec` says how each is recognised). Every generator becomes a
:class:`~gan_eval.generators.source.GeneratorSource` with the same seeded latents (image i depends
only on the generator, the seed and i). :func:`check_generator` checks a spec without importing
torch; the sources are imported on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gan_eval.errors import InputError
from gan_eval.generators.spec import (
    GENERATOR_HELP,
    GeneratorOptions,
    SpecKind,
    check_generator,
    classify,
)

if TYPE_CHECKING:
    import torch

    from gan_eval.generators.native import CheckpointSource
    from gan_eval.generators.source import DEFAULT_N, GeneratorSource

_LAZY = {"CheckpointSource": "native", "DEFAULT_N": "source", "GeneratorSource": "source"}
"""Names imported on first use, so that GENERATOR specs are checked without torch."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_N",
    "GENERATOR_HELP",
    "CheckpointSource",
    "GeneratorOptions",
    "GeneratorSource",
    "check_generator",
    "is_generator",
    "open_generator",
]


def is_generator(data: str) -> bool:
    """True when the DATA string names a generator (a gan-eval checkpoint, its folder, run
    folder, JSON or state file; a ``py:``/``file.py:attr`` spec; a TorchScript or
    ``torch.export`` archive; an ONNX model) or a model file gan-eval refuses (a pickle, a
    damaged archive), rather than images."""
    return classify(data) is not None


def open_generator(
    data: str,
    *,
    n: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    options: GeneratorOptions | None = None,
    batch_size: int | None = None,
) -> GeneratorSource:
    """The generator ``data`` names as a source of ``n`` images (default :data:`DEFAULT_N`)
    sampled with ``seed`` on ``device``; ``options`` complete an external model's contract.
    An external generator is called with ``min(batch_size, images left)`` latents at a time
    (default batch: 64 on the CPU, 256 on CUDA); a gan-eval checkpoint is sampled in its fixed
    chunks whatever ``batch_size`` says (its pixels do not depend on it).
    :class:`InputError` naming it when it cannot be used (a pickle file is always refused)."""
    from gan_eval.generators.external import ExternalSource
    from gan_eval.generators.native import open_checkpoint_source
    from gan_eval.generators.source import DEFAULT_N

    kind = check_generator(data)
    count = DEFAULT_N if n is None else n
    if kind is SpecKind.CHECKPOINT:
        if options is not None and not options.is_default():
            raise InputError(f"{data}: a gan-eval checkpoint states its own contract; "
                             "--z-dim, --truncation, --classes, --labels, --output-range, "
                             "--discriminator and --allow-nondeterministic apply to external "
                             "generators only")
        return open_checkpoint_source(Path(data).expanduser(), n=count, seed=seed, device=device)
    return ExternalSource(data, options, n=count, seed=seed, device=device, chunk=batch_size)
