"""CMMD: the maximum mean discrepancy with a Gaussian RBF kernel (Jayasumana et al., CVPR 2024,
"Rethinking FID"), on any features.

The reference implementation (google-research ``cmmd/distance.py``, ``mmd``) computes, with
σ = 10 and a scale of 1000,

    k(a, b) = exp(−‖a − b‖² / (2σ²)),
    CMMD = 1000 · ( mean K_xx + mean K_yy − 2 · mean K_xy ),

where the means run over the *full* kernel matrices, diagonals included: the biased
(minimum-variance, Gretton et al. 2012 Eq. 5) estimator of MMD², which is ≥ 0 (a squared RKHS
norm) and exactly 0 for two identical sets. The reference forms ‖a − b‖² as
``‖a‖² + ‖b‖² − 2 a·b``; so does this module, in float64 (the reference runs float32 on the
accelerator), over row tiles so that no N×M matrix is held at once. In CMMD proper the features
are CLIP ViT-L/14@336 image embeddings normalised to unit length (the extractor's job, not this
module's); here any features work (dlib-face, DINOv2, Inception).

Its interval (jackknife, from the kernel row sums) is
:func:`gan_eval.metrics.intervals.cmmd_interval`.

Pure math: torch and numpy only.
"""

from __future__ import annotations

import math

import torch

from gan_eval.errors import InputError
from gan_eval.metrics.neighbors import check_features, check_same_dim

__all__ = [
    "CMMD_SCALE",
    "CMMD_SIGMA",
    "cmmd",
    "kernel_mean",
    "kernel_row_sums",
]

#: RBF bandwidth σ of the reference (``_SIGMA`` in cmmd/distance.py).
CMMD_SIGMA = 10.0
#: Scale factor of the reference (``_SCALE``), "to make the metric more human readable".
CMMD_SCALE = 1000.0

#: Bytes of one float64 kernel tile.
_TILE_BYTES = 32 * 2**20


def _tile_rows(cols: int, extra: int = 0) -> int:
    return max(1, _TILE_BYTES // (8 * max(1, cols + extra)))


def _kernel_tile(a: torch.Tensor, a_sq: torch.Tensor, b: torch.Tensor, b_sq: torch.Tensor,
                 gamma: float) -> torch.Tensor:
    """exp(−γ (‖a‖² + ‖b‖² − 2 a·b)) for a tile of rows ``a`` against all ``b`` (float64)."""
    d2 = torch.addmm(a_sq[:, None] + b_sq[None, :], a, b.T, alpha=-2.0)
    return torch.exp(d2.mul_(-gamma))


def kernel_row_sums(x: torch.Tensor, y: torch.Tensor, sigma: float = CMMD_SIGMA
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Row sums of the RBF kernel matrix ``K[i, j] = exp(−‖x_i − y_j‖² / (2σ²))``, tile by tile.

    Args:
        x: ``(N, D)`` and ``y``: ``(M, D)`` float64 tensors (same device); ``y is x`` for the
            kernel of a set with itself.
        sigma: kernel bandwidth.

    Returns:
        float64 ``(N,)`` row sums, and the diagonal ``K[i, i]`` when ``y is x`` (else None).
        Fixed tiling: same inputs, same bits (:func:`kernel_mean` and
        :func:`gan_eval.metrics.intervals.cmmd_interval` read the same sums).
    """
    gamma = 1.0 / (2.0 * sigma * sigma)
    x_sq = (x * x).sum(1)
    y_sq = x_sq if y is x else (y * y).sum(1)
    rows = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    diag = torch.empty(x.shape[0], dtype=torch.float64, device=x.device) if y is x else None
    step = _tile_rows(y.shape[0])
    for start in range(0, x.shape[0], step):
        stop = min(start + step, x.shape[0])
        tile = _kernel_tile(x[start:stop], x_sq[start:stop], y, y_sq, gamma)
        rows[start:stop] = tile.sum(1)
        if diag is not None:
            diag[start:stop] = tile.diagonal(start)
    return rows, diag


def kernel_mean(x: torch.Tensor, y: torch.Tensor, sigma: float = CMMD_SIGMA) -> float:
    """Mean of the RBF kernel matrix ``K[i, j] = exp(−‖x_i − y_j‖² / (2σ²))`` over all i, j.

    Args:
        x: ``(N, D)`` and ``y``: ``(M, D)`` float64 tensors (same device).
        sigma: kernel bandwidth.

    Returns:
        The mean (float), from :func:`kernel_row_sums` (same inputs, same bits).
    """
    rows, _ = kernel_row_sums(x, y, sigma)
    return float(rows.sum()) / (x.shape[0] * y.shape[0])


def _prepare(generated: object, real: object, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    gen = check_features(generated, "generated", min_rows=1)
    ref = check_features(real, "real", min_rows=1)
    check_same_dim(gen, ref, "generated", "real")
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"cmmd: sigma must be a positive number, got {sigma}")
    return gen.to(torch.float64), ref.to(device=gen.device, dtype=torch.float64)


def cmmd(generated: torch.Tensor, real: torch.Tensor, *, sigma: float = CMMD_SIGMA,
         scale: float = CMMD_SCALE) -> float:
    """CMMD between two feature sets, as google-research ``cmmd/distance.py`` computes it.

    Args:
        generated: ``(N, D)`` floating features (any dtype; computed in float64).
        real: ``(M, D)`` floating features, same ``D``.
        sigma: RBF bandwidth (reference: 10).
        scale: multiplier (reference: 1000).

    Returns:
        ``scale · (mean K_gg + mean K_rr − 2 mean K_gr)`` ≥ 0 (the biased MMD² estimator with the
        diagonal terms). A negative result can only be float64 round-off (the exact value is a
        squared norm) and is returned as 0.0; identical sets give exactly 0.0.

    Raises:
        InputError: not 2-D floating tensors, NaN/inf, different ``D``, or ``sigma`` ≤ 0.
    """
    gen, ref = _prepare(generated, real, sigma)
    k_gg = kernel_mean(gen, gen, sigma)
    k_rr = kernel_mean(ref, ref, sigma)
    k_gr = kernel_mean(gen, ref, sigma)
    return max(0.0, scale * (k_gg + k_rr - 2.0 * k_gr))

