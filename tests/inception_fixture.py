"""Calibrated *random* InceptionV3 weights in torch-fidelity's real file format (PLUMBING ONLY).

The real ``weights-inception-2015-12-05-6726825d.pth`` cannot be had offline, so the tests and
``benchmarks/inception.py`` write a stand-in file with exactly the keys, shapes and dtypes that
torch-fidelity's ``FeatureExtractorInceptionV3`` loads (a plain ``dict[str, Tensor]`` saved with
``torch.save``: for every ``BasicConv2d`` ``<name>.conv.weight`` and ``<name>.bn.{weight, bias,
running_mean, running_var}``, no ``num_batches_tracked``, plus ``fc.weight`` 1008×2048 and
``fc.bias`` 1008, as torch-fidelity's ``utils/util_convert_inception_weights.py`` writes it).

Plain random initialisation collapses the 2048-d pool features (every image gives nearly the same
vector; torch-fidelity then reports FID ≈ 1e-15 and KID 0), which tests nothing. So:

- convolutions: He (kaiming-normal, fan-in, ReLU gain) initialisation;
- BatchNorm affine parameters: gamma ~ U(0.5, 1.5), beta ~ U(0.5, 1.5) (not 1/0, so BN folding is
  exercised for real). A positive beta keeps most ReLUs active, which keeps the random network
  well conditioned: with beta ≈ 0, each BN→ReLU layer amplifies relative perturbations by
  √(π/(π−1)) ≈ 1.21 (mean-field value), ×~70 over Inception's depth, so float32 rounding alone
  moved the features by ~3e-5 relative — too close to the 1e-4 tolerance the tests check;
- BatchNorm running statistics: measured on one batch of real images (LFW faces from
  ``skimage.data.lfw_subset()`` upsampled to 64×64 plus crops of ``skimage.data.astronaut()``)
  in train mode with ``momentum=None``, one pass, through torch-fidelity's own forward (so its
  TF-compatible resize to 299×299 and normalisation are used);
- ``fc``: N(0, σ²) with σ chosen so the unbiased logits vary by a few units between images.

Every number computed with these weights (FID, KID, IS, img/s on them is fine) is a *plumbing*
number: it checks wiring and equality with torch-fidelity, never image quality, and must never be
reported as FID/IS/KID.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import (
    BasicConv2d,
    FeatureExtractorInceptionV3,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE_1,
    InceptionE_2,
)

#: Label attached to every number derived from these weights.
PLUMBING = "plumbing (random calibrated Inception weights, not FID)"

#: File name used for the stand-in weights (not the real file's name, on purpose).
FIXTURE_FILENAME = "inception-random-calibrated-plumbing.pth"

#: Per-dimension std (across images) the 2048-d pool features are scaled to on the calibration
#: batch; gives FID ≈ 100 between two disjoint jittered LFW sets (plumbing only).
TARGET_FEATURE_STD = 0.28


class _InceptionSkeleton(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 with its layers but without loading any weights.

    The layer list mirrors ``FeatureExtractorInceptionV3.__init__``; the inherited ``forward``
    (TF-compatible resize, normalisation) is used for calibration. Whether the keys and shapes are
    right is checked for real when torch-fidelity loads the written file (``load_state_dict``
    is strict there).
    """

    def __init__(self) -> None:  # deliberately does not call the parent __init__ (no weights)
        FeatureExtractorBase.__init__(self, "inception-v3-compat", ["2048"])
        self.feature_extractor_internal_dtype = torch.float32
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.MaxPool_1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.MaxPool_2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE_1(1280)
        self.Mixed_7c = InceptionE_2(2048)
        self.AvgPool = nn.AdaptiveAvgPool2d(output_size=(1, 1))
        self.fc = nn.Linear(2048, 1008)


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [0, 1], any shape → uint8 (round half up, clamped)."""
    return (images.clamp(0.0, 1.0) * 255.0 + 0.5).floor().to(torch.uint8)


def lfw_faces(
    count: int = 32,
    *,
    start: int = 0,
    size: int = 64,
    seed: int = 0,
    jitter: bool = True,
) -> torch.Tensor:
    """Real LFW faces (``skimage.data.lfw_subset()`` rows ``start .. start+count-1``, wrapping
    within the 100 faces), upsampled, as a uint8 batch.

    Returns:
        uint8 tensor ``count×3×size×size`` (grey faces replicated to RGB). With ``jitter`` each
        image gets a random shift (±size/16 px, via a reflect-padded crop), a random horizontal
        flip and a random brightness/contrast change, from ``seed``.
    """
    from skimage.data import lfw_subset

    faces = torch.from_numpy(np.ascontiguousarray(lfw_subset()[:100])).to(torch.float32)
    index = torch.arange(start, start + count) % 100
    batch = faces[index].unsqueeze(1)  # count×1×25×25 in [0, 1]
    pad = max(1, size // 16) if jitter else 0
    big = F.interpolate(batch, size=(size + 2 * pad, size + 2 * pad), mode="bilinear",
                        align_corners=False, antialias=False)
    if not jitter:
        return _to_uint8(big.expand(-1, 3, -1, -1)).contiguous()
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(count, 1, size, size)
    dy = torch.randint(0, 2 * pad + 1, (count,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (count,), generator=gen)
    flip = torch.rand(count, generator=gen) < 0.5
    gain = 0.8 + 0.4 * torch.rand(count, generator=gen)
    offset = 0.1 * (torch.rand(count, generator=gen) - 0.5)
    for i in range(count):
        crop = big[i, :, int(dy[i]) : int(dy[i]) + size, int(dx[i]) : int(dx[i]) + size]
        if flip[i]:
            crop = crop.flip(-1)
        out[i] = (crop - 0.5) * gain[i] + 0.5 + offset[i]
    return _to_uint8(out.expand(-1, 3, -1, -1)).contiguous()


def astronaut_crops(count: int = 8, *, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Random square crops (128–384 px) of ``skimage.data.astronaut()`` resized to ``size``.

    Returns:
        uint8 tensor ``count×3×size×size`` (colour).
    """
    from skimage.data import astronaut

    image = torch.from_numpy(np.ascontiguousarray(astronaut())).permute(2, 0, 1).float() / 255.0
    gen = torch.Generator().manual_seed(seed + 1)
    out = torch.empty(count, 3, size, size)
    for i in range(count):
        side = int(torch.randint(128, 385, (1,), generator=gen))
        top = int(torch.randint(0, 512 - side + 1, (1,), generator=gen))
        left = int(torch.randint(0, 512 - side + 1, (1,), generator=gen))
        crop = image[:, top : top + side, left : left + side].unsqueeze(0)
        out[i] = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False,
                               antialias=True)[0]
    return _to_uint8(out)


NUM_CALIBRATION_FACES = 24

#: The BasicConv2d layers of Mixed_7c whose outputs form the block output (and so the features).
_MIXED_7C_OUTPUT_BRANCHES = ("branch1x1", "branch3x3_2a", "branch3x3_2b", "branch3x3dbl_3a",
                             "branch3x3dbl_3b", "branch_pool")


def calibration_images(size: int = 64, seed: int = 0) -> torch.Tensor:
    """Calibration batch: 24 jittered LFW faces, then 8 astronaut crops; uint8 32×3×size×size."""
    return torch.cat([lfw_faces(NUM_CALIBRATION_FACES, start=0, size=size, seed=seed),
                      astronaut_crops(8, size=size, seed=seed)])


@torch.no_grad()
def build_state_dict(seed: int = 0, images: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Random calibrated InceptionV3 weights as torch-fidelity's state dict (float32, CPU).

    Args:
        seed: seeds every random draw (init and calibration images); same seed → same weights
            on the same machine (BN statistics depend on float summation order).
        images: uint8 N×3×H×W calibration batch (all used to scale the feature spread); default
            :func:`calibration_images` (its 24 faces set the spread, all 32 set BN statistics).

    Returns:
        ``{key: float32 tensor}`` with exactly the keys torch-fidelity's file has (no
        ``num_batches_tracked``).
    """
    gen = torch.Generator().manual_seed(seed)
    net = _InceptionSkeleton()
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            std = math.sqrt(2.0 / fan_in)
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * std)
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=gen))
            module.bias.copy_(0.5 + torch.rand(module.bias.shape, generator=gen))
            module.momentum = None  # cumulative average: one pass → the batch statistics
            module.reset_running_stats()
    if images is None:
        images = calibration_images(seed=seed)
        num_faces = NUM_CALIBRATION_FACES
    else:
        num_faces = images.shape[0]
    net.train()
    # One pass in train mode: running_mean/var := this batch's statistics. The train-mode output
    # is what eval mode gives on this batch (up to the n/(n-1) variance factor), so it is also
    # used to calibrate the output scale and the fc below (no second 299×299 pass).
    feats = net(images)[0].double()  # N×2048
    net.eval()
    # Pool-feature spread: ReLU is positively homogeneous, so scaling the last block's BN affine
    # parameters by k scales the 2048-d features by exactly k (FID by k²). Target a per-dim
    # across-image std of TARGET_FEATURE_STD (random nets average image content away in the
    # final 8×8 mean; without this, FID between two face sets is only ~10–20).
    faces = feats[:num_faces]  # the spread that matters is the one between faces
    k = TARGET_FEATURE_STD / float(faces.std(0).mean())
    for name in _MIXED_7C_OUTPUT_BRANCHES:  # only the BNs whose ReLU output is concatenated
        bn = getattr(net.Mixed_7c, name).bn
        bn.weight.mul_(k)
        bn.bias.mul_(k)
    faces = faces * k
    # fc: rows orthogonal to the mean feature (else the common component dominates every
    # image's softmax and IS ≈ 1), scaled so the unbiased logits vary by ~3 units across images.
    mean_dir = faces.mean(0)
    mean_dir = mean_dir / mean_dir.norm()
    fc_w = torch.randn(1008, 2048, generator=gen, dtype=torch.float64)
    fc_w = fc_w - (fc_w @ mean_dir)[:, None] * mean_dir[None, :]
    spread = ((faces - faces.mean(0)) @ fc_w.T).std()
    net.fc.weight.copy_((fc_w * (3.0 / float(spread))).float())
    net.fc.bias.copy_(0.1 * torch.randn(1008, generator=gen))
    return {
        key: value.detach().clone().contiguous()
        for key, value in net.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }


def write_calibrated_weights(path: str | Path, seed: int = 0) -> Path:
    """Write :func:`build_state_dict` with ``torch.save`` to ``path`` (atomically) and return it.

    Takes a few seconds on 2 CPU cores (one 32-image pass at 299×299); cache the file
    (e.g. a session-scoped pytest fixture) rather than calling this per test.
    """
    from gan_eval.fileio import atomic_path

    target = Path(path)
    state = build_state_dict(seed=seed)
    with atomic_path(target) as tmp:
        torch.save(state, tmp)
    return target
