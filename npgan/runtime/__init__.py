"""Machine tuning and run safety, outside the engine: BLAS thread policy, malloc policy, run lock, signal
handling and data-parallel training over MPI.

``import npgan`` alone changes no process-wide setting and loads none of this. The tuning is switched on by
one call, ``npgan.runtime.enable()``, which the ``npgan`` command, ``Trainer.train()`` and the benchmarks make:

    import npgan.runtime
    npgan.runtime.enable()   # malloc policy (NPGAN_MALLOC) and BLAS thread policy (NPGAN_NUM_THREADS)

The run lock (``runlock``), signal handling (``interrupt``) and MPI (``distributed``) are used by the command
and the Trainer where a run needs them.
"""

from __future__ import annotations

from npgan.runtime import memory, threads

__all__ = ["disable", "enable", "enabled"]

_malloc_applied = False


def enable(malloc: bool = True, blas_threads: bool = True) -> dict:
    """Switch npgan's machine tuning on for this process; returns what is on, ``{"malloc": bool,
    "blas_threads": bool}``. Calling it again is harmless (a part already on is not applied twice).

    ``malloc``: glibc's malloc keeps a step's freed arrays for the next (``memory.setup``; ``NPGAN_MALLOC=system``
    leaves malloc alone, any other value than tuned/system is refused with ValueError).
    ``blas_threads``: the BLAS thread count of every CPU matrix product chosen by its size and the machine's
    load (``threads.install``: the policy becomes ``npgan.backend``'s gemm hook; ``NPGAN_NUM_THREADS=N`` fixes
    it, a bad value is refused with ValueError).
    """
    global _malloc_applied
    if malloc and not _malloc_applied:
        memory.setup()
        _malloc_applied = True
    if blas_threads and not threads.installed():
        threads.install()
    return enabled()


def enabled() -> dict:
    """What ``enable`` switched on in this process: ``{"malloc": bool, "blas_threads": bool}``."""
    return {"malloc": _malloc_applied, "blas_threads": threads.installed()}


def disable() -> dict:
    """Switch the BLAS thread policy off again (products keep the thread count they have); returns what is
    still on. The malloc policy stays: glibc cannot restore its own adaptive thresholds."""
    threads.uninstall()
    return enabled()
