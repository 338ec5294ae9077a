"""One run per output directory: the OS lock on the lock file, its refusal message, the file a killed run leaves
behind, re-entrancy, release, and runs started at the same moment."""

import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from npgan.cli import main
from npgan.gan import TrainConfig, Trainer
from npgan.runtime import runlock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = ["gan", "--dataset", "ring8", "--hidden", "8", "--nz", "4", "--batch-size", "16", "--no-metrics", "--quiet"]

# A run in miniature: waits for the file GO to appear, takes the lock of OUT, holds it HOLD seconds, lets go.
CONTENDER = """
import os, sys, time
from npgan.runtime import runlock
out, go, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
open(f"{go}.ready.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
try:
    runlock.acquire(out, notice=lambda message: print("NOTICE", message, flush=True))
except runlock.RunLocked as err:
    print("REFUSED", err, flush=True)
    sys.exit(3)
print("HELD", os.getpid(), flush=True)
time.sleep(hold)
runlock.release(out)
"""


def write_lock(out, pid, host=None):
    """A lock file as a run killed with kill -9 leaves it: naming its holder, locked by nobody."""
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


def start_contenders(out, go, count, hold):
    env = dict(os.environ, PYTHONPATH=ROOT)
    processes = [subprocess.Popen([sys.executable, "-c", CONTENDER, str(out), str(go), str(hold)], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    deadline = time.monotonic() + 120
    while sum(name.startswith(f"{go.name}.ready.") for name in os.listdir(go.parent)) < count:
        assert time.monotonic() < deadline, "the contenders did not start"
        assert all(p.poll() is None for p in processes), [p.communicate() for p in processes if p.poll() is not None]
        time.sleep(0.01)
    return processes


def hold_in_another_process(tmp_path, out):
    """A live run holding ``out``'s lock (until killed); returns its process once it holds."""
    go = tmp_path / "go-holder"
    go.touch()
    process = start_contenders(out, go, 1, 10**6)[0]
    line = process.stdout.readline()
    while line.startswith("NOTICE"):
        line = process.stdout.readline()
    assert line.startswith("HELD"), (line, process.stderr.read() if process.poll() is not None else "")
    return process


def another_open_holds(path):
    """Whether another open file (another run) can take the lock of ``path`` now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_eight_runs_started_at_once_on_a_stale_lock_one_holds_seven_refuse_naming_it(tmp_path):
    out = tmp_path / "run"
    for round_ in range(3):
        stale = dead_pid()
        write_lock(out, stale)
        go = tmp_path / f"go{round_}"
        processes = start_contenders(out, go, 8, hold=1.0)
        go.touch()  # all eight are waiting on this: they try the lock within a millisecond or so of each other
        results = [(p.wait(timeout=120), *p.communicate()) for p in processes]
        held = [stdout for status, stdout, _ in results if status == 0]
        refused = [stdout for status, stdout, _ in results if status == 3]
        assert len(held) == 1 and len(refused) == 7, results
        holder = int(held[0].split("HELD ")[1].split()[0])
        assert f"taking over the stale lock {runlock.lock_path(str(out))}" in held[0] and f"pid {stale} " in held[0]
        for stdout in refused:
            assert "in use by another npgan run" in stdout and f"pid {holder} on host" in stdout, stdout
            assert f"pid {stale} " not in stdout  # never the dead run the holder has replaced
        assert not os.path.exists(runlock.lock_path(str(out)))


def test_the_lock_names_its_owner_is_held_and_goes_when_the_run_ends(tmp_path):
    out = str(tmp_path / "run")
    with runlock.run_lock(out):
        owner = json.load(open(runlock.lock_path(out)))
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname() and owner["started"]
        assert another_open_holds(runlock.lock_path(out))
    assert not os.path.exists(runlock.lock_path(out))


def test_a_second_run_into_a_live_runs_directory_is_refused_naming_the_owner(tmp_path, capsys):
    out = tmp_path / "run"
    holder = hold_in_another_process(tmp_path, out)
    try:
        started = json.load(open(runlock.lock_path(str(out))))["started"]
        with pytest.raises(runlock.RunLocked, match=f"pid {holder.pid} on host"):
            toy_trainer(out).train()
        assert main(["train", *TOY, "--steps", "2", "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "in use by another npgan run" in err and f"pid {holder.pid}" in err and started in err
        assert not (out / "checkpoint.npz").exists()
        assert json.load(open(runlock.lock_path(str(out))))["pid"] == holder.pid  # the owner's lock is untouched
    finally:
        holder.kill()
        holder.wait()


def test_a_kill_9_holder_leaves_a_lock_the_next_run_takes_at_once(tmp_path):
    out = tmp_path / "run"
    holder = hold_in_another_process(tmp_path, out)
    with pytest.raises(runlock.RunLocked, match=f"pid {holder.pid} on host"):
        runlock.acquire(str(out))
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert os.path.exists(runlock.lock_path(str(out)))  # the killed run could not remove its file
    notices = []
    began = time.monotonic()
    with runlock.run_lock(str(out), notice=notices.append):
        assert time.monotonic() - began < 0.5
        assert json.load(open(runlock.lock_path(str(out))))["pid"] == os.getpid()
    assert len(notices) == 1 and f"pid {holder.pid} " in notices[0]
    assert not os.path.exists(runlock.lock_path(str(out)))


def test_a_stale_lock_file_is_taken_over_with_a_notice(tmp_path, capsys):
    out = tmp_path / "run"
    pid = dead_pid()
    write_lock(out, pid)
    assert main(["train", *TOY, "--steps", "2", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock {runlock.lock_path(str(out))}" in err and f"pid {pid} " in err
    assert (out / "checkpoint.npz").exists() and not os.path.exists(runlock.lock_path(str(out)))


def test_a_lock_file_from_another_host_is_only_a_file_the_os_lock_decides(tmp_path):
    out = tmp_path / "run"
    write_lock(out, 1, host="elsewhere.example")  # no process holds it: that run is over
    notices = []
    with runlock.run_lock(str(out), notice=notices.append):
        pass
    assert "host elsewhere.example" in notices[0]
    holder = hold_in_another_process(tmp_path, out)  # a live holder whose file names another host
    try:
        write_lock(out, 4242, host="elsewhere.example")
        began = time.monotonic()
        with pytest.raises(runlock.RunLocked, match="pid 4242 on host elsewhere.example"):
            runlock.acquire(str(out))
        assert time.monotonic() - began < runlock.SETTLE_SECONDS  # a complete record: refused at once
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("text, says", [
    ("", "has not written its details yet (the lock file is empty)"),
    ('{"pid": 12', "incomplete or not in npgan's format"),
    ("dead", "still names pid"),
])
def test_the_refusal_is_clear_whatever_the_holders_file_holds(tmp_path, monkeypatch, text, says):
    monkeypatch.setattr(runlock, "SETTLE_SECONDS", 0.2)
    out = tmp_path / "run"
    out.mkdir()
    path = runlock.lock_path(str(out))
    if text == "dead":  # a holder that has locked a killed run's file but not yet written its own details
        pid = dead_pid()
        write_lock(out, pid)
        says += f" {pid}, which is not that run"
    else:
        with open(path, "w") as f:
            f.write(text)
    fd = os.open(path, os.O_RDWR)  # another open file: to flock, another run
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(runlock.RunLocked, match="in use by another npgan run") as err:
            runlock.acquire(str(out))
        assert says in str(err.value)
    finally:
        os.close(fd)


def test_the_lock_is_released_when_training_raises(tmp_path, monkeypatch):
    trainer = toy_trainer(tmp_path / "run")

    def fail():
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer, "train_step", fail)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert not os.path.exists(runlock.lock_path(str(tmp_path / "run")))
    with runlock.run_lock(str(tmp_path / "run")):  # and it is free
        pass


def test_the_lock_is_reentrant_within_one_process_counted_per_directory(tmp_path):
    out, other = str(tmp_path / "run"), str(tmp_path / "other")
    with runlock.run_lock(out):
        with runlock.run_lock(out), runlock.run_lock(other):
            with runlock.run_lock(out):
                pass
        assert os.path.exists(runlock.lock_path(out)) and another_open_holds(runlock.lock_path(out))
        assert not os.path.exists(runlock.lock_path(other))
    assert not os.path.exists(runlock.lock_path(out))


def test_a_forked_child_does_not_count_as_holding_its_parents_lock(tmp_path):
    out = str(tmp_path / "run")
    with runlock.run_lock(out):
        child = os.fork()
        if child == 0:  # the child: taking the lock is refused (the parent holds it); its release is a no-op
            status = 1
            try:
                runlock.release(out)
                runlock.acquire(out)
            except runlock.RunLocked as err:
                status = 0 if f"pid {os.getppid()} on host" in str(err) else 2
            finally:
                os._exit(status)
        assert os.waitpid(child, 0)[1] == 0
        assert os.path.exists(runlock.lock_path(out)) and another_open_holds(runlock.lock_path(out))
    assert not os.path.exists(runlock.lock_path(out))


def test_a_run_that_locked_a_just_removed_file_starts_over_on_the_new_one(tmp_path, monkeypatch):
    out = tmp_path / "run"
    write_lock(out, dead_pid())
    path = runlock.lock_path(str(out))
    real_lock, calls = runlock._lock, []

    def lock_after_the_holder_let_go(fd, where):
        calls.append(fd)
        if len(calls) == 1:
            os.remove(where)  # the holder's release, between our open and our lock
        return real_lock(fd, where)

    monkeypatch.setattr(runlock, "_lock", lock_after_the_holder_let_go)
    runlock.acquire(str(out), notice=lambda message: None)
    try:
        hold = runlock._held[os.path.realpath(out)]
        assert len(calls) == 2 and os.fstat(hold.fd).st_ino == os.stat(path).st_ino
        assert another_open_holds(path) and json.load(open(path))["pid"] == os.getpid()
    finally:
        runlock.release(str(out))


def fake_fcntl(flock=None, lockf=None):
    def refuse(code):
        def call(fd, operation):
            raise OSError(code, os.strerror(code))
        return call
    return types.SimpleNamespace(LOCK_EX=fcntl.LOCK_EX, LOCK_NB=fcntl.LOCK_NB,
                                 flock=refuse(flock) if flock else fcntl.flock,
                                 lockf=refuse(lockf) if lockf else fcntl.lockf)


def test_where_flock_is_unsupported_lockf_is_used_and_where_neither_is_the_run_stops_clearly(tmp_path, monkeypatch):
    out = str(tmp_path / "run")
    monkeypatch.setattr(runlock, "fcntl", fake_fcntl(flock=errno.ENOLCK))
    with runlock.run_lock(out):
        assert json.load(open(runlock.lock_path(out)))["pid"] == os.getpid()
    monkeypatch.setattr(runlock, "fcntl", fake_fcntl(flock=errno.ENOLCK, lockf=errno.EACCES))  # held elsewhere
    monkeypatch.setattr(runlock, "SETTLE_SECONDS", 0.1)
    with pytest.raises(runlock.RunLocked, match="in use by another npgan run"):
        runlock.acquire(out)
    monkeypatch.setattr(runlock, "fcntl", fake_fcntl(flock=errno.EOPNOTSUPP, lockf=errno.ENOLCK))
    with pytest.raises(runlock.RunLocked, match="does not support file locks") as err:
        runlock.acquire(out)
    assert runlock.lock_path(out) in str(err.value) and not runlock._held


def test_without_fcntl_the_module_imports_and_the_lock_refuses_clearly(tmp_path):
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "from npgan.runtime import runlock\n"
            "try:\n    runlock.acquire(sys.argv[1])\n"
            "except runlock.RunLocked as err:\n    print(err)\n")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert done.returncode == 0 and "needs fcntl (Linux or macOS)" in done.stdout, done


def test_an_unwritable_out_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["train", *TOY, "--steps", "1", "--out", str(blocker / "run")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("npgan: error:") and str(blocker) in err and "Traceback" not in err
