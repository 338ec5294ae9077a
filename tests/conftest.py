"""Shared pytest setup: the ``--backend`` option and the ``device`` / ``xp`` fixtures.

``pytest`` runs every test body that takes ``device`` twice: on NumPy, and on the CuPy stand-in
(``tests/fakecupy``: a CPU imitation of CuPy's rules, not a GPU) with ``device="cuda"``.
``pytest --backend cupy`` runs them on a real GPU instead, ``--backend numpy`` or ``--backend fakecupy``
on one of the two only. Tests that only make sense with a GPU carry ``@pytest.mark.gpu``; without a GPU
they run on the stand-in, and are skipped with the reason under ``--backend numpy`` or ``--backend cupy``.
``--run-slow`` adds the soak tests.

The cross-checks against PyTorch, under MPI and with Graphviz skip, with their reason, where those are not
installed. In CI (``CI=true``, as ``.ci/run`` runs) such a skip fails the run: a green CI means they ran. Every
run ends with one line per reason it skipped tests for.
"""

import collections
import os
import re

import fakecupy
import pytest

from npgan import backend

BACKENDS = {"numpy": "cpu", "cupy": "cuda", "fakecupy": "cuda"}
DEFAULT_BACKENDS = ("numpy", "fakecupy")
NO_GPU = "needs CuPy and a GPU: install cupy-cuda12x (pip install 'npgan[cuda]') on a machine with an NVIDIA GPU"


# Skip reasons that mean a cross-check dependency is missing (not a choice of the run, like --run-slow or no GPU).
CROSS_CHECK_SKIP = re.compile(r"torch|mpi4py|mpiexec|Graphviz")
_skips: collections.Counter = collections.Counter()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        _skips[str(report.longrepr[2]).removeprefix("Skipped: ")] += 1


pytest_collectreport = pytest_runtest_logreport  # a module skipped whole (importorskip at its top)


def pytest_terminal_summary(terminalreporter):
    for reason, count in sorted(_skips.items()):
        terminalreporter.write_line(f"skipped {count}: {reason}")
    missing = sum(count for reason, count in _skips.items() if CROSS_CHECK_SKIP.search(reason))
    if missing and in_ci():
        terminalreporter.write_line(f"CI: {missing} cross-check tests skipped for a missing dependency (above); "
                                    ".ci/run must install PyTorch, mpi4py/MPICH and Graphviz", red=True)


def pytest_sessionfinish(session, exitstatus):
    # exit status 5: every test collected was skipped
    if in_ci() and exitstatus in (0, 5) and any(CROSS_CHECK_SKIP.search(reason) for reason in _skips):
        session.exitstatus = 1


def pytest_addoption(parser):
    parser.addoption("--backend", choices=sorted(BACKENDS), default=None,
                     help="array backend the device fixture runs on (default: numpy and the CuPy stand-in)")
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow (soak tests)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (soak) tests, skipped unless --run-slow is given")
    config.addinivalue_line("markers", "gpu: needs CuPy and a GPU")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--run-slow"):
        skip_slow = pytest.mark.skip(reason="slow: run with --run-slow")
        for item in items:
            if item.get_closest_marker("slow"):
                item.add_marker(skip_slow)
    chosen = config.getoption("--backend")
    if backend.cupy_available():
        return
    skip = pytest.mark.skip(reason=NO_GPU)
    for item in items:
        gpu = item.get_closest_marker("gpu")
        if (chosen == "cupy" and (gpu or "device" in getattr(item, "fixturenames", ()))) or \
                (chosen == "numpy" and gpu):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _gpu_tests_on_the_stand_in(request, monkeypatch):
    """Without a GPU, tests marked ``gpu`` run on the CuPy stand-in (unless ``--backend numpy`` or ``cupy``)."""
    if request.node.get_closest_marker("gpu") and request.config.getoption("--backend") in (None, "fakecupy") \
            and not backend.cupy_available():
        fakecupy.install(monkeypatch)


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--backend")
        metafunc.parametrize("device", [chosen] if chosen else list(DEFAULT_BACKENDS), indirect=True)


@pytest.fixture
def device(request, monkeypatch):
    """``'cpu'`` or ``'cuda'`` (a real GPU with ``--backend cupy``, else the stand-in)."""
    if request.param == "fakecupy":
        fakecupy.install(monkeypatch)
    return BACKENDS[request.param]


@pytest.fixture
def fake_cupy(monkeypatch):
    """The CuPy stand-in installed as ``cupy`` for this test; its ``COUNTS`` start at zero."""
    return fakecupy.install(monkeypatch)


@pytest.fixture
def xp(device):
    """The array module (numpy or cupy) of ``device``."""
    return backend.array_module_for(device)
