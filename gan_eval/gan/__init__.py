"""The GAN training core: DCGAN models, losses, the training loop, checkpoints and sampling.

    from gan_eval.gan import TrainConfig, train, sample
    checkpoint = train(TrainConfig(data="builtin:lfw-subset", out=Path("runs/lfw")))
    sample(checkpoint, n=100, out="samples/")
"""

from gan_eval.gan.checkpoint import Checkpoint, is_checkpoint, load_checkpoint
from gan_eval.gan.losses import LOSSES, GanLoss, LossName, get_loss
from gan_eval.gan.models import RESOLUTIONS, Discriminator, Generator, ModelSpec
from gan_eval.gan.sample import sample
from gan_eval.gan.source import CheckpointSource, open_checkpoint_source
from gan_eval.gan.train import GanStep, TrainConfig, TrainingDivergedError, train

__all__ = [
    "LOSSES",
    "RESOLUTIONS",
    "Checkpoint",
    "CheckpointSource",
    "Discriminator",
    "GanLoss",
    "GanStep",
    "Generator",
    "LossName",
    "ModelSpec",
    "TrainConfig",
    "TrainingDivergedError",
    "get_loss",
    "is_checkpoint",
    "load_checkpoint",
    "open_checkpoint_source",
    "sample",
    "train",
]
