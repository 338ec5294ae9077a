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


def imported_modules(path: Path, package: str = "npgan"):
    """(line, modules) for every import in ``path``, however it is spelled: ``import a.b``, ``from a import b``
    (both ``a`` and ``a.b``), relative imports resolved against ``package`` (the dotted package holding
    ``path``), and ``__import__("a")`` / ``importlib.import_module("a")`` with a literal name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node.lineno, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            yield node.lineno, [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("__import__", "import_module") and node.args and isinstance(node.args[0], ast.Constant)):
            yield node.lineno, [str(node.args[0].value)]


def first_match(path: Path, package: str, wanted) -> list:
    """(line, module) for every import in ``path`` that names a module ``wanted`` accepts (its first such name)."""
    found = []
    for line, modules in imported_modules(path, package):
        name = next((m for m in modules if wanted(m)), None)
        if name is not None:
            found.append((line, name))
    return found


def forbidden_imports(path: Path):
    """(line, module) for every import of numpy/cupy in ``path``, however it is spelled."""
    return first_match(path, "npgan", lambda name: name.split(".")[0] in FORBIDDEN)


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


# -- the engine does not reach into the runtime -------------------------------------------------------------
# The machine tuning (npgan/runtime/) sits outside the engine: the engine never imports it, so ``import npgan``
# changes no process-wide setting and a learner reading an op never lands in thread or malloc policies.

RUNTIME_FREE = ("autograd.py", "backend.py", "functional.py", "gradcheck.py", "optim.py", "reference.py", "ops/",
                "nn/")


def runtime_imports(path: Path, package: str = "npgan"):
    """(line, module) for every import of npgan.runtime (or of one of its modules) in ``path``, absolute or
    relative; ``package`` is the dotted package that holds ``path``."""
    return first_match(path, package, lambda name: name == "npgan.runtime" or name.startswith("npgan.runtime."))


def test_no_engine_module_imports_the_runtime():
    sources = [p for p in sorted(PACKAGE.rglob("*.py")) if p.relative_to(PACKAGE).as_posix().startswith(RUNTIME_FREE)]
    assert any(p.name == "core.py" for p in sources) and any(p.name == "backend.py" for p in sources)
    offences = []
    for path in sources:
        relative = path.relative_to(PACKAGE)
        package = ".".join(("npgan",) + relative.parent.parts)
        offences += [f"npgan/{relative.as_posix()}:{line} imports {name}"
                     for line, name in runtime_imports(path, package)]
    assert not offences, ("the engine must not import npgan.runtime (tuning is opt-in, at the edge):\n"
                          + "\n".join(offences))


@pytest.mark.parametrize("source, package", [
    ("from npgan.runtime import threads", "npgan.ops"),
    ("import npgan.runtime.memory", "npgan"),
    ("from npgan import runtime", "npgan.nn"),
    ("from ..runtime import threads", "npgan.ops"),
    ("from . import runtime", "npgan"),
    ("def f():\n    from npgan.runtime.threads import before_gemm", "npgan"),
    ("import importlib\nimportlib.import_module('npgan.runtime.threads')", "npgan"),
])
def test_the_runtime_scan_finds_every_spelling_of_an_import(tmp_path, source, package):
    path = tmp_path / "module.py"
    path.write_text(source + "\n")
    assert runtime_imports(path, package), f"missed: {source!r}"


def test_the_runtime_scan_ignores_other_imports(tmp_path):
    path = tmp_path / "module.py"
    path.write_text("from npgan import backend\nfrom npgan.autograd import Tensor\nfrom . import ops\nimport runtime\n")
    assert runtime_imports(path, "npgan") == []
