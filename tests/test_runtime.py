"""npgan.runtime is opt-in: ``import npgan`` loads none of it and changes no process-wide setting;
``npgan.runtime.enable()`` (called by the ``npgan`` command, ``Trainer.train()`` and the benchmarks) switches
the malloc policy and the BLAS thread policy on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_memory import faults_per_round

import npgan
import npgan.viz
from npgan import backend, runtime
from npgan.gan import TrainConfig, Trainer
from npgan.runtime import memory, threads

ROOT = Path(__file__).resolve().parents[1]


def python(code, **env):
    """Run ``code`` in a fresh interpreter with this tree first on the path; the finished process."""
    environ = {k: v for k, v in os.environ.items() if k not in ("NPGAN_MALLOC", "NPGAN_NUM_THREADS")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=120)


@pytest.fixture
def runtime_off():
    """The BLAS thread policy off for the test, and put back as it was after it."""
    hook = backend.gemm_hook()
    runtime.disable()
    yield
    backend.set_gemm_hook(hook)


# What a plain import loads and does: printed as JSON by a fresh interpreter, after a matrix product with a
# gradient (MatMul forward and backward), so the product's path is covered too.
IMPORT_ONLY = """
import json, sys
import npgan, npgan.functional, npgan.nn, npgan.optim
from npgan import backend
a = npgan.randn(64, 32, requires_grad=True)
(a @ npgan.randn(32, 16)).sum().backward()
print(json.dumps({
    "runtime_modules": sorted(m for m in sys.modules if m.startswith("npgan.runtime")),
    "gemm_hook": repr(backend.gemm_hook()),
    "threadpoolctl_loaded": "threadpoolctl" in sys.modules,
}))
"""


def test_importing_npgan_and_its_engine_loads_no_runtime_module_and_installs_no_hook():
    result = python(IMPORT_ONLY)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"runtime_modules": [], "gemm_hook": "None", "threadpoolctl_loaded": False}


def test_a_bad_npgan_malloc_no_longer_breaks_the_import_but_enable_refuses_it_naming_the_variable():
    result = python("import npgan; print('imported')", NPGAN_MALLOC="bogus")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"
    result = python("import npgan.runtime; npgan.runtime.enable()", NPGAN_MALLOC="bogus")
    assert result.returncode != 0
    assert "ValueError: NPGAN_MALLOC='bogus': expected one of tuned, system" in result.stderr


def test_a_bad_npgan_num_threads_is_refused_by_enable_before_any_product():
    result = python("import npgan.runtime; npgan.runtime.enable()", NPGAN_NUM_THREADS="two")
    assert result.returncode != 0
    assert "NPGAN_NUM_THREADS must be a positive number of threads or 'auto', got 'two'" in result.stderr


@pytest.mark.skipif(memory._glibc() is None, reason="the malloc policy tunes glibc's malloc only")
def test_malloc_is_left_as_the_c_library_set_it_until_enable_is_called():
    faults = {mode: faults_per_round(None, mode) for mode in ("import", "enable")}
    assert faults["import"] > 100, faults  # 2 MB = 512 pages a round, faulted in again: glibc's own behaviour
    assert faults["enable"] < 5, faults


def test_enable_installs_the_thread_policy_as_the_gemm_hook_once_and_says_what_is_on(runtime_off):
    assert backend.gemm_hook() is None and runtime.enabled()["blas_threads"] is False
    on = runtime.enable(malloc=False)
    assert on["blas_threads"] is True and backend.gemm_hook() is threads.before_gemm
    assert runtime.enable(malloc=False) == on  # again: nothing changes
    assert runtime.disable()["blas_threads"] is False and backend.gemm_hook() is None


def test_products_call_the_hook_on_host_arrays_with_their_sizes(runtime_off, monkeypatch):
    calls = []
    backend.set_gemm_hook(lambda m, k, n: calls.append((m, k, n)))
    x, w = npgan.randn(5, 3, requires_grad=True), npgan.randn(3, 4, requires_grad=True)
    (x @ w).sum().backward()
    assert calls[0] == (5, 3, 4)  # forward
    assert sorted(calls[1:]) == sorted([(5, 4, 3), (3, 5, 4)])  # x's and w's gradients
    with pytest.raises(TypeError, match="set_gemm_hook: hook must be a function"):
        backend.set_gemm_hook(3)


@pytest.mark.gpu
def test_products_of_device_arrays_never_call_the_hook(runtime_off):
    calls = []
    backend.set_gemm_hook(lambda m, k, n: calls.append((m, k, n)))
    x = npgan.randn(5, 3, device="cuda")
    y = x @ npgan.randn(3, 4, device="cuda")
    assert y.device == "cuda" and calls == []


def test_trainer_train_switches_the_runtime_on(runtime_off, tmp_path, monkeypatch):
    monkeypatch.setattr(npgan.viz, "plot_losses", lambda *args, **kwargs: None)  # matplotlib is slow to import
    config = TrainConfig(model="gan", dataset="ring8", hidden=8, nz=4, batch_size=16, steps=1, metrics=False,
                         num_samples=4, sample_every=10**6, out=str(tmp_path / "run"))
    trainer = Trainer(config, progress=False)
    assert backend.gemm_hook() is None  # building the nets does not switch it on
    trainer.train()
    assert backend.gemm_hook() is threads.before_gemm


def cli(*args, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("NPGAN_MALLOC", "NPGAN_NUM_THREADS")}
    environ.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-m", "npgan.cli", *args], env=environ, capture_output=True, text=True,
                          timeout=120)


def test_npgan_info_reports_the_policies_the_command_switched_on():
    result = cli("info")
    assert result.returncode == 0, result.stderr
    policy = next(line for line in result.stdout.splitlines() if "BLAS thread policy:" in line)
    assert "off" not in policy
    if threads.blas_libraries():
        assert "multiply-adds on 1 BLAS thread" in policy or "threadpoolctl" in policy
    memory_line = next(line for line in result.stdout.splitlines() if "memory:" in line)
    if memory._glibc() is not None:
        assert "glibc malloc keeps freed memory" in memory_line
    result = cli("info", NPGAN_MALLOC="system", NPGAN_NUM_THREADS="1")
    assert "memory: malloc as the C library set it (NPGAN_MALLOC=system)" in result.stdout
    if threads.blas_libraries():
        assert "every matrix product on 1 BLAS thread(s)" in result.stdout


def test_the_command_refuses_a_bad_npgan_malloc_with_one_line_naming_it():
    result = cli("info", NPGAN_MALLOC="fast")
    assert result.returncode == 2
    assert result.stderr.strip() == "npgan: error: NPGAN_MALLOC='fast': expected one of tuned, system"
