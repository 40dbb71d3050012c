"""LPIPS (Zhang et al. 2018) from a network's layer activations: the distance math alone.

``lpips.LPIPS(net=…)`` (the reference, package ``lpips`` 0.1) computes, for images ``a`` and
``b`` and each layer ``l`` of the trunk network:

1. unit-normalise the activations over channels at every position,
   ``f / (‖f‖₂ + 1e-10)`` (``lpips.normalize_tensor``);
2. square the difference of the two normalised maps;
3. weight the channels with the layer's linear head ``w_l ≥ 0`` (a 1×1 convolution, no bias)
   and average over the positions;

and sums the layers. :func:`normalized_activations` is step 1 (done once per image: the clean
faces of a restoration audit are normalised once and compared with every restored version);
:func:`lpips_distance` is steps 2–3. The trunk network and the heads' weights are read by
:mod:`gan_eval.features.lpips_alex`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gan_eval.errors import InputError

__all__ = ["NORMALIZE_EPS", "lpips_distance", "normalized_activations"]

NORMALIZE_EPS = 1e-10
"""Added to the channel norm before dividing (``lpips.normalize_tensor``)."""


def normalized_activations(layers: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each B×C×H×W activation map divided by its channel norm (+ :data:`NORMALIZE_EPS`)."""
    return [f / (f.square().sum(1, keepdim=True).sqrt() + NORMALIZE_EPS) for f in layers]


def lpips_distance(
    a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], heads: Sequence[torch.Tensor]
) -> torch.Tensor:
    """LPIPS of two batches from their normalised activations (float B, same dtype as the maps).

    ``a``, ``b``: per layer, B×C_l×H_l×W_l maps from :func:`normalized_activations`;
    ``heads``: per layer, the linear head's weights (C_l values, any shape holding C_l numbers,
    e.g. lpips' 1×C_l×1×1 convolution weight).
    """
    if not (len(a) == len(b) == len(heads)) or not heads:
        raise InputError(f"lpips: {len(a)}, {len(b)} activation maps and {len(heads)} heads")
    total: torch.Tensor | None = None
    for fa, fb, w in zip(a, b, heads, strict=True):
        if fa.shape != fb.shape or w.numel() != fa.shape[1]:
            raise InputError(f"lpips: maps {tuple(fa.shape)} and {tuple(fb.shape)} with a head "
                             f"of {w.numel()} weights")
        weighted = torch.einsum("bchw,c->bhw", (fa - fb).square(), w.reshape(-1).to(fa.dtype))
        layer = weighted.mean(dim=(-2, -1))
        total = layer if total is None else total + layer
    assert total is not None
    return total
