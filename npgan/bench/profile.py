"""Where npgan's step time goes, by op category (``npgan bench --profile``)."""

from __future__ import annotations

import time

from npgan.bench.steps import npgan_steps

PROFILE_CATEGORIES = ("im2col", "gemm", "col2im", "batchnorm", "elementwise", "optimizer", "other")


class OpProfiler:
    """Exclusive wall time by op category while installed (npgan only; for ``--profile``).

    It wraps, temporarily, ``forward`` and ``backward`` of every ``Function`` subclass, the conv helpers
    ``npgan.ops.conv.pad_input / im2col / col2im / gemm`` and ``npgan.ops.linear.gemm``: nested calls are
    subtracted from their caller, so each second is counted once. Categories: im2col (padding and window
    copies), gemm (conv and linear GEMMs, MatMul), col2im, batchnorm (the BatchNorm op, forward and
    backward), elementwise (every other op's forward, and the glue of every backward: allocating outputs,
    reshapes, gradient sums), optimizer (``optimizer.step``) and other (the rest of the step: the graph
    walk, Python, freeing memory).
    On the GPU the device is synchronized at every boundary, which slows the step down.
    """

    def __init__(self, sync=lambda: None):
        self.sync = sync
        self.totals = {c: 0.0 for c in PROFILE_CATEGORIES}
        self._stack = []
        self._saved = []

    @staticmethod
    def category(cls) -> str:
        name = cls.__name__
        if name in ("MatMul", "Linear", "LinearLeakyReLU"):
            return "gemm"
        if "BatchNorm" in name:
            return "batchnorm"
        return "elementwise"

    def timed(self, fn, category):
        profiler = self

        def wrapper(*args, **kwargs):
            profiler.sync()
            start = time.perf_counter()
            profiler._stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                profiler.sync()
                elapsed = time.perf_counter() - start
                nested = profiler._stack.pop()
                profiler.totals[category] += elapsed - nested
                if profiler._stack:
                    profiler._stack[-1] += elapsed

        return wrapper

    def __call__(self, fn):
        """Run ``fn()``, timed as the optimizer while the profiler is installed."""
        return self.timed(fn, "optimizer")() if self._saved else fn()

    def install(self):
        from npgan.autograd import Function  # noqa: PLC0415
        from npgan.ops import conv, linear  # noqa: PLC0415

        classes, todo = [], list(Function.__subclasses__())
        while todo:
            cls = todo.pop()
            classes.append(cls)
            todo.extend(cls.__subclasses__())
        for cls in classes:
            for method in ("forward", "backward"):  # backward: the glue, or raw-array work (BatchNorm)
                if method in cls.__dict__:
                    self._saved.append((cls, method, cls.__dict__[method]))
                    setattr(cls, method, self.timed(cls.__dict__[method], self.category(cls)))
        for module, name, category in ((conv, "pad_input", "im2col"), (conv, "im2col", "im2col"),
                                       (conv, "col2im", "col2im"), (conv, "gemm", "gemm"),
                                       (linear, "gemm", "gemm")):
            if hasattr(module, name):
                self._saved.append((module, name, getattr(module, name)))
                setattr(module, name, self.timed(getattr(module, name), category))
        return self

    def uninstall(self):
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def per_step_ms(self, total_seconds: float, steps: int) -> dict:
        measured = sum(v for k, v in self.totals.items() if k != "other")
        totals = dict(self.totals, other=max(0.0, total_seconds - measured))
        return {k: round(1e3 * v / steps, 2) for k, v in totals.items()}


def _profile(config, phase, batch, device, steps, warmup, sync) -> dict:
    """ms per step by op category over ``steps`` extra npgan steps (fresh models, after a warm-up)."""
    profiler = OpProfiler(sync)
    profiled = npgan_steps(config, batch, device, timers=profiler)[phase]
    for _ in range(max(1, warmup)):
        profiled()
    profiler.install()
    try:
        start = time.perf_counter()
        for _ in range(steps):
            profiled()
        sync()
        total = time.perf_counter() - start
    finally:
        profiler.uninstall()
    profile = profiler.per_step_ms(total, steps)
    profile["total"] = round(1e3 * total / steps, 2)
    return profile
