"""Shared pytest setup: the ``--backend`` option and the ``device`` / ``xp`` fixtures.

``pytest`` runs everything on NumPy; ``pytest --backend cupy`` runs the same test bodies on the GPU.
Tests that only make sense with a GPU carry ``@pytest.mark.gpu``; they are skipped, with the reason,
where CuPy or a GPU is missing.
"""

import pytest

from npgan import backend

BACKENDS = {"numpy": "cpu", "cupy": "cuda"}
NO_GPU = "needs CuPy and a GPU: install cupy-cuda12x (pip install 'npgan[cuda]') on a machine with an NVIDIA GPU"


def pytest_addoption(parser):
    parser.addoption("--backend", choices=sorted(BACKENDS), default="numpy",
                     help="array backend the device fixture runs on (default: numpy)")
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
    wants_gpu = config.getoption("--backend") == "cupy"
    if not (wants_gpu or any(item.get_closest_marker("gpu") for item in items)) or backend.cupy_available():
        return
    skip = pytest.mark.skip(reason=NO_GPU)
    for item in items:
        if item.get_closest_marker("gpu") or (wants_gpu and "device" in getattr(item, "fixturenames", ())):
            item.add_marker(skip)


@pytest.fixture
def device(request):
    """``'cpu'`` or ``'cuda'``, from ``--backend``."""
    return BACKENDS[request.config.getoption("--backend")]


@pytest.fixture
def xp(device):
    """The array module (numpy or cupy) of ``device``."""
    return backend.array_module_for(device)
