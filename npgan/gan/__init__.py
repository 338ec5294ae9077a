"""The GAN family on npgan: models, losses, one trainer, metrics.

>>> from npgan.gan import Trainer, TrainConfig
>>> Trainer(TrainConfig(model="wgan-gp", dataset="ring8", steps=2000, out="runs/ring8")).train()
"""

from npgan.gan.losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty
from npgan.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, dcgan_init_
from npgan.gan.trainer import (
    MODELS,
    RESUMABLE_SETTINGS,
    VARIANTS,
    CheckpointWriteError,
    ResumeMismatch,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    TrainingInterrupted,
    Variant,
    load_generator,
)

__all__ = [
    "LOSSES", "MODELS", "RESUMABLE_SETTINGS", "VARIANTS", "CheckpointWriteError", "ResumeMismatch",
    "TrainingInterrupted", "DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator",
    "TrainConfig", "Trainer", "TrainingDiverged", "Variant", "dcgan_init_", "discriminator_loss", "generator_loss",
    "gradient_penalty", "load_generator",
]
