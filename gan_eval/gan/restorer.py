"""A trained restoration GAN as an image-to-image model: :func:`load_restorer` and
:func:`restore_images`.

``gan-eval train --task restoration`` writes an ordinary checkpoint (safetensors + JSON, see
:mod:`gan_eval.gan.checkpoint`) whose ``task`` is ``restoration``. What restores is its EMA
generator (``g_ema``), a U-Net (:class:`gan_eval.gan.pix2pix.UNetGenerator`) that maps degraded
float B×3×R×R images in [-1, 1] to restored ones of the same shape, at the resolution R it was
trained at. Such a checkpoint does not generate faces: the generator commands (``sample``,
``evaluate``, ``recognition``, ``attack``, ``report --checkpoint``) refuse it with exit code 2
and a message that says to use ``gan-eval restoration`` instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gan_eval.data.convert import check_image_batch, to_uint8
from gan_eval.data.degrade import SeverityRange, parse_ranges
from gan_eval.devices import resolve_device
from gan_eval.errors import InputError
from gan_eval.gan.checkpoint import load_checkpoint
from gan_eval.gan.pix2pix import CHANNELS, UNetGenerator
from gan_eval.gan.task_names import TaskName
from gan_eval.gan.tasks import to_unit_range


class Restorer(nn.Module):
    """A restoration checkpoint's EMA generator, in eval mode and without gradients.

    ``forward``: float32 B×3×R×R in [-1, 1] (degraded) → float32 B×3×R×R in [-1, 1] (restored),
    same batch size; R = :attr:`resolution`, the size it was trained at (any other shape is an
    :class:`InputError` naming it). Image i's output depends on image i only (BatchNorm uses its
    running statistics). Attributes: :attr:`resolution`; :attr:`degradations`, the severity
    ranges it was trained on; :attr:`source`, the checkpoint's JSON; :attr:`identity`, the
    sha256 of its state file (for provenance and caches).
    """

    def __init__(self, unet: UNetGenerator, *, degradations: tuple[SeverityRange, ...],
                 source: Path, identity: str) -> None:
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)
        self.resolution = unet.spec.resolution
        self.degradations = degradations
        self.source = source
        self.identity = identity
        super().train(False)

    def train(self, mode: bool = True) -> Restorer:
        """Stays in eval mode: a restorer is never trained (its BatchNorm keeps its statistics)."""
        return super().train(False)

    def forward(self, degraded: torch.Tensor) -> torch.Tensor:
        size = self.resolution
        if degraded.ndim != 4 or tuple(degraded.shape[1:]) != (CHANNELS, size, size) \
                or not degraded.is_floating_point():
            raise InputError(
                f"{self.source}: the restorer takes float B×{CHANNELS}×{size}×{size} images in "
                f"[-1, 1] (it was trained at {size} px), got {degraded.dtype} of shape "
                f"{tuple(degraded.shape)}")
        return self.unet(degraded.float())


def load_restorer(checkpoint: str | Path, device: str | torch.device | None = None) -> Restorer:
    """The EMA generator of a restoration checkpoint (its folder, run folder, checkpoint.json or
    state file) as a :class:`Restorer` on ``device`` (None or "auto": CUDA when available).

    :class:`InputError` naming the file for anything :func:`gan_eval.gan.load_checkpoint`
    refuses, and for a generation (DCGAN) checkpoint.
    """
    target = resolve_device(device)
    ckpt = load_checkpoint(checkpoint, groups=("g_ema",), task=TaskName.RESTORATION)
    record = ckpt.meta.get("restoration", {})
    try:
        text = ckpt.meta["config"]["degradations"]
        degradations = parse_ranges(text)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{ckpt.json_path}: config.degradations is missing or not valid "
                         f"({exc})") from None
    if not isinstance(record, dict) or record.get("resolution") != ckpt.spec.resolution:
        raise InputError(f"{ckpt.json_path}: restoration.resolution does not match the model's "
                         f"resolution {ckpt.spec.resolution}")
    unet = UNetGenerator(ckpt.spec)
    unet.load_state_dict(ckpt.tensors("g_ema"))
    restorer = Restorer(unet, degradations=degradations, source=ckpt.json_path,
                        identity=ckpt.meta["state_sha256"])
    return restorer.to(target)


@torch.no_grad()
def restore_images(restorer: nn.Module, images: torch.Tensor, *,
                   batch_size: int = 256) -> torch.Tensor:
    """Restore uint8 B×3×H×W images with ``restorer`` (float [-1, 1] in and out, e.g. a
    :class:`Restorer`) in chunks of ``batch_size``; returns uint8 B×3×H×W on the CPU.

    Each chunk goes to the restorer's device; the output is rounded as
    :func:`gan_eval.data.convert.to_uint8` does.
    """
    check_image_batch(images, what="images to restore")
    if batch_size < 1:
        raise InputError(f"batch_size {batch_size}: expected at least 1")
    parameter = next(restorer.parameters(), None)
    device = parameter.device if parameter is not None else images.device
    out = []
    for start in range(0, images.shape[0], batch_size):
        chunk = to_unit_range(images[start : start + batch_size].to(device))
        out.append(to_uint8(restorer(chunk)).cpu())
    return torch.cat(out)
