"""One training loop for the whole GAN family.

GAN, DCGAN, WGAN, WGAN-GP and the conditional GAN are *configurations* of this loop (``VARIANTS``), not
copies of it: a variant says which loss to use, how many critic steps per generator step (``n_critic``),
whether to clip the critic's weights (WGAN) or add a gradient penalty (WGAN-GP), and which optimizer.

One generator step:
    repeat n_critic times:  x ~ data, z ~ noise, D <- D - lr * grad L_D(D(x), D(G(z)))  [+ penalty, clipping]
    z ~ noise,              G <- G - lr * grad L_G(D(G(z)))
When n_critic is 1 the fake batch of the D step is reused for the G step, as pytorch/examples' DCGAN does.
With ``unroll`` = K, G's loss is taken against D unrolled K differentiable steps further, and G's gradient
flows through those steps (unrolled GAN, Metz et al. 2016; ``npgan.gan.unrolled``, docs/UNROLLED.md).

Everything that makes a run reproducible is in the checkpoint (both nets, both optimizers, the step, the
random generators, the loader's position, the fixed noise), so ``resume`` continues exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import time
import warnings
from dataclasses import dataclass, field

import npgan
from npgan import backend, nn, optim, runtime
from npgan.checkpoint import load_checkpoint, save_checkpoint
from npgan.data import TOY_DATASETS, DataLoader, load_dataset, toy_modes, toy_scale
from npgan.gan import losses
from npgan.gan.models import (
    D_DOWNSAMPLING,
    G_UPSAMPLING,
    MLP_ACTIVATIONS,
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    dcgan_init_,
)
from npgan.runtime import distributed, runlock
from npgan.runtime.interrupt import StopOnSignal, exit_status, signal_name

MODELS = ("gan", "dcgan", "wgan", "wgan-gp", "cgan")
UNROLL_MODELS = ("gan", "dcgan", "cgan")  # the models whose G can be trained against an unrolled D


@dataclass(frozen=True)
class Variant:
    """What distinguishes one member of the GAN family from another in the training loop."""

    name: str
    loss: str
    nets: str  # "mlp" or "dcgan"
    optimizer: str  # "adam" or "rmsprop"
    lr: float
    betas: tuple = (0.5, 0.999)
    n_critic: int = 1
    clip: float | None = None  # WGAN: clip every critic weight to [-clip, clip] after each step
    gp_lambda: float = 0.0  # WGAN-GP: weight of the gradient penalty
    critic_norm: str | None = "batch"
    warmup_critic: bool = False  # WGAN: 100 critic steps for the first 25 G steps and every 500th
    conditional: bool = False
    steps: int = 1000  # default length of a run on images (generator steps); toys default to TOY_STEPS
    g_activation: str = "leaky_relu"  # hidden activation of the MLP generators (toys and the original GAN)
    toy_gp_lambda: float | None = None  # on the 2-D toys, these replace gp_lambda, betas and g_activation when set
    toy_betas: tuple | None = None
    toy_g_activation: str | None = None

    def on_toys(self) -> Variant:
        """This variant with its toy settings (where it has any) in place of the image ones."""
        toy = (("gp_lambda", self.toy_gp_lambda), ("betas", self.toy_betas), ("g_activation", self.toy_g_activation))
        changes = {name: value for name, value in toy if value is not None}
        return dataclasses.replace(self, **changes)


TOY_STEPS = 10000
TOY_NETS = ("mlp", "pacgan")

VARIANTS = {
    # Goodfellow et al. 2014, with the non-saturating G loss they recommend in practice.
    "gan": Variant("gan", "non-saturating", "mlp", "adam", 2e-4, steps=5000),
    # Radford et al. 2015 (pytorch/examples' defaults).
    "dcgan": Variant("dcgan", "non-saturating", "dcgan", "adam", 2e-4, steps=1500),
    # Arjovsky et al. 2017, Algorithm 1.
    "wgan": Variant("wgan", "wasserstein", "dcgan", "rmsprop", 5e-5, n_critic=5, clip=0.01, warmup_critic=True,
                    steps=500),
    # Gulrajani et al. 2017, Algorithm 1: no BatchNorm in the critic. On the toys, their own toy code's settings:
    # lambda 10 holds a toy critic too flat to pull samples onto modes this narrow (0/8 ring modes here), and a
    # ReLU G puts far fewer samples on the bridges between modes than a LeakyReLU one (ring8, 21,000 steps:
    # 92% high-quality samples against 82%).
    "wgan-gp": Variant("wgan-gp", "wasserstein", "dcgan", "adam", 1e-4, betas=(0.0, 0.9), n_critic=5,
                       gp_lambda=10.0, critic_norm=None, toy_gp_lambda=0.1, toy_betas=(0.5, 0.9),
                       toy_g_activation="relu"),
    # Mirza & Osindero 2014 on DCGAN nets: the label goes into G and D.
    "cgan": Variant("cgan", "non-saturating", "dcgan", "adam", 2e-4, conditional=True, steps=1500),
}


@dataclass
class TrainConfig:
    """Every setting of a run. ``None`` means "the variant's default" (see ``VARIANTS``)."""

    model: str = "dcgan"
    dataset: str = "mnist5k"
    dataroot: str | None = None
    image_size: int | None = None
    channels: int | None = None
    batch_size: int = 64
    nz: int | None = None
    ngf: int = 64
    ndf: int = 64
    hidden: int | None = None  # width of the MLP nets (toys and the original GAN)
    toy_nets: str = "mlp"  # nets for the 2-D toys: "mlp" or "pacgan" (see build_nets)
    g_activation: str | None = None  # MLP generators' hidden activation: "leaky_relu" or "relu"
    steps: int | None = None  # generator steps; default: from epochs, else the variant's (VARIANTS, TOY_STEPS)
    epochs: float | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    n_critic: int | None = None
    clip: float | None = None
    gp_lambda: float | None = None
    loss: str | None = None
    critic_norm: str | None = "default"
    label_smoothing: float = 0.0  # one-sided: real label 1 - s
    instance_noise: float = 0.0  # std of noise added to D's inputs, decaying linearly to 0
    noise: str = "gaussian"  # distribution of z: gaussian or uniform
    g_dropout: float = 0.0
    pack: int = 1  # PacGAN: D judges `pack` samples at once (all real or all fake)
    lr_decay: bool = False  # decay both learning rates linearly to 0 over the run
    r1_gamma: float = 0.0  # R1: add gamma / 2 * E||grad_x D(x_real)||^2 to D's loss (Mescheder et al. 2018)
    g_ema: float = 0.0  # sample from an exponential moving average of G's weights with this decay (0: off)
    unroll: int = 0  # unrolled GAN: G's loss against D after this many more differentiable D steps (0: off)
    unroll_first_order: bool = False  # unrolled GAN without the gradient through D's unrolled steps
    # soumith/ganhacks' remaining tricks (docs/TRICKS.md)
    g_norm: str = "default"  # G's normalisation: batch, virtual (Salimans et al. 2016) or none; default: the model's
    soft_labels: tuple | None = None  # (low, high): D's real labels ~ U[low, high], per sample and step
    flip_labels: float = 0.0  # probability that a sample's real/fake label is swapped for D
    g_layer_noise: float = 0.0  # std of Gaussian noise after every hidden layer of G, decaying linearly to 0
    g_upsample: str = "convtranspose"  # DCGAN G's upsampling: convtranspose, pixelshuffle or nearest (+ conv)
    d_downsample: str = "strided"  # DCGAN D's downsampling: strided conv or avgpool (conv + AvgPool2d)
    cond: str = "embed"  # cgan's D: the label embedded as one plane, or as one-hot "channel" planes
    clip_grad_norm: float = 0.0  # clip each net's gradient norm to this before its step (0: off)
    g_dropout_sample: bool = False  # keep G's dropout on when sampling (pictures, metrics, npgan sample)
    sync_batch_norm: bool = False  # under MPI: BatchNorm statistics of the global batch, not of each rank's shard
    device: str = "cpu"
    seed: int = 0
    out: str = "npgan-out"
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 500
    num_samples: int = 64  # size of the fixed-noise sample grid
    metrics: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.soft_labels, list):  # a checkpoint's config stores the pair as a list
            self.soft_labels = tuple(self.soft_labels)

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting (the Trainer calls this before building anything)."""
        def need(ok, message):
            if not ok:
                raise ValueError(message)

        need(self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("steps", "n_critic", "nz", "hidden", "log_every", "sample_every", "checkpoint_every",
                     "num_samples", "ngf", "ndf"):
            value = getattr(self, name)
            need(value is None or (isinstance(value, int) and value >= 1), f"{name} must be an int >= 1, got {value!r}")
        need(self.epochs is None or self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        for name in ("lr_g", "lr_d", "clip"):
            value = getattr(self, name)
            need(value is None or value > 0, f"{name} must be > 0, got {value}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            need(value is None or 0.0 <= value < 1.0, f"{name} must be in [0, 1), got {value}")
        need(self.gp_lambda is None or self.gp_lambda >= 0, f"gp_lambda must be >= 0, got {self.gp_lambda}")
        need(self.loss is None or self.loss in losses.LOSSES, f"loss must be one of {losses.LOSSES}, got {self.loss!r}")
        need(self.critic_norm in ("default", "batch", "layer", "instance", None, "none"),
             f"critic_norm must be one of batch, layer, instance, none, got {self.critic_norm!r}")
        need(0.0 <= self.label_smoothing < 1.0, f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        need(self.instance_noise >= 0.0, f"instance_noise must be >= 0, got {self.instance_noise}")
        need(self.r1_gamma >= 0.0, f"r1_gamma must be >= 0, got {self.r1_gamma}")
        need(0.0 <= self.g_ema < 1.0, f"g_ema must be in [0, 1) (0: off), got {self.g_ema}")
        need(self.toy_nets in TOY_NETS, f"toy_nets must be one of {TOY_NETS}, got {self.toy_nets!r}")
        need(self.g_activation in (None,) + MLP_ACTIVATIONS,
             f"g_activation must be one of {MLP_ACTIVATIONS} (or None: the variant's), got {self.g_activation!r}")
        need(self.noise in ("gaussian", "uniform"), f"noise must be gaussian or uniform, got {self.noise!r}")
        need(0.0 <= self.g_dropout < 1.0, f"g_dropout must be in [0, 1), got {self.g_dropout}")
        need(isinstance(self.pack, int) and self.pack >= 1, f"pack must be an int >= 1, got {self.pack!r}")
        need(self.batch_size % self.pack == 0,
             f"batch_size ({self.batch_size}) must be a multiple of pack ({self.pack})")
        need(self.pack == 1 or self.model != "cgan", "pack does not combine with cgan's labels: use pack=1")
        need(isinstance(self.unroll, int) and not isinstance(self.unroll, bool) and self.unroll >= 0,
             f"unroll must be an int >= 0 (0: off), got {self.unroll!r}")
        need(not self.unroll or self.model in UNROLL_MODELS,
             f"unroll (--unroll) is for the models {', '.join(UNROLL_MODELS)}, not {self.model}")
        need(not self.unroll_first_order or self.unroll >= 1,
             "unroll_first_order (--unroll-first-order) needs unroll >= 1 (--unroll K)")
        self._validate_tricks(need)

    def _validate_tricks(self, need) -> None:
        """The ganhacks fields: their values, and refusals where the nets or the loss give them no meaning."""
        dcgan_nets = VARIANTS[self.model].nets == "dcgan" and self.dataset not in TOY_DATASETS
        nets = "the DCGAN nets (dcgan, wgan, wgan-gp, cgan on images); the toys and gan use MLPs"
        need(self.g_norm in ("default", "batch", "virtual", "none"),
             f"g_norm must be one of batch, virtual, none (or default: the model's), got {self.g_norm!r}")
        need(self.critic_norm != "instance" or dcgan_nets, f"critic_norm='instance' (--critic-norm) needs {nets}")
        need(self.g_upsample in G_UPSAMPLING, f"g_upsample must be one of {G_UPSAMPLING}, got {self.g_upsample!r}")
        need(self.g_upsample == "convtranspose" or dcgan_nets,
             f"g_upsample={self.g_upsample!r} (--g-upsample) needs {nets}")
        need(self.d_downsample in D_DOWNSAMPLING,
             f"d_downsample must be one of {D_DOWNSAMPLING}, got {self.d_downsample!r}")
        need(self.d_downsample == "strided" or dcgan_nets,
             f"d_downsample={self.d_downsample!r} (--d-downsample) needs {nets}")
        need(self.cond in ("embed", "channel"), f"cond must be embed or channel, got {self.cond!r}")
        need(self.cond == "embed" or self.model == "cgan", "cond='channel' (--cond) needs a conditional model (cgan)")
        need(isinstance(self.g_layer_noise, (int, float)) and self.g_layer_noise >= 0.0,
             f"g_layer_noise must be a number >= 0, got {self.g_layer_noise!r}")
        need(isinstance(self.clip_grad_norm, (int, float)) and self.clip_grad_norm >= 0.0,
             f"clip_grad_norm must be a number >= 0 (0: off), got {self.clip_grad_norm!r}")
        need(isinstance(self.flip_labels, (int, float)) and 0.0 <= self.flip_labels < 0.5,
             f"flip_labels must be a probability in [0, 0.5), got {self.flip_labels!r}")
        soft = self.soft_labels
        need(soft is None or (isinstance(soft, tuple) and len(soft) == 2
                              and all(isinstance(v, (int, float)) for v in soft) and 0.0 <= soft[0] <= soft[1]),
             f"soft_labels must be a pair (low, high) with 0 <= low <= high, got {soft!r}")
        need(soft is None or not self.label_smoothing,
             "soft_labels (--soft-labels) replaces label_smoothing (--label-smoothing): set one of them, not both")
        loss = self.loss or VARIANTS[self.model].loss
        for name, on in (("soft_labels", soft is not None), ("flip_labels", self.flip_labels > 0)):
            need(not on or loss in ("minimax", "non-saturating"),
                 f"{name} (--{name.replace('_', '-')}) needs labels, i.e. a minimax or non-saturating loss; "
                 f"the {loss} loss has none")
        need(isinstance(self.g_dropout_sample, bool), f"g_dropout_sample must be True or False, got "
                                                      f"{self.g_dropout_sample!r}")
        need(not self.g_dropout_sample or self.g_dropout > 0,
             "g_dropout_sample (--g-dropout-at-sampling) keeps G's dropout on at sampling: it needs g_dropout > 0 "
             "(--g-dropout)")
        backend.check_device(self.device)


def variant_for(model: str, is_toy: bool) -> Variant:
    """The variant a model trains with: its toy settings in place on the 2-D toys."""
    return VARIANTS[model].on_toys() if is_toy else VARIANTS[model]


def build_nets(config: TrainConfig, sample_shape, num_classes=0, is_toy=False):
    """G, D and the latent size for a config and the shape of one sample, on ``config.device``."""
    c, v = config, variant_for(config.model, is_toy)
    scale = toy_scale(c.dataset) if is_toy else 1.0  # toy nets work in units of the toy's extent
    activation = c.g_activation or v.g_activation
    # ganhacks options of G: normalisation ("default": the nets' own), layer noise, virtual batch norm's
    # reference batch (one batch of z from the run's noise distribution; checkpoints carry it)
    g_norm = None if c.g_norm == "none" else c.g_norm

    def g_tricks(nz):
        tricks = dict(layer_noise=c.g_layer_noise > 0, reference_size=c.batch_size)
        if g_norm == "virtual":
            shape = (c.batch_size, nz)
            draw = backend.random_uniform(shape, -1.0, 1.0) if c.noise == "uniform" else backend.random_normal(shape)
            tricks["reference_noise"] = npgan.Tensor(draw)
        return tricks

    if is_toy and c.toy_nets == "pacgan":
        # PacGAN's (and VEEGAN's) toy nets: G has 4 hidden layers of 400 units with BatchNorm and ReLU and
        # z of size 2; D has 3 maxout layers of 200 units with 5 pieces; weights N(0, 0.02), biases 0
        # (``hidden`` sets G's width, D gets half).
        width, nz = c.hidden or 400, c.nz or 2
        G = MLPGenerator(nz, (width,) * 4, sample_shape, out_activation=None, dropout=c.g_dropout,
                         norm="batch" if g_norm == "default" else g_norm, activation="relu", out_scale=scale,
                         **g_tricks(nz))
        D = MLPDiscriminator(_packed(sample_shape, c.pack), (max(1, width // 2),) * 3, maxout=5, in_scale=scale)
        dcgan_init_(G)
        dcgan_init_(D)
    elif is_toy:  # 2-D points: MLPs with three hidden layers, a linear output
        hidden = (c.hidden or 128,) * 3
        nz = c.nz or 16
        G = MLPGenerator(nz, hidden, sample_shape, out_activation=None, dropout=c.g_dropout, out_scale=scale,
                         activation=activation, norm=None if g_norm == "default" else g_norm, **g_tricks(nz))
        D = MLPDiscriminator(_packed(sample_shape, c.pack), hidden, in_scale=scale)
    elif v.nets == "mlp":  # the original GAN on images (BENCHMARKS.md's gan-mlp at hidden=256)
        width, nz = c.hidden or 256, c.nz or 100
        G = MLPGenerator(nz, (width, width * 2, width * 4), sample_shape, num_classes=num_classes,
                         dropout=c.g_dropout, activation=activation, norm=None if g_norm == "default" else g_norm,
                         **g_tricks(nz))
        D = MLPDiscriminator(_packed(sample_shape, c.pack), (width * 2, width), num_classes=num_classes)
    else:
        nc, size = sample_shape[0], sample_shape[1]
        norm = v.critic_norm if c.critic_norm == "default" else (None if c.critic_norm == "none" else c.critic_norm)
        nz = c.nz or 100
        G = DCGANGenerator(nz, c.ngf, nc, size, num_classes, dropout=c.g_dropout,
                           norm="batch" if g_norm == "default" else g_norm, upsample=c.g_upsample, **g_tricks(nz))
        D = DCGANDiscriminator(c.ndf, nc * c.pack, size, num_classes, norm=norm, downsample=c.d_downsample,
                               cond=c.cond)
    return G.to(c.device), D.to(c.device), nz


def _packed(sample_shape, pack):
    """The shape D sees when it judges ``pack`` samples at once: joined along the first axis."""
    return (sample_shape[0] * pack,) + tuple(sample_shape[1:])


def pack_samples(x, pack):
    """(N, C, ...) -> (N / pack, pack * C, ...): consecutive samples side by side (PacGAN, Lin et al. 2018)."""
    if pack == 1:
        return x
    return x.reshape((x.shape[0] // pack, x.shape[1] * pack) + tuple(x.shape[2:]))


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint was kept."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM stopped ``train(handle_signals=True)``; the step reached was saved to ``checkpoint``."""

    def __init__(self, step: int, signum: int, checkpoint: str):
        self.step, self.signum, self.checkpoint = step, signum, checkpoint
        self.exit_status = exit_status(signum)
        super().__init__(f"{signal_name(signum)}: stopped at step {step}; checkpoint written to {checkpoint}")


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, unwritable directory); the previous one is kept."""


TRAINER_FORMAT = "npgan-trainer-1"

# Settings that may differ when a run is resumed: how long it runs, how often it logs, samples and saves,
# where its files and data are, which device computes, and what is reported. Every other TrainConfig field
# defines the run (its nets, data, losses, optimizers, schedule) and must match the checkpoint; a field added
# to TrainConfig is covered by that check without being listed anywhere.
RESUMABLE_SETTINGS = frozenset({"steps", "epochs", "log_every", "sample_every", "checkpoint_every", "device",
                                "out", "dataroot", "metrics", "g_ema"})


class ResumeMismatch(ValueError):
    """Settings asked for on resume differ from the stored run's; ``differences`` lists (name, stored, asked)."""

    def __init__(self, path: str, differences: list, stored_config=None):
        self.path, self.differences, self.stored_config = path, differences, stored_config
        listed = "; ".join(f"{name}: stored {stored!r}, asked {asked!r}" for name, stored, asked in differences)
        super().__init__(f"{path} holds a different run ({listed}); only {sorted(RESUMABLE_SETTINGS)} may "
                         "change on resume")


def resume_differences(stored: TrainConfig, asked: dict) -> list:
    """(name, stored value, asked value) for every setting in ``asked`` that would change the stored run."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(asked) - names)
    if unknown:
        raise TypeError(f"unknown TrainConfig settings {unknown}")
    return [(name, getattr(stored, name), value) for name, value in asked.items()
            if name not in RESUMABLE_SETTINGS and value != getattr(stored, name)]


def _stored_config(path: str, state: dict) -> TrainConfig:
    """The run's TrainConfig from a checkpoint, or a clear error when this npgan cannot read it."""
    found = state.get("format")
    if found != TRAINER_FORMAT:
        if isinstance(found, str) and found.startswith("npgan-trainer-"):
            raise ValueError(f"{path} was written by another npgan version (trainer format {found!r}; this npgan "
                             f"reads {TRAINER_FORMAT!r}): use the npgan version that wrote it")
        raise ValueError(f"{path} is not an npgan training checkpoint (no 'format: {TRAINER_FORMAT}' entry)")
    stored = dict(state["config"])
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise ValueError(f"{path} has settings this npgan does not know ({', '.join(unknown)}): it was written "
                         "by a newer npgan; upgrade npgan to use it")
    return TrainConfig(**stored)


def _log_row_floats(row):
    """A step's logged values as Python floats, copied off the device in one transfer (one sync, not one each)."""
    keys = [k for k in row if k != "step"]
    values = [row[k].data if isinstance(row[k], npgan.Tensor) else row[k] for k in keys]
    arrays = [v for v in values if backend.is_array(v)]
    if arrays:
        xp = backend.get_array_module(*arrays)
        dtype = backend.result_dtype(*(a.dtype for a in arrays))  # float32 stays float32: the same floats
        stacked = backend.asnumpy(xp.stack([xp.reshape(a, ()).astype(dtype, copy=False) for a in arrays]))
        on_host = iter(stacked.tolist())
        values = [next(on_host) if backend.is_array(v) else float(v) for v in values]
    floats = {k: float(v) for k, v in zip(keys, values)}
    return {"step": row["step"], **floats} if "step" in row else floats


class Trainer:
    """Builds data, nets and optimizers from a ``TrainConfig`` and runs the loop.

    >>> trainer = Trainer(TrainConfig(model="dcgan", steps=2000, out="runs/dcgan"))
    >>> summary = trainer.train()
    """

    def __init__(self, config: TrainConfig, progress: bool = True, comm: distributed.Communicator | None = None):
        config.validate()
        self.config = config
        self.variant = variant_for(config.model, config.dataset in TOY_DATASETS)
        # Data parallel over MPI (npgan.runtime.distributed): each rank trains on its shard of every global batch.
        self.comm = comm if comm is not None else distributed.world()
        self._check_shards()
        self.progress = progress and self.comm.is_main
        self.device = backend.check_device(config.device)
        if self.device == "cuda":
            distributed.use_local_gpu(self.comm)  # under MPI: one GPU per rank of a machine
        npgan.manual_seed(config.seed)
        self.data_rng = backend.numpy.random.default_rng(config.seed + 1)
        self._build_data()
        self._build_nets()
        self._build_optimizers()
        self._distribute()
        self.step = 0  # generator steps done
        self.checkpoint_step: int | None = None  # the step of the last checkpoint written or loaded
        self.history: list[dict] = []  # logged rows (floats)
        # The noise behind every sample picture; a toy's scatter plot shows 1,000 points.
        self.fixed_noise = self._sample_noise(max(config.num_samples, 1000) if self.is_toy else config.num_samples)
        self.fixed_labels = None
        if self.num_classes:
            self.fixed_labels = npgan.tensor(
                backend.numpy.arange(config.num_samples) % self.num_classes, device=self.device
            )
        self.sample_paths: list[str] = []
        self._warned: dict = {}  # warning kind -> step it was last given

    # -- construction ----------------------------------------------------------------------------------
    @property
    def is_toy(self) -> bool:
        """True when training on a 2-D toy (ring8, grid25, swissroll): MLP nets and toy settings."""
        return self.config.dataset in TOY_DATASETS

    def _build_data(self):
        c = self.config
        if self.variant.conditional and c.dataset in TOY_DATASETS:
            raise ValueError(f"cgan needs a labelled image dataset, not the toy {c.dataset!r}")
        if self.is_toy:
            self.dataset = None
            self.sample_shape = (2,)
            self.num_classes = 0
            self.loader = None
            return
        image_size = c.image_size or (28 if self.variant.nets == "mlp" else None)
        self.dataset = load_dataset(c.dataset, dataroot=c.dataroot, image_size=image_size, channels=c.channels,
                                    seed=c.seed)
        if self.variant.conditional and self.dataset.labels is None:
            raise ValueError(f"cgan needs labels, but dataset {c.dataset!r} has none")
        self.sample_shape = tuple(self.dataset.images.shape[1:])
        self.num_classes = self.dataset.num_classes if self.variant.conditional else 0
        if len(self.dataset.images) < c.batch_size:
            raise ValueError(
                f"batch_size {c.batch_size} is larger than the dataset ({len(self.dataset.images)} images)"
            )
        self.loader = DataLoader(self.dataset, c.batch_size, shuffle=True, drop_last=True, device=self.device,
                                 rng=self.data_rng)
        self._batches = None

    def _build_nets(self):
        self.G, self.D, self.nz = build_nets(self.config, self.sample_shape, self.num_classes, self.is_toy)
        # With g_ema, samples, pictures and metrics come from an average of G's weights (optim.EMA).
        self.g_ema = optim.EMA(self.G, self.config.g_ema) if self.config.g_ema else None

    def _build_optimizers(self):
        c, v = self.config, self.variant
        self.loss = c.loss or v.loss
        self.n_critic = c.n_critic or v.n_critic
        self.clip = c.clip if c.clip is not None else v.clip
        self.gp_lambda = c.gp_lambda if c.gp_lambda is not None else v.gp_lambda
        lr_g, lr_d = c.lr_g or v.lr, c.lr_d or v.lr
        if v.optimizer == "adam":
            betas = (v.betas[0] if c.beta1 is None else c.beta1, v.betas[1] if c.beta2 is None else c.beta2)
            self.opt_g = optim.Adam(self.G.parameters(), lr=lr_g, betas=betas)
            self.opt_d = optim.Adam(self.D.parameters(), lr=lr_d, betas=betas)
        else:
            self.opt_g = optim.RMSprop(self.G.parameters(), lr=lr_g)
            self.opt_d = optim.RMSprop(self.D.parameters(), lr=lr_d)

    def _check_shards(self):
        c, size = self.config, self.comm.size
        if c.batch_size % size:
            raise ValueError(f"--batch-size {c.batch_size} (the global batch) does not divide by the {size} MPI "
                             f"ranks: choose a multiple of {size}")
        if (c.batch_size // size) % c.pack:
            raise ValueError(f"each of the {size} ranks gets {c.batch_size // size} samples of --batch-size "
                             f"{c.batch_size}, not a multiple of --pack {c.pack}")
        if size > 1 and c.unroll:  # the unrolled D steps would each need their own gradient Allreduce
            raise ValueError(f"--unroll does not run on {size} MPI ranks yet: train the unrolled GAN in one process")

    def _distribute(self):
        """Under MPI: rank 0's initial weights everywhere, averaged gradients before every optimizer step."""
        if self.comm.size == 1:
            return
        for module in (self.G, self.D) + ((self.g_ema.module,) if self.g_ema is not None else ()):
            self.comm.broadcast_module_(module)
        if self.config.sync_batch_norm:
            distributed.convert_sync_batchnorm(self.G, self.comm)
            distributed.convert_sync_batchnorm(self.D, self.comm)
        self.opt_g = distributed.DistributedOptimizer(self.opt_g, self.comm)
        self.opt_d = distributed.DistributedOptimizer(self.opt_d, self.comm)

    def _shard(self, tensor):
        """This rank's part of a global batch (the whole batch in one process)."""
        if tensor is None or self.comm.size == 1:
            return tensor
        return npgan.Tensor(distributed.shard_rows(tensor.data, self.comm.size, self.comm.rank))

    def total_steps(self) -> int:
        """The generator steps of the whole run: ``steps``, else from ``epochs``, else the variant's default."""
        c = self.config
        if c.steps is not None:
            return c.steps
        if c.epochs is not None and self.loader is not None:
            return max(1, math.ceil(c.epochs * len(self.loader) / self.n_critic))
        return TOY_STEPS if self.is_toy else self.variant.steps

    # -- sampling ----------------------------------------------------------------------------------------
    def _sample_noise(self, n, rng=None):
        """z for n samples, from npgan's generator (or ``rng``, a NumPy Generator)."""
        shape, dtype = (n, self.nz), backend.DEFAULT_DTYPE
        if self.config.noise == "uniform":
            return npgan.Tensor(backend.random_uniform(shape, -1.0, 1.0, dtype, self.device, rng=rng))
        return npgan.Tensor(backend.random_normal(shape, dtype, self.device, rng=rng))

    def _sample_labels(self, n, rng=None):
        if not self.num_classes:
            return None
        labels = (rng or backend.host_rng()).integers(0, self.num_classes, size=n)
        return npgan.tensor(labels, device=self.device)

    def _real_batch(self):
        c = self.config
        if self.is_toy:
            sample = TOY_DATASETS[c.dataset](c.batch_size, self.data_rng)
            return self._shard(npgan.tensor(sample, device=self.device)), None
        if self._batches is None:
            self._batches = self.loader.batches()
        images, labels = next(self._batches)  # the global batch: every rank keeps its shard
        return self._shard(images), (self._shard(labels) if self.num_classes else None)

    def generate(self, n=None, noise=None, labels=None, averaged=True):
        """Samples from G in eval mode (BatchNorm uses its running statistics), without a graph.

        With ``g_ema`` they come from the average of G's weights, unless ``averaged`` is False.
        """
        if noise is None:
            noise = self._sample_noise(n)
        if self.num_classes and labels is None:
            labels = self._sample_labels(noise.shape[0])
        G = self.g_ema.module if self.g_ema is not None and averaged else self.G
        was_training = G.training
        sampling_mode(G, self.config.g_dropout_sample)
        # Dropout masks at sampling come from a stream of their own (seed + 2), swapped in for npgan's
        # generator and out again, so pictures and metrics do not change the training run.
        training_rng = backend.get_rng_state() if self.config.g_dropout_sample else None
        if training_rng is not None:
            if not hasattr(self, "_sampling_rng_state"):
                self._sampling_rng_state = backend.numpy.random.default_rng(self.config.seed + 2).bit_generator.state
            backend.set_rng_state(self._sampling_rng_state)
        with npgan.no_grad():
            out = G(noise, labels) if self.num_classes else G(noise)
        if training_rng is not None:
            self._sampling_rng_state = backend.get_rng_state()
            backend.set_rng_state(training_rng)
        G.train(was_training)
        return out

    # -- one step ----------------------------------------------------------------------------------------
    def _critic_iterations(self) -> int:
        if self.variant.warmup_critic and (self.step < 25 or self.step % 500 == 0):
            return 100
        return self.n_critic

    def _instance_noise(self, x):
        std = self.config.instance_noise * max(0.0, 1.0 - self.step / max(1, self.total_steps()))
        if std <= 0.0:
            return x
        return x + npgan.randn(*x.shape, dtype=x.dtype, device=x.device) * std

    def _set_layer_noise(self):
        """G's layer noise (``g_layer_noise``): std = std_0 * (1 - step / total), like the instance noise."""
        std = self.config.g_layer_noise * max(0.0, 1.0 - self.step / max(1, self.total_steps()))
        for m in self.G.modules():
            if isinstance(m, nn.GaussianNoise):
                m.std = std

    def _d_targets(self, n):
        """D's targets for n real and n fake scores: floats, or arrays with soft and flipped labels.

        ``soft_labels`` (low, high): each real label ~ U[low, high] (ganhacks: 0.7 to 1.2); ``flip_labels``
        p: each real score's target becomes the fake label (0) and each fake score's a real label, with
        probability p, independently. Drawn from npgan's generator, so runs repeat and resume exactly; under
        MPI every rank draws the global batch's labels and keeps its shard (``distributed.batch_shard``).
        """
        c = self.config
        if c.soft_labels is None and not c.flip_labels:
            return 1.0 - c.label_smoothing, 0.0
        rng = backend.host_rng()

        def real_labels():
            if c.soft_labels is None:
                return backend.numpy.full(n, 1.0 - c.label_smoothing)
            return rng.uniform(c.soft_labels[0], c.soft_labels[1], n)

        real, fake = real_labels(), backend.numpy.zeros(n)
        if c.flip_labels:
            real = backend.numpy.where(rng.random(n) < c.flip_labels, 0.0, real)
            fake = backend.numpy.where(rng.random(n) < c.flip_labels, real_labels(), fake)
        dtype = backend.DEFAULT_DTYPE
        real, fake = real.astype(dtype), fake.astype(dtype)
        return npgan.tensor(real, device=self.device), npgan.tensor(fake, device=self.device)

    def _clip_gradients(self, module, optimizer):
        """``clip_grad_norm``: clip the network's whole gradient, after averaging it over MPI ranks, so that
        N ranks clip the same global gradient one process would."""
        if self.config.clip_grad_norm:
            if isinstance(optimizer, distributed.DistributedOptimizer):
                optimizer.allreduce_grads()
            optim.clip_grad_norm_(module.parameters(), self.config.clip_grad_norm)

    def _critic(self, x, labels=None):
        """D's scores of samples x, packed when ``pack`` > 1."""
        x = pack_samples(x, self.config.pack)
        return self.D(x, labels) if self.num_classes else self.D(x)

    def _D(self, x, labels):
        return self._critic(self._instance_noise(x), labels)

    def _set_learning_rates(self):
        """With ``lr_decay``: lr = lr_0 * (1 - step / total), for both optimizers."""
        if not self.config.lr_decay:
            return
        scale = max(0.0, 1.0 - self.step / max(1, self.total_steps()))
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * scale

    def train_step(self) -> dict:
        """One generator step and its critic steps; returns the step's losses as (device) Tensors."""
        # Under MPI every random draw of the step (z, labels, penalty weights, dropout masks, noise) is made for
        # the global batch, and each rank keeps its shard (distributed.batch_shard).
        with distributed.batch_shard(self.comm):
            return self._train_step()

    def _train_step(self) -> dict:
        c = self.config
        row = {}
        self._set_learning_rates()
        self._set_layer_noise()
        reuse_fake = self.n_critic == 1 and self._critic_iterations() == 1
        fake = None
        for _ in range(self._critic_iterations()):
            real, labels = self._real_batch()
            z = self._sample_noise(real.shape[0])
            if reuse_fake:
                fake = self.G(z, labels) if self.num_classes else self.G(z)
                fake_for_d = fake.detach()
            else:
                with npgan.no_grad():
                    fake_for_d = self.G(z, labels) if self.num_classes else self.G(z)
            d_real = self._D(real, labels)
            d_fake = self._D(fake_for_d, labels)
            real_target, fake_target = self._d_targets(d_real.shape[0])
            loss_d = losses.discriminator_loss(self.loss, d_real, d_fake, real_label=real_target,
                                               fake_label=fake_target)
            if self.gp_lambda:
                eps = npgan.rand(real.shape[0], *(1,) * (real.ndim - 1), dtype=real.dtype, device=real.device)
                penalty = losses.gradient_penalty(self._critic, real, fake_for_d, labels, eps=eps)
                loss_d = loss_d + penalty * self.gp_lambda
                row["gp"] = penalty
            if c.r1_gamma:
                penalty = losses.r1_penalty(self._critic, real, labels)
                loss_d = loss_d + penalty * (c.r1_gamma / 2)
                row["r1"] = penalty
            self.opt_d.zero_grad()
            loss_d.backward()
            self._clip_gradients(self.D, self.opt_d)
            self.opt_d.step()
            if self.clip:
                for p in self.D.parameters():
                    xp = backend.get_array_module(p.data)
                    xp.clip(p.data, -self.clip, self.clip, out=p.data)
        row["loss_d"] = loss_d
        if self.loss in ("wasserstein", "hinge"):
            row["wasserstein"] = d_real.mean() - d_fake.mean()
        else:
            row["d_x"] = npgan.functional.sigmoid(d_real).mean()
            row["d_g_z1"] = npgan.functional.sigmoid(d_fake).mean()

        # Generator step: D's weights get no gradient here, so their weight-gradient GEMMs are skipped.
        if fake is None:
            labels = self._sample_labels(c.batch_size // self.comm.size)  # this rank's share of the batch
            z = self._sample_noise(c.batch_size // self.comm.size)
            fake = self.G(z, labels) if self.num_classes else self.G(z)
        if c.unroll:
            d_fake_g = self._D_unrolled(fake, labels)
        else:
            self.D.requires_grad_(False)
            d_fake_g = self._D(fake, labels)
            self.D.requires_grad_(True)
        loss_g = losses.generator_loss(self.loss, d_fake_g)
        self.opt_g.zero_grad()
        if c.unroll:  # only G's gradient: the unrolled steps' own weight gradients are not wanted
            for p, g in zip(self.G.parameters(), npgan.grad(loss_g, list(self.G.parameters()), allow_unused=True)):
                p.grad = g
        else:
            loss_g.backward()
        self._clip_gradients(self.G, self.opt_g)
        self.opt_g.step()
        if self.g_ema is not None:
            self.g_ema.update()
        row["loss_g"] = loss_g
        if self.loss not in ("wasserstein", "hinge"):
            row["d_g_z2"] = npgan.functional.sigmoid(d_fake_g).mean()
        self.step += 1
        return row

    # -- unrolled GAN -------------------------------------------------------------------------------------
    def _D_unrolled(self, fake, labels):
        """D's scores of G's ``fake`` batch, with D's weights after ``unroll`` more differentiable steps.

        The scheme of Metz et al. 2016: D's real update is the ordinary optimizer step of the critic loop
        above; G's loss is then taken against D unrolled K steps further from those weights (with D's
        optimizer's own hyperparameters and moments, on K fresh real batches and fresh fakes), and G's
        gradient flows through the K steps, second derivatives included (the paper's full method: the
        second-order term is what makes unrolling work against mode collapse). ``unroll_first_order`` cuts
        the unrolled weights from G's graph instead: the cheaper surrogate, to compare against. The unrolled
        steps use D's adversarial loss (with label smoothing and instance noise), not its penalties.
        Batches and noise come from the trainer's own generators, so a run still resumes exactly.
        """
        from npgan.gan.unrolled import unroll_discriminator  # noqa: PLC0415

        c = self.config
        params = unroll_discriminator(self.D, self.opt_d, self._unrolled_d_loss, c.unroll, c.unroll_first_order)
        return self._D_with(params, fake, labels)

    def _unrolled_d_loss(self, params):
        """D's loss on a fresh real batch and fresh fakes, with D's weights ``params`` (one unrolled step)."""
        c = self.config
        real, labels = self._real_batch()
        z = self._sample_noise(real.shape[0])
        g_inputs = (z, labels) if self.num_classes else (z,)
        with npgan.set_grad_enabled(not c.unroll_first_order):  # first order: no path from these fakes to G
            fake = nn.functional_call(self.G, {}, *g_inputs)  # G's BatchNorm statistics stay as they are
        d_real = self._D_with(params, real, labels)
        d_fake = self._D_with(params, fake, labels)
        return losses.discriminator_loss(self.loss, d_real, d_fake, real_label=1.0 - c.label_smoothing)

    def _D_with(self, params, x, labels):
        """``_D`` (instance noise, packing) with D's parameters replaced by ``params``."""
        x = pack_samples(self._instance_noise(x), self.config.pack)
        inputs = (x, labels) if self.num_classes else (x,)
        return nn.functional_call(self.D, params, *inputs)

    # -- the loop ----------------------------------------------------------------------------------------
    def paths(self) -> dict:
        """``{'out', 'checkpoint', 'metrics_log', 'samples', 'gif', 'losses', 'final'}``: where the run writes."""
        out = self.config.out
        return {
            "out": out,
            "checkpoint": os.path.join(out, "checkpoint.npz"),
            "metrics_log": os.path.join(out, "metrics.jsonl"),
            "samples": os.path.join(out, "samples"),
            "gif": os.path.join(out, "progress.gif"),
            "losses": os.path.join(out, "losses.png"),
            "final": os.path.join(out, "samples.png"),
        }

    def _grad_norm(self, module) -> float:
        """The L2 norm of ``module``'s gradients, summed on the device and read once (one sync per module)."""
        total = None
        for p in module.parameters():
            if p.grad is not None:
                square_sum = (p.grad.data.astype("float64") ** 2).sum()
                total = square_sum if total is None else total + square_sum
        return 0.0 if total is None else math.sqrt(float(backend.asnumpy(total)))

    def _check_finite(self, row):
        for key, value in row.items():
            if key != "step" and not math.isfinite(value):
                where = self.paths()["checkpoint"]
                kept = f"the last good checkpoint is kept at {where}" if os.path.exists(where) else \
                    "no checkpoint had been written yet"
                raise TrainingDiverged(
                    f"{key} became {value} at step {row['step']}: training diverged and was stopped; {kept}. "
                    "Try a lower learning rate (--lr-d/--lr-g) or another loss."
                )

    def _warn(self, key, message):
        """Warn, but about the same thing at most once every 10 logged rows."""
        last = self._warned.get(key)
        if last is None or self.step - last >= 10 * self.config.log_every:
            self._warned[key] = self.step
            if not self.comm.is_main:  # every rank sees the same averaged gradients: one warning is enough
                return
            warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _watch(self, row):
        if self.loss in ("minimax", "non-saturating") and row.get("loss_d", 1.0) < 1e-3:
            self._warn("collapse", f"step {row['step']}: D's loss collapsed to {row['loss_d']:.2e}; G may get no "
                                   "gradient (try --label-smoothing or --instance-noise)")
        for name, module in (("D", self.D), ("G", self.G)):
            norm = self._grad_norm(module)
            row[f"grad_norm_{name.lower()}"] = norm
            if norm > 100.0:
                self._warn(f"norm {name}", f"step {row['step']}: {name}'s gradient norm is {norm:.1f} (> 100)")

    def train(self, steps: int | None = None, handle_signals: bool = False) -> dict:
        """Train until ``steps`` (default: the config's total) generator steps are done; returns a summary.

        The output directory is locked for the run (``npgan.runtime.runlock``): a second run into it is refused.
        With ``handle_signals`` (what ``npgan train`` does), SIGINT and SIGTERM finish the step in progress,
        write a checkpoint of it and raise ``TrainingInterrupted`` (see ``npgan.runtime.interrupt``); without it (the
        default for library use) signals keep their usual meaning: Ctrl-C raises ``KeyboardInterrupt``
        wherever the loop is, and the last periodic checkpoint is what remains. The machine tuning is switched
        on first (``npgan.runtime.enable()``: BLAS thread policy, malloc policy), as ``npgan train`` does.
        """
        runtime.enable()
        paths = self.paths()
        stop = StopOnSignal() if handle_signals else None
        lock = runlock.run_lock(paths["out"]) if self.comm.is_main else contextlib.nullcontext()  # MPI: rank 0's
        with lock, (stop or contextlib.nullcontext()):
            return self._train(steps, paths, stop)

    def _stop_requested(self, stop) -> bool:
        """Whether a signal asked to stop; under MPI, whether any rank's did, so all stop at the same step."""
        requested = stop is not None and stop.requested
        if stop is None or self.comm.size == 1:
            return requested
        flag = backend.numpy.array([1.0 if requested else 0.0])
        return bool(self.comm.allreduce_sum_(flag)[0] > 0)

    def _train(self, steps, paths, stop) -> dict:
        from npgan import viz  # noqa: PLC0415 (matplotlib is only needed once training runs)

        c = self.config
        main = self.comm.is_main  # under MPI, rank 0 alone writes files and shows progress
        total = steps if steps is not None else self.total_steps()
        if main:
            os.makedirs(paths["samples"], exist_ok=True)
            self._trim_metrics(paths["metrics_log"])
        bar = _progress_bar(self.step, total, self.progress, c.model)
        start = time.perf_counter()
        start_step = self.step
        # The log's "time" counts training seconds since step 0, across resumes (restored with the history).
        earlier = self.history[-1].get("time", 0.0) if self.history else 0.0
        try:
            # Under MPI, one rank's exception (or NaN) ends every rank, instead of leaving them in a collective.
            doing = [self.step + 1]  # the step in progress, for the message
            interrupted = False
            with distributed.abort_on_error(self.comm, lambda: f"at step {doing[0]}"):
                while self.step < total and not interrupted:
                    doing[0] = self.step + 1
                    row = self.train_step()
                    bar.update(1)
                    if self.step % c.log_every == 0 or self.step == total:
                        floats = _log_row_floats(dict(step=self.step, **row))
                        self._check_finite(floats)  # every rank: its own shard's losses
                        self._watch(floats)
                        floats["time"] = round(earlier + time.perf_counter() - start, 3)
                        self.history.append(floats)
                        if main:
                            with open(paths["metrics_log"], "a") as f:
                                f.write(json.dumps(floats) + "\n")
                        bar.set_postfix_str(_postfix(floats), refresh=False)
                    interrupted = self._stop_requested(stop)
                    sample = self.step % c.sample_every == 0 or self.step == total
                    checkpoint = self.step % c.checkpoint_every == 0 or self.step == total or interrupted
                    if sample or checkpoint:  # per-rank BatchNorm statistics: one average on every rank
                        for module in (self.G, self.D):
                            self.comm.average_buffers_(module)
                    if sample and main:
                        self.save_samples()
                    if checkpoint:
                        self._check_finite(_log_row_floats(dict(step=self.step, **row)))
                        if main:
                            with (stop.saving() if stop is not None else contextlib.nullcontext()):
                                self._write_checkpoint(paths["checkpoint"])
            if interrupted:  # outside abort_on_error: a clean stop on every rank, not an MPI abort
                signum = stop.signum if stop.signum is not None else signal.SIGTERM  # another rank's signal
                raise TrainingInterrupted(self.step, signum, paths["checkpoint"])
        finally:
            bar.close()
        if stop is not None and stop.requested:  # arrived while the last step's checkpoint was being written
            raise TrainingInterrupted(self.step, stop.signum, paths["checkpoint"])
        seconds = time.perf_counter() - start
        summary = {"steps": self.step, "seconds": round(seconds, 2), "total_seconds": round(earlier + seconds, 2),
                   "ms_per_step": round(1000 * seconds / max(1, self.step - start_step), 1), **paths}
        if not main:
            return summary
        if self.sample_paths:
            viz.save_gif(self.sample_paths, paths["gif"])
        if self.history:
            keys = [k for k in ("loss_d", "loss_g", "wasserstein", "gp") if k in self.history[-1]]
            viz.plot_losses(self.history, paths["losses"], keys=keys,
                            title=f"{c.model} on {c.dataset}: losses by generator step")
        if c.metrics:
            summary["metrics"] = self.evaluate()
            if self.g_ema is not None:  # what the average buys, measured on the same run
                summary["metrics_without_ema"] = self.evaluate(averaged=False)
        return summary

    def save_samples(self) -> str:
        """Draw the fixed noise's samples as ``samples/step_NNNNNN.png`` (and ``samples.png``); returns the path."""
        from npgan import viz  # noqa: PLC0415

        samples = backend.asnumpy(self.generate(noise=self.fixed_noise, labels=self.fixed_labels).data)
        path = os.path.join(self.paths()["samples"], f"step_{self.step:06d}.png")
        if self.is_toy:
            from npgan.gan.metrics import toy_metrics  # noqa: PLC0415

            title = f"{self.config.model} on {self.config.dataset}, step {self.step}"
            quality = toy_metrics(self.config.dataset, samples)  # of the fixed noise's points: no random draws
            if quality:
                title += f"\n{quality['modes_captured']}/{quality['modes']} modes, " \
                         f"{quality['high_quality_pct']:.0f}% high quality"  # second line: fits the picture
            save_toy_scatter(self.config.dataset, samples, path, title=title)
        else:
            nrow = self.num_classes if self.num_classes else int(math.ceil(math.sqrt(len(samples))))
            viz.save_grid(samples, path, nrow=nrow)
        self.sample_paths.append(path)
        shutil.copyfile(path, self.paths()["final"])  # samples.png: always the latest grid
        return path

    def evaluate(self, averaged=True, seed=0) -> dict:
        """Sample-quality metrics (``npgan.gan.metrics``) of 2,500 toy points or 1,000 digits from G.

        The noise (and labels) come from their own generator seeded with ``seed``: the same points for G and
        for its average, and training's random stream is left as it was.
        """
        from npgan.gan import metrics  # noqa: PLC0415

        rng = backend.numpy.random.default_rng(seed)

        def samples(n):
            noise = self._sample_noise(n, rng)
            fake = self.generate(noise=noise, labels=self._sample_labels(n, rng), averaged=averaged)
            return backend.asnumpy(fake.data)

        if self.is_toy:
            return metrics.toy_metrics(self.config.dataset, samples(2500))
        # The digit classifier reads 28x28 digits (32x32 ones are cropped); other images get no metrics.
        if self.dataset.name in ("mnist5k", "mnist") and self.sample_shape in ((1, 28, 28), (1, 32, 32)):
            return metrics.image_metrics(samples(1000), image_size=self.sample_shape[-1])
        return {}

    def _trim_metrics(self, path):
        """On resume, drop logged rows past the checkpoint's step (they will be logged again)."""
        if not os.path.exists(path):
            return
        with open(path) as f:
            rows = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= self.step]
        with open(path, "w") as f:
            f.writelines(rows)

    # -- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything an exact resume needs: nets, optimizers, step, random generators, loader, fixed noise."""
        state = {
            "format": TRAINER_FORMAT,
            "config": dataclasses.asdict(self.config),
            "step": self.step,
            "generator": dict(self.G.state_dict()),
            "discriminator": dict(self.D.state_dict()),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "rng": backend.get_rng_state(),
            "data_rng": self.data_rng.bit_generator.state,
            "fixed_noise": backend.asnumpy(self.fixed_noise.data),
            "sample_shape": list(self.sample_shape),
            "num_classes": self.num_classes,
            "is_toy": self.is_toy,
            "history": self.history,
            "sample_paths": self.sample_paths,
        }
        if self.loader is not None:
            state["loader"] = self.loader.state_dict()
        if self.fixed_labels is not None:
            state["fixed_labels"] = backend.asnumpy(self.fixed_labels.data)
        if self.g_ema is not None:
            state["generator_ema"] = self.g_ema.state_dict()
        if hasattr(self, "_sampling_rng_state"):  # the dropout stream of pictures and metrics (generate)
            state["sampling_rng"] = self._sampling_rng_state
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()``: the next ``train_step`` is the one the saved run would have taken."""
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.g_ema is not None:
            if "generator_ema" in state:
                self.g_ema.load_state_dict(state["generator_ema"])
            else:  # g_ema switched on at resume: the average starts from the loaded weights
                self.g_ema = optim.EMA(self.G, self.config.g_ema)
        self.step = int(state["step"])
        self.checkpoint_step = self.step
        backend.set_rng_state(state["rng"])
        self.data_rng.bit_generator.state = state["data_rng"]
        if "sampling_rng" in state:
            self._sampling_rng_state = state["sampling_rng"]
        self.fixed_noise = npgan.tensor(state["fixed_noise"], device=self.device)
        if "fixed_labels" in state:
            self.fixed_labels = npgan.tensor(state["fixed_labels"], device=self.device)
        if self.loader is not None and "loader" in state:
            self.loader.load_state_dict(state["loader"])
            self._batches = None
        self.history = list(state.get("history", []))
        self.sample_paths = list(state.get("sample_paths", []))

    def save(self, path: str) -> None:
        """Write ``state_dict()`` atomically to ``path`` (an ``.npz``, no pickle): ``trainer.save("run/ckpt.npz")``."""
        save_checkpoint(path, self.state_dict())

    def _write_checkpoint(self, path: str) -> None:
        """``save``, with a failure (disk full, unwritable directory) told in words: what, where, what is kept."""
        try:
            self.save(path)
        except OSError as err:
            kept = (f"the previous checkpoint (step {self.checkpoint_step}) is kept" if self.checkpoint_step
                    is not None and os.path.exists(path) else "no earlier checkpoint exists")
            raise CheckpointWriteError(
                f"could not write the checkpoint of step {self.step} to {path}: {err.strerror or err}; {kept}. "
                "Training stopped: free space (or fix the directory's permissions) and resume.") from err
        self.checkpoint_step = self.step

    @classmethod
    def from_checkpoint(cls, path: str, progress: bool = True, comm=None, **overrides) -> Trainer:
        """Rebuild a trainer from a checkpoint and continue where it stopped.

        ``overrides`` may change the settings in ``RESUMABLE_SETTINGS`` (length, log/sample/checkpoint
        frequency, device, out, dataroot, metrics, g_ema); giving any other setting a value that differs from
        the stored run's raises ``ResumeMismatch`` listing each difference (equal values are accepted).
        Under MPI every rank loads the same file; a checkpoint holds no trace of the number of ranks that
        wrote it, so it resumes on any number of ranks that divides the global batch.
        """
        state = load_checkpoint(path)
        config = _stored_config(path, state)
        differences = resume_differences(config, overrides)
        if differences:
            raise ResumeMismatch(path, differences, config)
        for key, value in overrides.items():
            setattr(config, key, value)
        trainer = cls(config, progress=progress, comm=comm)
        trainer.load_state_dict(state)
        return trainer


def load_generator(path: str, device: str = "cpu", averaged: bool = True):
    """The generator of a training checkpoint, in eval mode, and the checkpoint's facts about it.

    Returns ``(G, info)`` with info holding ``nz``, ``num_classes``, ``sample_shape``, ``is_toy``, ``config``,
    ``step`` and ``averaged``; no dataset is needed. A run trained with ``g_ema`` gives its weight average
    (as its pictures and metrics did) unless ``averaged`` is False.
    """
    state = load_checkpoint(path)
    config = _stored_config(path, state)
    config.device = device
    shape = tuple(state["sample_shape"])
    G, _, nz = build_nets(config, shape, int(state["num_classes"]), bool(state["is_toy"]))
    averaged = averaged and "generator_ema" in state
    G.load_state_dict(state["generator_ema"]["module"] if averaged else state["generator"])
    sampling_mode(G, config.g_dropout_sample)
    info = {"nz": nz, "num_classes": int(state["num_classes"]), "sample_shape": shape,
            "is_toy": bool(state["is_toy"]), "config": config, "step": int(state["step"]), "averaged": averaged}
    return G, info


def sampling_mode(G, keep_dropout=False):
    """G in eval mode (BatchNorm on its running statistics), its Dropout layers still on if ``keep_dropout``."""
    G.eval()
    if keep_dropout:
        for m in G.modules():
            if isinstance(m, nn.Dropout):
                m.train()
    return G


def save_toy_scatter(dataset: str, samples, path: str, title=None) -> str:
    """Generated 2-D points over 1,000 real ones, modes circled, on fixed axes (steady GIF frames)."""
    from npgan import viz  # noqa: PLC0415

    real = TOY_DATASETS[dataset](1000, backend.numpy.random.default_rng(0))
    bound = float(abs(real).max()) * 1.25
    return viz.scatter_2d(real, samples, path, modes=toy_modes(dataset), title=title, limits=(-bound, bound))


def _postfix(row) -> str:
    names = {"loss_d": "Loss_D", "loss_g": "Loss_G", "d_x": "D(x)", "d_g_z1": "D(G(z))", "wasserstein": "W",
             "gp": "GP"}
    return " ".join(f"{label}={row[key]:.3f}" for key, label in names.items() if key in row)


def _progress_bar(initial, total, enabled, name):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=initial, disable=not enabled, desc=name, unit="step", dynamic_ncols=True)
