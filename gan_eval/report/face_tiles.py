"""Pictures of faces for the report: the sample grid and the closest generated ↔ training pairs.

Pixels are never stored in the results JSON. The report reopens the sources the results name
(DATA strings and checkpoints, with their content hashes), so ``gan-eval report --from-results``
draws the same pictures as the run did — or says why it cannot (source moved or changed).
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import torch
from PIL import Image

from gan_eval.data import ImageSource, resize_uint8
from gan_eval.data.pictures import image_grid

CELL = 96
"""Shown size of one face (pixels): small images are upscaled so a reader can see them."""


def data_uri(png: bytes) -> str:
    """PNG bytes → ``data:image/png;base64,…`` (the report needs no file but itself)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_bytes(pixels: np.ndarray) -> bytes:
    """uint8 H×W or H×W×3 → PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def grid_png(images: torch.Tensor, *, nrow: int = 8, cell: int = 64) -> bytes:
    """uint8 B×3×H×W → one PNG of rows of ``nrow`` faces, each ``cell`` pixels wide."""
    return png_bytes(image_grid(resize_uint8(images, cell), nrow=nrow, padding=2))


def pair_tiles(
    generated: ImageSource, reference: ImageSource, pairs: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """Data URIs of (generated, reference) faces for each ``{"generated": i, "reference": j}``."""
    if not pairs:
        return []
    gen = resize_uint8(generated.read([int(p["generated"]) for p in pairs]), CELL)
    ref = resize_uint8(reference.read([int(p["reference"]) for p in pairs]), CELL)
    return [
        (data_uri(png_bytes(_hwc(g))), data_uri(png_bytes(_hwc(r))))
        for g, r in zip(gen, ref, strict=True)
    ]


def _hwc(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image.cpu().numpy().transpose(1, 2, 0))
