"""The ``npgan`` command: ``train``, ``sample``, ``interpolate``, ``bench`` and ``info``.

A thin layer over the library: every flag maps onto ``npgan.gan.TrainConfig`` or a function argument.
"""

from __future__ import annotations

import argparse
import json
import os
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
    net.add_argument("--critic-norm", choices=("batch", "layer", "none"), default="default",
                     help="normalisation in D (default: batch; none for wgan-gp)")
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
    run = train.add_argument_group("run")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument("--seed", type=_non_negative_int, default=0)
    run.add_argument("--out", default=None, help="output directory (default: runs/MODEL-DATASET)")
    run.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    run.add_argument("--log-every", type=_positive_int, default=10)
    run.add_argument("--sample-every", type=_positive_int, default=100)
    run.add_argument("--checkpoint-every", type=_positive_int, default=500)
    run.add_argument("--no-metrics", action="store_true", help="skip the sample-quality metrics at the end")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

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
    return parser


# -- commands ------------------------------------------------------------------------------------------


def cmd_train(args) -> int:
    from npgan.gan.trainer import TrainConfig, Trainer  # noqa: PLC0415

    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    checkpoint = os.path.join(out, "checkpoint.npz")
    if args.resume:
        if not os.path.exists(checkpoint):
            raise SystemExit(f"npgan: error: --resume: no checkpoint at {checkpoint}")
        overrides = {"steps": args.steps} if args.steps else {}
        if args.epochs:
            overrides["epochs"] = args.epochs
        trainer = Trainer.from_checkpoint(checkpoint, progress=not args.quiet, **overrides)
        print(f"resuming {trainer.config.model} from step {trainer.step} ({checkpoint})")
    else:
        config = TrainConfig(
            model=args.model, dataset=args.dataset, dataroot=args.dataroot, image_size=args.image_size,
            channels=args.channels, batch_size=args.batch_size, nz=args.nz, ngf=args.ngf, ndf=args.ndf,
            hidden=args.hidden, toy_nets=args.toy_nets, g_activation=args.g_activation, steps=args.steps,
            epochs=args.epochs, lr_g=args.lr_g,
            lr_d=args.lr_d, beta1=args.beta1, beta2=args.beta2, n_critic=args.n_critic, clip=args.clip,
            gp_lambda=args.gp_lambda, loss=args.loss, critic_norm=args.critic_norm,
            label_smoothing=args.label_smoothing, instance_noise=args.instance_noise, noise=args.noise,
            g_dropout=args.g_dropout, pack=args.pack, r1_gamma=args.r1_gamma, lr_decay=args.lr_decay,
            g_ema=args.g_ema, device=args.device, seed=args.seed, out=out, log_every=args.log_every,
            sample_every=args.sample_every, checkpoint_every=args.checkpoint_every, metrics=not args.no_metrics,
        )
        trainer = Trainer(config, progress=not args.quiet)
    summary = trainer.train()
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

    print(f"npgan {npgan.__version__}, Python {platform.python_version()}, NumPy {np.__version__}")
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415

        for pool in threadpool_info():
            print(f"  BLAS: {pool.get('internal_api')} {pool.get('version')}, {pool.get('num_threads')} threads")
    except ImportError:
        pass
    from npgan import threads  # noqa: PLC0415

    print(f"  BLAS thread policy: {threads.describe()}")
    print(f"  CuPy with a GPU: {'yes' if backend.cupy_available() else 'no'}")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line that does not break the progress bar."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    tqdm.write(f"npgan: warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    import warnings  # noqa: PLC0415

    warnings.showwarning = _show_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # its own flags (--configs, --threads, ...) belong to npgan.bench's parser
        from npgan import bench  # noqa: PLC0415

        return bench.main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"train": cmd_train, "sample": cmd_sample, "interpolate": cmd_interpolate, "info": cmd_info}
    try:
        return commands[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        if os.environ.get("NPGAN_DEBUG"):
            raise
        print(f"npgan: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, FileNotFoundError)) else 1


if __name__ == "__main__":
    sys.exit(main())
