"""npgan's BLAS thread policy (npgan/runtime/threads.py): small products on one thread, larger ones on the CPUs other
processes leave free, an override, clear errors."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import npgan
from npgan import backend
from npgan.runtime import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture
def fresh_policy(monkeypatch):
    """A policy read afresh from the environment and installed as the gemm hook (as ``npgan.runtime.enable()``
    does), and the process's own one (its hook, BLAS threads) restored after the test."""
    saved = dict(vars(threads._State))
    hook = backend.gemm_hook()
    blas_before = [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]
    monkeypatch.setattr(threads._State, "ready", False)
    monkeypatch.setattr(threads._State, "fixed", None)
    monkeypatch.setattr(threads._State, "current", None)
    for key, value in dict(next_look=0.0, last=None, free=None, readable=True).items():
        monkeypatch.setattr(threads._Load, key, value)
    threads.install()
    yield threads
    backend.set_gemm_hook(hook)
    for key, value in saved.items():
        if not key.startswith("__"):
            setattr(threads._State, key, value)
    threadpoolctl.threadpool_limits(limits=blas_before[0] if blas_before else None, user_api="blas")


def blas_threads():
    return [p["num_threads"] for p in threadpoolctl.threadpool_info() if p["user_api"] == "blas"]


def test_without_a_view_of_the_load_small_products_get_one_thread_and_large_ones_every_thread(fresh_policy,
                                                                                              monkeypatch):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    threads._setup()
    monkeypatch.setattr(threads._State, "max_threads", 4)
    monkeypatch.setattr(threads._Load, "readable", False)  # no /proc/stat (not Linux)
    assert threads.threads_for(256, 256, 256) == 1  # a toy MLP's layer at batch 256: 2^24 multiply-adds
    assert threads.threads_for(128, 1024, 2048) == 4  # a dcgan-32 convolution's GEMM
    assert threads.threads_for(1, 1, threads.BLIND_SMALL_GEMM_MACS) == 4


@pytest.mark.parametrize("free, expected", [(4.0, 4), (3.8, 4), (3.7, 3), (2.0, 2), (1.2, 1), (0.0, 1), (9.0, 4)])
def test_larger_products_get_the_cpus_other_processes_leave_free(fresh_policy, monkeypatch, free, expected):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    threads._setup()
    monkeypatch.setattr(threads._State, "max_threads", 4)
    monkeypatch.setattr(threads, "free_cpus", lambda: free)
    assert threads.threads_for(256, 256, 256) == expected  # 2^24: a toy layer, on every free CPU
    assert threads.threads_for(128, 1024, 2048) == expected
    assert threads.threads_for(256, 16, 256) == 1  # 2^20: a second thread only slows it down
    assert threads.threads_for(1, 1, threads.SMALL_GEMM_MACS - 1) == 1


def fake_proc_stat(path, busy_ticks, idle_ticks=1000):
    """A /proc/stat with CPUs 0-3, each with ``busy_ticks[i]`` ticks split over user, system and steal."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for i, busy in enumerate(busy_ticks):
        user, system, steal = busy - busy // 2, busy // 4, busy // 2 - busy // 4
        lines.append(f"cpu{i} {user} 0 {system} {idle_ticks} 7 0 0 {steal} 0 0")
    path.write_text("\n".join(lines + ["intr 1 2 3", "ctxt 99"]) + "\n")


def test_the_load_is_what_other_processes_took_on_this_processs_cpus(fresh_policy, monkeypatch, tmp_path):
    stat = tmp_path / "stat"
    monkeypatch.setattr(threads, "PROC_STAT", str(stat))
    monkeypatch.setattr(threads._Load, "cpus", frozenset({0, 2}))  # the affinity: CPUs 1 and 3 are someone else's
    tick = 1.0 / (threads.os.sysconf("SC_CLK_TCK") if hasattr(threads.os, "sysconf") else 100)
    own = [5.0]
    monkeypatch.setattr(threads.time, "process_time", lambda: own[0])
    fake_proc_stat(stat, [100, 100, 100, 100])
    threads._look(10.0)
    assert threads._Load.free is None  # one look is no window yet
    busy_now = 100 + round(1.5 / tick)  # each of CPUs 0 and 2: 1.5 s busy in the 2 s window, 3 s in all
    fake_proc_stat(stat, [busy_now, 100 + round(2 / tick), busy_now, 100 + round(2 / tick)])
    own[0] = 5.0 + 2.0  # of which this process took 2 s (both of its threads busy for the window)
    threads._look(12.0)
    assert threads._Load.free == pytest.approx(2 - (3.0 - 2.0) / 2.0)  # others: 0.5 CPU; CPUs 1, 3 ignored
    assert threads._Load.next_look == pytest.approx(12.0 + threads.LOAD_WINDOW)


def test_an_unreadable_proc_stat_falls_back_to_the_size_rule(fresh_policy, monkeypatch, tmp_path):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.setattr(threads, "PROC_STAT", str(tmp_path / "missing"))
    threads._setup()
    monkeypatch.setattr(threads._State, "max_threads", 2)
    assert threads.free_cpus() is None and threads._Load.readable is False
    assert threads.threads_for(256, 256, 256) == 1
    assert threads.threads_for(128, 1024, 2048) == 2
    # describe() speaks of the load only when there are BLAS pools to set; give it one whatever this machine has
    monkeypatch.setattr(threads._State, "pools", [object()])
    assert "1 BLAS thread, larger ones on 2 (the load is not readable here" in threads.describe()


def test_a_proc_stat_in_an_unknown_format_falls_back_to_the_size_rule(fresh_policy, monkeypatch, tmp_path):
    stat = tmp_path / "stat"
    stat.write_text("cpu  1 2 3\ncpu0 1 2 3\n")  # too few fields
    monkeypatch.setattr(threads, "PROC_STAT", str(stat))
    assert threads.free_cpus() is None and threads._Load.readable is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the load is read from Linux's /proc/stat")
def test_a_busy_process_beside_this_one_takes_a_cpu_off_the_free_ones(fresh_policy):
    threads._setup()
    cpus = len(threads._Load.cpus)
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 3\nwhile time.time() < end: pass"])

    def child_cpu_seconds():  # utime + stime of the child, fields 14 and 15 of /proc/PID/stat
        fields = open(f"/proc/{busy.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / threads._ticks_per_second()

    try:
        time.sleep(0.3)  # the child is spinning
        start, child_start = time.monotonic(), child_cpu_seconds()
        threads._look(start)
        time.sleep(1.0)
        end, child_end = time.monotonic(), child_cpu_seconds()
        threads._look(end)
    finally:
        busy.kill()
        busy.wait()
    child = (child_end - child_start) / (end - start)  # CPUs the child used in the window
    if child < 0.3:
        pytest.skip(f"the child ran {child:.2f} CPU of the window; the machine is too busy for the window to tell")
    # Whatever else runs on the machine, the child's CPU time is in what the others took, so the free CPUs are at
    # most the CPUs less the child's share (slack: a clock tick at each end of both readings, per CPU).
    slack = 4 * cpus / threads._ticks_per_second() / (end - start)
    assert threads._Load.free <= cpus - child + slack


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


def test_without_the_runtime_a_product_leaves_blas_threads_alone(fresh_policy):
    if not blas_threads():
        pytest.skip("threadpoolctl finds no BLAS library")
    x = npgan.randn(8, 8)
    threads.set_num_threads("auto")
    npgan.ops.core.gemm(x.data, x.data)  # installed: 512 multiply-adds go to one thread
    assert blas_threads()[0] == 1
    threads.uninstall()
    assert backend.gemm_hook() is None and "off" in threads.describe()
    threadpoolctl.threadpool_limits(limits=2, user_api="blas")
    if blas_threads()[0] != 2:
        pytest.skip("threadpoolctl cannot set this BLAS to 2 threads, so a change could not be seen")
    threads._State.current = None  # the policy, were it still installed, would now set 1 on the next product
    (x @ x).sum()  # MatMul without the runtime: BLAS keeps the count it has
    assert blas_threads()[0] == 2


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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the load is read from Linux's /proc/stat")
def test_refresh_load_takes_a_fresh_window_of_the_given_length(fresh_policy, monkeypatch):
    threads._setup()
    looks = []
    real_look = threads._look
    monkeypatch.setattr(threads, "_look", lambda now: (looks.append(now), real_look(now)))
    free = threads.refresh_load(0.05)
    assert len(looks) == 2 and looks[1] - looks[0] >= 0.05  # two looks, the window between them
    assert free == threads._Load.free and 0.0 <= free <= len(threads._Load.cpus)


def test_blas_libraries_reports_numpys_blas_and_its_current_thread_count(fresh_policy):
    threads.set_num_threads(1)
    npgan.ops.core.gemm(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))  # the policy sets BLAS to 1
    libraries = threads.blas_libraries()
    assert libraries, "NumPy's BLAS not found"
    assert set(libraries[0]) == {"internal_api", "version", "architecture", "num_threads", "threading_layer"}
    assert [lib["num_threads"] for lib in libraries] == blas_threads() == [1] * len(libraries)


@pytest.mark.parametrize("files, expected", [
    ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2, docker run --cpus 1.5
    ({"cpu.max": "max 100000\n"}, None),  # v2, no quota
    ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, no quota
    ({"cpu.max": "garbled\n"}, None),
    ({}, None),  # no control group files at all
])
def test_cpu_quota_reads_a_containers_cgroup_v2_or_v1_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert threads.cpu_quota(str(tmp_path)) == expected


def test_a_cpu_quota_caps_the_threads_a_product_may_take(fresh_policy, monkeypatch, tmp_path):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(threads, "CGROUP_ROOT", str(tmp_path))
    assert threads.usable_cpus() == 8
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs: a second thread would only be throttled
    assert threads.usable_cpus() == 1
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: still one thread
    assert threads.usable_cpus() == 1
    (tmp_path / "cpu.max").write_text("200000 100000\n")
    threads._setup()
    assert threads._State.max_threads == min(2, max(p["num_threads"] for p in threads.blas_libraries()))
    monkeypatch.setattr(threads._Load, "readable", False)
    assert threads.threads_for(128, 1024, 2048) <= 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the load is read from Linux's /proc/stat")
def test_describe_names_a_containers_cpu_quota(fresh_policy, monkeypatch, tmp_path):
    monkeypatch.delenv(threads.ENV_VAR, raising=False)
    monkeypatch.setattr(threads, "CGROUP_ROOT", str(tmp_path))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # read once, when the policy first looks
    assert "at most 1, the container's CPU quota being 1.5" in threads.describe()
