"""Ctrl-C and SIGTERM during training: the step reached is saved, the exit status and message say so, and
``--resume`` continues to the same parameters as a run that was never interrupted."""

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from npgan.checkpoint import load_checkpoint
from npgan.cli import main
from npgan.gan import TrainConfig, Trainer
from npgan.gan.trainer import TrainingInterrupted
from npgan.runtime.interrupt import Interrupted, StepAbandoned, StopOnSignal, raise_on_signal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_FLAGS = ["--dataset", "ring8", "--hidden", "8", "--nz", "4", "--batch-size", "16", "--no-metrics", "--quiet"]
TOY = dict(model="gan", dataset="ring8", hidden=8, nz=4, batch_size=16, metrics=False)


def toy_trainer(out, **overrides):
    return Trainer(TrainConfig(**dict(TOY, num_samples=4, sample_every=10**6, out=str(out), **overrides)),
                   progress=False)


def same_parameters(checkpoint, trainer):
    state = load_checkpoint(checkpoint)
    for net, module in (("generator", trainer.G), ("discriminator", trainer.D)):
        for name, value in module.state_dict().items():
            assert np.array_equal(state[net][name], value), f"{net}.{name}"


def test_handlers_are_installed_only_for_the_loop_and_restored_after():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert stop.installed and signal.getsignal(signal.SIGINT) == stop._handle
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_outside_the_main_thread_no_handler_is_installed():
    seen = {}

    def body():
        with StopOnSignal() as stop:
            seen["installed"] = stop.installed

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == {"installed": False}


def test_a_second_signal_waits_during_a_save_and_abandons_a_step_otherwise(capsys):
    with StopOnSignal() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested and stop.signum == signal.SIGINT
        with stop.saving():
            signal.raise_signal(signal.SIGINT)  # must not interrupt the write
        with pytest.raises(StepAbandoned):
            signal.raise_signal(signal.SIGTERM)
    err = capsys.readouterr().err
    assert "SIGINT received: finishing" in err and "checkpoint is being written" in err and "abandoning" in err


def test_a_signal_mid_step_saves_the_step_reached(tmp_path, monkeypatch):
    trainer = toy_trainer(tmp_path / "run", steps=50, checkpoint_every=1000)
    step = trainer.train_step

    def step_then_signal():
        row = step()
        if trainer.step == 3:
            signal.raise_signal(signal.SIGTERM)
        return row

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.train(handle_signals=True)
    assert (stopped.value.step, stopped.value.exit_status) == (3, 143)
    assert load_checkpoint(stopped.value.checkpoint)["step"] == 3
    same_parameters(stopped.value.checkpoint, trainer)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_second_signal_during_the_save_still_completes_it(tmp_path, monkeypatch):
    trainer = toy_trainer(tmp_path / "run", steps=50, checkpoint_every=1000)
    step, save = trainer.train_step, trainer.save

    def step_then_signal():
        row = step()
        if trainer.step == 2:
            signal.raise_signal(signal.SIGINT)
        return row

    def save_while_signalled(path):
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.01)
        save(path)

    monkeypatch.setattr(trainer, "train_step", step_then_signal)
    monkeypatch.setattr(trainer, "save", save_while_signalled)
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.train(handle_signals=True)
    assert stopped.value.exit_status == 130 and load_checkpoint(stopped.value.checkpoint)["step"] == 2


def test_library_training_leaves_signals_alone_by_default(tmp_path, monkeypatch):
    trainer = toy_trainer(tmp_path / "run", steps=1)
    handler, seen = signal.getsignal(signal.SIGINT), []

    def look():
        seen.append(signal.getsignal(signal.SIGINT))
        raise KeyboardInterrupt  # what Ctrl-C does in a program that embeds npgan

    monkeypatch.setattr(trainer, "train_step", look)
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert seen == [handler] and signal.getsignal(signal.SIGINT) == handler
    assert not (tmp_path / "run" / "npgan.lock").exists()


def start_training(out, steps=100000):
    env = dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1")
    command = [sys.executable, "-m", "npgan.cli", "train", "gan", *TOY_FLAGS, "--steps", str(steps),
               "--log-every", "1", "--sample-every", "100000", "--checkpoint-every", "100000", "--out", str(out)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_first_log_line(process, out, timeout=120.0):
    log = out / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().strip():
            return
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()}")
        time.sleep(0.02)
    process.kill()
    raise AssertionError("no log line within the timeout")


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signalled_cli_run_saves_says_how_to_resume_and_resumes_to_the_uninterrupted_result(
        tmp_path, capsys, signum, status):
    out = tmp_path / "run"
    process = start_training(out)
    wait_for_first_log_line(process, out)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert "Traceback" not in err
    stopped = re.search(r"stopped at step (\d+) \((SIGINT|SIGTERM)\); checkpoint written to (\S+)", err)
    assert stopped, err
    step = int(stopped.group(1))
    assert stopped.group(2) == signal.Signals(signum).name and load_checkpoint(stopped.group(3))["step"] == step
    command = re.search(r"continue with: (npgan train .*--resume)", err).group(1)
    assert not (out / "npgan.lock").exists()

    # The printed command continues the run (here to a few steps past the interruption).
    argv = shlex.split(command)
    assert argv[:3] == ["npgan", "train", "gan"]
    assert main(argv[1:] + ["--steps", str(step + 3), "--quiet"]) == 0
    straight = toy_trainer(tmp_path / "straight", steps=step + 3)
    straight.train()
    same_parameters(out / "checkpoint.npz", straight)


def test_an_abandoned_step_exits_with_the_signal_status_and_names_the_kept_checkpoint(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["train", "gan", *TOY_FLAGS, "--steps", "2", "--out", str(out)]) == 0

    def abandon(self, steps=None, handle_signals=False):
        self.step += 1  # the step in progress when the second signal came
        raise StepAbandoned(signal.SIGTERM)

    monkeypatch.setattr(Trainer, "train", abandon)
    assert main(["train", "gan", "--steps", "5", "--out", str(out), "--resume", "--quiet"]) == 143
    err = capsys.readouterr().err
    assert "abandoned step 4 without saving; the checkpoint of step 2 is kept" in err
    assert f"continue with: npgan train gan --dataset ring8 --out {out} --resume" in err
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 2 and not (out / "npgan.lock").exists()


def test_before_the_loop_sigterm_raises_so_the_lock_is_released_on_the_way_out(tmp_path):
    from npgan.runtime import runlock

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as err:
        with raise_on_signal(), runlock.run_lock(str(tmp_path / "run")):
            signal.raise_signal(signal.SIGTERM)
    assert err.value.signum == signal.SIGTERM and not (tmp_path / "run" / "npgan.lock").exists()
    assert signal.getsignal(signal.SIGTERM) == before
