"""Random AlexNet weights in torchvision's file format, for LPIPS tests (PLUMBING ONLY).

torchvision's ``alexnet-owt-7be5be79.pth`` (LPIPS's trunk) cannot be had offline, so tests write
a stand-in with exactly its keys, shapes and dtypes (a plain state dict: ``features.{0,3,6,8,10}
.{weight,bias}`` and ``classifier.{1,4,6}.{weight,bias}``) from a seeded
``torchvision.models.alexnet()`` (its own random initialisation). LPIPS reads only
``features.*``: the classifier's 58 M parameters are stored as zero-stride views of one zero
(same keys and shapes, a 10 MB file instead of 233 MB). Numbers computed with it check wiring
and equality with the ``lpips`` package, never perceptual quality.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision


def write_random_alexnet(path: Path, seed: int = 0) -> Path:
    """Write the stand-in file to ``path`` (named like the real file's entry is up to the
    caller) and return it."""
    torch.manual_seed(seed)
    state = torchvision.models.alexnet(weights=None).state_dict()
    state = {k: v if k.startswith("features.") else torch.zeros(1, dtype=v.dtype).expand(v.shape)
             for k, v in state.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def lpips_reference(path: Path) -> torch.nn.Module:
    """``lpips.LPIPS(net="alex")`` (its own v0.1 heads) with the trunk of ``path``."""
    import lpips

    model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    slices = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}  # features index → lpips' slice
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.net.load_state_dict({
        f"slice{slices[int(key.split('.')[1])]}.{key.split('.', 1)[1]}": value
        for key, value in state.items() if key.startswith("features.")})
    return model.eval()
