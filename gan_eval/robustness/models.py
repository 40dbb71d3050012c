"""The attacked networks, each wrapped once as a foolbox model with bounds (0, 1).

Pixel convention of every attack: float32 images B×3×H×W in [0, 1] (``uint8 / 255``) at the
images' own resolution; ε and perturbation sizes are in these units (L∞ 8/255 ≈ 0.031 is eight
gray levels). Everything a network needs beyond that (rescaling, resizing, channel handling) runs
inside the wrapped ``torch.nn.Module``, so gradients reach the [0, 1] pixels and foolbox's
``preprocessing`` stays unused.

- :func:`recognizer_model`: the dlib face ResNet as an embedding model, B×3×H×W → B×128.
- :class:`VerificationModel`: a foolbox ``Model`` (no new wrapping of the network) that turns the
  embedding into the two logits of a verification decision against one reference embedding per
  image, so that foolbox's classifier attacks (FGSM, PGD, C&W, DeepFool) apply to it.
- :func:`discriminator_model`: a checkpoint's DCGAN discriminator as a 2-class classifier.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, cast

import eagerpy as ep
import foolbox as fb
import torch
import torch.nn.functional as F
from torch import nn

from gan_eval.errors import InputError
from gan_eval.features.dlib_face import INPUT_SIZE, load_dlib_face_net
from gan_eval.gan.checkpoint import load_checkpoint
from gan_eval.gan.models import Discriminator

MATCH = 0
"""Class index of "the reference person" in :class:`VerificationModel` outputs."""

NO_MATCH = 1
"""Class index of "not the reference person" in :class:`VerificationModel` outputs."""

FAKE = 0
"""Class index of "generated" in :func:`discriminator_model` outputs."""

REAL = 1
"""Class index of "real" in :func:`discriminator_model` outputs."""

BOUNDS = (0.0, 1.0)
"""foolbox bounds of every wrapped model: pixels in [0, 1]."""


class FaceEmbedder(nn.Module):
    """[0, 1] RGB float B×3×H×W → float32 B×128 dlib face embeddings, differentiable in the input.

    Inside: centre crop to a square (a no-op for square images), ×255, resize to 150×150 with
    gan-eval's filter (bilinear, antialiased; not rounded, so that it stays differentiable), then
    the dlib ResNet (:class:`gan_eval.features.dlib_face.DlibFaceNet`, frozen, eval mode).
    On a clean image this differs from :func:`gan_eval.features.embed_faces` (which rounds the
    resized chip to uint8) by the rounding only: ≈0.01 in embedding distance on 25×25 LFW faces.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:

        h, w = x.shape[-2:]
        if h != w:
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            x = x[..., top : top + side, left : left + side]
        x = x * 255.0
        if x.shape[-1] != INPUT_SIZE:
            x = F.interpolate(
                x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                align_corners=False,
            )
        return cast(torch.Tensor, self.net(x))


@functools.lru_cache(maxsize=4)
def _recognizer(device: str) -> fb.PyTorchModel:

    module = FaceEmbedder(load_dlib_face_net(device=device))
    return fb.PyTorchModel(module, bounds=BOUNDS, device=torch.device(device))


def recognizer_model(device: str | torch.device = "cpu") -> fb.PyTorchModel:
    """The dlib face network as a foolbox model: [0, 1] B×3×H×W → float32 B×128 embeddings.

    Wrapped once per device and cached: every attack, criterion and benchmark shares this object
    (its network is the frozen module of :func:`gan_eval.features.load_dlib_face_net`).
    """
    return _recognizer(str(torch.device(device)))


class VerificationModel(fb.models.Model):
    """Face verification against one reference embedding per image, as a 2-class classifier.

    For inputs x_i (B×3×H×W in [0, 1]) and reference embeddings r_i (B×128) the outputs are
    ``logits[i] = [τ − d_i, d_i − τ]`` with ``d_i = ‖embedder(x_i) − r_i‖₂`` and τ the match
    threshold; class :data:`MATCH` = 0, :data:`NO_MATCH` = 1. Hence ``argmax = MATCH ⇔ d ≤ τ``
    (a tie at ``d = τ`` goes to index 0, ``MATCH``, as :func:`gan_eval.faces.is_match` says),
    and foolbox's untargeted ``Misclassification`` becomes exactly:

    - dodging (r_i = the clean face's embedding, label ``MATCH``): adversarial ⇔ ``d > τ``;
    - impersonation (r_i = another identity's embedding, label ``NO_MATCH``): adversarial ⇔
      ``d ≤ τ``.

    The logit margin is ``2 |d − τ|``, so C&W's hinge and DeepFool's linearization act on the
    distance itself and FGSM/PGD descend the cross-entropy of ``2 (d − τ)``. The embedder is
    called, not copied: no network is wrapped again. The batch must be the one ``references``
    was built for (foolbox attacks always call the model on the whole batch).
    """

    def __init__(
        self, embedder: fb.models.Model, references: torch.Tensor, *, threshold: float
    ) -> None:
        self._embedder = embedder
        self.references = references.detach()
        self.threshold = float(threshold)
        self.data_format = "channels_first"

    @property
    def bounds(self) -> fb.types.Bounds:
        return self._embedder.bounds

    def distances(self, embeddings: torch.Tensor) -> torch.Tensor:
        """‖embeddings − references‖₂ per row (float B); the gradient at distance 0 is 0."""
        # torch's vector_norm has a zero subgradient at 0 (eagerpy's sqrt-of-sum gives NaN)
        return torch.linalg.vector_norm(embeddings - self.references, dim=-1)

    def __call__(self, inputs: Any) -> Any:
        x, restore_type = ep.astensor_(inputs)
        embeddings = self._embedder(x).raw
        margin = self.distances(embeddings) - self.threshold
        return restore_type(ep.astensor(torch.stack([-margin, margin], dim=1)))


class DiscriminatorClassifier(nn.Module):
    """A DCGAN discriminator as a 2-class classifier on [0, 1] RGB B×3×R×R images.

    Inside: gray models (``spec.channels == 1``) see the first channel, as training feeds
    them (``images[:, :1]``; the image contract repeats gray to 3 channels), pixels are mapped
    to D's input range (``input_range``: ``"-1,1"``, gan-eval's DCGAN: ``2x − 1``; ``"0,1"``:
    as is; ``"uint8"``: ``255x``, not rounded), and D's logit ``l`` (one per image) becomes
    ``[0, l]``: class :data:`REAL` wins ⇔ ``l > 0`` (``l = 0`` counts as fake), and the softmax
    cross-entropy of ``[0, l]`` is D's own binary cross-entropy on ``l``. A logit that is NaN or
    infinite (or a count other than one per image) is an :class:`InputError` naming D
    (``name``): such a D gives no verdict to count as fooled or not.
    """

    def __init__(self, discriminator: nn.Module, *, channels: int, resolution: int,
                 input_range: str = "-1,1", name: str = "discriminator") -> None:
        super().__init__()
        self.discriminator = discriminator
        self.channels = channels
        self.resolution = resolution
        self.input_range = input_range
        self.name = name
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            raise InputError(
                f"{self.name}: images are {x.shape[-2]}×{x.shape[-1]}, the D takes "
                f"{self.resolution}×{self.resolution}"
            )
        if self.channels == 1:
            x = x[:, :1]
        if self.input_range == "-1,1":
            x = x * 2.0 - 1.0
        elif self.input_range == "uint8":
            x = x * 255.0
        out = self.discriminator(x)
        if out.numel() != x.shape[0]:
            raise InputError(f"{self.name}: returned {tuple(out.shape)} for {x.shape[0]} images; "
                             "expected one logit per image")
        logits = out.reshape(x.shape[0])
        finite = torch.isfinite(logits.detach())
        if not bool(finite.all()):
            raise InputError(f"{self.name}: returned NaN or infinite logits for "
                             f"{int((~finite).sum())} of {x.shape[0]} images; expected finite "
                             "logits (a diverged discriminator gives no verdict)")
        return torch.stack([torch.zeros_like(logits), logits], dim=1)


def discriminator_model(
    checkpoint: str | Path, device: str | torch.device = "cpu"
) -> tuple[fb.PyTorchModel, Any]:
    """A checkpoint's discriminator wrapped once: [0, 1] B×3×R×R → logits B×2 ([0, D(x)]).

    Returns the foolbox model and the validated :class:`gan_eval.gan.Checkpoint`. D runs in eval
    mode (BatchNorm uses its running statistics, so images in a batch do not interact).
    """

    ckpt = load_checkpoint(checkpoint, groups=("g_ema", "d"))
    d = Discriminator(ckpt.spec)
    d.load_state_dict(ckpt.tensors("d"))
    module = DiscriminatorClassifier(
        d, channels=ckpt.spec.channels, resolution=ckpt.spec.resolution,
        name=f"the discriminator of {ckpt.folder}",
    )
    return fb.PyTorchModel(module, bounds=BOUNDS, device=torch.device(device)), ckpt


def external_discriminator_model(
    discriminator: nn.Module, *, channels: int, resolution: int, input_range: str,
    device: str | torch.device = "cpu", name: str = "--discriminator",
) -> fb.PyTorchModel:
    """An external D (``--discriminator``: images in its generator's output range → one logit
    per image) wrapped as :func:`discriminator_model` wraps a checkpoint's; ``name`` names it in
    errors (``--discriminator SPEC``)."""
    module = DiscriminatorClassifier(discriminator, channels=channels, resolution=resolution,
                                     input_range=input_range, name=name)
    return fb.PyTorchModel(module, bounds=BOUNDS, device=torch.device(device))
