"""The ``npgan`` command: ``train``, ``sample``, ``interpolate``, ``bench`` and ``info``.

A thin layer over the library: every flag maps onto ``npgan.gan.TrainConfig`` or a function argument.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import sys

import numpy as np

TOY_AND_IMAGE_DATASETS = ("mnist5k", "mnist", "fashion-mnist", "folder", "fake", "ring8", "grid25", "swissroll")


def _number(convert, accept, expected):
    """An argparse type: ``convert`` the text, then refuse values ``accept`` says no to, naming ``expected``."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
_fraction = _number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
_flip_probability = _number(float, lambda v: 0.0 <= v < 0.5, "a probability in [0, 0.5)")


def _label_range(text):
    """``LOW,HIGH`` -> (low, high), 0 <= low <= high: the range soft real labels are drawn from."""
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (two numbers, e.g. 0.7,1.2), got {text!r}") from None
    if not 0.0 <= low <= high:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW <= HIGH, got {low},{high}")
    return low, high


def build_parser() -> argparse.ArgumentParser:
    from npgan.gan.losses import LOSSES  # noqa: PLC0415
    from npgan.gan.models import MLP_ACTIVATIONS  # noqa: PLC0415
    from npgan.gan.trainer import MODELS, TOY_NETS, TOY_STEPS, VARIANTS  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="npgan", description="Train and sample GANs with npgan (NumPy/CuPy).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,interpolate,bench,info}")

    train = sub.add_parser("train", help="train a GAN, DCGAN, WGAN, WGAN-GP or conditional GAN",
                           description="Train a model of the GAN family. Flags follow pytorch/examples' dcgan; "
                                       "unset ones take the model's published defaults.")
    train.add_argument("model", choices=MODELS, help="which member of the GAN family")
    data = train.add_argument_group("data")
    data.add_argument("--dataset", default="mnist5k", choices=TOY_AND_IMAGE_DATASETS,
                      help="mnist5k is embedded (needs npgan[data]); mnist, fashion-mnist and folder read --dataroot; "
                           "ring8, grid25, swissroll are 2-D toys (default: mnist5k)")
    data.add_argument("--dataroot", help="directory holding the dataset files")
    data.add_argument("--image-size", type=int, choices=(28, 32, 64), help="28, 32 or 64 (default: 28 for MNIST)")
    data.add_argument("--channels", type=int, choices=(1, 3), help="image channels (default: the dataset's)")
    data.add_argument("--batch-size", type=_positive_int, default=64)
    net = train.add_argument_group("networks")
    net.add_argument("--nz", type=_positive_int, help="latent size (default 100; 16 for toys)")
    net.add_argument("--ngf", type=_positive_int, default=64, help="generator width (DCGAN)")
    net.add_argument("--ndf", type=_positive_int, default=64, help="discriminator width (DCGAN)")
    net.add_argument("--hidden", type=_positive_int, help="MLP width (original GAN and toys)")
    net.add_argument("--toy-nets", choices=TOY_NETS, default="mlp",
                     help="nets for the 2-D toys: LeakyReLU MLPs, or PacGAN's (BatchNorm G, maxout D, z of size 2)")
    net.add_argument("--g-activation", choices=MLP_ACTIVATIONS,
                     help="hidden activation of the MLP generators (original GAN, toys): default leaky_relu; "
                          "relu for wgan-gp on the toys")
    net.add_argument("--critic-norm", choices=("batch", "layer", "instance", "none"), default="default",
                     help="normalisation in D (default: batch; none for wgan-gp); instance: InstanceNorm2d "
                          "(DCGAN nets)")
    net.add_argument("--g-norm", choices=("batch", "virtual", "none"), default="default",
                     help="normalisation in G: batch, virtual (virtual batch norm with a fixed reference batch "
                          "of z, Salimans et al. 2016) or none (default: the model's, batch for DCGAN nets)")
    net.add_argument("--g-upsample", choices=("convtranspose", "pixelshuffle", "nearest"), default="convtranspose",
                     help="DCGAN G's upsampling: transposed conv (default), conv + PixelShuffle, or nearest "
                          "upsampling + conv")
    net.add_argument("--d-downsample", choices=("strided", "avgpool"), default="strided",
                     help="DCGAN D's downsampling: strided conv (default) or conv + average pooling")
    net.add_argument("--cond", choices=("embed", "channel"), default="embed",
                     help="cgan's D reads the label embedded as one input plane (default) or as one-hot "
                          "label planes (channel)")
    loop = train.add_argument_group("training")
    length = loop.add_mutually_exclusive_group()
    defaults = ", ".join(f"{name} {variant.steps}" for name, variant in VARIANTS.items())
    length.add_argument("--steps", type=_positive_int,
                        help=f"generator steps (default: {defaults}; toys {TOY_STEPS})")
    length.add_argument("--epochs", type=_positive_float, help="passes over the data (instead of --steps)")
    loop.add_argument("--lr-g", type=_positive_float, help="generator learning rate")
    loop.add_argument("--lr-d", type=_positive_float, help="discriminator learning rate (TTUR: differ from --lr-g)")
    loop.add_argument("--beta1", type=_fraction, help="Adam beta1")
    loop.add_argument("--beta2", type=_fraction, help="Adam beta2")
    loop.add_argument("--n-critic", type=_positive_int, help="critic steps per generator step")
    loop.add_argument("--clip", type=_positive_float, help="WGAN weight clipping bound")
    loop.add_argument("--gp-lambda", type=_non_negative_float,
                      help="gradient penalty weight (WGAN-GP: 10; on the 2-D toys 0.1, with betas (0.5, 0.9))")
    loop.add_argument("--loss", choices=LOSSES, help="override the model's loss")
    tricks = train.add_argument_group("tricks")
    tricks.add_argument("--label-smoothing", type=_fraction, default=0.0, help="one-sided: real label = 1 - s")
    tricks.add_argument("--instance-noise", type=_non_negative_float, default=0.0,
                        help="std of Gaussian noise on D's inputs, decaying linearly to 0")
    tricks.add_argument("--noise", choices=("gaussian", "uniform"), default="gaussian", help="distribution of z")
    tricks.add_argument("--g-dropout", type=_fraction, default=0.0, help="dropout in G's hidden layers")
    tricks.add_argument("--lr-decay", action="store_true", help="decay both learning rates linearly to 0")
    tricks.add_argument("--pack", type=_positive_int, default=1,
                        help="PacGAN: D judges this many samples at once (fights mode collapse)")
    tricks.add_argument("--r1-gamma", type=_non_negative_float, default=0.0,
                        help="R1: penalise gamma/2 * |grad D(x_real)|^2 (Mescheder et al. 2018)")
    tricks.add_argument("--g-ema", type=_fraction, default=0.0, metavar="DECAY",
                        help="sample from an exponential moving average of G's weights (e.g. 0.999; 0: off)")
    tricks.add_argument("--unroll", type=_non_negative_int, default=0, metavar="K",
                        help="unrolled GAN (gan, dcgan, cgan): G's loss against D after K more differentiable "
                             "D steps, gradient through them (Metz et al. 2016; 0: off)")
    tricks.add_argument("--unroll-first-order", action="store_true",
                        help="with --unroll: no gradient through D's unrolled steps (the cheaper surrogate)")
    tricks.add_argument("--soft-labels", type=_label_range, metavar="LOW,HIGH",
                        help="D's real labels drawn uniformly from [LOW, HIGH] per sample (e.g. 0.7,1.2)")
    tricks.add_argument("--flip-labels", type=_flip_probability, default=0.0, metavar="P",
                        help="swap D's real and fake label of each sample with probability P (e.g. 0.05)")
    tricks.add_argument("--g-layer-noise", type=_non_negative_float, default=0.0, metavar="STD",
                        help="Gaussian noise on every hidden layer of G, std decaying linearly to 0")
    tricks.add_argument("--clip-grad-norm", type=_non_negative_float, default=0.0, metavar="MAX",
                        help="clip each net's gradient norm to MAX before its step (0: off)")
    tricks.add_argument("--g-dropout-at-sampling", action="store_true",
                        help="keep G's dropout (--g-dropout) on when sampling: pictures, metrics, npgan sample")
    run = train.add_argument_group("run")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument("--seed", type=_non_negative_int, default=0)
    run.add_argument("--out", default=None, help="output directory (default: runs/MODEL-DATASET)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    run.add_argument("--overwrite", action="store_true",
                     help="start a new run in an OUT that holds one (its checkpoint is replaced)")
    run.add_argument("--log-every", type=_positive_int, default=10)
    run.add_argument("--sample-every", type=_positive_int, default=100)
    run.add_argument("--checkpoint-every", type=_positive_int, default=500)
    run.add_argument("--no-metrics", action="store_true", help="skip the sample-quality metrics at the end")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--sync-bn", action="store_true",
                     help="under mpiexec: BatchNorm statistics of the global batch, not of each rank's shard")

    sample = sub.add_parser("sample", help="draw samples from a trained checkpoint")
    sample.add_argument("checkpoint")
    sample.add_argument("--n", type=_positive_int, default=64, help="number of samples")
    sample.add_argument("--out", required=True,
                        help="a .png (one grid), a .npy (array N,C,H,W or N,2) or a directory (one PNG each)")
    sample.add_argument("--seed", type=_non_negative_int, default=0)
    sample.add_argument("--label", type=_non_negative_int, help="class to draw (conditional models)")
    sample.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    sample.add_argument("--no-ema", action="store_true",
                        help="draw from G's own weights, not their moving average (runs trained with --g-ema)")

    interp = sub.add_parser("interpolate", help="walk between latent points (slerp) and write a grid or GIF")
    interp.add_argument("checkpoint")
    interp.add_argument("--out", required=True, help="a .png grid (one row per walk) or a .gif animation")
    interp.add_argument("--rows", type=_positive_int, default=8, help="number of walks")
    interp.add_argument("--steps", type=_positive_int, default=10, help="points along each walk (>= 2)")
    interp.add_argument("--seed", type=_non_negative_int, default=0)
    interp.add_argument("--label", type=_non_negative_int, help="class to draw (conditional models)")
    interp.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    interp.add_argument("--no-ema", action="store_true",
                        help="walk G's own weights, not their moving average (runs trained with --g-ema)")

    sub.add_parser("bench", help="throughput benchmarks against PyTorch: npgan bench --help")

    sub.add_parser("info", help="versions, backends and threads")
    parser.train_parser = train  # read by _given_options
    return parser


# `npgan train` flags that are not TrainConfig fields of the same name: CLI-only ones, and renamed ones.
CLI_ONLY_OPTIONS = {"resume", "quiet", "overwrite"}
OPTION_FIELDS = {"no_metrics": "metrics", "g_dropout_at_sampling": "g_dropout_sample", "sync_bn": "sync_batch_norm"}


def _given_options(parser, argv) -> set:
    """The destinations of the `npgan train` options the user actually typed (not left at their defaults).

    Parses ``argv`` a second time with every default of the train parser set to ``SUPPRESS``, so only the
    options present on the command line appear in the namespace.
    """
    train = parser.train_parser
    saved = [(action, action.default) for action in train._actions]
    for action, _ in saved:
        action.default = argparse.SUPPRESS
    try:
        given = parser.parse_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(given)) - {"command"}


def _flag(field_name: str) -> str:
    """The `npgan train` spelling of a TrainConfig field."""
    if field_name == "model":
        return "MODEL"
    inverse = {v: k for k, v in OPTION_FIELDS.items()}
    return "--" + inverse.get(field_name, field_name).replace("_", "-")


def resume_command(config) -> str:
    """The command that continues the run stored in ``config.out``."""
    return " ".join(["npgan", "train", config.model, "--dataset", config.dataset, "--out", shlex.quote(config.out),
                     "--resume"])


# -- commands ------------------------------------------------------------------------------------------


def _config_from_args(args, out):
    from npgan.gan.trainer import TrainConfig  # noqa: PLC0415

    return TrainConfig(
        model=args.model, dataset=args.dataset, dataroot=args.dataroot, image_size=args.image_size,
        channels=args.channels, batch_size=args.batch_size, nz=args.nz, ngf=args.ngf, ndf=args.ndf,
        hidden=args.hidden, toy_nets=args.toy_nets, g_activation=args.g_activation, steps=args.steps,
        epochs=args.epochs, lr_g=args.lr_g,
        lr_d=args.lr_d, beta1=args.beta1, beta2=args.beta2, n_critic=args.n_critic, clip=args.clip,
        gp_lambda=args.gp_lambda, loss=args.loss, critic_norm=args.critic_norm,
        label_smoothing=args.label_smoothing, instance_noise=args.instance_noise, noise=args.noise,
        g_dropout=args.g_dropout, pack=args.pack, r1_gamma=args.r1_gamma, lr_decay=args.lr_decay,
        g_ema=args.g_ema, unroll=args.unroll, unroll_first_order=args.unroll_first_order,
        g_norm=args.g_norm, soft_labels=args.soft_labels, flip_labels=args.flip_labels,
        g_layer_noise=args.g_layer_noise, g_upsample=args.g_upsample, d_downsample=args.d_downsample,
        cond=args.cond, clip_grad_norm=args.clip_grad_norm, g_dropout_sample=args.g_dropout_at_sampling,
        sync_batch_norm=args.sync_bn, device=args.device, seed=args.seed, out=out, log_every=args.log_every,
        sample_every=args.sample_every, checkpoint_every=args.checkpoint_every, metrics=not args.no_metrics,
    )


def _resume_overrides(args, asked) -> dict:
    """The TrainConfig settings the user typed on a ``--resume`` command line, as ``asked`` holds them."""
    fields = [f.name for f in dataclasses.fields(asked)]
    given = getattr(args, "given", None)
    if given is None:  # called without main(): every option counts as typed
        given = set(vars(args)) - {"command"}
    typed = {OPTION_FIELDS.get(dest, dest) for dest in given - CLI_ONLY_OPTIONS} | {"model", "out"}
    # "out": the directory may have been moved since the run started. In TrainConfig's order, for messages.
    return {name: getattr(asked, name) for name in fields if name in typed}


def _describe_run(checkpoint) -> str:
    """"gan on ring8, step 1200" for the run in ``checkpoint`` (or what makes it unreadable)."""
    from npgan.checkpoint import load_checkpoint  # noqa: PLC0415

    try:
        state = load_checkpoint(checkpoint)
        return f"{state['config']['model']} on {state['config']['dataset']}, step {state['step']}"
    except (ValueError, KeyError, TypeError, OSError) as err:
        return f"an unreadable checkpoint: {err}"


def _refuse_resume(err, out) -> int:
    from npgan.gan.trainer import RESUMABLE_SETTINGS  # noqa: PLC0415

    lines = [f"npgan: error: --resume: {out} holds a different run; these settings differ from it:"]
    width = max(len(_flag(name)) for name, _, _ in err.differences)
    for name, stored, asked in err.differences:
        lines.append(f"  {_flag(name):{width}s}  stored {stored!r:20s} asked {asked!r}")
    stored_config = err.stored_config
    stored_config.out = out
    allowed = sorted(_flag(name) for name in RESUMABLE_SETTINGS if name not in ("out",)) + ["--quiet"]
    lines += [f"To continue the stored run, leave those flags out: {resume_command(stored_config)}",
              "To train the new settings, give another --out.",
              "Settings that may change on resume: " + ", ".join(allowed) + "."]
    print("\n".join(lines), file=sys.stderr)
    return 2


def cmd_train(args) -> int:
    from npgan.gan.trainer import UNROLL_MODELS  # noqa: PLC0415
    from npgan.runtime import distributed, runlock  # noqa: PLC0415
    from npgan.runtime.interrupt import raise_on_signal  # noqa: PLC0415

    if args.unroll and args.model not in UNROLL_MODELS:
        return _usage_error(f"--unroll is for the models {', '.join(UNROLL_MODELS)}, not {args.model}")
    if args.unroll_first_order and not args.unroll:
        return _usage_error("--unroll-first-order needs --unroll K (K >= 1)")
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    if args.resume and not os.path.exists(os.path.join(out, "checkpoint.npz")):  # before the lock makes OUT
        raise SystemExit(f"npgan: error: --resume: no checkpoint at {os.path.join(out, 'checkpoint.npz')}")
    # A signal while data loads or nets are built raises (the lock is released on the way out); the training
    # loop installs its own handlers, which finish the step and save.
    lock = runlock.run_lock(out) if distributed.world().is_main else contextlib.nullcontext()  # MPI: rank 0's
    with raise_on_signal(), lock:  # before anything reads or writes OUT
        return _train_in(args, out)


def _train_in(args, out) -> int:
    from npgan.gan.trainer import ResumeMismatch, Trainer, TrainingInterrupted  # noqa: PLC0415

    checkpoint = os.path.join(out, "checkpoint.npz")
    if args.resume:
        overrides = _resume_overrides(args, _config_from_args(args, out))
        try:
            trainer = Trainer.from_checkpoint(checkpoint, progress=not args.quiet, **overrides)
        except ResumeMismatch as err:
            return _refuse_resume(err, out)
        if trainer.comm.is_main:
            print(f"resuming {trainer.config.model} from step {trainer.step} ({checkpoint})")
    else:
        if os.path.exists(checkpoint) and not getattr(args, "overwrite", False):
            print(f"npgan: error: {out} already holds a run ({_describe_run(checkpoint)}); a new run would replace "
                  f"its checkpoint.\nContinue it with --resume, choose another --out, or pass --overwrite to start "
                  "over in it.", file=sys.stderr)
            return 2
        trainer = Trainer(_config_from_args(args, out), progress=not args.quiet)
    try:
        summary = trainer.train(handle_signals=True)
    except TrainingInterrupted as stop:
        if not trainer.comm.is_main:
            return stop.exit_status
        print(f"npgan: stopped at step {stop.step} ({_signal_name(stop.signum)}); checkpoint written to "
              f"{stop.checkpoint}\nnpgan: continue with: {resume_command(trainer.config)}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt as err:  # a second signal abandoned the step (or a plain Ctrl-C in a handler-less thread)
        kept = (f"the checkpoint of step {trainer.checkpoint_step} is kept; continue with: "
                f"{resume_command(trainer.config)}" if trainer.checkpoint_step is not None
                else "no checkpoint had been written")
        print(f"npgan: abandoned step {trainer.step + 1} without saving; {kept}", file=sys.stderr)
        return 128 + getattr(err, "signum", 2)  # 130 for SIGINT, 143 for SIGTERM
    if not trainer.comm.is_main:  # under mpiexec, rank 0 reports for the job
        return 0
    resumed = f", {summary['total_seconds']:.0f} s since step 0" if args.resume else ""
    print(f"\ntrained {trainer.config.model} for {summary['steps']} steps in {summary['seconds']:.0f} s "
          f"({summary['ms_per_step']} ms/step{resumed})")
    for label, key in (("samples", "final"), ("progress GIF", "gif"), ("loss curves", "losses"),
                       ("checkpoint", "checkpoint"), ("metrics log", "metrics_log")):
        if os.path.exists(summary[key]):
            print(f"  {label:13s} {summary[key]}")
    for label, key in (("quality", "metrics"), ("without EMA", "metrics_without_ema")):
        if summary.get(key):
            shown = {k: v for k, v in summary[key].items() if k != "class_histogram"}
            print(f"  {label:13s} " + json.dumps(shown))
    return 0


def _usage_error(message) -> int:
    """A flag combination argparse cannot check: say so, exit 2 as argparse does."""
    print(f"npgan train: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _generator_inputs(info, n, seed, label, device):
    import npgan  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    if info["config"].noise == "uniform":
        z = rng.uniform(-1.0, 1.0, size=(n, info["nz"])).astype(np.float32)
    else:
        z = rng.standard_normal((n, info["nz"]), dtype=np.float32)
    labels = None
    if info["num_classes"]:
        if label is None:
            labels = np.arange(n) % info["num_classes"]
        elif label >= info["num_classes"]:
            raise SystemExit(f"npgan: error: --label must be in [0, {info['num_classes']}), got {label}")
        else:
            labels = np.full(n, label)
        labels = npgan.tensor(labels.astype(np.int64), device=device)
    elif label is not None:
        raise SystemExit("npgan: error: --label needs a conditional model (cgan); this checkpoint is unconditional")
    return z, labels


def _generate(G, z, labels, device):
    import npgan  # noqa: PLC0415
    from npgan import backend  # noqa: PLC0415

    with npgan.no_grad():
        noise = npgan.tensor(z, device=device)
        out = G(noise, labels) if labels is not None else G(noise)
    return backend.asnumpy(out.data)


def _load(path, device, averaged=True):
    from npgan.gan.trainer import load_generator  # noqa: PLC0415

    if not os.path.exists(path):
        raise SystemExit(f"npgan: error: no checkpoint at {path}")
    try:
        return load_generator(path, device, averaged=averaged)
    except (ValueError, KeyError) as err:
        raise SystemExit(f"npgan: error: cannot read {path}: {err}") from None


def cmd_sample(args) -> int:
    from npgan import viz  # noqa: PLC0415

    G, info = _load(args.checkpoint, args.device, averaged=not args.no_ema)
    z, labels = _generator_inputs(info, args.n, args.seed, args.label, args.device)
    if info["config"].g_dropout_sample:  # dropout at sampling: its masks follow --seed too
        import npgan  # noqa: PLC0415

        npgan.manual_seed(args.seed)
    samples = _generate(G, z, labels, args.device)
    out = args.out
    if out.endswith(".npy"):
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        np.save(out, samples)
    elif out.endswith(".png"):
        if info["is_toy"]:
            from npgan.gan.trainer import save_toy_scatter  # noqa: PLC0415

            save_toy_scatter(info["config"].dataset, samples, out)
        else:
            nrow = info["num_classes"] if info["num_classes"] and args.label is None else None
            viz.save_grid(samples, out, nrow=nrow or int(np.ceil(np.sqrt(len(samples)))))
    elif os.path.splitext(out)[1] == "":
        if info["is_toy"]:
            raise SystemExit("npgan: error: a toy model's samples are points: write them to a .npy or .png")
        viz.save_images(samples, out)
    else:
        raise SystemExit(f"npgan: error: --out must end in .png or .npy, or be a directory; got {out}")
    weights = " (G's moving average)" if info["averaged"] else ""
    print(f"wrote {len(samples)} samples of shape {samples.shape[1:]} to {out}{weights}")
    return 0


def slerp(a, b, t):
    """Spherical interpolation between latent vectors a and b (rows), t in [0, 1]."""
    a_unit = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b_unit = b / np.linalg.norm(b, axis=-1, keepdims=True)
    omega = np.arccos(np.clip((a_unit * b_unit).sum(axis=-1, keepdims=True), -1.0, 1.0))
    sin_omega = np.sin(omega)
    linear = (1.0 - t) * a + t * b
    safe = np.where(sin_omega < 1e-6, 1.0, sin_omega)
    spherical = (np.sin((1.0 - t) * omega) * a + np.sin(t * omega) * b) / safe
    return np.where(sin_omega < 1e-6, linear, spherical)


def cmd_interpolate(args) -> int:
    from npgan import viz  # noqa: PLC0415

    if args.steps < 2:
        raise SystemExit("npgan: error: --steps must be at least 2")
    G, info = _load(args.checkpoint, args.device, averaged=not args.no_ema)
    if info["is_toy"]:
        raise SystemExit("npgan: error: interpolate draws images; this checkpoint is a 2-D toy model")
    ends, labels = _generator_inputs(info, 2 * args.rows, args.seed, args.label, args.device)
    start, end = ends[: args.rows], ends[args.rows:]
    ts = np.linspace(0.0, 1.0, args.steps, dtype=np.float32)
    z = np.stack([slerp(start, end, t) for t in ts], axis=1).reshape(-1, info["nz"]).astype(np.float32)
    if labels is not None:
        from npgan import backend  # noqa: PLC0415

        row_labels = backend.asnumpy(labels.data)[: args.rows]
        import npgan  # noqa: PLC0415

        labels = npgan.tensor(np.repeat(row_labels, args.steps), device=args.device)
    images = _generate(G, z, labels, args.device)  # (rows * steps, C, H, W), row-major walks
    if args.out.endswith(".gif"):
        walks = images.reshape((args.rows, args.steps) + images.shape[1:])
        frames = [viz.make_grid(walks[:, i], nrow=int(np.ceil(np.sqrt(args.rows)))) for i in range(args.steps)]
        viz.save_gif(frames + frames[::-1], args.out)
    elif args.out.endswith(".png"):
        viz.save_grid(images, args.out, nrow=args.steps)
    else:
        raise SystemExit(f"npgan: error: --out must end in .png or .gif, got {args.out}")
    print(f"wrote {args.rows} latent walks of {args.steps} steps to {args.out}")
    return 0


def cmd_info(args) -> int:
    import platform  # noqa: PLC0415

    import npgan  # noqa: PLC0415
    from npgan import backend  # noqa: PLC0415
    from npgan.runtime import memory, threads  # noqa: PLC0415

    print(f"npgan {npgan.__version__}, Python {platform.python_version()}, NumPy {np.__version__}")
    for pool in threads.blas_libraries():
        kernel = f", {pool['architecture']} kernel" if pool["architecture"] else ""
        print(f"  BLAS: {pool['internal_api']} {pool['version']}{kernel}, {pool['num_threads']} threads")
    if os.environ.get("OPENBLAS_CORETYPE"):  # an older kernel than the CPU's can halve the matmul speed
        print(f"  note: OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} pins OpenBLAS's kernel; unset it to "
              "let OpenBLAS pick the fastest for this CPU")
    print(f"  BLAS thread policy: {threads.describe()}")
    print(f"  memory: {memory.describe()}")
    print(f"  CuPy with a GPU: {'yes' if backend.cupy_available() else 'no'}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line that does not break the progress bar."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    tqdm.write(f"npgan: warning: {message}", file=sys.stderr)


def _signal_name(signum) -> str:
    from npgan.runtime.interrupt import signal_name  # noqa: PLC0415

    return signal_name(signum)


def main(argv=None) -> int:
    import warnings  # noqa: PLC0415

    from npgan import runtime  # noqa: PLC0415

    warnings.showwarning = _show_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own flags (--configs, --threads, ...) belong to npgan.bench's parser
        from npgan import bench  # noqa: PLC0415

        return bench.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        args.given = _given_options(parser, argv)
    commands = {"train": cmd_train, "sample": cmd_sample, "interpolate": cmd_interpolate, "info": cmd_info}
    try:
        runtime.enable()  # every command runs with npgan's machine tuning: BLAS thread and malloc policies
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if os.environ.get("NPGAN_DEBUG"):
            raise
        print(f"npgan: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, FileNotFoundError)) else 1
    except OSError as err:  # disk full or an unwritable directory outside a checkpoint write
        if os.environ.get("NPGAN_DEBUG"):
            raise
        where = f" ({err.filename})" if err.filename else ""
        print(f"npgan: error: {err.strerror or err}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # before training started (loading data, building nets) or while sampling
        print(f"\nnpgan: interrupted ({_signal_name(getattr(err, 'signum', 2))})", file=sys.stderr)
        return 128 + getattr(err, "signum", 2)


if __name__ == "__main__":
    sys.exit(main())
