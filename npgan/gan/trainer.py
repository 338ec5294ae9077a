"""The training loop of the GAN family: logging, sample pictures, the watchdog, checkpoints and signals.

``Trainer`` builds data, nets and optimizers from a ``TrainConfig`` (``npgan.gan.config``) and repeats
``npgan.gan.step.train_step`` (D's steps, then G's step), logging the losses, drawing the fixed noise's samples,
stopping with a clear message when a loss turns NaN, and writing checkpoints from which ``resume`` continues
exactly (``npgan.gan.resume``). Sampling and the metrics at the end are in ``npgan.gan.sampling``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
import warnings

import npgan
from npgan import backend, nn, optim, runtime
from npgan.checkpoint import load_checkpoint, save_checkpoint
from npgan.data import TOY_DATASETS, DataLoader, load_dataset
from npgan.gan import log, resume, sampling, step
from npgan.gan.config import MODELS, VARIANTS, TrainConfig, default_steps, epochs_to_steps  # noqa: F401 (MODELS)
from npgan.gan.nets import build_nets
from npgan.gan.resume import (  # noqa: F401 (re-exported)
    RESUMABLE_SETTINGS,
    CheckpointWriteError,
    OutputWriteError,
    ResumeMismatch,
    resume_differences,
)
from npgan.gan.sampling import load_generator, sampling_mode, save_toy_scatter  # noqa: F401 (re-exported)
from npgan.runtime import distributed, runlock
from npgan.runtime.interrupt import StopOnSignal, exit_status, signal_name


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint was kept."""


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM stopped ``train(handle_signals=True)``; the step reached was saved to ``checkpoint``."""

    def __init__(self, step: int, signum: int, checkpoint: str):
        self.step, self.signum, self.checkpoint = step, signum, checkpoint
        self.exit_status = exit_status(signum)
        super().__init__(f"{signal_name(signum)}: stopped at step {step}; checkpoint written to {checkpoint}")


class Trainer:
    """Builds data, nets and optimizers from a ``TrainConfig`` and runs the loop.

    >>> trainer = Trainer(TrainConfig(model="dcgan", steps=2000, out="runs/dcgan"))
    >>> summary = trainer.train()
    """

    def __init__(self, config: TrainConfig, progress: bool = True, comm: distributed.Communicator | None = None):
        config.validate()
        self.config = config = config.resolved()  # every default filled in: what the checkpoint stores
        self.variant = VARIANTS[config.model]
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
        self.fixed_noise = self.sample_noise(max(config.num_samples, 1000) if self.is_toy else config.num_samples)
        self.fixed_labels = None
        if self.num_classes:
            self.fixed_labels = npgan.tensor(
                backend.numpy.arange(config.num_samples) % self.num_classes, device=self.device
            )
        self.sample_paths: list[str] = []
        self.sampling_rng_state = None  # the random stream of dropout at sampling, once used (npgan.gan.sampling)
        self._warned: dict = {}  # warning kind -> step it was last given

    # -- construction ----------------------------------------------------------------------------------
    @property
    def is_toy(self) -> bool:
        """True when training on a 2-D toy (ring8, grid25, swissroll): MLP nets and toy settings."""
        return self.config.is_toy

    def _build_data(self):
        c = self.config
        if self.variant.conditional and c.dataset in TOY_DATASETS:
            raise ValueError(f"cgan needs a labelled image dataset, not the toy {c.dataset!r}")
        self.batches = None  # the loader's iterator over the current epoch
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

    def _build_nets(self):
        self.G, self.D, self.nz = build_nets(self.config, self.sample_shape, self.num_classes, self.is_toy)
        # Linear + ReLU/LeakyReLU pairs run as one op (the same numbers and parameter names, fewer graph nodes).
        nn.fuse(self.G)
        nn.fuse(self.D)
        # With g_ema, samples, pictures and metrics come from an average of G's weights (optim.EMA).
        self.g_ema = optim.EMA(self.G, self.config.g_ema) if self.config.g_ema else None

    def _build_optimizers(self):
        c = self.config
        if self.variant.optimizer == "adam":
            self.opt_g = optim.Adam(self.G.parameters(), lr=c.lr_g, betas=(c.beta1, c.beta2))
            self.opt_d = optim.Adam(self.D.parameters(), lr=c.lr_d, betas=(c.beta1, c.beta2))
        else:
            self.opt_g = optim.RMSprop(self.G.parameters(), lr=c.lr_g)
            self.opt_d = optim.RMSprop(self.D.parameters(), lr=c.lr_d)

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

    def total_steps(self) -> int:
        """The generator steps of the whole run: ``steps``, else from ``epochs``, else the model's default."""
        c = self.config
        if c.steps is not None:
            return c.steps
        if c.epochs is not None and self.loader is not None:
            return epochs_to_steps(c.epochs, len(self.loader), c.n_critic)
        return default_steps(c.model, self.is_toy)

    # -- data and noise ----------------------------------------------------------------------------------
    def shard(self, tensor):
        """This rank's part of a global batch (the whole batch in one process)."""
        if tensor is None or self.comm.size == 1:
            return tensor
        return npgan.Tensor(distributed.shard_rows(tensor.data, self.comm.size, self.comm.rank))

    def sample_noise(self, n, rng=None):
        """z for n samples, from npgan's generator (or ``rng``, a NumPy Generator)."""
        shape, dtype = (n, self.nz), backend.DEFAULT_DTYPE
        if self.config.noise == "uniform":
            return npgan.Tensor(backend.random_uniform(shape, -1.0, 1.0, dtype, self.device, rng=rng))
        return npgan.Tensor(backend.random_normal(shape, dtype, self.device, rng=rng))

    def sample_labels(self, n, rng=None):
        """n class labels drawn uniformly (None for an unconditional model)."""
        if not self.num_classes:
            return None
        labels = (rng or backend.host_rng()).integers(0, self.num_classes, size=n)
        return npgan.tensor(labels, device=self.device)

    def real_batch(self):
        """A real batch and its labels (None unless conditional): this rank's shard of the global batch."""
        c = self.config
        if self.is_toy:
            sample = TOY_DATASETS[c.dataset](c.batch_size, self.data_rng)
            return self.shard(npgan.tensor(sample, device=self.device)), None
        if self.batches is None:
            self.batches = self.loader.batches()
        images, labels = next(self.batches)  # the global batch: every rank keeps its shard
        conditional_labels = labels if self.num_classes else None  # an unconditional run ignores the dataset's
        return self.shard(images), self.shard(conditional_labels)

    def generate(self, n=None, noise=None, labels=None, averaged=True):
        """Samples from G in eval mode (BatchNorm uses its running statistics), without a graph.

        With ``g_ema`` they come from the average of G's weights, unless ``averaged`` is False.
        """
        return sampling.generate(self, n, noise, labels, averaged)

    # -- one step ----------------------------------------------------------------------------------------
    def train_step(self) -> dict:
        """One generator step and its critic steps (``npgan.gan.step``); returns the step's losses as Tensors."""
        # Under MPI every random draw of the step (z, labels, penalty weights, dropout masks, noise) is made for
        # the global batch, and each rank keeps its shard (distributed.batch_shard).
        with distributed.batch_shard(self.comm):
            return step.train_step(self)

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
        if self.config.loss in ("minimax", "non-saturating") and row.get("loss_d", 1.0) < 1e-3:
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
            log.trim(paths["metrics_log"], self.step)
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
                        floats = log.row_floats(dict(step=self.step, **row))
                        self._check_finite(floats)  # every rank: its own shard's losses
                        self._watch(floats)
                        floats["time"] = round(earlier + time.perf_counter() - start, 3)
                        self.history.append(floats)
                        if main:
                            log.append(paths["metrics_log"], floats, self.checkpoint_step)
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
                        self._check_finite(log.row_floats(dict(step=self.step, **row)))
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
        return sampling.save_samples(self)

    def evaluate(self, averaged=True, seed=0) -> dict:
        """Sample-quality metrics (``npgan.gan.metrics``) of 2,500 toy points or 1,000 digits from G."""
        return sampling.evaluate(self, averaged, seed)

    # -- checkpoints -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything an exact resume needs: nets, optimizers, step, random generators, loader, fixed noise."""
        return resume.trainer_state(self)

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()``: the next ``train_step`` is the one the saved run would have taken."""
        resume.load_trainer_state(self, state)

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
        config = resume.stored_config(path, state)
        differences = resume_differences(config, overrides)
        if differences:
            raise ResumeMismatch(path, differences, config)
        if "epochs" in overrides and "steps" not in overrides:  # the new length in epochs replaces the steps
            config.steps = None
        for key, value in overrides.items():
            setattr(config, key, value)
        trainer = cls(config, progress=progress, comm=comm)
        trainer.load_state_dict(state)
        return trainer


def _postfix(row) -> str:
    names = {"loss_d": "Loss_D", "loss_g": "Loss_G", "d_x": "D(x)", "d_g_z1": "D(G(z))", "wasserstein": "W",
             "gp": "GP"}
    return " ".join(f"{label}={row[key]:.3f}" for key, label in names.items() if key in row)


def _progress_bar(initial, total, enabled, name):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, initial=initial, disable=not enabled, desc=name, unit="step", dynamic_ncols=True)
