"""The array seam: the one engine module that imports NumPy and CuPy for math.

A tensor lives on the device of its array: a ``numpy.ndarray`` is on the CPU, a ``cupy.ndarray`` on
the GPU. Every op asks ``get_array_module(*arrays)`` for ``xp`` and writes its math once with it, so the
same code runs on both. What differs between the two libraries lives here and only here.
"""

from __future__ import annotations

import contextlib

import numpy

DEFAULT_DTYPE = numpy.float32
DEVICES = ("cpu", "cuda")

_cupy = None  # the cupy module once imported; False when the import failed
_cupy_error = None


def _import_cupy():
    """Import CuPy lazily: a CPU-only install never pays for (or needs) it."""
    global _cupy, _cupy_error
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415

            _cupy = cupy
        except Exception as err:  # ImportError, or a CUDA library that fails to load
            _cupy, _cupy_error = False, err
    return _cupy or None


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    cupy = _import_cupy()
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _require_cupy():
    cupy = _import_cupy()
    if cupy is None:
        raise RuntimeError(
            "device 'cuda' needs CuPy and an NVIDIA GPU, but CuPy could not be imported "
            f"({_cupy_error}). Install it with: pip install 'npgan[cuda]' (cupy-cuda12x)"
        )
    if not cupy_available():
        raise RuntimeError(
            "device 'cuda' was asked for, but CuPy finds no GPU on this machine; use device='cpu'"
        )
    return cupy


def is_cupy_array(array) -> bool:
    return _cupy not in (None, False) and isinstance(array, _cupy.ndarray)


def any_cupy_loaded() -> bool:
    """Whether CuPy has been imported: until it is, every array is a NumPy array on the CPU."""
    return _cupy not in (None, False)


def get_array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy`` (Chainer's and DeZero's pattern)."""
    for array in arrays:
        if is_cupy_array(array):
            return _cupy
    return numpy


def device_of(array) -> str:
    return "cuda" if is_cupy_array(array) else "cpu"


def check_device(device) -> str:
    """``device`` as one of ``DEVICES`` (None: ``'cpu'``), or ValueError naming what is allowed. ``'cuda'`` is
    CuPy's current GPU; an index (``'cuda:1'``) is refused rather than ignored: pick the GPU with
    ``CUDA_VISIBLE_DEVICES``."""
    if device is None:
        return "cpu"
    name = str(device)
    if name.startswith("cuda:"):
        raise ValueError(f"device {name!r}: npgan runs on CuPy's current GPU, named 'cuda'; to use GPU "
                         f"{name[5:]}, set CUDA_VISIBLE_DEVICES={name[5:]} and pass device='cuda'")
    if name not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return name


def asnumpy(array):
    """``array`` as a NumPy array: a CuPy array is copied to the host (the only way data leaves the GPU), a NumPy
    array is returned as it is, anything else goes through ``numpy.asarray``."""
    if is_cupy_array(array):
        return array.get()
    return numpy.asarray(array)


def to_device(array, device):
    """``array`` (an array, or anything ``numpy.asarray`` takes) as an array of ``device``: a NumPy array for
    ``'cpu'`` (``asnumpy``), a CuPy array for ``'cuda'`` (``cupy.asarray``, copied from the host). An array that
    is already on ``device`` comes back without a copy."""
    device = check_device(device)
    if device == "cpu":
        return asnumpy(array)
    cupy = _require_cupy()
    return cupy.asarray(array)


def array_module_for(device):
    """The array module that holds arrays of ``device``."""
    return numpy if check_device(device) == "cpu" else _require_cupy()


def synchronize(device="cpu") -> None:
    """Wait for queued GPU work to finish (a no-op on the CPU); call before reading a clock."""
    if check_device(device) == "cuda":
        _require_cupy().cuda.get_current_stream().synchronize()


def scatter_add(target, indices, values) -> None:
    """``target[indices] += values`` with repeated indices summed, in place."""
    if is_cupy_array(target):
        import cupyx  # noqa: PLC0415

        cupyx.scatter_add(target, indices, values)
    else:
        numpy.add.at(target, indices, values)


def as_strided(array, shape, strides):
    """A strided view of ``array`` (strides in bytes); read-only use only, never write through it."""
    if is_cupy_array(array):
        return _cupy.lib.stride_tricks.as_strided(array, shape=shape, strides=strides)
    return numpy.lib.stride_tricks.as_strided(array, shape=shape, strides=strides, writeable=False)


# -- matrix products ---------------------------------------------------------------------------------
# The one place where tuning outside the engine may act on a product: ``npgan.runtime.enable()`` installs its
# BLAS thread policy here. Without a hook (``import npgan`` alone) a product is just ``xp.matmul``.

_gemm_hook = None


def set_gemm_hook(hook) -> None:
    """Call ``hook(m, k, n)`` before every (m x k) @ (k x n) product ``matmul`` computes on NumPy arrays (never on
    CuPy's); ``None`` removes it."""
    global _gemm_hook
    if hook is not None and not callable(hook):
        raise TypeError(f"set_gemm_hook: hook must be a function of (m, k, n) or None, got {type(hook).__name__}")
    _gemm_hook = hook


def gemm_hook():
    """The hook ``set_gemm_hook`` installed, or None."""
    return _gemm_hook


def matmul(a, b, out=None):
    """The product of 2-D arrays ``a @ b`` (into ``out`` when given); on the CPU the gemm hook runs first."""
    xp = get_array_module(a, b)
    if _gemm_hook is not None and xp is numpy:
        _gemm_hook(a.shape[0], a.shape[1], b.shape[1])
    return xp.matmul(a, b, out=out)


def is_array(obj) -> bool:
    return isinstance(obj, numpy.ndarray) or is_cupy_array(obj)


def is_floating(dtype) -> bool:
    return numpy.issubdtype(numpy.dtype(dtype), numpy.floating)


def result_dtype(*dtypes):
    return numpy.result_type(*dtypes)


def host_dtype(dtype):
    """Normalise a dtype spec (``'float32'``, ``numpy.float64``...) to a ``numpy.dtype``."""
    return numpy.dtype(dtype)


# -- random numbers ----------------------------------------------------------------------------------
# Noise and data order come from one host-side NumPy generator and are copied to the device, so a seed
# gives the same run on the CPU and on the GPU (CuPy's own random streams differ from NumPy's).

_host_rng = numpy.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed npgan's host random generator (weights init, noise, dropout masks, shuffling)."""
    global _host_rng
    _host_rng = numpy.random.default_rng(seed)


def host_rng() -> numpy.random.Generator:
    """The generator npgan draws from: the host generator, or the one of an enclosing ``random_source``."""
    return _source or _host_rng


# Inside ``random_source(gen)`` npgan's draws come from ``gen``; None: from ``_host_rng``.
_source = None


@contextlib.contextmanager
def random_source(generator):
    """``with backend.random_source(gen):`` the random numbers npgan draws inside the block (``host_rng()``,
    ``random_normal``, ``random_uniform``: noise, dropout masks, ``npgan.randn``) come from ``gen`` instead of
    npgan's host generator; a draw given its own ``rng`` keeps it. ``gen`` offers the NumPy Generator methods
    npgan calls (``random``, ``standard_normal``, ``uniform``, ``integers``). Seeding and the checkpointed state
    (``manual_seed``, ``get_rng_state``) stay with the host generator. ``npgan.runtime.distributed`` uses it to
    give each MPI rank its rows of the numbers one process draws."""
    global _source
    saved, _source = _source, generator
    try:
        yield generator
    finally:
        _source = saved


def get_rng_state() -> dict:
    """The state of npgan's host random generator (a dict of plain numbers), for checkpoints.

    >>> state = npgan.get_rng_state(); a = npgan.randn(2); npgan.set_rng_state(state); b = npgan.randn(2)
    """
    return _host_rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from ``get_rng_state``: the same random numbers follow as after it was taken."""
    _host_rng.bit_generator.state = state


def random_normal(shape, dtype=DEFAULT_DTYPE, device="cpu", rng=None):
    rng = rng or _source or _host_rng
    return to_device(rng.standard_normal(shape, dtype=numpy.float32).astype(dtype, copy=False), device)


def random_uniform(shape, low=0.0, high=1.0, dtype=DEFAULT_DTYPE, device="cpu", rng=None):
    rng = rng or _source or _host_rng
    sample = rng.random(shape, dtype=numpy.float32) * (high - low) + low
    return to_device(sample.astype(dtype, copy=False), device)


def broadcast_shapes(*shapes):
    """The shape NumPy broadcasting gives, or ValueError naming the shapes."""
    try:
        return numpy.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError("shapes " + " and ".join(str(tuple(s)) for s in shapes)
                         + " cannot be broadcast together") from None
