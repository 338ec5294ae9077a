"""``import cupyx`` in a subprocess started with ``fakecupy.subprocess_env()``: the stand-in's."""

import cupy  # noqa: F401  (puts the stand-in's cupyx into sys.modules)
