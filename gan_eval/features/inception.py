"""torch-fidelity's ``inception-v3-compat`` network, executed faster for inference.

The network *is* torch-fidelity's ``FeatureExtractorInceptionV3`` built from the given weights
file (so the architecture and weights are exactly torch-fidelity's); it is then re-expressed for
inference:

- every BatchNorm (eval mode, eps 1e-3) is folded into the convolution before it
  (``W' = W·γ/√(σ²+ε)``, ``b' = β − μ·γ/√(σ²+ε)``, computed in float64, then cast);
- the 1×1 convolutions of a Mixed block that read the same input are run as one convolution
  (one larger GEMM) and split; in the blocks whose pool branch is
  ``avg_pool(3×3, count_include_pad=False) → 1×1 conv``, that conv is moved before the pool and
  joins the same GEMM (both are linear and the pool's weights sum to 1, so
  ``avg(Wx+b) = W·avg(x)+b`` exactly in real arithmetic; the pool then runs on 32–192 channels
  instead of 192–1280);
- channels_last memory format, eval mode, ``torch.no_grad``.

The preprocessing is torch-fidelity's, operation for operation: uint8 → internal dtype, its
TensorFlow-1.x-compatible bilinear resize to 299×299 (``interpolate_bilinear_2d_like_tensorflow1x``,
``align_corners=False``, "slow"/exact method; re-implemented here with the same arithmetic and
cached indices, bit-identical), then ``(x − 128) / 128``. Features are returned as float32 like
torch-fidelity's; the internal dtype is float32 (default) or float64.

Features agree with torch-fidelity's extractor to ~2e-6 ('2048') and ~1e-5 ('logits_unbiased')
relative in float32 on the calibrated random test weights (tests require 1e-4); in float64 the
folding itself is exact to ~1e-15.

Public API:

- :func:`load_inception` → :class:`InceptionFeatures` (``forward(uint8 B×3×H×W) → dict``);
- :func:`build_reference_extractor`: torch-fidelity's own (stock) extractor on the same weights;
- :class:`FeatureExtractorInceptionFast`: the same network as a torch-fidelity extractor,
  registered there as ``"inception"`` (with :class:`InceptionExtractor`, gan-eval's extractor of
  that name) so ``torch_fidelity.calculate_metrics(feature_extractor="inception")`` can use it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.errors import InputError
from gan_eval.features.base import FeatureExtractor, register_extractor
from gan_eval.features.inception_weights import (
    InceptionWeights,
    check_inception_weights,
    load_inception_weights,
    resolve_inception_weights,
)

#: Name of :class:`FeatureExtractorInceptionFast` in torch-fidelity's registry: gan-eval's own
#: name of the extractor (registered by :func:`~gan_eval.features.base.register_extractor`).
FAST_EXTRACTOR_NAME = "inception"

#: Features torch-fidelity's ``inception-v3-compat`` provides (same names, same meaning).
PROVIDED_FEATURES: tuple[str, ...] = ("64", "192", "768", "2048", "logits_unbiased", "logits")

#: Width of each feature.
FEATURE_DIMS: dict[str, int] = {
    "64": 64, "192": 192, "768": 768, "2048": 2048, "logits_unbiased": 1008, "logits": 1008,
}

#: What :func:`load_inception` computes by default: FID/KID/PRC features and the IS logits.
DEFAULT_FEATURES: tuple[str, ...] = ("2048", "logits_unbiased")

#: Images per forward chunk when ``chunk_size`` is None: CPU, other devices.
AUTO_CHUNK = {"cpu": 32, "other": 256}

#: Side of the square the images are resized to (torch-fidelity's ``INPUT_IMAGE_SIZE``).
INPUT_SIZE = 299

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------------------------
# Input checks and preprocessing
# --------------------------------------------------------------------------------------------


def check_uint8_images(images: object) -> Tensor:
    """Return ``images`` if it is a uint8 ``B×3×H×W`` tensor (H, W ≥ 1), else raise InputError."""
    if not isinstance(images, Tensor):
        raise InputError(
            f"Inception features need a uint8 torch.Tensor B×3×H×W, got {type(images).__name__}"
        )
    if images.dtype != torch.uint8:
        raise InputError(
            f"Inception features need uint8 images (0..255) B×3×H×W, got dtype {images.dtype}"
            " (convert floats in [0, 1] with (x * 255).round().to(torch.uint8))"
        )
    if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
        raise InputError(
            f"Inception features need a B×3×H×W batch, got shape {tuple(images.shape)}"
        )
    return images


_GRID_CACHE: dict[tuple[int, int, torch.dtype, str], tuple[Tensor, ...]] = {}


def _tf_grid(size_in: int, size_out: int, dtype: torch.dtype, device: torch.device
             ) -> tuple[Tensor, Tensor, Tensor]:
    """Indices/weights of torch-fidelity's ``resample_manually`` along one axis (same ops).

    Returns ``(lo, hi, frac)``: int64 lo/hi source indices and the fraction, each ``size_out``.
    """
    key = (size_in, size_out, dtype, str(device))
    hit = _GRID_CACHE.get(key)
    if hit is None:
        scale = size_in / size_out  # tf_calculate_resize_scale, align_corners=False
        grid = torch.arange(0, size_out, 1, dtype=dtype, device=device)
        grid = grid * torch.tensor(scale, dtype=torch.float32)
        lo = grid.long()
        hi = (lo + 1).clamp_max(size_in - 1)
        frac = grid - lo.float()
        hit = (lo, hi, frac)
        if len(_GRID_CACHE) > 64:
            _GRID_CACHE.clear()
        _GRID_CACHE[key] = hit
    return hit[0], hit[1], hit[2]


def tf_resize_normalize(images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """torch-fidelity's preprocessing: uint8 → ``dtype``, TF1.x bilinear resize, (x−128)/128.

    Args:
        images: uint8 ``B×3×H×W``.
        dtype: float32 or float64 (torch-fidelity's ``feature_extractor_internal_dtype``).

    Returns:
        ``B×3×299×299`` in ``dtype``, values in [−1, 1), channels_last strides. Bit-identical to
        ``(interpolate_bilinear_2d_like_tensorflow1x(x.to(dtype), (299, 299),
        align_corners=False) − 128) / 128``: same index/weight arithmetic and the same elementwise
        operations on the same values, only ordered differently (x before the row gather) and
        laid out NHWC (elementwise results do not depend on either).
    """
    _, _, height, width = images.shape
    y_lo, y_hi, dy = _tf_grid(height, INPUT_SIZE, dtype, images.device)
    x_lo, x_hi, dx = _tf_grid(width, INPUT_SIZE, dtype, images.device)
    nhwc = images.permute(0, 2, 3, 1).to(dtype)  # B×H×W×3 (a copy: contiguous NHWC)
    # torch-fidelity computes in_0 = in_00 + (in_01 − in_00)·dx on rows y_lo (and in_1 on rows
    # y_hi) of the gathered 299×299 grid; every such row is the same elementwise expression on
    # an input row, so interpolate along x on the H input rows first, then gather rows: the same
    # values, ~299/H times less work for this stage.
    left = nhwc.index_select(2, x_lo)
    right = nhwc.index_select(2, x_hi)
    across = left + (right - left) * dx.view(1, 1, INPUT_SIZE, 1)  # B×H×299×3
    in_0 = across.index_select(1, y_lo)  # B×299×299×3
    out = across.index_select(1, y_hi)
    out -= in_0  # in_0 + (in_1 − in_0)·dy, in place, op by op (no fused multiply-add)
    out *= dy.view(1, INPUT_SIZE, 1, 1)
    out += in_0
    out -= 128
    out /= 128
    return out.permute(0, 3, 1, 2)  # B×3×299×299, channels_last


# --------------------------------------------------------------------------------------------
# BN folding and the re-expressed network
# --------------------------------------------------------------------------------------------


def fold_conv_bn(block: nn.Module) -> tuple[Tensor, Tensor]:
    """Fold torch-fidelity's ``BasicConv2d`` (conv without bias → BN eval) into one affine conv.

    Returns:
        ``(weight, bias)`` in float64: ``out×in×kh×kw`` and ``out``.
    """
    conv, bn = block.conv, block.bn
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    assert conv.bias is None and bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    weight = conv.weight.detach().double() * scale.view(-1, 1, 1, 1)
    bias = bn.bias.detach().double() - bn.running_mean.double() * scale
    return weight, bias


def _make_conv(blocks: Sequence[nn.Module], dtype: torch.dtype) -> nn.Conv2d:
    """One conv computing the folded ``blocks`` (same input, same geometry) stacked on C_out.

    The weight is stored channels_last in ``dtype``; the module is created on the meta device
    (no throw-away random init) and then given the folded parameters.
    """
    folded = [fold_conv_bn(b) for b in blocks]
    ref = blocks[0].conv
    assert isinstance(ref, nn.Conv2d) and not isinstance(ref.padding, str)
    weight = folded[0][0] if len(folded) == 1 else torch.cat([w for w, _ in folded])
    bias = folded[0][1] if len(folded) == 1 else torch.cat([b for _, b in folded])
    conv = nn.Conv2d(ref.in_channels, weight.shape[0],
                     kernel_size=(int(ref.kernel_size[0]), int(ref.kernel_size[1])),
                     stride=(int(ref.stride[0]), int(ref.stride[1])),
                     padding=(int(ref.padding[0]), int(ref.padding[1])), bias=True,
                     device="meta")
    conv.weight = nn.Parameter(
        weight.to(dtype).contiguous(memory_format=torch.channels_last), requires_grad=False)
    conv.bias = nn.Parameter(bias.to(dtype), requires_grad=False)
    return conv


class _ConvReLU(nn.Module):
    """Folded ``BasicConv2d``: ``relu(conv(x) + b)``."""

    def __init__(self, block: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.conv = _make_conv([block], dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv(x), inplace=True)


class _Head(nn.Module):
    """The 1×1 convs of a Mixed block that read its input, as one GEMM (``merge``) or separately.

    ``forward(x)`` returns the branch inputs, ReLU applied, in ``names`` order. With
    ``pool_commuted`` the last name is the avg-pool branch's 1×1 conv: it is computed here on the
    unpooled input, then ``avg_pool(3×3, s1, p1, count_include_pad=False)`` and the ReLU follow.
    """

    def __init__(self, block: nn.Module, names: Sequence[str], dtype: torch.dtype, merge: bool,
                 pool_commuted: bool) -> None:
        super().__init__()
        blocks = [_sub(block, n) for n in names]
        self.merge = merge
        self.pool_commuted = pool_commuted
        self.sizes = [_out_channels(b) for b in blocks]
        if merge:
            self.conv = _make_conv(blocks, dtype)
            self.convs = nn.ModuleList()
        else:
            self.convs = nn.ModuleList(_make_conv([b], dtype) for b in blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.merge:
            y = self.conv(x)
            if self.pool_commuted:
                n_pool = self.sizes[-1]
                y[:, :-n_pool].relu_()
                parts = list(y.split(self.sizes, dim=1))
                pooled = F.avg_pool2d(parts[-1], kernel_size=3, stride=1, padding=1,
                                      count_include_pad=False)
                parts[-1] = pooled.relu_()
                return parts
            return list(y.relu_().split(self.sizes, dim=1))
        outs = []
        for i, conv in enumerate(self.convs):
            if self.pool_commuted and i == len(self.convs) - 1:  # torch-fidelity's order
                pooled = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1,
                                      count_include_pad=False)
                outs.append(F.relu(conv(pooled), inplace=True))
            else:
                outs.append(F.relu(conv(x), inplace=True))
        return outs


def _sub(block: nn.Module, name: str) -> nn.Module:
    """The child module ``name`` of a torch-fidelity block (typed)."""
    child = getattr(block, name)
    assert isinstance(child, nn.Module)
    return child


def _out_channels(block: nn.Module) -> int:
    conv = _sub(block, "conv")
    assert isinstance(conv, nn.Conv2d)
    return int(conv.out_channels)


def _chain(block: nn.Module, names: Iterable[str], dtype: torch.dtype) -> nn.Sequential:
    return nn.Sequential(*(_ConvReLU(_sub(block, n), dtype) for n in names))


class _MixedA(nn.Module):
    """InceptionA (Mixed_5b/c/d): 1×1 | 1×1→5×5 | 1×1→3×3→3×3 | avgpool→1×1."""

    def __init__(self, block: nn.Module, dtype: torch.dtype, merge: bool) -> None:
        super().__init__()
        self.head = _Head(block, ["branch1x1", "branch5x5_1", "branch3x3dbl_1", "branch_pool"],
                          dtype, merge, pool_commuted=True)
        self.b5 = _chain(block, ["branch5x5_2"], dtype)
        self.b3 = _chain(block, ["branch3x3dbl_2", "branch3x3dbl_3"], dtype)

    def forward(self, x: Tensor) -> Tensor:
        b1, b5, b3, bp = self.head(x)
        return torch.cat([b1, self.b5(b5), self.b3(b3), bp], 1)


class _MixedB(nn.Module):
    """InceptionB (Mixed_6a): 3×3/2 | 1×1→3×3→3×3/2 | maxpool/2."""

    def __init__(self, block: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.b3 = _chain(block, ["branch3x3"], dtype)
        self.dbl = _chain(block, ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], dtype)

    def forward(self, x: Tensor) -> Tensor:
        pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.b3(x), self.dbl(x), pool], 1)


class _MixedC(nn.Module):
    """InceptionC (Mixed_6b–e): 1×1 | 1×1→1×7→7×1 | 1×1→7×1→1×7→7×1→1×7 | avgpool→1×1."""

    def __init__(self, block: nn.Module, dtype: torch.dtype, merge: bool) -> None:
        super().__init__()
        self.head = _Head(block, ["branch1x1", "branch7x7_1", "branch7x7dbl_1", "branch_pool"],
                          dtype, merge, pool_commuted=True)
        self.b7 = _chain(block, ["branch7x7_2", "branch7x7_3"], dtype)
        self.dbl = _chain(block, [f"branch7x7dbl_{i}" for i in range(2, 6)], dtype)

    def forward(self, x: Tensor) -> Tensor:
        b1, b7, dbl, bp = self.head(x)
        return torch.cat([b1, self.b7(b7), self.dbl(dbl), bp], 1)


class _MixedD(nn.Module):
    """InceptionD (Mixed_7a): 1×1→3×3/2 | 1×1→1×7→7×1→3×3/2 | maxpool/2."""

    def __init__(self, block: nn.Module, dtype: torch.dtype, merge: bool) -> None:
        super().__init__()
        self.head = _Head(block, ["branch3x3_1", "branch7x7x3_1"], dtype, merge,
                          pool_commuted=False)
        self.b3 = _chain(block, ["branch3x3_2"], dtype)
        self.b7 = _chain(block, ["branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"], dtype)

    def forward(self, x: Tensor) -> Tensor:
        h3, h7 = self.head(x)
        pool = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([self.b3(h3), self.b7(h7), pool], 1)


class _MixedE(nn.Module):
    """InceptionE_1/E_2 (Mixed_7b/c): 1×1 | 1×1→(1×3, 3×1) | 1×1→3×3→(1×3, 3×1) | pool→1×1.

    Mixed_7b's pool is avg (count_include_pad=False; commuted into the head GEMM), Mixed_7c's is
    TF's max pool 3×3/1 (not linear: kept as torch-fidelity has it).
    """

    def __init__(self, block: nn.Module, dtype: torch.dtype, merge: bool, avg_pool: bool) -> None:
        super().__init__()
        names = ["branch1x1", "branch3x3_1", "branch3x3dbl_1"]
        self.avg_pool = avg_pool
        self.head = _Head(block, [*names, "branch_pool"] if avg_pool else names, dtype, merge,
                          pool_commuted=avg_pool)
        self.b3_a = _ConvReLU(_sub(block, "branch3x3_2a"), dtype)
        self.b3_b = _ConvReLU(_sub(block, "branch3x3_2b"), dtype)
        self.dbl_2 = _ConvReLU(_sub(block, "branch3x3dbl_2"), dtype)
        self.dbl_a = _ConvReLU(_sub(block, "branch3x3dbl_3a"), dtype)
        self.dbl_b = _ConvReLU(_sub(block, "branch3x3dbl_3b"), dtype)
        self.pool_conv = None if avg_pool else _ConvReLU(_sub(block, "branch_pool"), dtype)

    def forward(self, x: Tensor) -> Tensor:
        heads = self.head(x)
        if self.pool_conv is None:
            b1, t3, tdbl, bp = heads
        else:
            b1, t3, tdbl = heads
            bp = self.pool_conv(F.max_pool2d(x, kernel_size=3, stride=1, padding=1))
        tdbl = self.dbl_2(tdbl)
        return torch.cat([b1, self.b3_a(t3), self.b3_b(t3), self.dbl_a(tdbl), self.dbl_b(tdbl), bp],
                         1)


def _pool_vector(x: Tensor) -> Tensor:
    """B×C×h×w → B×C float32 (global average, as torch-fidelity's intermediate features)."""
    return F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1).to(torch.float32)


class FastInceptionNet(nn.Module):
    """torch-fidelity's InceptionV3 with folded BN and merged 1×1 GEMMs (inference only).

    Args:
        ref: torch-fidelity's ``FeatureExtractorInceptionV3`` holding the weights.
        dtype: internal float dtype (float32 or float64).
        merge_1x1: run sibling 1×1 convs as one GEMM and commute avg-pool branches (default);
            ``False`` = plain BN folding (ablation).
    """

    def __init__(self, ref: FeatureExtractorInceptionV3, dtype: torch.dtype = torch.float32,
                 merge_1x1: bool = True) -> None:
        super().__init__()
        ref = ref.eval()
        self.dtype = dtype
        self.conv1a = _ConvReLU(ref.Conv2d_1a_3x3, dtype)
        self.conv2a = _ConvReLU(ref.Conv2d_2a_3x3, dtype)
        self.conv2b = _ConvReLU(ref.Conv2d_2b_3x3, dtype)
        self.conv3b = _ConvReLU(ref.Conv2d_3b_1x1, dtype)
        self.conv4a = _ConvReLU(ref.Conv2d_4a_3x3, dtype)
        self.mixed_5 = nn.Sequential(_MixedA(ref.Mixed_5b, dtype, merge_1x1),
                                     _MixedA(ref.Mixed_5c, dtype, merge_1x1),
                                     _MixedA(ref.Mixed_5d, dtype, merge_1x1))
        self.mixed_6 = nn.Sequential(_MixedB(ref.Mixed_6a, dtype),
                                     _MixedC(ref.Mixed_6b, dtype, merge_1x1),
                                     _MixedC(ref.Mixed_6c, dtype, merge_1x1),
                                     _MixedC(ref.Mixed_6d, dtype, merge_1x1),
                                     _MixedC(ref.Mixed_6e, dtype, merge_1x1))
        self.mixed_7 = nn.Sequential(_MixedD(ref.Mixed_7a, dtype, merge_1x1),
                                     _MixedE(ref.Mixed_7b, dtype, merge_1x1, avg_pool=True),
                                     _MixedE(ref.Mixed_7c, dtype, merge_1x1, avg_pool=False))
        self.fc_weight = nn.Parameter(ref.fc.weight.detach().to(dtype).clone(), requires_grad=False)
        self.fc_bias = nn.Parameter(ref.fc.bias.detach().to(dtype).clone(), requires_grad=False)

    def forward(self, x: Tensor, features: Sequence[str]) -> dict[str, Tensor]:
        """Normalised ``B×3×299×299`` (internal dtype) → ``{name: B×dim float32}``.

        Stops after the last requested feature, as torch-fidelity does.
        """
        wanted = set(features)
        out: dict[str, Tensor] = {}
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.conv2b(self.conv2a(self.conv1a(x)))  # B×64×147×147
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # B×64×73×73
        if "64" in wanted:
            out["64"] = _pool_vector(x)
            if wanted <= out.keys():
                return out
        x = self.conv4a(self.conv3b(x))  # B×192×71×71
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # B×192×35×35
        if "192" in wanted:
            out["192"] = _pool_vector(x)
            if wanted <= out.keys():
                return out
        x = self.mixed_6(self.mixed_5(x))  # B×768×17×17
        if "768" in wanted:
            out["768"] = _pool_vector(x)
            if wanted <= out.keys():
                return out
        x = self.mixed_7(x)  # B×2048×8×8
        pool = F.adaptive_avg_pool2d(x, output_size=(1, 1)).flatten(1)  # B×2048
        if "2048" in wanted:
            out["2048"] = pool.to(torch.float32)
        if "logits_unbiased" in wanted or "logits" in wanted:
            if "logits_unbiased" in wanted:
                unbiased = pool.mm(self.fc_weight.T)  # B×1008, as torch-fidelity
                out["logits_unbiased"] = unbiased.to(torch.float32)
                if "logits" in wanted:
                    out["logits"] = (unbiased + self.fc_bias.unsqueeze(0)).to(torch.float32)
            else:
                out["logits"] = F.linear(pool, self.fc_weight, self.fc_bias).to(torch.float32)
        return out


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def _dtype_of(internal_dtype: str | torch.dtype | None) -> torch.dtype:
    if internal_dtype is None:
        return torch.float32
    if isinstance(internal_dtype, torch.dtype):
        if internal_dtype not in _DTYPES.values():
            raise InputError(
                f"Inception internal dtype must be float32 or float64, got {internal_dtype}"
            )
        return internal_dtype
    if internal_dtype not in _DTYPES:
        raise InputError(
            f"Inception internal dtype must be 'float32' or 'float64', got {internal_dtype!r}"
        )
    return _DTYPES[internal_dtype]


def _check_features(features: Iterable[str]) -> tuple[str, ...]:
    names = tuple(features)
    unknown = [f for f in names if f not in PROVIDED_FEATURES]
    if unknown or not names or len(set(names)) != len(names):
        raise InputError(
            f"Inception features must be distinct names from {PROVIDED_FEATURES}, got {names}"
        )
    return names


def _as_weights(weights: str | os.PathLike[str] | InceptionWeights | None) -> InceptionWeights:
    if isinstance(weights, InceptionWeights):
        return weights
    return load_inception_weights(resolve_inception_weights(weights))


def build_reference_extractor(
    weights: str | os.PathLike[str] | InceptionWeights | None = None,
    features: Sequence[str] = DEFAULT_FEATURES,
    internal_dtype: str | torch.dtype | None = None,
) -> FeatureExtractorInceptionV3:
    """torch-fidelity's stock ``FeatureExtractorInceptionV3`` on the given weights (CPU, eval).

    ``feature_extractor_weights_path`` is given an in-memory copy of the tensors that
    :func:`~gan_eval.features.inception_weights.load_inception_weights` read with
    ``weights_only=True`` (see ``InceptionWeights.as_buffer``), so the file is never unpickled
    without ``weights_only`` and never downloaded. Its ``load_state_dict`` is strict: a file with
    missing/extra/mis-shaped keys raises :class:`InputError` naming the file.
    """
    loaded = _as_weights(weights)
    dtype = _dtype_of(internal_dtype)
    try:
        ref = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            list(_check_features(features)),
            feature_extractor_weights_path=loaded.as_buffer(),
            feature_extractor_internal_dtype="float64" if dtype == torch.float64 else "float32",
        )
    except RuntimeError as exc:  # strict load_state_dict: key/shape mismatch
        detail = str(exc).strip().splitlines()[0][:300]
        raise InputError(
            f"inception weights file {loaded.path} does not fit torch-fidelity's InceptionV3 "
            f"({detail}); expected {weights_table.known('inception').expected}"
        ) from None
    return ref.eval()


class InceptionFeatures(nn.Module):
    """Fast torch-fidelity InceptionV3 features from uint8 images.

    ``forward(images)`` with ``images`` uint8 ``B×3×H×W`` (any H, W; resized to 299×299 like
    torch-fidelity) returns ``{name: B×dim float32 tensor}`` for the configured ``features``
    ('2048': 2048-d pool features for FID/KID/PRC; 'logits_unbiased': 1008 logits without bias,
    for IS), on the module's device. Values match torch-fidelity's ``inception-v3-compat`` on the
    same weights to ~1e-6 relative (float32).

    Attributes:
        features: names computed by ``forward``.
        weights_path / weights_sha256: provenance of the weights file.
        internal_dtype: float32 or float64 (torch-fidelity's ``feature_extractor_internal_dtype``).
        chunk_size: ``forward`` runs the batch in chunks of at most this many images (bounds
            memory: ~25 MB of activations per image at 299×299 in float32); ``None`` = 32 on CPU
            (no faster beyond 16–32 there), 256 on GPUs.
        autocast_dtype: if set (e.g. ``torch.bfloat16`` on CUDA), the network runs under
            ``torch.autocast``; faster on GPUs but NOT within 1e-4 of torch-fidelity.
    """

    def __init__(
        self,
        weights: InceptionWeights,
        *,
        features: Sequence[str] = DEFAULT_FEATURES,
        internal_dtype: str | torch.dtype | None = None,
        merge_1x1: bool = True,
        chunk_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.features = _check_features(features)
        self.internal_dtype = _dtype_of(internal_dtype)
        self.weights_path = weights.path
        self.weights_sha256 = weights.sha256
        if chunk_size is not None and chunk_size < 1:
            raise InputError(f"chunk_size must be ≥ 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.autocast_dtype = autocast_dtype
        ref = build_reference_extractor(weights, ["2048"], self.internal_dtype)
        self.net = FastInceptionNet(ref, self.internal_dtype, merge_1x1=merge_1x1)
        self.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        """Device of the weights (inputs are moved there)."""
        return self.net.fc_weight.device

    @torch.no_grad()
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """uint8 ``B×3×H×W`` → ``{feature name: B×dim float32}`` (see class docstring)."""
        check_uint8_images(images)
        images = images.to(self.device, non_blocking=True)
        batch = images.shape[0]
        if batch == 0:
            return {f: torch.zeros(0, FEATURE_DIMS[f], device=self.device) for f in self.features}
        step = self.chunk_size or AUTO_CHUNK["cpu" if self.device.type == "cpu" else "other"]
        parts = [self._run(images[i : i + step]) for i in range(0, batch, step)]
        if len(parts) == 1:
            return parts[0]
        return {f: torch.cat([p[f] for p in parts]) for f in self.features}

    def _run(self, images: Tensor) -> dict[str, Tensor]:
        x = tf_resize_normalize(images, self.internal_dtype)
        ctx: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if self.autocast_dtype is not None:
            ctx = torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)
        with ctx:
            out = self.net(x, self.features)
        return {f: out[f].float() for f in self.features}


def load_inception(
    weights: str | os.PathLike[str] | InceptionWeights | None = None,
    device: str | torch.device | None = None,
    *,
    features: Sequence[str] = DEFAULT_FEATURES,
    internal_dtype: str | torch.dtype | None = None,
    merge_1x1: bool = True,
    chunk_size: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> InceptionFeatures:
    """Load the fast torch-fidelity InceptionV3 feature extractor.

    Args:
        weights: path of ``weights-inception-2015-12-05-6726825d.pth`` (``--inception-weights``),
            an already loaded :class:`InceptionWeights`, or ``None`` to look in
            ``$GAN_EVAL_INCEPTION_WEIGHTS`` and torch-fidelity's hub cache. Never downloads.
        device: ``None`` → ``"cuda"`` if available, else ``"cpu"``.
        features: subset of :data:`PROVIDED_FEATURES`; default ('2048', 'logits_unbiased').
        internal_dtype / merge_1x1 / chunk_size / autocast_dtype: see :class:`InceptionFeatures`.

    Raises:
        MissingAssetError: no weights file found (CLI exit 3).
        InputError: a given path is missing or not an InceptionV3 state dict (CLI exit 2).
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = InceptionFeatures(
        _as_weights(weights), features=features, internal_dtype=internal_dtype,
        merge_1x1=merge_1x1, chunk_size=chunk_size, autocast_dtype=autocast_dtype,
    )
    return model.to(device)


class FeatureExtractorInceptionFast(FeatureExtractorBase):
    """torch-fidelity feature extractor ``"inception"``: :class:`InceptionFeatures` inside.

    Same features, defaults per metric and uint8 input contract as ``inception-v3-compat``.
    Constructed by ``torch_fidelity.calculate_metrics(feature_extractor="inception", ...)``
    with its kwargs: ``feature_extractor_weights_path`` (else ``$GAN_EVAL_INCEPTION_WEIGHTS``,
    else torch-fidelity's hub cache; never downloads: :class:`MissingAssetError` instead) and
    ``feature_extractor_internal_dtype`` ('float32' default, or 'float64').
    """

    def __init__(
        self,
        name: str,
        features_list: Sequence[str],
        feature_extractor_weights_path: str | os.PathLike[str] | None = None,
        feature_extractor_internal_dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, features_list)
        weights = load_inception_weights(resolve_inception_weights(feature_extractor_weights_path))
        self.model = InceptionFeatures(weights, features=list(features_list),
                                       internal_dtype=feature_extractor_internal_dtype)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """uint8 ``B×3×H×W`` → tuple of float32 features in ``features_list`` order."""
        out = self.model(x)
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return PROVIDED_FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return str(FeatureExtractorInceptionV3.get_default_feature_layer_for_metric(metric))

    @staticmethod
    def can_be_compiled() -> bool:
        return True

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return (torch.rand([1, 3, 4, 4]) * 255).to(torch.uint8)


@register_extractor(catalogue.EXTRACTORS["inception"],
                    fidelity_class=FeatureExtractorInceptionFast)
class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's InceptionV3 (``inception-v3-compat``) with BatchNorm folded: 2048-d pool
    features for FID/KID/PRC and unbiased logits for IS. Needs the weights file (never
    downloaded): ``--inception-weights`` / ``--weights inception=PATH``,
    ``$GAN_EVAL_INCEPTION_WEIGHTS`` or the caches of :mod:`gan_eval.weights`."""

    primary = "2048"
    logits = "logits_unbiased"

    def __init__(self, device: torch.device, weights: Path | None = None) -> None:
        super().__init__(device)
        self._net = load_inception(weights, device)

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        return dict(self._net(images))

    def weights_sha256(self) -> str:
        return str(self._net.weights_sha256)

    @classmethod
    def check_weights(cls, path: Path) -> str:
        return check_inception_weights(path)
