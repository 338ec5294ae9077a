"""Exact resume: what a trainer's checkpoint holds, which settings may change when a run continues, and how a
checkpoint's stored config is read back (also from checkpoints older npgan versions wrote).

A run continues bit for bit only if everything its next step reads is restored: both nets (BatchNorm's
running statistics included), both optimizers' moments and step counts, the step, every random generator's
state, the data loader's position and the fixed noise of the sample pictures.
"""

from __future__ import annotations

import dataclasses

import npgan
from npgan import backend, optim
from npgan.gan.config import TrainConfig

TRAINER_FORMAT = "npgan-trainer-1"

# Settings that may differ when a run is resumed: how long it runs, how often it logs, samples and saves,
# where its files and data are, which device computes, and what is reported. Every other TrainConfig field
# defines the run (its nets, data, losses, optimizers, schedule) and must match the checkpoint; a field added
# to TrainConfig is covered by that check without being listed anywhere.
RESUMABLE_SETTINGS = frozenset({"steps", "epochs", "log_every", "sample_every", "checkpoint_every", "device",
                                "out", "dataroot", "metrics", "g_ema"})

# Checkpoints whose config holds the retired field "extra" were written before the toys had defaults beyond
# these (and before the config stored its defaults filled in): their unset settings resolve as they did then.
LEGACY_TOY_KEYS = ("gp_lambda", "beta1", "beta2", "g_activation")


class ResumeMismatch(ValueError):
    """Settings asked for on resume differ from the stored run's; ``differences`` lists (name, stored, asked)."""

    def __init__(self, path: str, differences: list, stored_config=None):
        self.path, self.differences, self.stored_config = path, differences, stored_config
        listed = "; ".join(f"{name}: stored {stored!r}, asked {asked!r}" for name, stored, asked in differences)
        super().__init__(f"{path} holds a different run ({listed}); only {sorted(RESUMABLE_SETTINGS)} may "
                         "change on resume")


class OutputWriteError(RuntimeError):
    """A write into the run's output directory failed (disk full, unwritable directory); training stopped and the
    last checkpoint is kept."""


class CheckpointWriteError(OutputWriteError):
    """A checkpoint could not be written (disk full, unwritable directory); the previous one is kept."""


def resume_differences(stored: TrainConfig, asked: dict) -> list:
    """(name, stored value, asked value) for every setting in ``asked`` that would change the stored run."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(asked) - names)
    if unknown:
        raise TypeError(f"unknown TrainConfig settings {unknown}")
    return [(name, getattr(stored, name), value) for name, value in asked.items()
            if name not in RESUMABLE_SETTINGS and value != getattr(stored, name)]


def stored_config(path: str, state: dict) -> TrainConfig:
    """The run's TrainConfig from a checkpoint, every default filled in, or a clear error when this npgan
    cannot read it."""
    found = state.get("format")
    if found != TRAINER_FORMAT:
        if isinstance(found, str) and found.startswith("npgan-trainer-"):
            raise ValueError(f"{path} was written by another npgan version (trainer format {found!r}; this npgan "
                             f"reads {TRAINER_FORMAT!r}): use the npgan version that wrote it")
        raise ValueError(f"{path} is not an npgan training checkpoint (no 'format: {TRAINER_FORMAT}' entry)")
    stored = dict(state["config"])
    legacy = "extra" in stored
    if legacy:  # "extra" was never read; "default" meant the model's normalisation, and D's None meant none
        stored.pop("extra")
        if "critic_norm" in stored:
            stored["critic_norm"] = {"default": None, None: "none"}.get(stored["critic_norm"], stored["critic_norm"])
        if stored.get("g_norm") == "default":
            stored["g_norm"] = None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(stored) - known)
    if unknown:
        raise ValueError(f"{path} has settings this npgan does not know ({', '.join(unknown)}): it was written "
                         "by a newer npgan; upgrade npgan to use it")
    return TrainConfig(**stored).resolved(toy_keys=LEGACY_TOY_KEYS if legacy else None)


def trainer_state(t) -> dict:
    """Everything an exact resume of trainer ``t`` needs (``Trainer.state_dict``)."""
    state = {
        "format": TRAINER_FORMAT,
        "config": dataclasses.asdict(t.config),
        "step": t.step,
        "generator": dict(t.G.state_dict()),
        "discriminator": dict(t.D.state_dict()),
        "opt_g": t.opt_g.state_dict(),
        "opt_d": t.opt_d.state_dict(),
        "rng": backend.get_rng_state(),
        "data_rng": t.data_rng.bit_generator.state,
        "fixed_noise": backend.asnumpy(t.fixed_noise.data),
        "sample_shape": list(t.sample_shape),
        "num_classes": t.num_classes,
        "is_toy": t.is_toy,
        "history": t.history,
        "sample_paths": t.sample_paths,
    }
    if t.loader is not None:
        state["loader"] = t.loader.state_dict()
    if t.fixed_labels is not None:
        state["fixed_labels"] = backend.asnumpy(t.fixed_labels.data)
    if t.g_ema is not None:
        state["generator_ema"] = t.g_ema.state_dict()
    if t.sampling_rng_state is not None:  # the dropout stream of pictures and metrics (npgan.gan.sampling)
        state["sampling_rng"] = t.sampling_rng_state
    return state


def load_trainer_state(t, state: dict) -> None:
    """Restore a ``trainer_state`` into ``t``: its next step is the one the saved run would have taken."""
    t.G.load_state_dict(state["generator"])
    t.D.load_state_dict(state["discriminator"])
    t.opt_g.load_state_dict(state["opt_g"])
    t.opt_d.load_state_dict(state["opt_d"])
    if t.g_ema is not None:
        if "generator_ema" in state:
            t.g_ema.load_state_dict(state["generator_ema"])
        else:  # g_ema switched on at resume: the average starts from the loaded weights
            t.g_ema = optim.EMA(t.G, t.config.g_ema)
    t.step = int(state["step"])
    t.checkpoint_step = t.step
    backend.set_rng_state(state["rng"])
    t.data_rng.bit_generator.state = state["data_rng"]
    if "sampling_rng" in state:
        t.sampling_rng_state = state["sampling_rng"]
    t.fixed_noise = npgan.tensor(state["fixed_noise"], device=t.device)
    if "fixed_labels" in state:
        t.fixed_labels = npgan.tensor(state["fixed_labels"], device=t.device)
    if t.loader is not None and "loader" in state:
        t.loader.load_state_dict(state["loader"])
        t.batches = None
    t.history = list(state.get("history", []))
    t.sample_paths = list(state.get("sample_paths", []))
