"""DINOv2 ViT feature extractors (``dinov2-vit-{s,b,l,g}14``) from Meta's local ``.pth`` files.

FD_DINOv2 (Stein et al., NeurIPS 2023, the dgm-eval code) is the Fréchet distance between
DINOv2 ViT-L/14 features. This module reproduces dgm-eval's DINOv2 encoder offline:

- **weights**: Meta's ``dinov2_vit{s,b,l,g}14_pretrain.pth`` (a plain state dict, read with
  ``torch.load(weights_only=True)``; located by :mod:`gan_eval.weights`, never
  downloaded here);
- **architecture**: timm's ``vit_{small,base,large,giant}_patch14_dinov2`` (``pretrained=False``,
  ``img_size=224``, no head), loaded through timm's own checkpoint filter for Meta's state dicts;
- **position embeddings**: Meta's model keeps the 37×37 grid of its 518-pixel training size and
  interpolates it *at run time* for other sizes (``DinoVisionTransformer.interpolate_pos_encoding``:
  bicubic, no antialias, ``scale_factor = (16 + 0.1) / 37`` for 224-pixel inputs, in float32).
  timm's filter would resample with antialias and an output size instead, which gives different
  numbers; so the 16×16 grid is computed once, at load, with Meta's exact call and handed to timm;
- **preprocessing** (dgm-eval ``DINOv2Encoder.transform``): PIL bicubic resize to 224×224
  (aspect ratio not kept), ``ToTensor`` (/255), ImageNet mean/std;
- **features**: the CLS token after the final LayerNorm (what the hub model's ``forward``
  returns: ``head(x_norm_clstoken)`` with an identity head), float32 ``B×D`` (D = 384, 768,
  1024, 1536), under the name ``"cls"``.

For speed (exact in real arithmetic) each block's LayerScale ``γ`` is folded into the linear layer
before it (``γ ⊙ (W x + b) = (γ W) x + γ b``), and the forward runs under
``torch.inference_mode``.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_eval import weights as weights_table
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.base import FeatureExtractor
from gan_eval.features.pil_resize import pil_bicubic

#: extractor name → (timm architecture, embedding width, depth)
DINOV2_MODELS: dict[str, tuple[str, int, int]] = {
    "dinov2-vit-s14": ("vit_small_patch14_dinov2", 384, 12),
    "dinov2-vit-b14": ("vit_base_patch14_dinov2", 768, 12),
    "dinov2-vit-l14": ("vit_large_patch14_dinov2", 1024, 24),
    "dinov2-vit-g14": ("vit_giant_patch14_dinov2", 1536, 40),
}

#: Input side (dgm-eval resizes to 224×224).
INPUT_SIZE = 224
#: Patch side.
PATCH = 14
#: Meta's interpolation offset (``interpolate_offset``; dino issue #8).
META_OFFSET = 0.1
#: ImageNet normalisation (dgm-eval: ``imagenet_mean``/``imagenet_std``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Name of the feature the extractors return.
FEATURE = "cls"


@dataclass(frozen=True)
class MetaState:
    """A Meta DINOv2 state dict read from ``path`` (sha256 of exactly the bytes parsed)."""

    path: Path
    sha256: str
    state_dict: dict[str, Tensor] = field(repr=False)


def read_meta_state_dict(path: str | os.PathLike[str], name: str) -> MetaState:
    """Read, hash and safely unpickle a Meta DINOv2 ``.pth`` file; check it fits ``name``.

    Raises:
        InputError: unreadable, not ``weights_only``-loadable, not ``{str: Tensor}``, or keys or
            widths that are not those of ``name``'s Meta checkpoint.
    """
    _, dim, depth = DINOV2_MODELS[name]
    expected = weights_table.WEIGHTS[name].filename
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {name} weights file {file}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means "not a state dict"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"{name} weights file {file} is not a torch state dict loadable with "
            f"weights_only=True (expected Meta's {expected}): {first}"
        ) from None
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()
    ):
        raise InputError(f"{name} weights file {file} does not hold a state dict "
                         f"({{name: tensor}}), got {type(obj).__name__}")
    state = {str(k): v for k, v in obj.items()}
    checks = {
        "cls_token": (1, 1, dim),
        "patch_embed.proj.weight": (dim, 3, PATCH, PATCH),
        "norm.weight": (dim,),
        f"blocks.{depth - 1}.norm1.weight": (dim,),
    }
    for key, shape in checks.items():
        if key not in state or tuple(state[key].shape) != shape:
            got = tuple(state[key].shape) if key in state else "missing"
            raise InputError(
                f"{name} weights file {file} is not Meta's {expected}: {key} is {got}, "
                f"expected {shape}"
            )
    if f"blocks.{depth}.norm1.weight" in state:
        raise InputError(f"{name} weights file {file} has more than {depth} blocks: "
                         f"not Meta's {expected}")
    pos = state.get("pos_embed")
    if pos is None or pos.dim() != 3 or pos.shape[2] != dim or math.isqrt(
        pos.shape[1] - 1
    ) ** 2 != pos.shape[1] - 1:
        raise InputError(f"{name} weights file {file}: pos_embed must be 1×(1+M²)×{dim}, got "
                         f"{None if pos is None else tuple(pos.shape)}")
    return MetaState(file, digest, state)


def meta_pos_embed(pos_embed: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """The position embeddings Meta's model uses for ``size``×``size`` inputs.

    Transcribes ``DinoVisionTransformer.interpolate_pos_encoding`` (facebookresearch/dinov2,
    hub models: ``interpolate_antialias=False``, ``interpolate_offset=0.1``): class token kept,
    the M×M patch grid resized bicubically (no antialias, ``align_corners=False``) with
    ``scale_factor = (size // 14 + 0.1) / M``, in float32.

    Args:
        pos_embed: ``1×(1+M²)×D``.
        size: input side, pixels.

    Returns:
        ``1×(1+g²)×D`` float32 with ``g = size // 14`` (the input unchanged when g = M).
    """
    n = pos_embed.shape[1] - 1
    m = math.isqrt(n)
    grid = size // PATCH
    if grid == m:
        return pos_embed.float()
    dim = pos_embed.shape[-1]
    pos = pos_embed.float()
    scale = (grid + META_OFFSET) / m
    patch = F.interpolate(
        pos[:, 1:].reshape(1, m, m, dim).permute(0, 3, 1, 2),
        scale_factor=(scale, scale), mode="bicubic", antialias=False,
    )
    if patch.shape[-2:] != (grid, grid):  # Meta asserts the same
        raise InputError(f"DINOv2 position grid {m} cannot be interpolated to {grid}")
    patch = patch.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat((pos[:, :1], patch), dim=1)


def build_timm_dinov2(name: str, state_dict: Mapping[str, Tensor], *,
                      size: int = INPUT_SIZE, meta_positions: bool = True) -> nn.Module:
    """timm's DINOv2 ViT for ``size`` inputs, loaded (strictly) from a Meta state dict.

    Args:
        name: a key of :data:`DINOV2_MODELS`.
        state_dict: Meta's keys (``cls_token``, ``pos_embed`` at 37×37, ``mask_token``,
            ``blocks.*``, ``norm.*``; ``mlp.w12``/``w3`` for g14).
        size: input side the position embeddings are prepared for.
        meta_positions: True: position grid from :func:`meta_pos_embed` (Meta's numbers);
            False: timm's checkpoint filter resamples it its own way (the plain library load).

    Returns:
        The timm ``VisionTransformer`` (``num_classes=0``), eval mode, float32, CPU.
    """
    try:
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn
    except ImportError:
        raise MissingAssetError(
            f"{name} needs the timm package: pip install 'gan-eval[feature-spaces]'"
        ) from None

    arch = DINOV2_MODELS[name][0]
    model = timm.create_model(arch, pretrained=False, img_size=size, num_classes=0)
    state = dict(state_dict)
    if meta_positions:
        state["pos_embed"] = meta_pos_embed(state["pos_embed"], size)
    filtered = checkpoint_filter_fn(state, model)  # type: ignore[arg-type]
    try:
        model.load_state_dict(filtered, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{name}: the weights do not fit timm's {arch}: {first}") from None
    return model.float().eval().requires_grad_(False)


def fold_layer_scale(model: nn.Module) -> nn.Module:
    """Fold each block's LayerScale γ into the linear layer before it, in float64 (in place).

    ``ls1(attn.proj(h)) = γ ⊙ (W h + b) = (diag(γ) W) h + γ ⊙ b``; likewise ``ls2`` into the MLP's
    last linear layer (``fc2``). The LayerScales become identities.
    """
    for block in model.blocks:  # type: ignore[union-attr]
        for ls, linear in ((block.ls1, block.attn.proj), (block.ls2, block.mlp.fc2)):
            if not hasattr(ls, "gamma"):
                continue
            gamma = ls.gamma.detach().double()
            with torch.no_grad():
                linear.weight.copy_((gamma[:, None] * linear.weight.double()).float())
                if linear.bias is not None:
                    linear.bias.copy_((gamma * linear.bias.double()).float())
        block.ls1 = nn.Identity()
        block.ls2 = nn.Identity()
    return model


def dgm_eval_preprocess(images: Tensor, size: int = INPUT_SIZE) -> Tensor:
    """dgm-eval's DINOv2 transform on uint8 ``B×3×H×W``: PIL bicubic to ``size``², /255,
    ImageNet mean/std. Returns float32 ``B×3×size×size`` on the CPU."""
    resized = pil_bicubic(images, size, center_crop=False)
    x = resized.float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def check_uint8(images: object, name: str) -> Tensor:
    """``images`` if a uint8 ``B×3×H×W`` tensor, else InputError naming the extractor."""
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or (
        images.shape[1] != 3
    ):
        got = (f"{images.dtype} {tuple(images.shape)}" if isinstance(images, Tensor)
               else type(images).__name__)
        raise InputError(f"{name} features need a uint8 B×3×H×W tensor (0..255), got {got}")
    return images


class Dinov2Extractor(FeatureExtractor):
    """Base of the ``dinov2-vit-*14`` extractors: uint8 images → ``{"cls": float32 B×D}``.

    The weights file comes from ``weights`` (the CLI's ``--weights``) or is located by
    :func:`gan_eval.weights.resolve` (``$GAN_EVAL_DINOV2_VIT_S14_WEIGHTS`` etc.,
    ``$GAN_EVAL_WEIGHTS_DIR``, ``~/.cache/gan-eval/weights``, torch hub's cache); a missing file
    raises MissingAssetError (exit 3) naming it, its URL and ``gan-eval weights fetch NAME``.
    """

    name: ClassVar[str]
    primary: ClassVar[str] = FEATURE

    def __init__(self, device: torch.device, weights: Path | None = None) -> None:
        super().__init__(device)
        path = weights_table.resolve(self.name, weights)
        meta = read_meta_state_dict(path, self.name)
        self.weights_path = meta.path
        self._sha = meta.sha256
        self.dim = DINOV2_MODELS[self.name][1]
        model = fold_layer_scale(build_timm_dinov2(self.name, meta.state_dict))
        self.model = model.to(device)

    def preprocess(self, images: Tensor) -> Tensor:
        """dgm-eval's preprocessing, on ``self.device``."""
        return dgm_eval_preprocess(check_uint8(images, self.name)).to(self.device)

    def forward_preprocessed(self, x: Tensor) -> Tensor:
        """CLS features of already-preprocessed float32 ``B×3×224×224`` input."""
        with torch.inference_mode():
            return self.model.forward_features(x)[:, 0].float()  # type: ignore[operator]

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.shape[0] == 0:
            return {FEATURE: torch.zeros(0, self.dim, device=self.device)}
        return {FEATURE: self.forward_preprocessed(self.preprocess(images))}

    def weights_sha256(self) -> str:
        return self._sha


def _subclass(extractor_name: str) -> type[Dinov2Extractor]:
    cls = type(
        "Dinov2" + extractor_name.split("-")[-1].upper() + "Extractor",
        (Dinov2Extractor,),
        {"name": extractor_name, "__doc__": f"{extractor_name}: "
         + DINOV2_MODELS[extractor_name][0] + " (Meta weights), CLS features for FD_DINOv2."},
    )
    return cls


#: The extractor classes, by name (factories ``cls(device, weights_path)``).
DINOV2_EXTRACTORS: dict[str, type[Dinov2Extractor]] = {
    name: _subclass(name) for name in DINOV2_MODELS
}


def register_dinov2(register: Callable[[str], Callable[[Any], Any]]) -> None:
    """Register every DINOv2 extractor with ``register(name)(factory)`` (the registry's
    ``register_extractor``)."""
    for name, cls in DINOV2_EXTRACTORS.items():
        register(name)(cls)
