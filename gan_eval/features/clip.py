"""CLIP image feature extractors (``clip-vit-b32``, ``clip-vit-l14``, ``clip-vit-l14-336``) from
OpenAI's local TorchScript archives, preprocessed as the CMMD reference.

CMMD (Jayasumana et al., CVPR 2024) compares CLIP ViT-L/14@336 image embeddings. The reference
code (google-research ``cmmd``) does, per image:

1. ``io_util._center_crop_and_resize``: crop the central ``min(H, W)`` square, PIL bicubic resize
   to the model's input side (336; 224 for B/32 and L/14), uint8;
2. ``/ 255`` (float32), a torch bicubic resize to the same size (an identity), then
   ``CLIPImageProcessor`` normalisation with CLIP's mean/std (no further resize or crop);
3. ``CLIPVisionModelWithProjection(...).image_embeds`` (the CLS token after ``ln_post``, times
   ``proj``), then division by its L2 norm.

Here: the same steps with :func:`gan_eval.features.pil_resize.pil_bicubic` (PIL itself) and the
network rebuilt from OpenAI's archive: the archive is read as data, never with ``torch.jit.load``
(a TorchScript archive is a program whose ``__setstate__`` methods run at load; see
:func:`gan_eval.features.weights_files.read_torchscript_tensors`), its ``visual.*`` tensors are
checked against the exact names and shapes of the model's vision tower
(:func:`visual_state_shapes`) and loaded strictly, through timm's
checkpoint filter for OpenAI CLIP state dicts, into timm's quick-GELU CLIP image tower
(``vit_base_patch32_clip_quickgelu_224`` etc.: the maintained architecture, with one fused qkv
GEMM and ``scaled_dot_product_attention`` per block; it measured as fast as or a little faster
than open_clip's and torch-fidelity's towers on the CPU). Weights stored in fp16 by OpenAI are
widened to float32, as ``clip.load`` and torch-fidelity do on the CPU.

Features: ``"embedding"`` (unit L2 norm, CMMD's input; the primary feature) and ``"clip"`` (the
projection before normalisation, what torch-fidelity's ``clip-*`` extractors return), float32
``B×E`` (E = 512 for B/32, 768 for L/14).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from gan_eval import catalogue
from gan_eval import weights as weights_table
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.base import FeatureExtractor, register_extractor
from gan_eval.features.dinov2 import check_uint8
from gan_eval.features.pil_resize import pil_bicubic
from gan_eval.features.weights_files import check_shapes, read_file_bytes, read_torchscript_tensors

#: extractor name → (input side, embedding width) as OpenAI publishes them
CLIP_MODELS: dict[str, tuple[int, int]] = {
    "clip-vit-b32": (224, 512),
    "clip-vit-l14": (224, 768),
    "clip-vit-l14-336": (336, 768),
}

#: extractor name → timm architecture (OpenAI's CLIP towers use quick-GELU)
TIMM_ARCH: dict[str, str] = {
    "clip-vit-b32": "vit_base_patch32_clip_quickgelu_224",
    "clip-vit-l14": "vit_large_patch14_clip_quickgelu_224",
    "clip-vit-l14-336": "vit_large_patch14_clip_quickgelu_336",
}

#: CLIP's normalisation (OpenAI clip.py ``_transform``; CLIPImageProcessor's image_mean/std).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Primary feature: the unit-norm embedding CMMD uses.
FEATURE = "embedding"
#: The un-normalised projection (torch-fidelity's ``clip`` feature).
RAW_FEATURE = "clip"


@dataclass(frozen=True)
class ClipVisualState:
    """The vision tower's tensors from an OpenAI archive and the shapes they imply."""

    path: Path
    sha256: str
    state_dict: dict[str, Tensor] = field(repr=False)  # keys without the "visual." prefix
    image_size: int
    patch_size: int
    width: int
    layers: int
    embed_dim: int


#: extractor name → (patch side, position grid side, width, layers) of OpenAI's vision towers
VISUAL_GEOMETRY: dict[str, tuple[int, int, int, int]] = {
    "clip-vit-b32": (32, 7, 768, 12),
    "clip-vit-l14": (14, 16, 1024, 24),
    "clip-vit-l14-336": (14, 24, 1024, 24),
}


def visual_state_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Every ``visual.*`` key of OpenAI's archive for ``name`` (prefix removed) with its shape:
    OpenAI's ``VisionTransformer`` (clip/model.py): the patch convolution (no bias), class and
    position embeddings, ``ln_pre``, the residual attention blocks (fused ``in_proj``, ``out_proj``,
    ``ln_1``, MLP ``c_fc``/``c_proj`` of width 4·W, ``ln_2``), ``ln_post`` and ``proj``."""
    patch, grid, width, layers = VISUAL_GEOMETRY[name]
    embed = CLIP_MODELS[name][1]
    shapes: dict[str, tuple[int, ...]] = {
        "class_embedding": (width,), "positional_embedding": (grid * grid + 1, width),
        "proj": (width, embed), "conv1.weight": (width, 3, patch, patch),
        "ln_pre.weight": (width,), "ln_pre.bias": (width,),
    }
    for i in range(layers):
        b = f"transformer.resblocks.{i}"
        shapes.update({
            f"{b}.attn.in_proj_weight": (3 * width, width), f"{b}.attn.in_proj_bias": (3 * width,),
            f"{b}.attn.out_proj.weight": (width, width), f"{b}.attn.out_proj.bias": (width,),
            f"{b}.ln_1.weight": (width,), f"{b}.ln_1.bias": (width,),
            f"{b}.mlp.c_fc.weight": (4 * width, width), f"{b}.mlp.c_fc.bias": (4 * width,),
            f"{b}.mlp.c_proj.weight": (width, 4 * width), f"{b}.mlp.c_proj.bias": (width,),
            f"{b}.ln_2.weight": (width,), f"{b}.ln_2.bias": (width,),
        })
    shapes.update({"ln_post.weight": (width,), "ln_post.bias": (width,)})
    return shapes


def _visual(tensors: dict[str, Tensor], file: Path, name: str) -> dict[str, Tensor]:
    """The vision tower's tensors (``visual.`` removed), checked against
    :func:`visual_state_shapes`."""
    visual = {k.removeprefix("visual."): v for k, v in tensors.items() if k.startswith("visual.")}
    check_shapes(visual, visual_state_shapes(name), file, weights_table.known(name))
    return visual


def read_openai_archive(path: str | os.PathLike[str], name: str) -> ClipVisualState:
    """Hash an OpenAI CLIP TorchScript archive and copy out its vision tower's tensors, without
    running the archive's code (:func:`~gan_eval.features.weights_files.read_torchscript_tensors`).

    Raises:
        InputError: naming the file and what was expected: missing, empty, an HTML page, a plain
            pickle, truncated, a ``torch.save`` file, an archive holding anything but modules and
            tensors, or a vision tower whose keys and shapes are not exactly ``name``'s.
    """
    entry = weights_table.known(name)
    file = Path(path)
    data = read_file_bytes(file, entry)
    visual = _visual(read_torchscript_tensors(data, file, entry), file, name)
    patch, _, width, layers = VISUAL_GEOMETRY[name]
    image_size, embed = CLIP_MODELS[name]
    return ClipVisualState(file, hashlib.sha256(data).hexdigest(), visual, image_size, patch,
                           width, layers, embed)


def build_timm_clip(name: str, state: ClipVisualState) -> nn.Module:
    """timm's quick-GELU CLIP image tower for ``name`` (``vit_*_clip_quickgelu_*``, head = OpenAI's
    ``proj`` with a zero bias), loaded strictly through timm's checkpoint filter for OpenAI state
    dicts; float32, eval mode, CPU."""
    try:
        import timm
        from timm.models.vision_transformer import checkpoint_filter_fn
    except ImportError:
        raise MissingAssetError(
            f"{name} needs the timm package: pip install 'gan-eval[feature-spaces]'"
        ) from None
    arch = TIMM_ARCH[name]
    model = timm.create_model(arch, pretrained=False, num_classes=state.embed_dim)
    visual = {"visual." + k: v.float() for k, v in state.state_dict.items()}
    filtered = checkpoint_filter_fn(visual, model)  # type: ignore[arg-type]
    try:
        model.load_state_dict(filtered, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{name} weights file {state.path}: the vision tower does not fit "
                         f"timm's {arch} ({first}); expected "
                         f"{weights_table.known(name).expected}") from None
    return model.float().eval().requires_grad_(False)


def cmmd_preprocess(images: Tensor, size: int) -> Tensor:
    """The CMMD reference's image path on uint8 ``B×3×H×W``: central square crop, PIL bicubic
    to ``size``², /255, CLIP mean/std. Returns float32 ``B×3×size×size`` on the CPU."""
    resized = pil_bicubic(images, size, center_crop=True)
    x = resized.float().div_(255.0)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


class ClipExtractor(FeatureExtractor):
    """Base of the ``clip-*`` extractors: uint8 images → ``{"embedding", "clip"}`` float32.

    The archive comes from ``weights`` (the CLI's ``--weights``) or is located by
    :func:`gan_eval.weights.resolve` (``$GAN_EVAL_CLIP_VIT_B32_WEIGHTS`` etc.,
    ``$GAN_EVAL_WEIGHTS_DIR``, ``~/.cache/gan-eval/weights``, torch hub's cache as torch-fidelity
    names it, ``~/.cache/clip``); missing → MissingAssetError (exit 3) naming the file, its URL
    and ``gan-eval weights fetch NAME``.
    """

    primary: ClassVar[str] = FEATURE
    features: ClassVar[tuple[str, ...]] = (FEATURE, RAW_FEATURE)

    def __init__(self, device: torch.device, weights: Path | None = None) -> None:
        super().__init__(device)
        path = weights_table.resolve(self.name, weights)
        state = read_openai_archive(path, self.name)
        self.weights_path = state.path
        self._sha = state.sha256
        self.size = state.image_size
        self.dim = state.embed_dim
        self.model = build_timm_clip(self.name, state).to(device)

    def preprocess(self, images: Tensor) -> Tensor:
        """The CMMD reference's preprocessing, on ``self.device``."""
        return cmmd_preprocess(check_uint8(images, self.name), self.size).to(self.device)

    def forward_preprocessed(self, x: Tensor) -> Tensor:
        """The projected CLS embedding (not normalised) of preprocessed float32 input."""
        with torch.inference_mode():
            return self.model(x).float()

    def __call__(self, images: Tensor) -> dict[str, Tensor]:
        if images.shape[0] == 0:
            empty = torch.zeros(0, self.dim, device=self.device)
            return {FEATURE: empty, RAW_FEATURE: empty.clone()}
        raw = self.forward_preprocessed(self.preprocess(images))
        unit = raw / torch.linalg.vector_norm(raw, dim=-1, keepdim=True)
        return {FEATURE: unit, RAW_FEATURE: raw}

    def weights_sha256(self) -> str:
        return self._sha

    @classmethod
    def check_weights(cls, path: Path) -> str:
        """OpenAI's archive for this model, read as data: exact vision-tower keys and shapes
        (:func:`visual_state_shapes`)."""
        entry = weights_table.known(cls.name)
        visual = _visual(read_torchscript_tensors(read_file_bytes(path, entry), path, entry),
                         path, cls.name)
        return f"an OpenAI CLIP archive whose vision tower has the {len(visual)} tensors of " \
               f"{entry.filename}"


def _subclass(extractor_name: str) -> type[ClipExtractor]:
    suffix = extractor_name.removeprefix("clip-vit-").replace("-", "_").upper()
    return type(
        f"ClipVit{suffix}Extractor",
        (ClipExtractor,),
        {"name": extractor_name,
         "__doc__": f"{extractor_name}: OpenAI CLIP image embeddings (unit norm) for CMMD."},
    )


#: The extractor classes, by name (each registered as its name: ``cls(device, weights_path)``).
CLIP_EXTRACTORS: dict[str, type[ClipExtractor]] = {
    name: register_extractor(catalogue.EXTRACTORS[name])(_subclass(name)) for name in CLIP_MODELS
}
