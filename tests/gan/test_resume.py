"""What resume resumes: settings that define the run must match the checkpoint; checkpoints survive a full
disk and ``kill -9``; a checkpoint from another npgan version is refused naming both versions."""

import dataclasses
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from npgan import checkpoint as checkpoint_module
from npgan.checkpoint import load_checkpoint, save_checkpoint
from npgan.cli import CLI_ONLY_OPTIONS, build_parser, main
from npgan.gan import TrainConfig, Trainer
from npgan.gan.trainer import RESUMABLE_SETTINGS, CheckpointWriteError, OutputWriteError, ResumeMismatch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY_FLAGS = ["--dataset", "ring8", "--hidden", "8", "--nz", "4", "--batch-size", "16", "--no-metrics", "--quiet"]
TOY = dict(model="gan", dataset="ring8", hidden=8, nz=4, batch_size=16, metrics=False, num_samples=4,
           sample_every=10**6)


def toy_trainer(out, **overrides):
    return Trainer(TrainConfig(**dict(TOY, out=str(out), **overrides)), progress=False)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A 2-step gan/ring8 run made by the CLI; tests copy its checkpoint before changing anything."""
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(["train", "gan", *TOY_FLAGS, "--steps", "2", "--out", str(out)]) == 0
    return out


def copy_run(toy_run, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes((toy_run / "checkpoint.npz").read_bytes())
    return out


# -- settings that define the run ----------------------------------------------------------------------------

def test_resuming_another_model_and_dataset_is_refused_naming_each_difference(toy_run, tmp_path, capsys):
    out = copy_run(toy_run, tmp_path)
    assert main(["train", "wgan-gp", "--dataset", "grid25", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "holds a different run" in err
    assert "MODEL" in err and "stored 'gan'" in err and "asked 'wgan-gp'" in err
    assert "--dataset" in err and "stored 'ring8'" in err and "asked 'grid25'" in err
    assert f"npgan train gan --dataset ring8 --out {out} --resume" in err
    assert "may change on resume" in err and "--steps" in err and "--device" in err
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 2  # nothing was touched


def test_a_new_run_into_a_directory_holding_one_is_refused_unless_asked_to_overwrite(toy_run, tmp_path, capsys):
    out = copy_run(toy_run, tmp_path)
    assert main(["train", "gan", *TOY_FLAGS, "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a run (gan on ring8, step 2)" in err and "--resume" in err and "--overwrite" in err
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 2
    assert main(["train", "gan", *TOY_FLAGS, "--steps", "1", "--out", str(out), "--overwrite"]) == 0
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 1


def test_a_flag_typed_at_its_default_still_counts_when_the_run_used_another_value(toy_run, tmp_path, capsys):
    out = copy_run(toy_run, tmp_path)  # the run used --batch-size 16; 64 is the default
    assert main(["train", "gan", "--batch-size", "64", "--out", str(out), "--resume"]) == 2
    assert "--batch-size" in capsys.readouterr().err


def test_resumable_settings_may_change_and_take_effect(toy_run, tmp_path, capsys):
    out = copy_run(toy_run, tmp_path)
    assert main(["train", "gan", "--out", str(out), "--resume", "--steps", "6", "--log-every", "2",
                 "--checkpoint-every", "3", "--sample-every", "4", "--device", "cpu", "--no-metrics", "--quiet"]) == 0
    state = load_checkpoint(out / "checkpoint.npz")
    assert state["step"] == 6
    assert (state["config"]["log_every"], state["config"]["checkpoint_every"], state["config"]["out"]) == \
        (2, 3, str(out))
    assert sorted(os.listdir(out / "samples")) == ["step_000004.png", "step_000006.png"]


def test_flags_equal_to_the_stored_run_are_accepted(toy_run, tmp_path):
    out = copy_run(toy_run, tmp_path)
    assert main(["train", "gan", *TOY_FLAGS, "--steps", "3", "--out", str(out), "--resume"]) == 0


def test_every_train_flag_is_a_train_config_field_or_named_as_cli_only():
    """So a new flag is compared on resume without being listed: its name must be its TrainConfig field's."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    train = build_parser().train_parser
    dests = {a.dest for a in train._actions if a.dest != "help"}
    assert dests - fields == CLI_ONLY_OPTIONS == {"resume", "overwrite", "quiet"}
    assert fields - dests == {"num_samples"}  # the one setting without a flag
    assert RESUMABLE_SETTINGS <= fields


def test_from_checkpoint_refuses_every_setting_that_defines_the_run(toy_run):
    path = str(toy_run / "checkpoint.npz")
    stored = TrainConfig(**load_checkpoint(path)["config"])
    changed = {"model": "wgan", "dataset": "grid25", "batch_size": 32, "lr_g": 0.5, "seed": 7, "loss": "hinge"}
    with pytest.raises(ResumeMismatch) as err:
        Trainer.from_checkpoint(path, progress=False, **changed)
    assert {name for name, _, _ in err.value.differences} == set(changed)
    assert ("batch_size", stored.batch_size, 32) in err.value.differences
    trainer = Trainer.from_checkpoint(path, progress=False, steps=9, log_every=3, batch_size=16)  # equal: fine
    assert trainer.config.steps == 9


def test_a_checkpoint_with_settings_this_npgan_does_not_know_is_refused_clearly(toy_run, tmp_path):
    state = load_checkpoint(toy_run / "checkpoint.npz")
    state["config"]["warp_drive"] = 3
    save_checkpoint(tmp_path / "newer.npz", state)
    with pytest.raises(ValueError, match="warp_drive.*newer npgan"):
        Trainer.from_checkpoint(str(tmp_path / "newer.npz"))


# -- other npgan versions ----------------------------------------------------------------------------------

def rewrite_meta(path, version):
    with np.load(path) as loaded:
        arrays = {name: loaded[name] for name in loaded.files}
    meta = json.loads(arrays[checkpoint_module.META_KEY].tobytes())
    meta["version"] = version
    arrays[checkpoint_module.META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.mark.parametrize("command", [["sample", "--out", "x.npy"], ["interpolate", "--out", "x.png"]])
def test_sample_and_interpolate_name_both_versions_of_a_newer_checkpoint(toy_run, tmp_path, capsys, command):
    newer_file = tmp_path / "file-format.npz"
    newer_file.write_bytes((toy_run / "checkpoint.npz").read_bytes())
    rewrite_meta(newer_file, checkpoint_module.FORMAT_VERSION + 1)
    state = load_checkpoint(toy_run / "checkpoint.npz")
    state["format"] = "npgan-trainer-2"
    newer_trainer = save_checkpoint(tmp_path / "trainer-format.npz", state)
    name, *rest = command
    with pytest.raises(SystemExit) as err:
        main([name, str(newer_file), *rest])
    assert f"checkpoint format {checkpoint_module.FORMAT_VERSION + 1}" in str(err.value)
    assert f"reads up to {checkpoint_module.FORMAT_VERSION}" in str(err.value)
    with pytest.raises(SystemExit) as err:
        main([name, str(newer_trainer), *rest])
    assert "'npgan-trainer-2'" in str(err.value) and "'npgan-trainer-1'" in str(err.value)


# -- disk full -----------------------------------------------------------------------------------------------

def test_a_full_disk_keeps_the_previous_checkpoint_and_says_what_failed(tmp_path, monkeypatch, capsys):
    real_savez, calls = np.savez, []

    def savez_until_full(file, **arrays):
        calls.append(1)
        if len(calls) >= 2:
            file.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_savez(file, **arrays)

    monkeypatch.setattr(checkpoint_module.np, "savez", savez_until_full)
    out = tmp_path / "run"
    trainer = toy_trainer(out, steps=4, checkpoint_every=2)
    with pytest.raises(CheckpointWriteError) as err:
        trainer.train()
    message = str(err.value)
    assert "could not write the checkpoint of step 4" in message and "No space left on device" in message
    assert "the previous checkpoint (step 2) is kept" in message
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 2
    assert [name for name in os.listdir(out) if name.endswith(".tmp")] == []
    assert not (out / "npgan.lock").exists()

    calls.clear()  # the same through the CLI: one line, exit status 1
    assert main(["train", "gan", *TOY_FLAGS, "--steps", "4", "--checkpoint-every", "2",
                 "--out", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("npgan: error: could not write the checkpoint of step 4") and "Traceback" not in err


def test_a_full_disk_under_the_metrics_log_stops_the_run_saying_the_last_checkpoint_is_kept(tmp_path, monkeypatch,
                                                                                          capsys):
    from npgan.gan import log

    real_open = open
    appends = []

    def open_until_full(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl") and mode == "a":
            appends.append(path)
            if len(appends) > 3:  # steps 1-3 logged, the checkpoint of step 2 written: step 4's row fails
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(log, "open", open_until_full, raising=False)
    out = tmp_path / "run"
    with pytest.raises(OutputWriteError) as err:
        toy_trainer(out, steps=6, checkpoint_every=2, log_every=1).train()
    message = str(err.value)
    assert "could not add step 4 to the metrics log" in message and "No space left on device" in message
    assert "the last checkpoint (step 2) is kept" in message and "resume" in message
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 2
    assert not (out / "npgan.lock").exists()

    appends.clear()  # the same through the CLI: one line, exit status 1
    assert main(["train", "gan", *TOY_FLAGS, "--steps", "6", "--checkpoint-every", "2", "--log-every", "1",
                 "--out", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("npgan: error: could not add step 4 to the metrics log") and "Traceback" not in err


# -- kill -9 ------------------------------------------------------------------------------------------------

# Eight moments spread over the first 0.3 s after the first checkpoint (a toy step and its checkpoint write take a
# few milliseconds, so each lands at a different point of a step or a write); seeded, so a failure repeats.
KILL_MOMENTS = [0.0375 * i + random.Random(i).uniform(0.0, 0.0375) for i in range(8)]


@pytest.mark.parametrize("moment", KILL_MOMENTS, ids=[f"{m:.3f}s" for m in KILL_MOMENTS])
def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint_and_a_lock_the_next_run_takes_over(tmp_path, capsys,
                                                                                              moment):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "npgan.cli", "train", "gan", *TOY_FLAGS, "--steps", "100000", "--log-every", "1",
         "--sample-every", "100000", "--checkpoint-every", "1", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(moment)
    process.send_signal(signal.SIGKILL)
    process.wait()
    step = load_checkpoint(out / "checkpoint.npz")["step"]
    assert step >= 1 and (out / "npgan.lock").exists()
    assert main(["train", "gan", "--out", str(out), "--resume", "--steps", str(step + 1), "--quiet"]) == 0
    assert "taking over the stale lock" in capsys.readouterr().err
    assert load_checkpoint(out / "checkpoint.npz")["step"] == step + 1


# -- soak ----------------------------------------------------------------------------------------------------

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads resident memory from /proc")
def test_soak_20000_steps_with_resumes_keeps_memory_flat_and_ends_like_an_uninterrupted_run(tmp_path):
    settings = dict(steps=20000, checkpoint_every=500, log_every=100)
    straight = toy_trainer(tmp_path / "straight", **settings)
    straight.train()
    out = tmp_path / "soak"
    trainer, memory = toy_trainer(out, **settings), []
    for stop in (5000, 10000, 15000, 20000):
        trainer.train(steps=stop)
        memory.append(resident_mb())
        if stop < 20000:
            trainer = Trainer.from_checkpoint(str(out / "checkpoint.npz"), progress=False)
            assert trainer.step == stop
    print(f"resident MB after steps 5000, 10000, 15000, 20000: {[round(m, 1) for m in memory]}")
    assert memory[-1] - memory[0] < 30, memory  # MB: no graph or history kept alive across steps
    for net, module in (("G", trainer.G), ("D", trainer.D)):
        reference = dict((straight.G if net == "G" else straight.D).state_dict())
        for name, value in module.state_dict().items():
            assert np.array_equal(reference[name], value), f"{net}.{name}"


def test_a_checkpoint_from_before_the_toy_defaults_resumes_as_it_was_trained(tmp_path):
    """Older checkpoints stored unset settings as None (and the retired `extra`, "default" norms); their run
    keeps the defaults it was trained with, even where the toys' defaults changed since (wgan-gp's width)."""
    first = Trainer(TrainConfig(model="wgan-gp", dataset="ring8", hidden=128, batch_size=16, lr_decay=False,
                                g_ema=0.0, metrics=False, num_samples=4, out=str(tmp_path / "a")), progress=False)
    first.train_step()
    state = first.state_dict()
    legacy = dict(state["config"], extra={}, hidden=None, steps=None, nz=None, critic_norm="default",
                  g_norm="default", gp_lambda=None, beta1=None, beta2=None, g_activation=None, lr_g=None, lr_d=None,
                  loss=None, n_critic=None)
    save_checkpoint(tmp_path / "old.npz", dict(state, config=legacy))
    first.train_step()  # before the resumed trainer reseeds npgan's generator, which both share
    resumed = Trainer.from_checkpoint(str(tmp_path / "old.npz"), progress=False)
    c = resumed.config
    assert (c.hidden, c.steps, c.batch_size, c.critic_norm, c.g_norm, c.gp_lambda) == (128, 10000, 16, "none",
                                                                                      "none", 0.1)
    assert resumed.total_steps() == 10000
    resumed.train_step()
    for p, q in zip(first.G.parameters(), resumed.G.parameters()):
        assert np.array_equal(p.numpy(), q.numpy())
    stored_none = dict(legacy, critic_norm=None)  # D's None meant no normalisation
    save_checkpoint(tmp_path / "none.npz", dict(state, config=stored_none))
    assert Trainer.from_checkpoint(str(tmp_path / "none.npz"), progress=False).config.critic_norm == "none"


def test_resuming_with_a_length_in_epochs_replaces_the_stored_steps(tmp_path):
    first = Trainer(TrainConfig(model="dcgan", dataset="fake", batch_size=8, ngf=4, ndf=4, nz=8, metrics=False,
                                num_samples=4, out=str(tmp_path)), progress=False)
    first.save(str(tmp_path / "ckpt.npz"))
    assert first.config.steps == 1500  # stored with the default filled in
    resumed = Trainer.from_checkpoint(str(tmp_path / "ckpt.npz"), progress=False, epochs=1.0)
    assert resumed.config.steps is None and resumed.total_steps() == len(resumed.loader)
