"""Read real CuPy's public API into the stand-in's allow-list, ``cupy_api.json`` next to this file.

    python tests/fakecupy/snapshot.py           # rewrite cupy_api.json from the installed CuPy
    python tests/fakecupy/snapshot.py --check   # exit 1 when cupy_api.json differs from the installed CuPy

CuPy imports without a GPU (only device work raises ``CUDARuntimeError``), so this runs on any machine with
``pip install cupy-cuda12x``. Each module maps its public names to the keyword arguments they take: a list of
parameter names read with ``inspect.signature``, ``"ufunc"`` for CuPy's ufuncs (not introspectable; their call
takes the keywords in ``ufunc_call_kwargs``), ``"module"`` for a submodule, or ``null`` when the keywords cannot
be read (types, constants, Cython functions, ``**kwargs``), in which case any keyword is let through.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SNAPSHOT = os.path.join(HERE, "cupy_api.json")
MODULES = ("cupy", "cupy.linalg", "cupy.random", "cupy.fft", "cupy.lib", "cupy.lib.stride_tricks", "cupyx")
# Keywords CuPy's ufunc documents for a call (cupy.ufunc.__call__): out, dtype, casting.
UFUNC_CALL_KWARGS = ["casting", "dtype", "out"]


def _keywords(obj):
    if isinstance(obj, type(sys)):
        return "module"
    if type(obj).__name__ == "ufunc":
        return "ufunc"
    if isinstance(obj, type) or not callable(obj):
        return None
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return sorted(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def read_api() -> dict:
    """The allow-list of the CuPy importable in this process (raises ImportError without one)."""
    cupy = importlib.import_module("cupy")
    if getattr(cupy, "fake", False):
        raise ImportError("'import cupy' gives the stand-in here, not CuPy")
    modules = {}
    for name in MODULES:
        module = importlib.import_module(name)
        modules[name] = {attr: _keywords(getattr(module, attr)) for attr in dir(module)
                         if not attr.startswith("_")}
    return {"cupy_version": cupy.__version__,
            "modules": modules,
            "ndarray": sorted(a for a in dir(cupy.ndarray) if not a.startswith("_")),
            "ufunc_call_kwargs": UFUNC_CALL_KWARGS,
            "ufunc_methods": sorted(a for a in dir(cupy.add) if not a.startswith("_"))}


def dumps(api: dict) -> str:
    return json.dumps(api, indent=1, sort_keys=True) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = dumps(read_api())
    if "--check" in argv:
        with open(SNAPSHOT) as f:
            same = f.read() == text
        print("cupy_api.json matches the installed CuPy" if same else
              "cupy_api.json differs from the installed CuPy: run python tests/fakecupy/snapshot.py")
        return 0 if same else 1
    with open(SNAPSHOT, "w") as f:
        f.write(text)
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
