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

:func:`cmmd_bootstrap_ci` gives the percentile interval over resamples of the generated set in
one pass over the kernel tiles: a resample is a vector of counts ``w``, its
``mean K_xx = wᵀ K_xx w / n²`` and ``mean K_xy = wᵀ (K_xy 1) / (n m)``, and ``mean K_yy`` is
fixed, so each tile of ``K_xx`` is computed once and multiplied by all count vectors.

Pure math: torch and numpy only.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gan_eval.errors import InputError
from gan_eval.metrics.bootstrap import (
    BootstrapCI,
    Method,
    _check_args,
    interval_from_values,
    resample_indices,
)
from gan_eval.metrics.neighbors import check_features, check_same_dim

__all__ = [
    "CMMD_SCALE",
    "CMMD_SIGMA",
    "cmmd",
    "cmmd_bootstrap_ci",
    "kernel_mean",
    "kernel_row_sums",
]

#: RBF bandwidth σ of the reference (``_SIGMA`` in cmmd/distance.py).
CMMD_SIGMA = 10.0
#: Scale factor of the reference (``_SCALE``), "to make the metric more human readable".
CMMD_SCALE = 1000.0

#: Bytes of one float64 kernel tile.
_TILE_BYTES = 32 * 2**20
#: Bytes of the float64 count matrix of one block of bootstrap resamples.
_BLOCK_BYTES = 64 * 2**20


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


def cmmd_bootstrap_ci(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    method: Method = "bias_shifted",
    sigma: float = CMMD_SIGMA,
    scale: float = CMMD_SCALE,
) -> BootstrapCI:
    """Bootstrap interval of :func:`cmmd` over resamples of the generated set (real set fixed).

    The resamples are the index vectors of :func:`gan_eval.metrics.bootstrap.resample_indices`
    (``n`` draws from ``n``, seeded), so each value equals ``cmmd(generated[idx], real)`` on the
    same indices (tests check this to 1e-9 relative). One pass over the tiles of ``K_gg``
    computes all resamples at once (``n² · n_resamples`` multiply-adds, in blocks of resamples
    when the count matrix would exceed 64 MiB).

    ``method="bias_shifted"`` (default) subtracts the bootstrap bias: a resample repeats rows,
    and each repeated pair adds the kernel's maximum 1 to ``mean K_gg``, so resampled CMMD sits
    above the estimate by about ``scale · (1 − mean K_gg) / n``; ``"percentile"`` reports the
    plain percentiles (see :mod:`gan_eval.metrics.bootstrap`).

    Raises:
        InputError: as :func:`cmmd`, or bad bootstrap arguments (fewer than 2 generated rows,
            ``n_resamples`` < 2, ``level`` outside (0, 1)).
    """
    gen, ref = _prepare(generated, real, sigma)
    n, m = gen.shape[0], ref.shape[0]
    _check_args(n, n_resamples, level, method)
    gamma = 1.0 / (2.0 * sigma * sigma)
    k_rr = kernel_mean(ref, ref, sigma)
    estimate = max(0.0, scale * (kernel_mean(gen, gen, sigma) + k_rr
                                 - 2.0 * kernel_mean(gen, ref, sigma)))

    # counts: row r = how often each generated row is drawn in resample r (float64, exact ints)
    counts = np.zeros((n_resamples, n), dtype=np.float64)
    for r, idx in enumerate(resample_indices(n, n_resamples, seed)):
        counts[r] = np.bincount(idx.numpy(), minlength=n)
    weights = torch.from_numpy(counts).to(gen.device)

    g_sq = (gen * gen).sum(1)
    r_sq = (ref * ref).sum(1)
    # K_gr row sums (fixed), then wᵀ(K_gr 1) per resample
    row_sums = torch.empty(n, dtype=torch.float64, device=gen.device)
    step = _tile_rows(m)
    for start in range(0, n, step):
        stop = min(start + step, n)
        row_sums[start:stop] = _kernel_tile(gen[start:stop], g_sq[start:stop], ref, r_sq,
                                            gamma).sum(1)
    k_gr = weights @ row_sums / (n * m)

    # wᵀ K_gg w per resample: for each row tile T, Σ_i∈T w_i (K_gg[T, :] wᵀ)_i
    quad = torch.zeros(n_resamples, dtype=torch.float64, device=gen.device)
    block = max(1, _BLOCK_BYTES // (8 * n))  # resamples per block
    step = _tile_rows(n, extra=min(block, n_resamples))
    for r0 in range(0, n_resamples, block):
        w_block = weights[r0:r0 + block]  # B × n
        for start in range(0, n, step):
            stop = min(start + step, n)
            tile = _kernel_tile(gen[start:stop], g_sq[start:stop], gen, g_sq, gamma)  # t × n
            z = tile @ w_block.T  # t × B
            quad[r0:r0 + block] += (w_block[:, start:stop].T * z).sum(0)
    values = (scale * (quad / (n * n) + k_rr - 2.0 * k_gr)).clamp_min(0.0).cpu()
    return interval_from_values(values, estimate, n_resamples, seed, level, method)
