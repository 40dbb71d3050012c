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
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.base import FeatureExtractor, register_extractor
from gan_eval.features.pil_resize import pil_bicubic
from gan_eval.features.weights_files import check_shapes, read_file_bytes, read_state_dict

#: extractor name → (timm architecture, embedding width, depth)
DINOV2_MODELS: dict[str, tuple[str, int, int]] = {
    "dinov2-vit-s14": ("vit_small_patch14_dinov2", 384, 12),
    "dinov2-vit-b14": ("vit_base_patch14_dinov2", 768, 12),
    "dinov2-vit-l14": ("vit_large_patch14_dinov2", 1024, 24),
    "dinov2-vit-g14": ("vit_giant_patch14_dinov2", 1536, 40),
}

#: Input side (dgm-eval resizes to 224×224).
INPUT_SIZE = 224
#: Side Meta's models were trained at (their position grid is 37×37).
META_SIZE = 518
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


def meta_state_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Every key of Meta's ``dinov2_vit*14_pretrain.pth`` for ``name`` with its shape.

    Meta's hub models (``DinoVisionTransformer``, ``img_size=518``, ``block_chunks=0``, no
    register tokens): class token, a 37×37 (+1) position grid, the mask token, the 14×14 patch
    embedding, per block LayerNorms, fused qkv attention, LayerScales and the MLP (``fc1``/``fc2``
    of width 4·D; ``w12``/``w3`` SwiGLU of width 4096 for g14), and the final LayerNorm; the head
    is an identity (no keys).
    """
    _, dim, depth = DINOV2_MODELS[name]
    grid = META_SIZE // PATCH
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, dim), "pos_embed": (1, 1 + grid * grid, dim), "mask_token": (1, dim),
        "patch_embed.proj.weight": (dim, 3, PATCH, PATCH), "patch_embed.proj.bias": (dim,),
    }
    giant = name == "dinov2-vit-g14"
    hidden = 4096 if giant else 4 * dim
    for i in range(depth):
        b = f"blocks.{i}"
        shapes.update({
            f"{b}.norm1.weight": (dim,), f"{b}.norm1.bias": (dim,),
            f"{b}.attn.qkv.weight": (3 * dim, dim), f"{b}.attn.qkv.bias": (3 * dim,),
            f"{b}.attn.proj.weight": (dim, dim), f"{b}.attn.proj.bias": (dim,),
            f"{b}.ls1.gamma": (dim,), f"{b}.norm2.weight": (dim,), f"{b}.norm2.bias": (dim,),
            f"{b}.ls2.gamma": (dim,),
        })
        if giant:
            shapes.update({f"{b}.mlp.w12.weight": (2 * hidden, dim),
                           f"{b}.mlp.w12.bias": (2 * hidden,),
                           f"{b}.mlp.w3.weight": (dim, hidden), f"{b}.mlp.w3.bias": (dim,)})
        else:
            shapes.update({f"{b}.mlp.fc1.weight": (hidden, dim), f"{b}.mlp.fc1.bias": (hidden,),
                           f"{b}.mlp.fc2.weight": (dim, hidden), f"{b}.mlp.fc2.bias": (dim,)})
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,)})
    return shapes


def read_meta_state_dict(path: str | os.PathLike[str], name: str) -> MetaState:
    """Read, hash and safely unpickle a Meta DINOv2 ``.pth`` file; check it is ``name``'s.

    Raises:
        InputError: naming the file and what was expected: missing, empty, an HTML page, a plain
            pickle, truncated, a TorchScript archive, not ``{str: Tensor}``, or keys and shapes
            that are not exactly those of :func:`meta_state_shapes`.
    """
    entry = weights_table.known(name)
    file = Path(path)
    data = read_file_bytes(file, entry)
    state = read_state_dict(data, file, entry)
    check_shapes(state, meta_state_shapes(name), file, entry)
    return MetaState(file, hashlib.sha256(data).hexdigest(), state)


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
        raise InputError(f"DINOv2 position grid {m}×{m} cannot be interpolated to {grid}×{grid} "
                         f"as Meta's model does; expected Meta's 37×37 grid")
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
        raise InputError(f"{name}: the weights do not fit timm's {arch} ({first}); expected "
                         f"{weights_table.known(name).expected}") from None
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

    @classmethod
    def check_weights(cls, path: Path) -> str:
        """Meta's file for this model, memory-mapped: exact keys and shapes
        (:func:`meta_state_shapes`)."""
        entry = weights_table.known(cls.name)
        state = read_state_dict(path, path, entry)
        check_shapes(state, meta_state_shapes(cls.name), path, entry)
        return f"{len(state)} tensors with the names and shapes of Meta's {entry.filename}"


def _subclass(extractor_name: str) -> type[Dinov2Extractor]:
    cls = type(
        "Dinov2" + extractor_name.split("-")[-1].upper() + "Extractor",
        (Dinov2Extractor,),
        {"name": extractor_name, "__doc__": f"{extractor_name}: "
         + DINOV2_MODELS[extractor_name][0] + " (Meta weights), CLS features for FD_DINOv2."},
    )
    return cls


#: The extractor classes, by name (each registered as its name: ``cls(device, weights_path)``).
DINOV2_EXTRACTORS: dict[str, type[Dinov2Extractor]] = {
    name: register_extractor(catalogue.EXTRACTORS[name])(_subclass(name)) for name in DINOV2_MODELS
}
