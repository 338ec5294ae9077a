"""npgan's BLAS thread policy (npgan/threads.py): small products on one thread, an override, clear errors."""

import numpy as np
import pytest

import npgan
from npgan import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture
def fresh_policy(monkeypatch):
    """A policy read afresh from the environment, and the process's own one (and BLAS threads) restored."""
    saved = dict(vars(threads._State))
    blas_before = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    monkeypatch.setattr(threads._State, "ready", False)
    monkeypatch.setattr(threads._State, "fixed", None)
    monkeypatch.setattr(threads._State, "current", None)
    yield threads
    for key, value in saved.items():
        if not key.startswith("__"):
            setattr(threads._State, key, value)
    threadpoolctl.threadpool_limits(limits=blas_before[0] if blas_before else None, user_api="blas")


def blas_threads():
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_small_products_get_one_thread_and_large_ones_every_thread_blas_started_with(fresh_policy, monkeypatch):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    threads._setup()
    monkeypatch.setattr(threads._State, "max_threads", 4)
    assert threads.threads_for(256, 256, 256) == 1  # a toy MLP's layer at batch 256: 2^24 multiply-adds
    assert threads.threads_for(128, 1024, 2048) == 4  # a dcgan-32 convolution's GEMM
    assert threads.threads_for(1, 1, threads.SMALL_GEMM_MACS) == 4


def test_npgan_num_threads_fixes_the_count_of_every_product(fresh_policy, monkeypatch):
    monkeypatch.setenv(threads.ENV_VAR, "3")
    assert threads.threads_for(2, 2, 2) == 3
    assert threads.threads_for(4096, 4096, 4096) == 3
    assert "every matrix product on 3" in threads.describe()


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_npgan_num_threads_is_an_error_naming_the_variable(fresh_policy, monkeypatch, value):
    monkeypatch.setenv(threads.ENV_VAR, value)
    with pytest.raises(ValueError, match="NPGAN_NUM_THREADS must be a positive number of threads or 'auto'"):
        threads.threads_for(2, 2, 2)


def test_a_product_sets_blas_threads_only_when_the_count_changes(fresh_policy, monkeypatch):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    if not blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    x = npgan.randn(8, 8)
    threads.set_num_threads(2)
    npgan.ops.core.gemm(x.data, x.data)
    assert blas_threads()[0] == 2
    calls, real_set = [], threads._set
    threads._set = lambda count: calls.append(count)
    try:
        npgan.ops.core.gemm(x.data, x.data)
    finally:
        threads._set = real_set
    assert calls == []  # already 2: no ctypes call
    threads.set_num_threads("auto")
    npgan.ops.core.gemm(x.data, x.data)  # 512 multiply-adds: one thread under the size rule
    assert blas_threads()[0] == 1


def test_set_num_threads_rejects_a_bad_count(fresh_policy):
    with pytest.raises(ValueError, match=r"set_num_threads\(count\)"):
        threads.set_num_threads(0)


def test_products_give_the_same_values_under_any_thread_count(fresh_policy):
    a = np.random.default_rng(0).standard_normal((300, 200)).astype(np.float32)
    threads.set_num_threads(1)
    one = npgan.ops.core.gemm(a, a.T)
    threads.set_num_threads(2)
    two = npgan.ops.core.gemm(a, a.T)
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-4)
