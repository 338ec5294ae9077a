"""A CPU stand-in for CuPy, for npgan's tests. It is NOT a GPU and its timings mean nothing.

No GPU is lent to npgan's machines, so the CuPy path would go untested. This module imitates the parts of
CuPy where it behaves differently from NumPy, so that code which is wrong on a GPU fails here too:

- its ``ndarray`` wraps a NumPy array and refuses implicit conversion to NumPy (``numpy.asarray``,
  ``numpy.savez``, matplotlib) with CuPy's own ``TypeError``; data leaves the "device" only through
  ``.get()``, ``cupy.asnumpy``, or the conversions that sync on CuPy too (``float()``, ``int()``,
  ``bool()``, ``.item()``, ``.tolist()``, formatting);
- mixing a device array with a NumPy array in one operation raises ``TypeError`` (CuPy: "Unsupported type");
  a NumPy array may only be copied in with ``cupy.asarray``/``cupy.array`` or ``x[:] = host_array``;
- reductions and integer indexing return 0-d device arrays, never NumPy scalars;
- the few CuPy-only calls npgan uses exist: ``cupyx.scatter_add``, ``cupy.lib.stride_tricks.as_strided``,
  ``cupy.cuda`` streams, events, ``synchronize`` and ``runtime.getDeviceCount``, the memory pool;
- only what real CuPy has: every name of ``cupy``, ``cupy.linalg``, ``cupy.random``, ``cupy.fft``,
  ``cupy.lib.stride_tricks`` and ``cupyx``, every ``ndarray`` attribute and the keyword arguments (where CuPy's
  signatures can be read; its ufuncs take ``out``, ``dtype``, ``casting``) are checked
  against an allow-list (``API``) read from the installed CuPy when there is one, else from the committed snapshot
  ``cupy_api.json`` (``python tests/fakecupy/snapshot.py`` refreshes it); a NumPy-only name raises
  ``AttributeError`` and a NumPy-only keyword ``TypeError``, both naming it; NumPy functions applied to a device
  array (``numpy.busday_count(x)``) fail as CuPy's ``__array_function__`` makes them fail;
- ``cupyx.scatter_add`` adds in a shuffled order (CuPy's atomic adds have no order), integer-array indices out of
  bounds wrap around instead of raising (CuPy does not check them on the device), and ``.data`` is a
  pointer-like object (CuPy's ``MemoryPointer``), not host memory.

Where CuPy would quietly copy to the host (``numpy.savez`` of a CuPy array dispatches to ``cupy.savez``), the
stand-in is stricter and refuses: npgan must call ``asnumpy`` itself. Everything else is NumPy underneath.

``COUNTS`` tallies host-to-device copies, device-to-host copies and device operations (calls that write
new or existing device memory: an estimate of kernel launches; views such as reshape or transpose are free).
``install(monkeypatch)`` puts the stand-in in ``sys.modules`` as ``cupy``/``cupyx`` and points npgan's
backend at it, so ``device="cuda"`` works; ``subprocess_env()`` does the same for a child process (through
the ``site/cupy`` package it puts first on ``PYTHONPATH``), for the CLI and ``npgan bench``'s workers.
"""

from __future__ import annotations

import json
import operator
import os
import random
import sys
import types

import numpy

__version__ = "0.0-stand-in"

IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array "
            "explicitly.")
HOST_IO = {"save", "savez", "savez_compressed", "savetxt", "tofile"}


def _load_api() -> dict:
    """The allow-list: read from the installed CuPy (in a child process: the file the parent passed), else the
    committed snapshot."""
    passed = os.environ.get("FAKECUPY_API")
    if passed and os.path.exists(passed):
        with open(passed) as f:
            return json.load(f)
    real = sys.modules.get("cupy")
    if real is None or not getattr(real, "fake", False):
        try:
            import importlib.util  # noqa: PLC0415

            spec = importlib.util.find_spec("cupy")
            here = os.path.dirname(os.path.abspath(__file__))
            if spec is not None and spec.origin and not spec.origin.startswith(here):
                from fakecupy import snapshot  # noqa: PLC0415

                return snapshot.read_api()
        except Exception:  # noqa: BLE001  (a broken CuPy install: fall back to the snapshot)
            pass
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cupy_api.json")) as f:
        return json.load(f)


API = _load_api()
REAL = f"real CuPy {API['cupy_version']}"
NDARRAY_NAMES = frozenset(API["ndarray"])
UFUNC_CALL_KWARGS = frozenset(API["ufunc_call_kwargs"])
UFUNC_METHODS = frozenset(API["ufunc_methods"])
NUMPY_MODULES = {"numpy": "cupy", "numpy.linalg": "cupy.linalg", "numpy.fft": "cupy.fft",
                 "numpy.random": "cupy.random", "numpy.lib.stride_tricks": "cupy.lib.stride_tricks"}


def _missing(module, name):
    return AttributeError(f"{module} has no attribute {name!r} ({REAL} lacks it)")


def _check_keywords(qualname, keywords, kwargs):
    """TypeError for a keyword argument real CuPy's ``qualname`` does not take (``keywords``: a list, "ufunc",
    or None when unknown)."""
    if keywords is None or not kwargs:
        return
    allowed = UFUNC_CALL_KWARGS if keywords == "ufunc" else keywords
    for key in kwargs:
        if key not in allowed:
            raise TypeError(f"{qualname}() got an unexpected keyword argument {key!r} ({REAL} lacks it)")


def _cupy_entry(numpy_func):
    """(qualified CuPy name, keywords) of the CuPy function CuPy's __array_function__/__array_ufunc__ would call
    for ``numpy_func``; TypeError as CuPy's when there is none."""
    name = numpy_func.__name__
    module = "cupy" if isinstance(numpy_func, numpy.ufunc) else \
        NUMPY_MODULES.get(getattr(numpy_func, "__module__", None) or "numpy", "cupy")
    names = API["modules"].get(module, {})
    if name not in names:
        raise TypeError(f"no implementation found for 'numpy.{name}' on types that implement "
                        f"__array_function__: [<class 'cupy.ndarray'>] ({REAL} has no {module}.{name})")
    return f"{module}.{name}", names[name]


class MemoryPointer:
    """What ``.data`` of a device array is: an address on the device, not host memory (no buffer protocol)."""

    __slots__ = ("ptr", "_owner")

    def __init__(self, owner):
        self._owner = owner
        self.ptr = owner.__array_interface__["data"][0]

    def __repr__(self):
        return f"<MemoryPointer 0x{self.ptr:x} (device memory of the stand-in)>"


_SCATTER_SEEDS = random.Random()  # a local generator: the global NumPy/Python seeds are left alone


def _wrap_indices(shape, key):
    """Integer-array indices out of bounds wrapped around (as CuPy's indexing does on the device)."""
    keys = key if isinstance(key, tuple) else (key,)
    if any(k is None or k is Ellipsis or (isinstance(k, ndarray) and k.dtype == bool) for k in keys) or \
            len(keys) > len(shape):
        return key
    wrapped = tuple(_wrap(numpy.mod(k._a, shape[axis])) if isinstance(k, ndarray) and k.dtype.kind in "iu"
                    and shape[axis] else k for axis, k in enumerate(keys))
    return wrapped if isinstance(key, tuple) else wrapped[0]


class Counts:
    """Transfers and device operations since the last ``reset()``."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.to_device = 0
        self.to_host = 0
        self.launches = 0

    def snapshot(self) -> dict:
        return {"to_device": self.to_device, "to_host": self.to_host, "launches": self.launches}


COUNTS = Counts()


def _mixing_error(obj):
    return TypeError(f"Unsupported type {type(obj)}")


def _unwrap(obj, allow_host=False):
    """Device arrays -> their NumPy data (recursively in lists, tuples, dicts); host arrays are refused."""
    if isinstance(obj, ndarray):
        return obj._a
    if isinstance(obj, numpy.ndarray):
        if not allow_host:
            raise _mixing_error(obj)
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(o, allow_host) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v, allow_host) for k, v in obj.items()}
    return obj


def _arrays_in(obj):
    if isinstance(obj, numpy.ndarray):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _arrays_in(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _arrays_in(o)


def _wrap(obj):
    """NumPy results -> device arrays; NumPy scalars -> 0-d device arrays (as CuPy's reductions return)."""
    if isinstance(obj, numpy.ndarray):
        result = object.__new__(ndarray)
        result._a = obj
        return result
    if isinstance(obj, numpy.generic):
        return _wrap(numpy.asarray(obj))
    if isinstance(obj, tuple):
        return tuple(_wrap(o) for o in obj)
    if isinstance(obj, list):
        return [_wrap(o) for o in obj]
    return obj


def _apply(func, args, kwargs, in_place=False):
    """Run a NumPy callable on device operands and wrap what it returns; count a device operation."""
    raw_args, raw_kwargs = _unwrap(args), _unwrap(kwargs)
    result = func(*raw_args, **raw_kwargs)
    inputs = list(_arrays_in((raw_args, raw_kwargs)))
    outputs = [r for r in _arrays_in(result if isinstance(result, tuple) else (result,))]
    if in_place or "out" in kwargs or any(not any(numpy.may_share_memory(o, i) for i in inputs) for o in outputs) \
            or (outputs == [] and isinstance(result, numpy.generic)):
        COUNTS.launches += 1
    if "out" in kwargs and kwargs["out"] is not None:
        out = kwargs["out"]
        return out[0] if isinstance(out, tuple) and len(out) == 1 else out
    return _wrap(result)


class ndarray:
    """A device array of the stand-in: a NumPy array that will not leave the "device" implicitly."""

    __slots__ = ("_a",)
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._a = numpy.empty(shape, dtype=dtype, order=order)

    # -- leaving the device -----------------------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(IMPLICIT)

    def get(self, stream=None, order="C", out=None):
        """A NumPy copy (CuPy's device-to-host transfer)."""
        COUNTS.to_host += 1
        if out is not None:
            out[...] = self._a
            return out
        return numpy.array(self._a, order=order, copy=True)

    def _host_scalar(self, convert):
        COUNTS.to_host += 1
        return convert(self._a)

    def __float__(self):
        return self._host_scalar(float)

    def __int__(self):
        return self._host_scalar(int)

    def __complex__(self):
        return self._host_scalar(complex)

    def __bool__(self):
        return self._host_scalar(bool)

    def item(self, *args):
        COUNTS.to_host += 1
        return self._a.item(*args)

    def tolist(self):
        COUNTS.to_host += 1
        return self._a.tolist()

    def tobytes(self, order="C"):
        COUNTS.to_host += 1
        return self._a.tobytes(order)

    def __format__(self, spec):
        COUNTS.to_host += 1
        return format(self._a, spec)

    def __repr__(self):
        return repr(self._a).replace("array(", "array(device ", 1)

    __str__ = __repr__

    # -- NumPy's protocols: numpy.add(x, y), numpy.concatenate([x, y]) run "on the device" ------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        qualname, keywords = _cupy_entry(ufunc)
        if method != "__call__" and method not in UFUNC_METHODS:
            raise _missing(qualname, method)
        _check_keywords(qualname if method == "__call__" else f"{qualname}.{method}",
                        keywords if method == "__call__" else None, kwargs)
        return _apply(getattr(ufunc, method), inputs, kwargs, in_place=method == "at")

    def __array_function__(self, func, types_, args, kwargs):
        if func.__name__ in HOST_IO:
            raise TypeError(IMPLICIT)
        qualname, keywords = _cupy_entry(func)
        _check_keywords(qualname, keywords, kwargs)
        return _apply(func, args, kwargs)

    # -- array basics -----------------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: _wrap(self._a.T))
    device = property(lambda self: Device(0))
    data = property(lambda self: MemoryPointer(self._a))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for i in range(len(self._a)):
            yield _wrap(self._a[i])

    def __getitem__(self, key):
        return _apply(operator.getitem, (self, _wrap_indices(self._a.shape, key)), {})

    def __setitem__(self, key, value):
        if isinstance(value, numpy.ndarray):  # CuPy copies a host array in only as x[:] = host (or x[...])
            if key not in (slice(None), Ellipsis):
                raise _mixing_error(value)
            COUNTS.to_device += 1
            self._a[key] = value
            COUNTS.launches += 1
            return
        _apply(operator.setitem, (self, _wrap_indices(self._a.shape, key), value), {}, in_place=True)

    def __getattr__(self, name):
        """Every other ndarray method (astype, reshape, sum, ...): NumPy's, on the device."""
        if name == "_a" or name.startswith("__"):  # never NumPy's __array_interface__ & co: no implicit copies
            raise AttributeError(name)
        if name not in NDARRAY_NAMES:
            raise _missing("cupy.ndarray", name)
        attr = getattr(self._a, name)
        if callable(attr):
            return lambda *args, **kwargs: _apply(attr, args, kwargs, in_place=name in ("fill", "put", "sort"))
        return _wrap(attr)


def _binary(op, reflected=False):
    if reflected:
        return lambda self, other: _apply(op, (other, self), {})
    return lambda self, other: _apply(op, (self, other), {})


def _in_place(op):
    def method(self, other):
        _apply(op, (self, other), {}, in_place=True)
        return self

    return method


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift",
              "rshift"):
    _op = getattr(operator, _name + "_") if _name in ("and", "or") else getattr(operator, _name)
    setattr(ndarray, f"__{_name}__", _binary(_op))
    setattr(ndarray, f"__r{_name}__", _binary(_op, reflected=True))
    setattr(ndarray, f"__i{_name}__", _in_place(getattr(operator, f"i{_name}")))
for _name in ("lt", "le", "eq", "ne", "gt", "ge"):
    setattr(ndarray, f"__{_name}__", _binary(getattr(operator, _name)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", (lambda op: lambda self: _apply(op, (self,), {}))(getattr(operator, _name)))


# -- the cupy module -----------------------------------------------------------------------------------------

def asarray(a, dtype=None, order=None):
    """Copy host data to the device (counted), or return a device array (cast if ``dtype`` asks)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == numpy.dtype(dtype) else a.astype(dtype)
    if any(isinstance(x, ndarray) for x in (a if isinstance(a, (list, tuple)) else ())):
        raise TypeError(IMPLICIT)  # CuPy cannot build an array from a list holding device arrays
    COUNTS.to_device += 1
    return _wrap(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(obj, ndarray):
        result = obj.astype(dtype or obj.dtype, copy=copy)
        return result
    result = asarray(obj, dtype)
    return _wrap(numpy.array(result._a, ndmin=ndmin, copy=False)) if ndmin else result


def asnumpy(a, stream=None, order="C", out=None):
    """A NumPy copy of a device array (NumPy input comes back as it is)."""
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return numpy.asarray(a, order=order)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else numpy


def _device_function(qualname, func, keywords):
    if isinstance(func, numpy.ufunc):
        return _UFunc(qualname, func)

    def call(*args, **kwargs):
        _check_keywords(qualname, keywords, kwargs)
        return _apply(func, args, kwargs)

    call.__name__ = qualname.rpartition(".")[2]
    call.__qualname__ = qualname
    return call


class _UFunc:
    """A NumPy ufunc on device arrays: ``cupy.add(x, y)``, ``cupy.add.at(...)`` and the rest."""

    def __init__(self, qualname, ufunc):
        self._ufunc = ufunc
        self._qualname = qualname
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        _check_keywords(self._qualname, "ufunc", kwargs)
        return _apply(self._ufunc, args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__") or name not in UFUNC_METHODS:
            raise _missing(f"{self._qualname}", name)
        method = getattr(self._ufunc, name)
        if not callable(method):
            return method
        return lambda *args, **kwargs: _apply(method, args, kwargs, in_place=name == "at")


class _NumpyNamespace(types.ModuleType):
    """A module whose names are NumPy's, as far as real CuPy's module has them (functions run "on the device";
    types and constants as is); a name or keyword real CuPy lacks is refused, naming it."""

    def __init__(self, name, source):
        super().__init__(name)
        self._source = source
        self._names = API["modules"].get(name, {})

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._names:
            raise _missing(self.__name__, name)
        if self._names[name] == "module":
            raise AttributeError(f"the CuPy stand-in has no {self.__name__}.{name}")
        attr = getattr(self._source, name, None)
        if attr is None:
            raise AttributeError(f"the CuPy stand-in has no {self.__name__}.{name} (NumPy has none to imitate it)")
        if isinstance(attr, (type, types.ModuleType)) or not callable(attr):
            return attr
        wrapped = _device_function(f"{self.__name__}.{name}", attr, self._names[name])
        setattr(self, name, wrapped)
        return wrapped


# -- cupy.cuda: one device, streams and events that are already done -------------------------------------------

class Stream:
    null = None

    def __init__(self, non_blocking=False):
        pass

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Event:
    def __init__(self, *args, **kwargs):
        import time  # noqa: PLC0415

        self._time = time.perf_counter
        self._at = None

    def record(self, stream=None):
        self._at = self._time()

    def synchronize(self):
        pass


class Device:
    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_POOL = MemoryPool()


def build_modules():
    """Fresh ``cupy`` and ``cupyx`` module objects of the stand-in."""
    cupy = _NumpyNamespace("cupy", numpy)
    for name in ("ndarray", "asarray", "array", "asnumpy", "get_array_module", "COUNTS", "__version__"):
        setattr(cupy, name, globals()[name])
    cupy.__doc__ = __doc__
    cupy.fake = True
    cupy.linalg = _NumpyNamespace("cupy.linalg", numpy.linalg)
    cupy.fft = _NumpyNamespace("cupy.fft", numpy.fft)
    cupy.random = _NumpyNamespace("cupy.random", numpy.random)
    cupy.lib = types.ModuleType("cupy.lib")
    cupy.lib.stride_tricks = types.ModuleType("cupy.lib.stride_tricks")
    cupy.lib.stride_tricks.as_strided = \
        lambda x, shape=None, strides=None: _wrap(numpy.lib.stride_tricks.as_strided(_unwrap(x), shape, strides))
    cuda = types.ModuleType("cupy.cuda")
    cuda.Stream, cuda.Event, cuda.Device = Stream, Event, Device
    cuda.get_current_stream = lambda device=None: Stream()
    cuda.get_elapsed_time = lambda start, end: 1000.0 * (end._at - start._at)
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, deviceSynchronize=lambda: None)
    cupy.cuda = cuda
    cupy.get_default_memory_pool = lambda: _POOL
    cupy.get_default_pinned_memory_pool = lambda: _POOL

    cupyx = types.ModuleType("cupyx")

    def scatter_add(a, slices, value):
        """``a[slices] += value`` with repeated indices summed (CuPy's atomic adds: in no fixed order, so the
        stand-in shuffles the order, seeded per call from its own generator; float sums may differ in the last
        bits from one call to the next, as on a GPU)."""
        keys = slices if isinstance(slices, tuple) else (slices,)
        if all(isinstance(k, ndarray) and k.dtype.kind in "iu" for k in keys) and len(keys) <= a.ndim:
            index = numpy.broadcast_arrays(*(k._a for k in keys))
            count = index[0].size
            rest = a.shape[len(keys):]
            values = numpy.broadcast_to(_unwrap(value), index[0].shape + rest).reshape((count,) + rest)
            order = numpy.random.default_rng(_SCATTER_SEEDS.getrandbits(64)).permutation(count)
            flat = tuple(_wrap(i.reshape(-1)[order]) for i in index)
            _apply(numpy.add.at, (a, flat, _wrap(values[order])), {}, in_place=True)
            return
        _apply(numpy.add.at, (a, slices, value), {}, in_place=True)

    cupyx.scatter_add = scatter_add
    return cupy, cupyx


def submodules(cupy, cupyx) -> dict:
    """The ``sys.modules`` entries that make ``import cupy`` (and its submodules) give the stand-in."""
    return {"cupy": cupy, "cupyx": cupyx, "cupy.lib": cupy.lib, "cupy.lib.stride_tricks": cupy.lib.stride_tricks,
            "cupy.cuda": cupy.cuda, "cupy.linalg": cupy.linalg, "cupy.fft": cupy.fft, "cupy.random": cupy.random}


def install(monkeypatch):
    """Make ``import cupy`` give the stand-in for one test and point npgan's backend at it."""
    from npgan import backend  # noqa: PLC0415

    cupy, cupyx = build_modules()
    for name, module in submodules(cupy, cupyx).items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(backend, "_cupy", None)  # forget a failed import of the real one
    monkeypatch.setattr(backend, "_cupy_error", None)
    COUNTS.reset()
    return cupy


def subprocess_env(environ=None) -> dict:
    """Environment for a child process whose ``import cupy`` gives the stand-in (``fakecupy/site`` first)."""
    import hashlib  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    environ = dict(os.environ if environ is None else environ)
    text = json.dumps(API, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    passed = os.path.join(tempfile.gettempdir(), f"npgan-fakecupy-api-{API['cupy_version']}-{digest}.json")
    if not os.path.exists(passed):  # the child checks against the same allow-list as this process
        part = f"{passed}.{os.getpid()}.part"
        with open(part, "w") as f:
            f.write(text)
        os.replace(part, passed)
    environ["FAKECUPY_API"] = passed
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [os.path.join(here, "site"), os.path.dirname(here), os.path.dirname(os.path.dirname(here))]
    environ["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [environ.get("PYTHONPATH")] if p])
    return environ
