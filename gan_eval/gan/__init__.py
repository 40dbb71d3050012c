"""The GAN training core: DCGAN and restoration-GAN models, losses, the training loop and
checkpoints.

    from gan_eval.gan import TrainConfig, train
    checkpoint = train(TrainConfig(data="builtin:lfw-subset", out=Path("runs/lfw")))
    restoring = train(TrainConfig(data="builtin:lfw-train", out=Path("runs/restore"),
                                  task="restoration"))
    restorer = load_restorer(restoring, "cpu")  # float B×3×32×32 in [-1, 1] → same

:func:`load_restorer` opens a restoration checkpoint's EMA generator as a :class:`Restorer`;
:func:`restore_images` runs one on uint8 images. :class:`TaskName` names the two tasks.

Sampling a checkpoint (as a source or to PNG files) is :mod:`gan_eval.generators`. Names are
imported on first use (``gan_eval.gan.loss_names`` stays importable without torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "Checkpoint": "checkpoint", "is_checkpoint": "layout", "load_checkpoint": "checkpoint",
    "LOSSES": "losses", "GanLoss": "losses", "get_loss": "losses", "LossName": "loss_names",
    "RESOLUTIONS": "models", "Discriminator": "models", "Generator": "models",
    "ModelSpec": "models", "GanStep": "training", "TrainConfig": "training",
    "TrainingDivergedError": "training", "train": "training",
    "TaskName": "task_names", "RestorationSpec": "pix2pix", "Restorer": "restorer",
    "load_restorer": "restorer", "restore_images": "restorer",
}

if TYPE_CHECKING:
    from gan_eval.gan.checkpoint import Checkpoint, load_checkpoint
    from gan_eval.gan.layout import is_checkpoint
    from gan_eval.gan.loss_names import LossName
    from gan_eval.gan.losses import LOSSES, GanLoss, get_loss
    from gan_eval.gan.models import RESOLUTIONS, Discriminator, Generator, ModelSpec
    from gan_eval.gan.pix2pix import RestorationSpec
    from gan_eval.gan.restorer import Restorer, load_restorer, restore_images
    from gan_eval.gan.task_names import TaskName
    from gan_eval.gan.training import GanStep, TrainConfig, TrainingDivergedError, train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "LOSSES",
    "RESOLUTIONS",
    "Checkpoint",
    "Discriminator",
    "GanLoss",
    "GanStep",
    "Generator",
    "LossName",
    "ModelSpec",
    "RestorationSpec",
    "Restorer",
    "TaskName",
    "TrainConfig",
    "TrainingDivergedError",
    "get_loss",
    "is_checkpoint",
    "load_checkpoint",
    "load_restorer",
    "restore_images",
    "train",
]
