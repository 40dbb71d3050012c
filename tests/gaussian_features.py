"""The Gaussian feature model of issue 18's simulations (tests/test_metrics_interval_calibration.py,
tests/test_metrics_two_sample.py): generated features N(δ, diag(s²)) against a reference set
drawn from N(0, diag(λ)), a decaying spectrum like real embeddings'."""

from __future__ import annotations

import torch


def gaussian_model(d: int, n_ref: int, seed: int = 0) -> tuple[dict[str, torch.Tensor],
                                                               torch.Generator]:
    """``{"lam", "scale", "delta", "ref"}`` (float64; ``ref`` is ``(n_ref, d)``) and the
    generator that drew them, for further draws in the same stream."""
    g = torch.Generator().manual_seed(seed)
    lam = torch.exp(-torch.arange(d, dtype=torch.float64) / 30) + 0.02
    scale = (lam * (1 + 0.3 * torch.rand(d, generator=g, dtype=torch.float64))).sqrt()
    delta = 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
    ref = torch.randn(n_ref, d, generator=g, dtype=torch.float64) * lam.sqrt()
    return {"lam": lam, "scale": scale, "delta": delta, "ref": ref}, g
