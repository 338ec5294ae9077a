"""What a run is: the GAN family's variants and ``TrainConfig``, every setting stated once.

GAN, DCGAN, WGAN, WGAN-GP and the conditional GAN are *configurations* of one training loop (``VARIANTS``), not
copies of it: a variant says which loss to use, how many critic steps per generator step (``n_critic``),
whether to clip the critic's weights (WGAN) or add a gradient penalty (WGAN-GP), and which optimizer.

Each ``TrainConfig`` field carries its command-line flag, allowed values, group and help in its metadata
(``setting``); ``npgan train``'s parser is generated from them (``npgan.cli``), and ``validate`` checks the
same allowed values. An unset setting (None) takes the model's default; on the 2-D toys a variant may state
toy defaults (``Variant.toy``). ``resolved()`` fills them in: what a run trains with and its checkpoint stores.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field

from npgan import backend
from npgan.data import IMAGE_DATASETS, TOY_DATASETS
from npgan.gan.losses import LOSSES
from npgan.gan.models import D_DOWNSAMPLING, G_UPSAMPLING, IMAGE_SIZES, MLP_ACTIVATIONS

MODELS = ("gan", "dcgan", "wgan", "wgan-gp", "cgan")
UNROLL_MODELS = ("gan", "dcgan", "cgan")  # the models whose G can be trained against an unrolled D
DATASETS = IMAGE_DATASETS + tuple(TOY_DATASETS)
TOY_STEPS = 10000  # default length of a run on the 2-D toys (generator steps), unless the variant's toy defaults say
TOY_NETS = ("mlp", "pacgan")
CHANNELS = (1, 3)
NOISES = ("gaussian", "uniform")
CRITIC_NORMS = ("batch", "layer", "instance", "none")
G_NORMS = ("batch", "virtual", "none")
CONDS = ("embed", "channel")


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
    critic_norm: str = "batch"
    warmup_critic: bool = False  # WGAN: 100 critic steps for the first 25 G steps and every 500th
    conditional: bool = False
    steps: int = 1000  # default length of a run on images (generator steps); toys default to TOY_STEPS
    g_activation: str = "leaky_relu"  # hidden activation of the MLP generators (toys and the original GAN)
    # On the 2-D toys: defaults of TrainConfig settings (field name -> value) in place of the ones above.
    toy: dict = field(default_factory=dict, hash=False)


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
    # 92% high-quality samples against 82%). With them, so that a first run with no flags captures every mode
    # of ring8 and grid25 with 90% of its samples near one (docs/RESULTS.md, three seeds each): batch 256,
    # learning rates 10x theirs decaying linearly to 0 (their 1e-4 needs about six times the steps on the grid),
    # samples from a moving average of G's weights.
    "wgan-gp": Variant("wgan-gp", "wasserstein", "dcgan", "adam", 1e-4, betas=(0.0, 0.9), n_critic=5,
                       gp_lambda=10.0, critic_norm="none",
                       toy=dict(gp_lambda=0.1, beta1=0.5, beta2=0.9, g_activation="relu", batch_size=256,
                                lr_g=1e-3, lr_d=1e-3, lr_decay=True, g_ema=0.999, steps=16000)),
    # Mirza & Osindero 2014 on DCGAN nets: the label goes into G and D.
    "cgan": Variant("cgan", "non-saturating", "dcgan", "adam", 2e-4, conditional=True, steps=1500),
}


def toy_defaults_text(name: str, before: str = "", after: str = "") -> str:
    """"wgan-gp on the 2-D toys: 256" for a setting that variants give a toy default (the help says it), between
    ``before`` and ``after``; "" when no variant gives it one."""
    text = ", ".join(f"{v.name} on the 2-D toys: {'on' if v.toy[name] is True else v.toy[name]}"
                     for v in VARIANTS.values() if name in v.toy)
    return f"{before}{text}{after}" if text else ""


# -- allowed values ----------------------------------------------------------------------------------------

class Kind:
    """A kind of value: ``convert`` text to it, ``accept`` it or not; ``expected`` names it in messages.

    Called on text it is an argparse ``type`` (``npgan.cli``); ``check`` tests a value given in Python.
    """

    def __init__(self, convert, accept, expected):
        self.convert, self.accept, self.expected = convert, accept, expected

    def __call__(self, text):
        try:
            value = self.convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {text!r}") from None
        if not self.accept(value):
            raise argparse.ArgumentTypeError(f"expected {self.expected}, got {_text(value)}")
        return value

    def check(self, value) -> bool:
        if self.convert in (int, float):  # a number; an int where only ints are meant
            allowed = int if self.convert is int else (int, float)
            if isinstance(value, bool) or not isinstance(value, allowed):
                return False
        return self.accept(value)


def _text(value):
    return ",".join(map(str, value)) if isinstance(value, tuple) else value


def _label_range(text):
    low, high = (float(p) for p in text.split(","))
    return low, high


def _is_label_range(value):
    return (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
            and 0.0 <= value[0] <= value[1])


POSITIVE_INT = Kind(int, lambda v: v >= 1, "an int >= 1")
NON_NEGATIVE_INT = Kind(int, lambda v: v >= 0, "an int >= 0")
POSITIVE = Kind(float, lambda v: v > 0, "a number > 0")
NON_NEGATIVE = Kind(float, lambda v: v >= 0, "a number >= 0")
FRACTION = Kind(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
FLIP_PROBABILITY = Kind(float, lambda v: 0.0 <= v < 0.5, "a probability in [0, 0.5)")
LABEL_RANGE = Kind(_label_range, _is_label_range, "a pair (low, high) with 0 <= low <= high (LOW,HIGH, e.g. 0.7,1.2)")


def setting(default, help=None, *, group, kind=None, choices=None, flag=None, metavar=None, action=None,
            exclusive=None, positional=False):
    """A TrainConfig field with its command-line flag: ``flag`` (default ``--field-name``; False for
    settings without one), ``kind`` (a ``Kind``) or ``choices``, the help ``group`` and ``help``; ``action``
    "store_true" or "store_false" for switches; ``exclusive`` names a group of flags that exclude each other."""
    meta = dict(help=help, group=group, kind=kind, choices=choices, flag=flag, metavar=metavar, action=action,
                exclusive=exclusive, positional=positional)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every setting of a run. ``None`` means "the model's default" (``VARIANTS``; on the 2-D toys, ``Variant.toy``)."""

    model: str = setting("dcgan", "which member of the GAN family", group=None, choices=MODELS, positional=True)
    # data
    dataset: str = setting(
        "mnist5k", "mnist5k is embedded (needs npgan[data]); mnist, fashion-mnist and folder read --dataroot; "
        "ring8, grid25, swissroll are 2-D toys (default: mnist5k)", group="data", choices=DATASETS)
    dataroot: str | None = setting(None, "directory holding the dataset files", group="data")
    image_size: int | None = setting(None, "28, 32 or 64 (default: 28 for MNIST)", group="data",
                                     choices=IMAGE_SIZES)
    channels: int | None = setting(None, "image channels (default: the dataset's)", group="data", choices=CHANNELS)
    batch_size: int | None = setting(
        None, f"(default: 64; {toy_defaults_text('batch_size')})", group="data", kind=POSITIVE_INT)
    # networks
    nz: int | None = setting(None, "latent size (default 100; 16 for toys)", group="networks", kind=POSITIVE_INT)
    ngf: int = setting(64, "generator width (DCGAN)", group="networks", kind=POSITIVE_INT)
    ndf: int = setting(64, "discriminator width (DCGAN)", group="networks", kind=POSITIVE_INT)
    hidden: int | None = setting(
        None, f"MLP width (original GAN and toys{toy_defaults_text('hidden', '; ')})", group="networks",
        kind=POSITIVE_INT)
    toy_nets: str = setting("mlp", "nets for the 2-D toys: LeakyReLU MLPs, or PacGAN's (BatchNorm G, maxout D, z of "
                            "size 2)", group="networks", choices=TOY_NETS)
    g_activation: str | None = setting(
        None, "hidden activation of the MLP generators (original GAN, toys): default leaky_relu; relu for wgan-gp "
        "on the toys", group="networks", choices=MLP_ACTIVATIONS)
    critic_norm: str | None = setting(
        None, "normalisation in D (default: batch; none for wgan-gp); instance: InstanceNorm2d (DCGAN nets)",
        group="networks", choices=CRITIC_NORMS)
    g_norm: str | None = setting(
        None, "normalisation in G: batch, virtual (virtual batch norm with a fixed reference batch of z, Salimans "
        "et al. 2016) or none (default: the model's, batch for DCGAN nets)", group="networks", choices=G_NORMS)
    g_upsample: str = setting(
        "convtranspose", "DCGAN G's upsampling: transposed conv (default), conv + PixelShuffle, or nearest "
        "upsampling + conv", group="networks", choices=G_UPSAMPLING)
    d_downsample: str = setting("strided", "DCGAN D's downsampling: strided conv (default) or conv + average pooling",
                                group="networks", choices=D_DOWNSAMPLING)
    cond: str = setting("embed", "cgan's D reads the label embedded as one input plane (default) or as one-hot "
                        "label planes (channel)", group="networks", choices=CONDS)
    # training
    steps: int | None = setting(
        None, "generator steps (default: " + ", ".join(f"{n} {v.steps}" for n, v in VARIANTS.items())
        + f"; toys {TOY_STEPS}, {toy_defaults_text('steps')})", group="training", kind=POSITIVE_INT,
        exclusive="length")
    epochs: float | None = setting(None, "passes over the data (instead of --steps)", group="training", kind=POSITIVE,
                                   exclusive="length")
    lr_g: float | None = setting(
        None, f"generator learning rate{toy_defaults_text('lr_g', ' (', ')')}", group="training", kind=POSITIVE)
    lr_d: float | None = setting(
        None, f"discriminator learning rate (TTUR: differ from --lr-g{toy_defaults_text('lr_d', '; ')})",
        group="training", kind=POSITIVE)
    beta1: float | None = setting(None, "Adam beta1", group="training", kind=FRACTION)
    beta2: float | None = setting(None, "Adam beta2", group="training", kind=FRACTION)
    n_critic: int | None = setting(None, "critic steps per generator step", group="training", kind=POSITIVE_INT)
    clip: float | None = setting(None, "WGAN weight clipping bound", group="training", kind=POSITIVE)
    gp_lambda: float | None = setting(
        None, "gradient penalty weight (WGAN-GP: 10; on the 2-D toys 0.1, with betas (0.5, 0.9))", group="training",
        kind=NON_NEGATIVE)
    loss: str | None = setting(None, "override the model's loss", group="training", choices=LOSSES)
    # tricks (soumith/ganhacks and later papers: docs/TRICKS.md)
    label_smoothing: float = setting(0.0, "one-sided: real label = 1 - s", group="tricks", kind=FRACTION)
    instance_noise: float = setting(0.0, "std of Gaussian noise on D's inputs, decaying linearly to 0", group="tricks",
                                    kind=NON_NEGATIVE)
    noise: str = setting("gaussian", "distribution of z", group="tricks", choices=NOISES)
    g_dropout: float = setting(0.0, "dropout in G's hidden layers", group="tricks", kind=FRACTION)
    lr_decay: bool | None = setting(
        None, f"decay both learning rates linearly to 0 ({toy_defaults_text('lr_decay')})",
        group="tricks", action=argparse.BooleanOptionalAction)
    pack: int = setting(1, "PacGAN: D judges this many samples at once (fights mode collapse)", group="tricks",
                        kind=POSITIVE_INT)
    r1_gamma: float = setting(0.0, "R1: penalise gamma/2 * |grad D(x_real)|^2 (Mescheder et al. 2018)",
                              group="tricks", kind=NON_NEGATIVE)
    g_ema: float | None = setting(
        None, "sample from an exponential moving average of G's weights (e.g. 0.999; 0: off; "
        f"{toy_defaults_text('g_ema')})", group="tricks", kind=FRACTION, metavar="DECAY")
    unroll: int = setting(0, "unrolled GAN (gan, dcgan, cgan): G's loss against D after K more differentiable D "
                          "steps, gradient through them (Metz et al. 2016; 0: off)", group="tricks",
                          kind=NON_NEGATIVE_INT, metavar="K")
    unroll_first_order: bool = setting(
        False, "with --unroll: no gradient through D's unrolled steps (the cheaper surrogate)", group="tricks",
        action="store_true")
    soft_labels: tuple | None = setting(
        None, "D's real labels drawn uniformly from [LOW, HIGH] per sample (e.g. 0.7,1.2)", group="tricks",
        kind=LABEL_RANGE, metavar="LOW,HIGH")
    flip_labels: float = setting(0.0, "swap D's real and fake label of each sample with probability P (e.g. 0.05)",
                                 group="tricks", kind=FLIP_PROBABILITY, metavar="P")
    g_layer_noise: float = setting(0.0, "Gaussian noise on every hidden layer of G, std decaying linearly to 0",
                                   group="tricks", kind=NON_NEGATIVE, metavar="STD")
    clip_grad_norm: float = setting(0.0, "clip each net's gradient norm to MAX before its step (0: off)",
                                    group="tricks", kind=NON_NEGATIVE, metavar="MAX")
    g_dropout_sample: bool = setting(
        False, "keep G's dropout (--g-dropout) on when sampling: pictures, metrics, npgan sample", group="tricks",
        flag="--g-dropout-at-sampling", action="store_true")
    # run
    device: str = setting("cpu", None, group="run", choices=backend.DEVICES)
    seed: int = setting(0, None, group="run", kind=NON_NEGATIVE_INT)
    out: str = setting("npgan-out", "output directory (default: runs/MODEL-DATASET)", group="run")
    log_every: int = setting(
        10, "log the losses every this many steps; the warnings (D's loss near 0, a gradient norm over 100) and "
        "the NaN check run on these steps (the NaN check also before each checkpoint), so that the other steps "
        "never wait for the device", group="run", kind=POSITIVE_INT)
    sample_every: int = setting(100, None, group="run", kind=POSITIVE_INT)
    checkpoint_every: int = setting(500, None, group="run", kind=POSITIVE_INT)
    metrics: bool = setting(True, "skip the sample-quality metrics at the end", group="run", flag="--no-metrics",
                            action="store_false")
    sync_batch_norm: bool = setting(
        False, "under mpiexec: BatchNorm statistics of the global batch, not of each rank's shard", group="run",
        flag="--sync-bn", action="store_true")
    num_samples: int = setting(64, "size of the fixed-noise sample grid", group="run", kind=POSITIVE_INT, flag=False)

    def __post_init__(self):
        if isinstance(self.soft_labels, list):  # a checkpoint's config stores the pair as a list
            self.soft_labels = tuple(self.soft_labels)

    @property
    def is_toy(self) -> bool:
        """True on a 2-D toy (ring8, grid25, swissroll): MLP nets and the variant's toy defaults."""
        return self.dataset in TOY_DATASETS

    def resolved(self, toy_keys=None) -> TrainConfig:
        """A copy with every unset setting that has a default given it: the model's, on the 2-D toys its toy
        defaults (``Variant.toy``; only those named in ``toy_keys`` when given). ``steps`` stays unset when
        ``epochs`` sets the length."""
        v = VARIANTS[self.model]
        toy = {k: x for k, x in v.toy.items() if toy_keys is None or k in toy_keys} if self.is_toy else {}
        pacgan = self.is_toy and self.toy_nets == "pacgan"
        mlp = self.is_toy or v.nets == "mlp"
        plain = dict(
            batch_size=64, lr_decay=False, g_ema=0.0, loss=v.loss, n_critic=v.n_critic, gp_lambda=v.gp_lambda,
            lr_g=v.lr, lr_d=v.lr, g_activation=v.g_activation, critic_norm=v.critic_norm,
            steps=None if self.epochs is not None else default_steps(self.model, self.is_toy, toy_keys),
            nz=2 if pacgan else 16 if self.is_toy else 100,
            hidden=400 if pacgan else 128 if self.is_toy else 256 if mlp else None,
            g_norm="batch" if pacgan or not mlp else "none",
        )
        if v.optimizer == "adam":
            plain.update(beta1=v.betas[0], beta2=v.betas[1])
        if v.clip is not None:
            plain.update(clip=v.clip)
        defaults = {**plain, **{k: x for k, x in toy.items() if k != "steps"}}  # steps: default_steps
        unset = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        return dataclasses.replace(self, **unset)

    def validate(self) -> None:
        """Raise ValueError naming the first bad setting (the Trainer calls this before building anything)."""
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None and f.default is None:
                continue
            if f.name == "device":  # the backend's own check and message
                backend.check_device(value)
                continue
            if meta["choices"] is not None and value not in meta["choices"]:
                raise ValueError(f"{f.name} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}")
            if meta["kind"] is not None and not meta["kind"].check(value):
                raise ValueError(f"{f.name} must be {meta['kind'].expected}, got {value!r}")
            if meta["action"] is not None and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be True or False, got {value!r}")
        self.resolved()._validate_combinations()

    def _validate_combinations(self) -> None:
        """Settings that are fine alone but not together, or that the nets or the loss give no meaning."""
        def need(ok, message):
            if not ok:
                raise ValueError(message)

        need(self.batch_size % self.pack == 0,
             f"batch_size ({self.batch_size}) must be a multiple of pack ({self.pack})")
        need(self.pack == 1 or self.model != "cgan", "pack does not combine with cgan's labels: use pack=1")
        need(not self.unroll or self.model in UNROLL_MODELS,
             f"unroll (--unroll) is for the models {', '.join(UNROLL_MODELS)}, not {self.model}")
        need(not self.unroll_first_order or self.unroll >= 1,
             "unroll_first_order (--unroll-first-order) needs unroll >= 1 (--unroll K)")
        dcgan_nets = VARIANTS[self.model].nets == "dcgan" and not self.is_toy
        nets = "the DCGAN nets (dcgan, wgan, wgan-gp, cgan on images); the toys and gan use MLPs"
        need(self.critic_norm != "instance" or dcgan_nets, f"critic_norm='instance' (--critic-norm) needs {nets}")
        need(self.g_upsample == "convtranspose" or dcgan_nets,
             f"g_upsample={self.g_upsample!r} (--g-upsample) needs {nets}")
        need(self.d_downsample == "strided" or dcgan_nets,
             f"d_downsample={self.d_downsample!r} (--d-downsample) needs {nets}")
        need(self.cond == "embed" or self.model == "cgan", "cond='channel' (--cond) needs a conditional model (cgan)")
        need(self.soft_labels is None or not self.label_smoothing,
             "soft_labels (--soft-labels) replaces label_smoothing (--label-smoothing): set one of them, not both")
        for name, on in (("soft_labels", self.soft_labels is not None), ("flip_labels", self.flip_labels > 0)):
            need(not on or self.loss in ("minimax", "non-saturating"),
                 f"{name} (--{name.replace('_', '-')}) needs labels, i.e. a minimax or non-saturating loss; "
                 f"the {self.loss} loss has none")
        need(not self.g_dropout_sample or self.g_dropout > 0,
             "g_dropout_sample (--g-dropout-at-sampling) keeps G's dropout on at sampling: it needs g_dropout > 0 "
             "(--g-dropout)")


def default_steps(model: str, is_toy: bool, toy_keys=None) -> int:
    """The length of a run given neither ``steps`` nor ``epochs`` (nor ``epochs`` on a toy)."""
    toy = VARIANTS[model].toy
    if is_toy:
        return toy["steps"] if "steps" in toy and (toy_keys is None or "steps" in toy_keys) else TOY_STEPS
    return VARIANTS[model].steps


def epochs_to_steps(epochs: float, batches_per_epoch: int, n_critic: int) -> int:
    """Generator steps of ``epochs`` passes over the data, each generator step reading ``n_critic`` batches."""
    return max(1, math.ceil(epochs * batches_per_epoch / n_critic))
