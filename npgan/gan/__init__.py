"""The GAN family on npgan: config, models, losses, the step, one trainer, metrics.

>>> from npgan.gan import Trainer, TrainConfig
>>> Trainer(TrainConfig(model="wgan-gp", dataset="ring8", steps=2000, out="runs/ring8")).train()
"""

from npgan.gan.config import MODELS, VARIANTS, TrainConfig, Variant
from npgan.gan.losses import LOSSES, discriminator_loss, generator_loss, gradient_penalty
from npgan.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, dcgan_init_
from npgan.gan.resume import RESUMABLE_SETTINGS, CheckpointWriteError, OutputWriteError, ResumeMismatch
from npgan.gan.sampling import load_generator, sampling_mode
from npgan.gan.trainer import Trainer, TrainingDiverged, TrainingInterrupted

__all__ = [
    "LOSSES", "MODELS", "RESUMABLE_SETTINGS", "VARIANTS", "CheckpointWriteError", "OutputWriteError", "ResumeMismatch",
    "TrainingInterrupted", "DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator",
    "TrainConfig", "Trainer", "TrainingDiverged", "Variant", "dcgan_init_", "discriminator_loss", "generator_loss",
    "gradient_penalty", "load_generator", "sampling_mode",
]
