"""The backend seam holds: no engine module imports numpy or cupy; only npgan/backend.py does.

Engine code gets its array module from ``npgan.backend`` (``xp = backend.get_array_module(x)``), so
one implementation runs on NumPy and CuPy. Importing numpy directly would tie an op to the CPU.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "npgan"
FORBIDDEN = ("numpy", "cupy", "cupyx")

# Modules that are not engine code and work on host data by nature may import numpy. Keep this short;
# autograd, ops/*, functional, nn/*, optim and gradcheck must never be listed here.
ALLOWED = {
    "backend.py",  # the seam itself
    "data.py",  # decodes dataset files (IDX, npz) on the host
    "viz.py",  # images and plots are host-side (matplotlib, pillow)
    "checkpoint.py",  # .npz files are written and read by numpy
    "cli.py",  # prints and parses host values
    "bench/measure.py",  # reads CuPy's memory pool for the peak memory of a GPU benchmark
    "bench/report.py",  # reports the versions of the libraries a benchmark ran with
    "gan/metrics.py",  # statistics of generated samples, computed on the host
}
ENGINE = ("autograd.py", "functional.py", "gradcheck.py", "optim.py", "ops/", "nn/")


def forbidden_imports(path: Path):
    """(line, statement) for every import of numpy/cupy in ``path``, however it is spelled."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant)):
            names = [str(node.args[0].value)]
        else:
            continue
        for name in names:
            if name.split(".")[0] in FORBIDDEN:
                found.append((node.lineno, name))
    return found


def test_the_allow_list_holds_no_engine_module():
    assert not [name for name in ALLOWED if name != "backend.py" and name.startswith(ENGINE)]


def test_no_engine_module_imports_numpy_or_cupy():
    sources = sorted(PACKAGE.rglob("*.py"))
    assert any(p.name == "autograd.py" for p in sources), f"no npgan sources found under {PACKAGE}"
    offences = []
    for path in sources:
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ALLOWED:
            continue
        try:
            found = forbidden_imports(path)
        except SyntaxError as err:
            offences.append(f"npgan/{relative}:{err.lineno} cannot be parsed: {err.msg}")
            continue
        for line, name in found:
            offences.append(f"npgan/{relative}:{line} imports {name}")
    assert not offences, (
        "engine code must get its array module from npgan.backend, not import it:\n" + "\n".join(offences)
    )


@pytest.mark.parametrize("source", [
    "import numpy",
    "import numpy as np",
    "import os, numpy.linalg",
    "from numpy import zeros",
    "from numpy.lib import stride_tricks",
    "import cupy",
    "from cupyx import scatter_add",
    "def f():\n    import cupy as cp",
    "np = __import__('numpy')",
    "import importlib\nnp = importlib.import_module('numpy')",
])
def test_the_scan_finds_every_spelling_of_a_numpy_or_cupy_import(tmp_path, source):
    path = tmp_path / "module.py"
    path.write_text(source + "\n")
    assert forbidden_imports(path), f"missed: {source!r}"


def test_the_scan_ignores_the_backend_and_lookalike_names(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("from npgan import backend\nimport numbers\nfrom . import numpy_helpers\n"
                    "xp = backend.get_array_module\n")
    assert forbidden_imports(path) == []
