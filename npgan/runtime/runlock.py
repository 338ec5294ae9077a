"""One run per output directory: a lock file naming its owner.

Two runs writing one ``--out`` would interleave their metrics logs and overwrite each other's pictures
and checkpoint. A run therefore creates ``OUT/npgan.lock`` (created with ``O_EXCL``, so only one process
can make it) holding its pid, host and start time, and removes it when it ends, on success, on an error
and on Ctrl-C/SIGTERM alike. A second run finds the file and is refused with the owner's details.

A run killed with ``kill -9`` (or a machine that lost power) cannot remove its lock. A lock whose owner
ran on this host and whose pid no longer exists is *stale*: the next run takes it over and says so. A
lock held from another host is never taken over automatically (npgan cannot see that host's processes);
the message says which file to remove once that run is known to be over.

The lock is re-entrant within one process (the CLI takes it before building the trainer, and
``Trainer.train`` takes it again), counted per directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time

LOCK_NAME = "npgan.lock"

_held: dict[str, int] = {}  # real path of a directory -> how many times this process holds its lock


class RunLocked(RuntimeError):
    """Another live run owns the output directory."""


def lock_path(out: str) -> str:
    return os.path.join(out, LOCK_NAME)


def _pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host (it may belong to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True  # cannot tell: assume alive, never take over a live run's directory
    return True


def _read_owner(path: str) -> dict | None:
    """The lock's contents, or None when it vanished; an unreadable lock is an owner we know nothing of."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
        if isinstance(owner, dict):
            return owner
    except json.JSONDecodeError:
        pass
    return {"unreadable": text[:200]}


def _describe(owner: dict) -> str:
    if "unreadable" in owner:
        return "an owner npgan cannot identify (the lock file is not in npgan's format)"
    started = owner.get("started", "?")
    command = owner.get("command")
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, started {started}"
            + (f" ({command})" if command else ""))


def _write_new(path: str, owner: dict) -> bool:
    """Create the lock file holding ``owner``; False when it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(owner, f)
        f.write("\n")
    return True


def acquire(out: str, notice=None) -> None:
    """Take the lock of directory ``out`` (created if missing) for this process, or raise ``RunLocked``.

    ``notice(message)`` is told when a stale lock is taken over (default: a line on stderr).
    """
    os.makedirs(out, exist_ok=True)
    key = os.path.realpath(out)
    if _held.get(key):
        _held[key] += 1
        return
    path = lock_path(out)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)[:300] or None}
    for _ in range(3):  # a few rounds: a lock may vanish or appear between our looks
        try:
            if _write_new(path, me):
                _held[key] = 1
                return
        except OSError as err:
            raise RunLocked(f"cannot create the lock file {path}: {err.strerror or err} "
                            "(is --out writable?)") from err
        owner = _read_owner(path)
        if owner is None:
            continue
        same_host = owner.get("host") == me["host"]
        pid = owner.get("pid")
        if isinstance(pid, int) and pid == me["pid"] and same_host:
            stale = True  # our own pid but not held by us: left by an earlier process that had our pid
        else:
            stale = same_host and isinstance(pid, int) and not _pid_alive(pid)
        if not stale:
            where = "" if same_host else " (another host: npgan cannot check whether it still runs)"
            raise RunLocked(
                f"{out} is in use by another npgan run: {_describe(owner)}{where}. Wait for it to finish, "
                f"or choose another --out. If that run is over, delete {path} and start again.")
        (notice or _stderr)(f"npgan: taking over the stale lock {path} of a run that is no longer alive "
                            f"({_describe(owner)})")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    raise RunLocked(f"could not take the lock {path}: other runs keep creating it")


def release(out: str) -> None:
    """Give back one hold of ``out``'s lock; the file goes with the last one (only if it is still ours)."""
    key = os.path.realpath(out)
    count = _held.get(key, 0)
    if count > 1:
        _held[key] = count - 1
        return
    _held.pop(key, None)
    if count == 0:
        return
    path = lock_path(out)
    owner = _read_owner(path)
    if owner and owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        try:
            os.remove(path)
        except OSError as err:
            if err.errno != errno.ENOENT:
                _stderr(f"npgan: warning: could not remove the lock {path}: {err.strerror or err}")


@contextlib.contextmanager
def run_lock(out: str, notice=None):
    """``with run_lock(out):`` hold ``out``'s lock for the body, released however the body ends."""
    acquire(out, notice)
    try:
        yield
    finally:
        release(out)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
