"""Restoration models for tests of ``gan-eval restoration`` (loaded as ``file.py:attr``).

The two bounds and a hallucinating model, all working on ``builtin:lfw-heldout`` at 64 px
(:func:`make_swapper_32`: at 32 px, the default report's size):

- :func:`make_oracle` returns the clean face itself (it looks each degraded face up among the
  clean faces: the nearest one in pixels after the same blur, which finds the right face for
  every degradation the tests use) — the best any restorer can do;
- :func:`make_swapper` returns the clean face of *another* person (the next one in the set):
  a perfect-looking restoration that changes who it is;

and models that break the contract, one way each (:data:`BROKEN`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gan_eval.sources import open_source

SIZE = 64


def _clean(size: int) -> torch.Tensor:
    faces = open_source("builtin:lfw-heldout", resolution=size).load()
    return faces.float() / 127.5 - 1.0  # the default contract: [-1, 1]


def _smooth(x: torch.Tensor) -> torch.Tensor:
    # means over 8×8 cells of a 64 px face (4×4 at 32 px): noise, JPEG and blur barely move them
    return F.avg_pool2d(x, x.shape[-1] // 8)


class Lookup(torch.nn.Module):
    """Finds each input's face among the clean faces and returns the face ``shift`` later."""

    def __init__(self, shift: int, size: int = SIZE) -> None:
        super().__init__()
        self.register_buffer("clean", _clean(size))
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = _smooth(self.clean).flatten(1)
        index = torch.cdist(_smooth(x).flatten(1), keys).argmin(1)
        return self.clean[(index + self.shift) % self.clean.shape[0]]


def make_oracle() -> torch.nn.Module:
    return Lookup(0)


def make_swapper() -> torch.nn.Module:
    return Lookup(1)


def make_swapper_32() -> torch.nn.Module:
    return Lookup(1, 32)


def identity(x: torch.Tensor) -> torch.Tensor:
    """Restores nothing (the same as builtin:none except after downsampling)."""
    return x


def upscale4(x: torch.Tensor) -> torch.Tensor:
    """A ×4 super-resolution model (bicubic): declare it with --model-scale 4."""
    return F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)


BROKEN = {
    "drops_an_image": lambda x: x[1:],
    "gray_output": lambda x: x[:, :1],
    "wrong_size": lambda x: x[..., :-1, :],
    "nan": lambda x: x * float("nan"),
    "out_of_range": lambda x: x * 10.0,
    "not_a_tensor": lambda x: x.tolist(),
    "integers": lambda x: (x > 0).long(),
    "raises": lambda x: (_ for _ in ()).throw(RuntimeError("boom")),
}
"""Callables that break one part of the contract each (file.py:BROKEN.NAME is not a spec: the
tests wrap each in a module attribute of its own)."""

drops_an_image = BROKEN["drops_an_image"]
gray_output = BROKEN["gray_output"]
wrong_size = BROKEN["wrong_size"]
nan = BROKEN["nan"]
out_of_range = BROKEN["out_of_range"]
not_a_tensor = BROKEN["not_a_tensor"]
integers = BROKEN["integers"]
raises = BROKEN["raises"]
