"""Random DINOv2 and CLIP weights written in the official file formats (PLUMBING ONLY).

Meta's ``dinov2_vit*14_pretrain.pth`` and OpenAI's ``ViT-*.pt`` cannot be had offline, so tests
and ``benchmarks/feature_spaces.py`` write stand-ins with the same format:

- DINOv2: a plain ``{name: tensor}`` dict saved with ``torch.save``, with exactly Meta's keys and
  shapes (``cls_token``, ``pos_embed`` for the 518-pixel 37×37 grid, ``mask_token``,
  ``patch_embed.proj.*``, ``blocks.N.{norm1, attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1,
  mlp.fc2, ls2.gamma}``, ``norm.*``; the g14 MLP as ``mlp.w12``/``mlp.w3``). When Meta's own
  ``dinov2`` package is installed, a test checks the key set against its model.
- CLIP: a TorchScript archive (``torch.jit.save``) whose ``state_dict()`` has OpenAI's keys:
  the full-size vision tower (``visual.*``, fp16 like OpenAI's files for the linear / conv /
  attention weights and ``proj``), ``text_projection`` (its width is the embedding width),
  ``logit_scale``, ``input_resolution`` / ``context_length`` / ``vocab_size`` and a *tiny* text
  tower (``transformer.*``, ``token_embedding``, ``positional_embedding``, ``ln_final``) that
  the image extractors drop unread, so that the file is small.

"Calibrated": plain initialisations make nearly all images give the same features (DINOv2's
LayerScale starts at 1e-5, so the blocks barely act), which would make the ≤ 1e-4 comparisons
vacuous. Here LayerScale γ ~ U(0.3, 0.7), the class token and position embeddings are N(0, 0.3²)
for DINOv2; CLIP uses open_clip's own initialisation, whose features already differ between
images; ``feature_spread`` measures it and tests require it.

Numbers computed with these weights are plumbing numbers (equality with reference code, speed),
never FD_DINOv2 or CMMD values.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

PLUMBING = "plumbing (random weights in the official format, not FD_DINOv2 / CMMD)"

DINOV2_FILES = {"dinov2-vit-s14": "dinov2-vits14-random-plumbing.pth",
                "dinov2-vit-b14": "dinov2-vitb14-random-plumbing.pth",
                "dinov2-vit-l14": "dinov2-vitl14-random-plumbing.pth",
                "dinov2-vit-g14": "dinov2-vitg14-random-plumbing.pth"}
CLIP_FILES = {"clip-vit-b32": "clip-ViT-B-32-random-plumbing.pt",
              "clip-vit-l14": "clip-ViT-L-14-random-plumbing.pt",
              "clip-vit-l14-336": "clip-ViT-L-14-336px-random-plumbing.pt"}
#: torch-fidelity's names for the same CLIP models.
TORCH_FIDELITY_CLIP = {"clip-vit-b32": "clip-vit-b-32", "clip-vit-l14": "clip-vit-l-14",
                       "clip-vit-l14-336": "clip-vit-l-14-336px"}
#: open_clip configs of the CLIP models.
OPEN_CLIP_CONFIG = {"clip-vit-b32": "ViT-B-32", "clip-vit-l14": "ViT-L-14",
                    "clip-vit-l14-336": "ViT-L-14-336"}


def dinov2_state_dict(name: str, seed: int = 0) -> dict[str, Tensor]:
    """Random calibrated weights with Meta's DINOv2 keys and shapes for ``name``.

    Linear / conv weights N(0, 1/fan_in), biases N(0, 0.02²), LayerNorm weights 1 + N(0, 0.1²),
    LayerScale γ ~ U(0.3, 0.7), class token and 37×37 (+1) position embeddings N(0, 0.3²),
    ``mask_token`` zeros (unused at inference).
    """
    from gan_eval.features.dinov2 import DINOV2_MODELS

    _, dim, depth = DINOV2_MODELS[name]
    gen = torch.Generator().manual_seed(seed)

    def linear(out: int, fan_in: int, *shape: int) -> Tensor:
        return torch.randn(out, *(shape or (fan_in,)), generator=gen) / math.sqrt(fan_in)

    def small(*shape: int) -> Tensor:
        return 0.02 * torch.randn(*shape, generator=gen)

    def norm(prefix: str) -> dict[str, Tensor]:
        return {f"{prefix}.weight": 1 + 0.1 * torch.randn(dim, generator=gen),
                f"{prefix}.bias": small(dim)}

    state: dict[str, Tensor] = {
        "cls_token": 0.3 * torch.randn(1, 1, dim, generator=gen),
        "pos_embed": 0.3 * torch.randn(1, 1 + 37 * 37, dim, generator=gen),
        "mask_token": torch.zeros(1, dim),
        "patch_embed.proj.weight": linear(dim, 3 * 14 * 14, 3, 14, 14),
        "patch_embed.proj.bias": small(dim),
    }
    giant = name == "dinov2-vit-g14"
    hidden = 4096 if giant else 4 * dim  # Meta's SwiGLUFFNFused width for g14
    for i in range(depth):
        b = f"blocks.{i}"
        state.update(norm(f"{b}.norm1"))
        state.update({
            f"{b}.attn.qkv.weight": linear(3 * dim, dim), f"{b}.attn.qkv.bias": small(3 * dim),
            f"{b}.attn.proj.weight": linear(dim, dim), f"{b}.attn.proj.bias": small(dim),
            f"{b}.ls1.gamma": 0.3 + 0.4 * torch.rand(dim, generator=gen),
        })
        state.update(norm(f"{b}.norm2"))
        if giant:  # Meta's names; timm's filter maps w12/w3 to fc1/fc2
            state.update({
                f"{b}.mlp.w12.weight": linear(2 * hidden, dim),
                f"{b}.mlp.w12.bias": small(2 * hidden),
                f"{b}.mlp.w3.weight": linear(dim, hidden), f"{b}.mlp.w3.bias": small(dim),
            })
        else:
            state.update({
                f"{b}.mlp.fc1.weight": linear(hidden, dim), f"{b}.mlp.fc1.bias": small(hidden),
                f"{b}.mlp.fc2.weight": linear(dim, hidden), f"{b}.mlp.fc2.bias": small(dim),
            })
        state[f"{b}.ls2.gamma"] = 0.3 + 0.4 * torch.rand(dim, generator=gen)
    state.update(norm("norm"))
    return state


def write_dinov2_weights(path: str | Path, name: str = "dinov2-vit-s14", seed: int = 0) -> Path:
    """Write :func:`dinov2_state_dict` with ``torch.save`` (Meta's format) to ``path``."""
    from gan_eval.fileio import atomic_path

    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(dinov2_state_dict(name, seed), tmp)
    return target


class _Holder(nn.Module):
    """A TorchScript-able node that only holds tensors (the archive's state dict)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def _holder_tree(state: dict[str, Tensor]) -> nn.Module:
    root = _Holder()
    for key, value in state.items():
        *path, leaf = key.split(".")
        node: nn.Module = root
        for part in path:
            child = node._modules.get(part)
            if child is None:
                child = _Holder()
                node.add_module(part, child)
            node = child
        node.register_buffer(leaf, value)
    return root


def clip_state_dict(name: str, seed: int = 0) -> dict[str, Tensor]:
    """OpenAI-format CLIP weights for ``name``: random full-size vision tower, tiny text tower."""
    import open_clip
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    cfg = open_clip.get_model_config(OPEN_CLIP_CONFIG[name])
    torch.manual_seed(seed)
    visual = _build_vision_tower(cfg["embed_dim"], CLIPVisionCfg(**cfg["vision_cfg"]),
                                 quick_gelu=True)
    state: dict[str, Tensor] = {}
    half = ("conv1.weight", "in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias",
            "c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias", "proj")
    for key, value in visual.state_dict().items():
        value = value.detach().clone()
        state["visual." + key] = value.half() if key.endswith(half) else value.float()
    embed, text_width, context, vocab = cfg["embed_dim"], 64, 4, 16
    gen = torch.Generator().manual_seed(seed + 1)
    state.update({
        "positional_embedding": torch.randn(context, text_width, generator=gen),
        "text_projection": (torch.randn(text_width, embed, generator=gen)
                            / math.sqrt(text_width)).half(),
        "logit_scale": torch.tensor(math.log(1 / 0.07)),
        "token_embedding.weight": torch.randn(vocab, text_width, generator=gen).half(),
        "transformer.resblocks.0.ln_1.weight": torch.ones(text_width),
        "transformer.resblocks.0.ln_1.bias": torch.zeros(text_width),
        "transformer.resblocks.0.attn.in_proj_weight": torch.randn(
            3 * text_width, text_width, generator=gen).half(),
        "transformer.resblocks.0.attn.in_proj_bias": torch.zeros(3 * text_width).half(),
        "transformer.resblocks.0.attn.out_proj.weight": torch.randn(
            text_width, text_width, generator=gen).half(),
        "transformer.resblocks.0.attn.out_proj.bias": torch.zeros(text_width).half(),
        "transformer.resblocks.0.ln_2.weight": torch.ones(text_width),
        "transformer.resblocks.0.ln_2.bias": torch.zeros(text_width),
        "transformer.resblocks.0.mlp.c_fc.weight": torch.randn(
            4 * text_width, text_width, generator=gen).half(),
        "transformer.resblocks.0.mlp.c_fc.bias": torch.zeros(4 * text_width).half(),
        "transformer.resblocks.0.mlp.c_proj.weight": torch.randn(
            text_width, 4 * text_width, generator=gen).half(),
        "transformer.resblocks.0.mlp.c_proj.bias": torch.zeros(text_width).half(),
        "ln_final.weight": torch.ones(text_width),
        "ln_final.bias": torch.zeros(text_width),
        "input_resolution": torch.tensor(cfg["vision_cfg"]["image_size"]),
        "context_length": torch.tensor(context),
        "vocab_size": torch.tensor(vocab),
    })
    return state


def write_clip_archive(path: str | Path, name: str = "clip-vit-b32", seed: int = 0) -> Path:
    """Write :func:`clip_state_dict` as a TorchScript archive (OpenAI's file format)."""
    from gan_eval.fileio import atomic_path

    scripted = torch.jit.script(_holder_tree(clip_state_dict(name, seed)))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return target


def feature_spread(features: Tensor) -> float:
    """Mean per-dimension std across images ÷ RMS feature value (0: collapsed features)."""
    f = features.double()
    return float(f.std(0).mean() / f.pow(2).mean().sqrt())


def test_images(count: int = 8, size: int = 64, seed: int = 0) -> Tensor:
    """uint8 ``count×3×size×size``: jittered LFW faces and colour crops of the astronaut."""
    try:
        import inception_fixture as fx
    except ImportError:  # pragma: no cover - when tests/ is imported as a package
        from tests import inception_fixture as fx
    faces = fx.lfw_faces(count - count // 2, start=seed * 7, size=size, seed=seed)
    colour = fx.astronaut_crops(count // 2, size=size, seed=seed)
    return torch.cat([faces, colour])


def hide_installed_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every place gan-eval looks for weights files at empty folders under ``tmp_path``,
    so that no real file on this machine is picked up."""
    from gan_eval import weights as w

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(w.WEIGHTS_DIR_ENV, raising=False)
    for entry in w.WEIGHTS.values():
        monkeypatch.delenv(entry.env, raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
