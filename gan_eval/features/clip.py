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
network rebuilt from OpenAI's archive: the archive is opened with ``torch.jit.load`` (a
TorchScript archive, whose loader only rebuilds TorchScript types and tensors, never arbitrary
Python objects), its ``visual.*`` tensors are copied out and loaded strictly, through timm's
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
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from gan_eval import weights as weights_table
from gan_eval.errors import InputError, MissingAssetError
from gan_eval.features.base import FeatureExtractor
from gan_eval.features.dinov2 import check_uint8
from gan_eval.features.pil_resize import pil_bicubic

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


def read_openai_archive(path: str | os.PathLike[str], name: str) -> ClipVisualState:
    """Hash an OpenAI CLIP TorchScript archive and copy out its vision tower's tensors.

    Raises:
        InputError: unreadable, not a TorchScript archive, not a ViT CLIP, or a ViT whose input
            side / embedding width is not ``name``'s.
    """
    expected_file = weights_table.WEIGHTS[name].filename
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {name} weights file {file}: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            archive = torch.jit.load(io.BytesIO(data), map_location="cpu")
        state = {k: v.detach().clone() for k, v in archive.state_dict().items()}
        del archive
    except Exception as exc:  # any failure means "not OpenAI's TorchScript archive"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"{name} weights file {file} is not a TorchScript archive (expected OpenAI's "
            f"{expected_file}): {first}"
        ) from None
    visual = {k.removeprefix("visual."): v for k, v in state.items() if k.startswith("visual.")}
    needed = ("conv1.weight", "positional_embedding", "proj", "class_embedding")
    missing = [k for k in needed if k not in visual]
    if missing:
        raise InputError(f"{name} weights file {file} is not an OpenAI ViT CLIP archive "
                         f"(no visual.{missing[0]}); expected {expected_file}")
    width, _, patch, _ = visual["conv1.weight"].shape
    grid = math.isqrt(visual["positional_embedding"].shape[0] - 1)
    layers = len({k.split(".")[2] for k in visual if k.startswith("transformer.resblocks.")})
    embed = visual["proj"].shape[1]
    image_size = patch * grid
    want_size, want_embed = CLIP_MODELS[name]
    if (image_size, embed) != (want_size, want_embed):
        raise InputError(
            f"{name} weights file {file} is a {image_size}-pixel CLIP with {embed}-d embeddings; "
            f"{name} is {want_size}-pixel, {want_embed}-d ({expected_file})"
        )
    return ClipVisualState(file, digest, visual, image_size, patch, width, layers, embed)


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
        raise InputError(f"{state.path}: the vision tower does not fit timm's {arch}: "
                         f"{first}") from None
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

    name: ClassVar[str]
    primary: ClassVar[str] = FEATURE

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


def _subclass(extractor_name: str) -> type[ClipExtractor]:
    suffix = extractor_name.removeprefix("clip-vit-").replace("-", "_").upper()
    return type(
        f"ClipVit{suffix}Extractor",
        (ClipExtractor,),
        {"name": extractor_name,
         "__doc__": f"{extractor_name}: OpenAI CLIP image embeddings (unit norm) for CMMD."},
    )


#: The extractor classes, by name (factories ``cls(device, weights_path)``).
CLIP_EXTRACTORS: dict[str, type[ClipExtractor]] = {name: _subclass(name) for name in CLIP_MODELS}


def register_clip(register: Callable[[str], Callable[[Any], Any]]) -> None:
    """Register every CLIP extractor with ``register(name)(factory)``."""
    for name, cls in CLIP_EXTRACTORS.items():
        register(name)(cls)
