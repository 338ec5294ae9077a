"""One run per output directory: an OS lock on ``OUT/npgan.lock``, and the file naming its holder.

Two runs writing one ``--out`` would interleave their metrics logs and overwrite each other's pictures
and checkpoint. A run therefore opens ``OUT/npgan.lock`` and takes an exclusive, non-blocking OS advisory
lock on it (``flock``), keeping the file open for the whole run. The kernel grants that lock to one open
file at a time, so of any number of runs started at once exactly one gets it; the others are refused
with ``RunLocked``, whose message names the holder. There is no judging of staleness and no takeover step
to race on: the kernel releases the lock when its holder's file is closed, which happens when the process
ends however it ends, ``kill -9`` and a crash included. A lock file left behind by a killed run is just a
file; the next run locks it at once (and says whose it was).

What the file holds is for people and for the refusal message: the holder's pid, host, start time and
command as JSON, written after the lock is taken (truncate, write, fsync into the locked file). A refused
run may read it while the holder is still writing it, or before the holder has replaced a dead run's
details; it then waits a moment and looks again, and if the file still names no live process it says so
instead of naming the wrong one.

On a clean end (success, an error, Ctrl-C/SIGTERM) the holder removes the file while still holding the
lock, then closes it. A run that opened the old file just before it went may then lock that unlinked
file; every run therefore checks, once locked, that ``OUT/npgan.lock`` is still the file it locked, and
starts over if not.

File systems: ``flock`` works on local file systems and on NFS (where Linux maps it to NFS byte-range
locks, which other hosts see). Where ``flock`` is refused as unsupported, the POSIX record lock
(``fcntl.lockf``) is tried (a POSIX record lock is dropped when its process closes *any* descriptor of the
file, so npgan never opens the lock file again while holding it); where both are refused, the run stops with
a message saying that ``--out`` must be on a file system that supports file locks. Some FUSE and SMB mounts
grant locks that only the local machine sees: two hosts writing one such directory are not kept apart.

The lock is re-entrant within one process (the CLI takes it before building the trainer, and
``Trainer.train`` takes it again), counted per directory. It is a lock between processes: two trainers
that one Python program points at the same directory share it. A child made with ``fork`` shares its
parent's open lock file, so the lock stays held until the child has exited too; the child itself does
not count as holding it (taking the lock there is refused while the parent holds it). Linux and macOS
only: where ``fcntl`` is missing (Windows), importing works and taking the lock raises ``RunLocked``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time

try:
    import fcntl
except ImportError:  # Windows: not a target; the lock refuses clearly when taken
    fcntl = None

LOCK_NAME = "npgan.lock"
SETTLE_SECONDS = 1.0  # how long a refused run waits for the holder to write its details before it describes the file

_BUSY = {errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES}  # lockf reports a held lock as EACCES or EAGAIN
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}


class _Hold:
    """This process's hold of one directory's lock: the open, locked file and how many times it is held."""

    def __init__(self, fd: int, path: str):
        self.fd, self.path, self.count, self.pid = fd, path, 1, os.getpid()


_held: dict[str, _Hold] = {}  # real path of a directory -> this process's hold of its lock


class RunLocked(RuntimeError):
    """Another live run holds the output directory (or the lock cannot be taken at all)."""


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
        return True  # cannot tell: assume alive
    return True


def _parse(text: str) -> dict | None:
    """The holder a lock file's text names: None for an empty file, ``{"unreadable": ...}`` for a partial one."""
    if not text.strip():
        return None
    try:
        owner = json.loads(text)
        if isinstance(owner, dict):
            return owner
    except json.JSONDecodeError:
        pass
    return {"unreadable": text[:200]}


def _read_owner(path: str) -> dict | None:
    """The holder named in the file at ``path`` (see ``_parse``); None when it is empty or gone."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return _parse(f.read(4096))
    except OSError:
        return None


def _read_fd(fd: int) -> str:
    chunks = []
    while True:
        chunk = os.pread(fd, 4096, sum(len(c) for c in chunks))
        if not chunk or len(chunks) > 16:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _names_a_live_holder(owner: dict | None) -> bool:
    """Whether ``owner`` is a complete record of a process that may hold the lock now."""
    if not owner or "unreadable" in owner or not isinstance(owner.get("pid"), int):
        return False
    if owner.get("host") != socket.gethostname():
        return True  # a shared file system: that host's processes cannot be checked from here
    return owner["pid"] != os.getpid() and _pid_alive(owner["pid"])


def _describe(owner: dict | None) -> str:
    if owner is None:
        return "a run that has not written its details yet (the lock file is empty)"
    if "unreadable" in owner:
        return "a run npgan cannot identify (the lock file is incomplete or not in npgan's format)"
    started = owner.get("started", "?")
    command = owner.get("command")
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, started {started}"
            + (f" ({command})" if command else ""))


def _lock(fd: int, path: str) -> bool:
    """Take the exclusive lock on ``fd`` without waiting: True when taken, False when another run holds it."""
    err = None
    for take in (lambda: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB),
                 lambda: fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)):  # lockf: where flock is unsupported
        try:
            take()
            return True
        except OSError as e:
            if e.errno in _BUSY:
                return False
            if e.errno not in _UNSUPPORTED:
                raise RunLocked(f"cannot lock {path}: {e.strerror or e}") from e
            err = e
    raise RunLocked(f"cannot lock {path}: the file system does not support file locks ({err.strerror or err}). "
                    "npgan locks --out to keep two runs out of one directory; choose an --out on a file system "
                    "with file locks (a local disk, or NFS with locking).") from err


def _same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (a releasing run may have removed it meanwhile)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _write_owner(fd: int, owner: dict) -> None:
    data = (json.dumps(owner) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    with contextlib.suppress(OSError):  # some file systems cannot fsync; the lock itself does not depend on it
        os.fsync(fd)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def acquire(out: str, notice=None) -> None:
    """Take the lock of directory ``out`` (created if missing) for this process, or raise ``RunLocked``.

    ``notice(message)`` is told when the lock file of a run that ended without releasing it is taken over
    (default: a line on stderr).
    """
    if fcntl is None:
        raise RunLocked("the run lock needs fcntl (Linux or macOS); this platform has none, so npgan cannot keep "
                        "two runs out of one --out here")
    os.makedirs(out, exist_ok=True)
    key = os.path.realpath(out)
    hold = _held.get(key)
    if hold is not None and hold.pid == os.getpid():
        hold.count += 1
        return
    if hold is not None:  # inherited through fork: the parent's hold, not ours
        del _held[key]
    path = lock_path(out)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "command": " ".join(sys.argv)[:300] or None}
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunLocked(f"cannot open the lock file {path}: {err.strerror or err} (is --out writable?)") from err
        try:
            locked = _lock(fd, path)
            if locked and not _same_file(fd, path):
                _close(fd)  # locked a file its holder had just removed on release: start over on the new one
                continue
            if locked:
                before = _parse(_read_fd(fd))
                _write_owner(fd, me)
        except BaseException:
            _close(fd)
            raise
        if locked:
            _held[key] = _Hold(fd, path)
            if before is not None:
                (notice or _stderr)(f"npgan: taking over the stale lock {path} of a run that ended without "
                                    f"releasing it ({_describe(before)})")
            return
        _close(fd)
        owner = _read_owner(path)
        if _names_a_live_holder(owner) or time.monotonic() >= deadline:
            holder = _describe(owner)
            if owner and isinstance(owner.get("pid"), int) and not _names_a_live_holder(owner):
                holder = (f"a run that has not written its details yet (the lock file still names pid "
                          f"{owner['pid']}, which is not that run)")
            raise RunLocked(f"{out} is in use by another npgan run: {holder}. Wait for it to finish, "
                            "or choose another --out (the lock is freed when that run's process ends, however "
                            "it ends).")
        time.sleep(0.02)  # the holder is still writing its details, or has just let go: look again


def release(out: str) -> None:
    """Give back one hold of ``out``'s lock; the last one removes the lock file and frees the lock."""
    key = os.path.realpath(out)
    hold = _held.get(key)
    if hold is None:
        return
    if hold.pid != os.getpid():  # inherited through fork: the parent still holds it
        del _held[key]
        return
    if hold.count > 1:
        hold.count -= 1
        return
    del _held[key]
    try:
        if _same_file(hold.fd, hold.path):  # removed while still locked (see the module docstring)
            os.remove(hold.path)
    except OSError as err:
        if err.errno != errno.ENOENT:
            _stderr(f"npgan: warning: could not remove the lock file {hold.path}: {err.strerror or err} "
                    "(harmless: the lock itself is freed)")
    finally:
        _close(hold.fd)


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
