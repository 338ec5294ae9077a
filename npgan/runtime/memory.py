"""Where the CPU arrays of a training step get their memory: npgan's malloc policy, in one place.

A training step makes and frees the same temporary arrays every time: a 2-D toy's step some thirty arrays of
256 KB (256 x 256 float32), a DCGAN's a few of tens of megabytes. NumPy takes them from the C library's
``malloc``. glibc's malloc, left to itself, hands an allocation of 128 KB or more straight back to the kernel
when it is freed (``munmap``, or by trimming the top of the heap once more than twice the largest such block
lies free there). The next step's array of the same size then gets fresh pages, and the kernel faults in
and zeroes each 4 KB page on first touch: hundreds of page faults in every toy GAN step, and the products
that write into those pages run slower while they fault (measured in docs/threads.md).

On Linux with glibc, ``setup()`` (called by ``npgan.runtime.enable()``, never by ``import npgan``) therefore
tells malloc to keep what a step frees for the next:

- ``M_MMAP_THRESHOLD`` = 32 MB: blocks below it come from the heap, not from their own ``mmap`` (32 MB is the
  ceiling glibc's own adaptive threshold would reach, applied from the first step);
- ``M_TRIM_THRESHOLD`` = 256 MB: up to that much free memory at the top of the heap stays with the process
  instead of going back to the kernel after every step.

A process that switched the runtime on thus keeps up to 256 MB of memory it used before and has freed (its
peak use does not grow); arrays of 32 MB and more still come from, and go back to, the kernel.
``NPGAN_MALLOC=system`` in the environment (read by ``setup()``) leaves malloc as the C library set it. On other
C libraries (macOS, musl) and on CuPy arrays, which CuPy's own memory pool serves, there is nothing to do.
"""

from __future__ import annotations

import ctypes
import os
import sys

ENV_VAR = "NPGAN_MALLOC"
CHOICES = ("tuned", "system")
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's <malloc.h>
MMAP_THRESHOLD = 32 * 2**20
TRIM_THRESHOLD = 256 * 2**20


class _State:
    tuned = False
    note = "malloc as the C library set it (npgan.runtime.enable() was not called)"


def _glibc():
    """The C library when it is glibc (it has ``mallopt`` and says its version), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        return libc
    except (OSError, AttributeError):
        return None


def setup(choice: str | None = None) -> None:
    """Apply the policy ``choice`` ("tuned" or "system"; default: ``NPGAN_MALLOC``, else "tuned").

    ``npgan.runtime.enable()`` calls it. "system" after "tuned" does not undo the tuning (glibc has no way to
    restore its adaptive thresholds); set ``NPGAN_MALLOC=system`` before the runtime is switched on for that.
    """
    if choice is None:
        choice = os.environ.get(ENV_VAR, "").strip().lower() or "tuned"
        source = f"{ENV_VAR}={os.environ.get(ENV_VAR, '')!r}"
    else:
        source = f"setup(choice={choice!r})"
    if choice not in CHOICES:
        raise ValueError(f"{source}: expected one of {', '.join(CHOICES)}")
    if choice == "system":
        if not _State.tuned:
            _State.note = f"malloc as the C library set it ({ENV_VAR}=system)"
        return
    libc = _glibc()
    if libc is None:
        _State.note = "malloc as the C library set it (not glibc: nothing to tune)"
        return
    if libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        _State.tuned = True
        _State.note = (f"glibc malloc keeps freed memory for the next step (blocks under {MMAP_THRESHOLD >> 20} MB "
                       f"from the heap, up to {TRIM_THRESHOLD >> 20} MB kept; {ENV_VAR}=system to leave it)")
    else:
        _State.note = "malloc as the C library set it (glibc refused mallopt)"


def describe() -> str:
    """One line saying what the policy did in this process (``npgan info`` prints it)."""
    return _State.note
