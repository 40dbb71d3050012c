"""Landmark distance (LMD) between two sets of landmarks of the same faces (pure function)."""

from __future__ import annotations

import numpy as np
import torch

from gan_eval.errors import InputError

__all__ = ["landmark_distance"]


def landmark_distance(restored: torch.Tensor, clean: torch.Tensor) -> np.ndarray:
    """Mean Euclidean distance between corresponding landmarks (B×K×2 each, pixels): float64
    B, in pixels (the LMD of restoration papers, before any normalisation)."""
    if restored.shape != clean.shape or restored.ndim != 3 or restored.shape[-1] != 2:
        raise InputError(f"landmark distance: shapes {tuple(restored.shape)} and "
                         f"{tuple(clean.shape)}; expected two B×K×2")
    return (restored.double() - clean.double()).norm(dim=-1).mean(-1).cpu().numpy()
