"""``import cupy`` in a subprocess started with ``fakecupy.subprocess_env()``: the stand-in, not CuPy."""

import sys

import fakecupy

_cupy, _cupyx = fakecupy.build_modules()
for _name, _module in fakecupy.submodules(_cupy, _cupyx).items():
    sys.modules[_name] = _module
