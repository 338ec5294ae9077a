"""One run per output directory: the lock file, its refusal message, stale takeover and release."""

import json
import os
import socket
import subprocess
import sys

import pytest

from npgan.cli import main
from npgan.gan import TrainConfig, Trainer
from npgan.runtime import runlock

TOY = ["gan", "--dataset", "ring8", "--hidden", "8", "--nz", "4", "--batch-size", "16", "--no-metrics", "--quiet"]


def write_lock(out, pid, host=None):
    os.makedirs(out, exist_ok=True)
    owner = {"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01 00:00:00 +0000",
             "command": "npgan train gan"}
    with open(runlock.lock_path(str(out)), "w") as f:
        json.dump(owner, f)


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def toy_trainer(out, **overrides):
    settings = dict(model="gan", dataset="ring8", hidden=8, nz=4, batch_size=16, steps=2, metrics=False,
                    num_samples=4, sample_every=10**6, out=str(out))
    settings.update(overrides)
    return Trainer(TrainConfig(**settings), progress=False)


def test_the_lock_names_its_owner_and_goes_when_the_run_ends(tmp_path):
    out = str(tmp_path / "run")
    with runlock.run_lock(out):
        owner = json.load(open(runlock.lock_path(out)))
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["started"]
    assert not os.path.exists(runlock.lock_path(out))


def test_a_second_run_into_a_live_runs_directory_is_refused_naming_the_owner(tmp_path, capsys):
    out = tmp_path / "run"
    write_lock(out, os.getppid())  # our parent: a live process that is not us
    with pytest.raises(runlock.RunLocked, match=f"pid {os.getppid()} on host"):
        toy_trainer(out).train()
    assert main(["train", *TOY, "--steps", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "in use by another npgan run" in err and f"pid {os.getppid()}" in err and "2026-01-01" in err
    assert not (out / "checkpoint.npz").exists()
    assert json.load(open(runlock.lock_path(str(out))))["pid"] == os.getppid()  # the owner's lock is untouched


def test_a_lock_from_another_host_is_never_taken_over(tmp_path):
    out = tmp_path / "run"
    write_lock(out, 1, host="elsewhere.example")
    with pytest.raises(runlock.RunLocked, match="another host") as err:
        runlock.acquire(str(out))
    assert runlock.lock_path(str(out)) in str(err.value)  # says which file to delete once that run is over


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_notice(tmp_path, capsys):
    out = tmp_path / "run"
    pid = dead_pid()
    write_lock(out, pid)
    assert main(["train", *TOY, "--steps", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock {runlock.lock_path(str(out))}" in err and f"pid {pid} " in err
    assert (out / "checkpoint.npz").exists() and not os.path.exists(runlock.lock_path(str(out)))


def test_the_lock_is_released_when_training_raises(tmp_path, monkeypatch):
    trainer = toy_trainer(tmp_path / "run")

    def fail():
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer, "train_step", fail)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert not os.path.exists(runlock.lock_path(str(tmp_path / "run")))


def test_the_lock_is_reentrant_within_one_process(tmp_path):
    out = str(tmp_path / "run")
    with runlock.run_lock(out):
        with runlock.run_lock(out):
            pass
        assert os.path.exists(runlock.lock_path(out))  # the outer hold keeps it
    assert not os.path.exists(runlock.lock_path(out))


def test_an_unwritable_out_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", *TOY, "--steps", "1", "--out", str(blocker / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("npgan: error:") and str(blocker) in err and "Traceback" not in err
