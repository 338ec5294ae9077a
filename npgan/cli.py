"""The ``npgan`` command: ``train``, ``sample``, ``interpolate``, ``bench`` and ``info``.

A thin layer over the library: `npgan train`'s flags are generated from ``npgan.gan.TrainConfig``'s fields
(``npgan.gan.config``); the other commands' flags are function arguments.
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

# `npgan train` options that are not TrainConfig fields, added after the field named: (flags, argparse kwargs).
CLI_ONLY = {
    "out": [(("--resume",), dict(action="store_true", help="continue from OUT/checkpoint.npz")),
            (("--overwrite",), dict(action="store_true",
                                    help="start a new run in an OUT that holds one (its checkpoint is replaced)"))],
    "metrics": [(("--quiet",), dict(action="store_true", help="no progress bar"))],
}
CLI_ONLY_OPTIONS = {flags[0][2:] for options in CLI_ONLY.values() for flags, _ in options}


def _non_negative_int(text):
    from npgan.gan.config import NON_NEGATIVE_INT  # noqa: PLC0415

    return NON_NEGATIVE_INT(text)


def _positive_int(text):
    from npgan.gan.config import POSITIVE_INT  # noqa: PLC0415

    return POSITIVE_INT(text)


def _add_train_parser(sub):
    """`npgan train`, generated from TrainConfig's fields: each field's flag, allowed values, group and help
    (``npgan.gan.config.setting``). A flag left out keeps argparse's SUPPRESS default: the namespace holds only
    the settings typed, so TrainConfig's own defaults (and the model's) apply to the rest, and resume compares
    just what was typed."""
    from npgan.gan.config import TrainConfig  # noqa: PLC0415

    train = sub.add_parser("train", help="train a GAN, DCGAN, WGAN, WGAN-GP or conditional GAN",
                           description="Train a model of the GAN family. Flags follow pytorch/examples' dcgan; "
                                       "unset ones take the model's published defaults.")
    groups, exclusive = {None: train}, {}
    for f in dataclasses.fields(TrainConfig):
        meta = f.metadata
        if meta["flag"] is False:
            continue
        if meta["group"] not in groups:
            groups[meta["group"]] = train.add_argument_group(meta["group"])
        parent = groups[meta["group"]]
        if meta["exclusive"]:
            if meta["exclusive"] not in exclusive:
                exclusive[meta["exclusive"]] = parent.add_mutually_exclusive_group()
            parent = exclusive[meta["exclusive"]]
        options = dict(default=argparse.SUPPRESS, help=meta["help"])
        if meta["action"]:
            options["action"] = meta["action"]
        else:
            ints = meta["choices"] and all(isinstance(c, int) for c in meta["choices"])
            options.update(type=int if ints else meta["kind"], choices=meta["choices"], metavar=meta["metavar"])
        if meta["positional"]:
            parent.add_argument(f.name, **options)
        else:
            parent.add_argument(_flag(f.name), dest=f.name, **options)
        for flags, options in CLI_ONLY.get(f.name, ()):
            parent.add_argument(*flags, **options)
    return train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="npgan", description="Train and sample GANs with npgan (NumPy/CuPy).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,interpolate,bench,info}")
    parser.train_parser = _add_train_parser(sub)

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


def _flag(field_name: str) -> str:
    """The `npgan train` spelling of a TrainConfig field."""
    from npgan.gan.config import TrainConfig  # noqa: PLC0415

    if field_name == "model":
        return "MODEL"
    flag = TrainConfig.__dataclass_fields__[field_name].metadata["flag"]
    return flag or "--" + field_name.replace("_", "-")


def resume_command(config) -> str:
    """The command that continues the run stored in ``config.out``."""
    return " ".join(["npgan", "train", config.model, "--dataset", config.dataset, "--out", shlex.quote(config.out),
                     "--resume"])


# -- commands ------------------------------------------------------------------------------------------


def _typed_settings(args) -> dict:
    """The TrainConfig settings typed on the `npgan train` command line (the namespace holds no others)."""
    from npgan.gan.config import TrainConfig  # noqa: PLC0415

    return {name: value for name, value in vars(args).items() if name in TrainConfig.__dataclass_fields__}


def _config_from_args(args, out):
    from npgan.gan.config import TrainConfig  # noqa: PLC0415

    return TrainConfig(**{**_typed_settings(args), "out": out})


def _resume_overrides(args, out) -> dict:
    """The TrainConfig settings the user typed on a ``--resume`` command line, in TrainConfig's order.

    "out" always: the directory may have been moved since the run started."""
    return {**_typed_settings(args), "out": out}


def _describe_run(checkpoint) -> str:
    """"gan on ring8, step 1200" for the run in ``checkpoint`` (or what makes it unreadable)."""
    from npgan.checkpoint import load_checkpoint  # noqa: PLC0415

    try:
        state = load_checkpoint(checkpoint)
        return f"{state['config']['model']} on {state['config']['dataset']}, step {state['step']}"
    except (ValueError, KeyError, TypeError, OSError) as err:
        return f"an unreadable checkpoint: {err}"


def _refuse_resume(err, out) -> int:
    from npgan.gan.resume import RESUMABLE_SETTINGS  # noqa: PLC0415

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
    from npgan.gan.config import UNROLL_MODELS  # noqa: PLC0415
    from npgan.runtime import distributed, runlock  # noqa: PLC0415
    from npgan.runtime.interrupt import raise_on_signal  # noqa: PLC0415

    asked = _config_from_args(args, None)
    if asked.unroll and asked.model not in UNROLL_MODELS:
        return _usage_error(f"--unroll is for the models {', '.join(UNROLL_MODELS)}, not {asked.model}")
    if asked.unroll_first_order and not asked.unroll:
        return _usage_error("--unroll-first-order needs --unroll K (K >= 1)")
    out = getattr(args, "out", None) or os.path.join("runs", f"{asked.model}-{asked.dataset}")
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
        overrides = _resume_overrides(args, out)
        try:
            trainer = Trainer.from_checkpoint(checkpoint, progress=not args.quiet, **overrides)
        except ResumeMismatch as err:
            return _refuse_resume(err, out)
        if trainer.comm.is_main:
            print(f"resuming {trainer.config.model} from step {trainer.step} ({checkpoint})")
    else:
        if os.path.exists(checkpoint) and not args.overwrite:
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
        out = G(noise, labels)
    return backend.asnumpy(out.data)


def _load(path, device, averaged=True):
    from npgan.gan.sampling import load_generator  # noqa: PLC0415

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
            from npgan.gan.sampling import save_toy_scatter  # noqa: PLC0415

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
