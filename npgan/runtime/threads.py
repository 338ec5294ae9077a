"""How many BLAS threads each matrix product gets: npgan's CPU thread policy, in one place.

NumPy hands every ``a @ b`` to its BLAS (OpenBLAS in NumPy's wheels), which splits a product over all the
machine's cores and leaves its idle worker threads spinning for a while after each one, waiting for the
next. When another busy process holds one of the cores, those spinning threads fight it, and two runs side
by side each take several times as long as one alone, where two cores allow twice (docs/threads.md).

The policy (``NPGAN_NUM_THREADS`` unset or ``auto``) looks at the product's size and at the machine's load:

- a product with fewer than ``SMALL_GEMM_MACS`` multiply-adds (m x k x n) runs on **one** thread: a second
  one gains nothing on it (benchmarks/REFERENCE.md, "Small networks, BLAS threads and runs side by side");
- a larger product runs on as many threads as there are **free CPUs**: the CPUs this process may run on,
  less the CPU time other processes took on them over the last ``LOAD_WINDOW`` seconds (``/proc/stat``,
  minus this process's own time), at most the threads BLAS started with (all cores, or
  ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` when set, so those keep their meaning as an upper bound), and
  at most the CPUs a container's CPU quota allows (``cpu_quota``: OpenBLAS starts a thread per core of the
  host, and threads beyond the quota only get throttled).
  A run alone on the machine uses every core for a toy's 256 x 256 x 256 products; two runs side by side
  each see the other and keep to one core each, and take both again when the other one ends.
- Where the load cannot be read (no ``/proc/stat``: not Linux), the size rule alone decides, with the larger
  threshold ``BLIND_SMALL_GEMM_MACS``: a toy MLP's products on one thread, the convolutions' on all.

``NPGAN_NUM_THREADS=N`` (or ``npgan.runtime.threads.set_num_threads(N)``) runs every product on N threads instead.
The policy acts once ``install()`` (``npgan.runtime.enable()``) has made ``before_gemm`` the gemm hook of
``npgan.backend``: the engine's products then call it, and a plain ``import npgan`` never does. The thread
count is set through threadpoolctl, and only when it changes from one product to the next; the load is read
at most once per ``LOAD_WINDOW``. This is a CPU decision: products of CuPy arrays never call the hook.
"""

from __future__ import annotations

import os
import time

from npgan import backend

ENV_VAR = "NPGAN_NUM_THREADS"
# Products below this many multiply-adds run on one thread whatever the load: below it a second thread made
# them slower, above it faster (benchmarks/REFERENCE.md, "Small networks, BLAS threads and runs side by side").
SMALL_GEMM_MACS = 2**23
# Without a view of the load: products below this on one thread, so that a toy MLP's (2^24 at 256 units,
# batch 256) stay on one core and runs side by side do not collapse; dcgan-32's convolutions (10^8) on all.
BLIND_SMALL_GEMM_MACS = 2**25
LOAD_WINDOW = 0.25  # seconds between two looks at /proc/stat
# Other processes' CPU use up to this (in CPUs) still counts a CPU as free: a quiet machine's daemons, and
# the rounding of /proc/stat's 10 ms ticks.
LOAD_SLACK = 0.25
PROC_STAT = "/proc/stat"
CGROUP_ROOT = "/sys/fs/cgroup"  # a container's own control group, as seen from inside it


class _State:
    """What the policy knows: BLAS's thread pools, their startup size, the count set last."""

    ready = False
    pools: list = []  # threadpoolctl controllers of the BLAS libraries NumPy loaded
    max_threads = 1  # threads BLAS started with (all cores unless the environment capped them), within quota
    quota: float | None = None  # a container's CPU quota in CPUs (cpu_quota), read once with the pools
    fixed: int | None = None  # every product on this many threads (NPGAN_NUM_THREADS=N); None = by size and load
    current: int | None = None  # the count set last (None: not set by npgan yet)
    note = ""  # why the policy is off, for ``describe()``


class _Load:
    """Free CPUs for this process, from two looks at ``/proc/stat`` ``LOAD_WINDOW`` seconds apart.

    ``/proc/stat`` counts, per CPU, the 10 ms ticks spent busy (user, nice, system, irq, softirq, and steal:
    time a virtual machine's host gave to someone else). Over a window, the busy seconds on this process's
    CPUs less this process's own CPU seconds (``time.process_time``, all its threads, spinning BLAS workers
    included) is what the other processes took; the rest of the CPUs is free.
    """

    cpus: frozenset | None = None  # the CPU numbers this process may run on (None: all of /proc/stat's)
    readable = True  # False once /proc/stat could not be read: the blind size rule from then on
    next_look = 0.0  # time.monotonic() of the next look
    last: tuple | None = None  # (monotonic, busy seconds on our CPUs, own CPU seconds) of the last look
    free: float | None = None  # free CPUs over the last window; None before the second look
    ticks: int | None = None  # /proc/stat's ticks per second (USER_HZ, 100 on Linux)


def cpu_quota(root: str | None = None) -> float | None:
    """The CPUs' worth of time a container's CPU quota allows (``docker run --cpus 1.5``: 1.5), from the
    control group's ``cpu.max`` (cgroup v2) or ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (v1); None when
    there is no quota or it cannot be read. ``root``: the control group's directory (``CGROUP_ROOT``)."""
    root = CGROUP_ROOT if root is None else root

    def read(path):
        try:
            with open(os.path.join(root, path)) as f:
                return f.read().split()
        except OSError:
            return None

    v2 = read("cpu.max")  # "max 100000" (no quota) or "150000 100000"
    fields = v2 if v2 is not None else (read("cpu/cpu.cfs_quota_us") or []) + (read("cpu/cpu.cfs_period_us") or [])
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None  # v1 writes -1 for no quota


def usable_cpus() -> int:
    """The CPUs this process can keep busy: those it may run on (its affinity), at most the whole CPUs of a
    container's quota, at least 1."""
    return _cpus_within(cpu_quota())


def _cpus_within(quota: float | None) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, int(quota)) if quota is not None else cpus)


def _busy_seconds() -> tuple[float, int] | None:
    """(busy seconds summed over this process's CPUs since boot, number of those CPUs), or None."""
    busy, count = 0, 0
    try:
        with open(PROC_STAT) as f:
            for line in f:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                fields = line.split()
                if _Load.cpus is not None and int(fields[0][3:]) not in _Load.cpus:
                    continue
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
                busy += user + nice + system + irq + softirq + steal
                count += 1
    except (OSError, ValueError):  # no /proc/stat, or one in a format this does not know
        return None
    return (busy / _ticks_per_second(), count) if count else None


def _ticks_per_second() -> int:
    if _Load.ticks is None:
        _Load.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return _Load.ticks


def _look(now: float) -> None:
    """Read the load, and the free CPUs over the window since the last look."""
    _Load.next_look = now + LOAD_WINDOW
    reading = _busy_seconds()
    if reading is None:
        _Load.readable, _Load.free = False, None
        return
    busy, count = reading
    own = time.process_time()
    if _Load.last is not None and now > _Load.last[0]:
        then, busy_then, own_then = _Load.last
        others = max(0.0, (busy - busy_then) - (own - own_then)) / (now - then)
        _Load.free = max(0.0, count - others)
    _Load.last = (now, busy, own)


def free_cpus() -> float | None:
    """CPUs left free by other processes over the last ``LOAD_WINDOW`` (None while unknown)."""
    if _Load.readable:
        now = time.monotonic()
        if now >= _Load.next_look:
            _look(now)
    return _Load.free


def refresh_load(pause: float = LOAD_WINDOW) -> float | None:
    """Look at the load now and again after ``pause`` seconds of sleep, so that the next products see the
    machine as it is, not as it was before a pause (``npgan bench`` calls it before each timed round, when
    the other library's round has just ended); returns ``free_cpus()``."""
    if not _State.ready:
        _setup()
    if _Load.readable:
        _look(time.monotonic())
        time.sleep(pause)
        _look(time.monotonic())
    return _Load.free


def _parse(value, source: str) -> int | None:
    """``None`` for 'auto' (the size and load rule), else a positive int; ValueError naming ``source``."""
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
    if hasattr(os, "sched_getaffinity"):
        _Load.cpus = frozenset(os.sched_getaffinity(0))
    try:
        from threadpoolctl import ThreadpoolController  # noqa: PLC0415
    except ImportError:
        _State.note = "threadpoolctl is not installed (pip install threadpoolctl): BLAS picks its own threads"
        return
    _State.pools = [pool for pool in ThreadpoolController().lib_controllers if pool.user_api == "blas"]
    if not _State.pools:
        _State.note = "threadpoolctl found no BLAS library to control"
        return
    _State.quota = cpu_quota()
    _State.max_threads = min(max(pool.num_threads or 1 for pool in _State.pools), _cpus_within(_State.quota))


def _set(count: int) -> None:
    for pool in _State.pools:
        pool.set_num_threads(count)
    _State.current = count


def threads_for(m: int, k: int, n: int) -> int:
    """The BLAS threads npgan gives an (m x k) @ (k x n) product under the current policy and load."""
    if not _State.ready:
        _setup()
    if _State.fixed is not None:
        return _State.fixed
    macs = m * k * n
    if macs < SMALL_GEMM_MACS or _State.max_threads == 1:
        return 1
    free = free_cpus()
    if free is None:  # load unknown (not yet, or not on this system): the size rule alone
        return 1 if macs < BLIND_SMALL_GEMM_MACS else _State.max_threads
    return max(1, min(_State.max_threads, int(free + LOAD_SLACK)))


def before_gemm(m: int, k: int, n: int) -> None:
    """Set BLAS's thread count for the next (m x k) @ (k x n) product, when it differs from the last one's."""
    count = threads_for(m, k, n)
    if count != _State.current and _State.pools:
        _set(count)


def install() -> None:
    """Make the policy choose the BLAS threads of every CPU matrix product of the engine from now on: it
    becomes ``npgan.backend``'s gemm hook. A bad ``NPGAN_NUM_THREADS`` is refused here, before any product. The
    BLAS libraries are looked up on the first product, so that a thread cap set before it (an MPI rank's
    share of the cores, ``npgan.runtime.distributed.world``) is what the policy starts from."""
    if _State.fixed is None:
        _parse(os.environ.get(ENV_VAR), ENV_VAR)
    backend.set_gemm_hook(before_gemm)


def uninstall() -> None:
    """Products keep whatever BLAS thread count they have; the policy is off (the gemm hook removed)."""
    if backend.gemm_hook() is before_gemm:
        backend.set_gemm_hook(None)


def installed() -> bool:
    return backend.gemm_hook() is before_gemm


def set_num_threads(count=None) -> None:
    """Every product on ``count`` BLAS threads from now on; ``None`` or ``'auto'`` restores the size and load
    rule (which ``NPGAN_NUM_THREADS`` chooses at startup)."""
    if not _State.ready:
        _setup()
    _State.fixed = _parse(count, "set_num_threads(count)")
    _State.current = None  # set again on the next product


def blas_libraries() -> list[dict]:
    """The BLAS libraries NumPy loaded, as threadpoolctl reports them: ``internal_api`` ("openblas", "mkl"...),
    ``version``, ``architecture`` (OpenBLAS's kernel, e.g. "Haswell"), ``num_threads``, ``threading_layer``.
    Empty when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_info  # noqa: PLC0415
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "num_threads", "threading_layer")
    return [{key: pool.get(key) for key in keys} for pool in threadpool_info() if pool.get("user_api") == "blas"]


def describe() -> str:
    """One line saying what the policy does in this process (``npgan info`` prints it)."""
    if not installed():
        return "off (npgan.runtime.enable() switches it on): BLAS keeps the thread count it has"
    if not _State.ready:
        _setup()
    if not _State.pools:
        return _State.note
    if _State.fixed is not None:
        return f"every matrix product on {_State.fixed} BLAS thread(s) ({ENV_VAR} or set_num_threads)"
    if _busy_seconds() is None:
        return (f"products under {BLIND_SMALL_GEMM_MACS:,} multiply-adds on 1 BLAS thread, larger ones on "
                f"{_State.max_threads} (the load is not readable here; set {ENV_VAR}=N to fix the count)")
    quota = _State.quota
    cap = f"at most {_State.max_threads}" + (f", the container's CPU quota being {quota:g}" if quota else "")
    return (f"products under {SMALL_GEMM_MACS:,} multiply-adds on 1 BLAS thread, larger ones on the CPUs other "
            f"processes leave free, {cap} (read from {PROC_STAT} every {LOAD_WINDOW} s; "
            f"set {ENV_VAR}=N to fix the count)")
