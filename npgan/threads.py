"""How many BLAS threads each matrix product gets: npgan's CPU thread policy, in one place.

NumPy hands every ``a @ b`` to its BLAS (OpenBLAS in NumPy's wheels), which splits a product over all the
machine's cores and leaves its idle worker threads spinning for a while after each one, waiting for the
next. For the small products of a 2-D toy's MLP (256 x 256 x 256) a second thread gains little, and two
such runs started side by side keep four spinning threads on two cores: each waits for a thread the other
process has descheduled, and the pair ran 3-32x slower than one run alone.

The policy (``NPGAN_NUM_THREADS`` unset or ``auto``):

- a product with fewer than ``SMALL_GEMM_MACS`` multiply-adds (m x k x n) runs on **one** thread: a toy
  MLP's whole step then stays on one core, and its BLAS workers fall asleep instead of spinning;
- a larger product (the convolutions' GEMMs, gan-mlp's widest layer) runs on every thread BLAS started
  with: all cores, or ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` when set, so those keep their
  usual meaning (an upper bound; ``OPENBLAS_NUM_THREADS=1`` keeps every product on one thread).

``NPGAN_NUM_THREADS=N`` (or ``npgan.threads.set_num_threads(N)``) runs every product on N threads instead.
The thread count is set through threadpoolctl, and only when it changes from one product to the next
(a ctypes call of ~2 us). This is a CPU decision: on CuPy arrays ``gemm`` never calls it.
"""

from __future__ import annotations

import os

ENV_VAR = "NPGAN_NUM_THREADS"
# Products below this many multiply-adds run on one thread. 2^25 puts every product of the 2-D toys'
# 256-unit MLPs at batch 256 (2^24) on one thread, and the convolution GEMMs of dcgan-32 (10^8 and more)
# on all of them; measured in benchmarks/REFERENCE.md ("BLAS threads").
SMALL_GEMM_MACS = 2**25


class _State:
    """What the policy knows: BLAS's thread pools, their startup size, the count set last."""

    ready = False
    pools: list = []  # threadpoolctl controllers of the BLAS libraries NumPy loaded
    max_threads = 1  # threads BLAS started with (all cores unless the environment capped them)
    fixed: int | None = None  # every product on this many threads (NPGAN_NUM_THREADS=N); None = by size
    current: int | None = None  # the count set last (None: not set by npgan yet)
    note = ""  # why the policy is off, for ``describe()``


def _parse(value, source: str) -> int | None:
    """``None`` for 'auto' (the size rule), else a positive int; ValueError naming ``source``."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    try:
        count = int(str(value).strip())
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{source} must be a positive number of threads or 'auto', got {value!r}")
    return count


def _setup() -> None:
    """Find BLAS's thread pools once, on the first product (threadpoolctl scans the loaded libraries)."""
    _State.ready = True
    if _State.fixed is None:
        _State.fixed = _parse(os.environ.get(ENV_VAR), ENV_VAR)
    try:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415
    except ImportError:
        _State.note = "threadpoolctl is not installed (pip install threadpoolctl): BLAS picks its own threads"
        return
    _State.pools = [pool for pool in ThreadpoolController().lib_controllers if pool.user_api == "blas"]
    if not _State.pools:
        _State.note = "threadpoolctl found no BLAS library to control"
        return
    _State.max_threads = max(pool.num_threads or 1 for pool in _State.pools)


def _set(count: int) -> None:
    for pool in _State.pools:
        pool.set_num_threads(count)
    _State.current = count


def threads_for(m: int, k: int, n: int) -> int:
    """The BLAS threads npgan gives an (m x k) @ (k x n) product under the current policy."""
    if not _State.ready:
        _setup()
    if _State.fixed is not None:
        return _State.fixed
    return 1 if m * k * n < SMALL_GEMM_MACS else _State.max_threads


def before_gemm(m: int, k: int, n: int) -> None:
    """Set BLAS's thread count for the next (m x k) @ (k x n) product, when it differs from the last one's."""
    count = threads_for(m, k, n)
    if count != _State.current and _State.pools:
        _set(count)


def set_num_threads(count=None) -> None:
    """Every product on ``count`` BLAS threads from now on; ``None`` or ``'auto'`` restores the size rule
    (which ``NPGAN_NUM_THREADS`` chooses at startup)."""
    if not _State.ready:
        _setup()
    _State.fixed = _parse(count, "set_num_threads(count)")
    _State.current = None  # set again on the next product


def describe() -> str:
    """One line saying what the policy does in this process (``npgan info`` prints it)."""
    if not _State.ready:
        _setup()
    if not _State.pools:
        return _State.note
    if _State.fixed is not None:
        return f"every matrix product on {_State.fixed} BLAS thread(s) ({ENV_VAR} or set_num_threads)"
    return (f"products under {SMALL_GEMM_MACS:,} multiply-adds on 1 BLAS thread, larger ones on "
            f"{_State.max_threads} (set {ENV_VAR}=N to fix the count)")
