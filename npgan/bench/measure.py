"""Measuring a step: the clock (synchronized on the GPU), the peak memory and the matmul peak."""

from __future__ import annotations

import sys
import time


class PeakMemory:
    """Peak extra memory between ``reset()`` and ``read()`` in MB (see the module docstring)."""

    def __init__(self, library: str, device: str):
        self.library, self.device = library, device
        self.method = None

    def reset(self):
        if self.device == "cuda":
            if self.library == "torch":
                import torch  # noqa: PLC0415

                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                self.base = torch.cuda.memory_allocated()
                self.method = "torch.cuda.max_memory_allocated - allocated before the first step"
            else:
                import cupy  # noqa: PLC0415

                pool = cupy.get_default_memory_pool()
                pool.free_all_blocks()  # the pool keeps freed blocks: what it holds after the steps is the peak
                self.base = pool.used_bytes()
                self.method = "CuPy memory pool total_bytes after the steps - used_bytes before them"
            return
        self.base = _rss_kb()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident set size (VmHWM) to the current one
            self.method = "VmHWM - VmRSS (clear_refs reset before the first step)"
        except OSError:
            self.method = "ru_maxrss - RSS before the first step (peak since process start)"

    def read(self) -> float:
        if self.device == "cuda":
            if self.library == "torch":
                import torch  # noqa: PLC0415

                return (torch.cuda.max_memory_allocated() - self.base) / 2**20
            import cupy  # noqa: PLC0415

            return (cupy.get_default_memory_pool().total_bytes() - self.base) / 2**20
        if self.method.startswith("VmHWM"):
            peak = _proc_status_kb("VmHWM")
        else:
            import resource  # noqa: PLC0415

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = peak / 1024 if sys.platform == "darwin" else peak
        return max(0.0, (peak - self.base) / 1024)


def _proc_status_kb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_kb():
    rss = _proc_status_kb("VmRSS")
    if rss is not None:
        return rss
    import resource  # noqa: PLC0415

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _sync_for(library: str, device: str):
    if device != "cuda":
        return lambda: None
    if library == "torch":
        import torch  # noqa: PLC0415

        return torch.cuda.synchronize
    from npgan import backend  # noqa: PLC0415

    return lambda: backend.synchronize("cuda")


def time_steps(step, steps: int, sync) -> list[float]:
    """Seconds per call of ``step``; the device is synchronized before each clock reading."""
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def matmul_peak(threads: int, device: str = "cpu", size: int = 2048, repeats: int = 10) -> float:
    """The best float32 GFLOP/s of a ``size`` x ``size`` matmul with this process's threads (the peak)."""
    from npgan import backend  # noqa: PLC0415

    xp = backend.array_module_for(device)
    a = xp.asarray(backend.random_uniform((size, size), device=device))
    b = xp.asarray(backend.random_uniform((size, size), device=device))
    out = xp.empty((size, size), dtype=a.dtype)
    best = float("inf")
    for i in range(repeats + 1):
        backend.synchronize(device)
        start = time.perf_counter()
        xp.matmul(a, b, out=out)
        backend.synchronize(device)
        if i:  # the first call warms up
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9
