"""The CuPy stand-in (tests/fakecupy) keeps CuPy's rules, so the device tests it runs can fail as on a GPU."""

import io
import json
import os
import re

import numpy as np
import pytest

import npgan
import npgan.functional as F
from npgan import backend

IMPLICIT = re.escape("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy "
                     "array explicitly.")


def test_device_arrays_refuse_implicit_conversion_to_numpy(fake_cupy):
    x = fake_cupy.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(TypeError, match=IMPLICIT):
        np.asarray(x)
    with pytest.raises(TypeError, match=IMPLICIT):
        np.savez(io.BytesIO(), x=x)
    with pytest.raises(TypeError, match=IMPLICIT):
        np.array([x, x])
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with pytest.raises(TypeError, match=IMPLICIT):
        plt.imshow(x)
    plt.close("all")


def test_device_arrays_refuse_mixing_with_numpy_arrays(fake_cupy):
    x, host = fake_cupy.ones((3,), dtype=np.float32), np.ones(3, dtype=np.float32)
    for mixed in (lambda: x + host, lambda: host * x, lambda: fake_cupy.concatenate([x, host]),
                  lambda: np.add(x, host), lambda: x[np.array([0, 1])]):
        with pytest.raises(TypeError, match="Unsupported type"):
            mixed()
    assert isinstance(x * np.float32(2) + 1.0, fake_cupy.ndarray)  # scalars, NumPy's included, are fine


def test_reductions_and_integer_indexing_give_0d_device_arrays(fake_cupy):
    x = fake_cupy.asarray(np.arange(4, dtype=np.float32))
    for value in (x.sum(), x.max(), fake_cupy.mean(x), x[2], np.sum(x)):
        assert isinstance(value, fake_cupy.ndarray) and value.shape == ()
    assert float(x.sum()) == 6.0


def test_only_explicit_calls_leave_the_device_and_each_is_counted(fake_cupy):
    x = fake_cupy.asarray(np.arange(3, dtype=np.float32))
    assert fake_cupy.COUNTS.to_device == 1
    y = (x * 2.0).get()
    z = fake_cupy.asnumpy(x)
    assert type(y) is np.ndarray and type(z) is np.ndarray and y.tolist() == [0.0, 2.0, 4.0]
    assert float(x[1]) == 1.0 and x.tolist() == [0.0, 1.0, 2.0]
    assert fake_cupy.COUNTS.to_host == 4
    x[:] = np.ones(3, dtype=np.float32)  # CuPy copies a host array in through a full slice only
    assert fake_cupy.COUNTS.to_device == 2
    with pytest.raises(TypeError):
        x[1:] = np.ones(2, dtype=np.float32)


def test_cupy_only_calls_npgan_uses_exist(fake_cupy):
    import cupyx

    target = fake_cupy.zeros(4, dtype=np.float32)
    cupyx.scatter_add(target, fake_cupy.asarray(np.array([0, 0, 3])), fake_cupy.ones(3, dtype=np.float32))
    assert target.get().tolist() == [2.0, 0.0, 0.0, 1.0]
    window = fake_cupy.lib.stride_tricks.as_strided(fake_cupy.arange(6), shape=(2, 3), strides=(24, 8))
    assert isinstance(window, fake_cupy.ndarray) and window.get().tolist() == [[0, 1, 2], [3, 4, 5]]
    fake_cupy.cuda.get_current_stream().synchronize()
    assert fake_cupy.cuda.runtime.getDeviceCount() == 1


def test_npgan_runs_on_the_stand_in_as_device_cuda(fake_cupy):
    assert backend.cupy_available()
    t = npgan.randn(2, 3, device="cuda", requires_grad=True)
    assert t.device == "cuda" and isinstance(t.data, fake_cupy.ndarray)
    (t * t).sum().backward()
    assert isinstance(t.grad.data, fake_cupy.ndarray)
    np.testing.assert_allclose(t.grad.numpy(), 2 * t.numpy())
    assert backend.get_array_module(t.data) is fake_cupy


# -- held to real CuPy's API: names, submodules and keywords it lacks are refused --------------------------------

@pytest.mark.parametrize("name", ["busday_count", "is_busday", "nanpercentile", "fromregex", "errstate",
                                  "seterr", "insert", "geomspace", "spacing", "ma", "char", "rec"])
def test_names_real_cupy_lacks_are_refused(fake_cupy, name):
    import fakecupy

    assert name not in fakecupy.API["modules"]["cupy"]
    with pytest.raises(AttributeError, match=rf"cupy has no attribute '{name}' \(real CuPy \S+ lacks it\)"):
        getattr(fake_cupy, name)
    assert not hasattr(fake_cupy, name)


@pytest.mark.parametrize("module, name", [("linalg", "matrix_transpose_typo"), ("random", "default_rng_typo"),
                                          ("random", "MT19937"), ("fft", "fft_typo")])
def test_names_real_cupy_lacks_are_refused_in_submodules(fake_cupy, module, name):
    with pytest.raises(AttributeError, match=rf"cupy\.{module} has no attribute '{name}'"):
        getattr(getattr(fake_cupy, module), name)


def test_numpy_only_names_are_refused_even_though_numpy_has_them(fake_cupy):
    import fakecupy

    numpy_only = [n for n in dir(np) if not n.startswith("_") and callable(getattr(np, n))
                  and n not in fakecupy.API["modules"]["cupy"]]
    assert "busday_count" in numpy_only and len(numpy_only) > 10
    for name in numpy_only:
        with pytest.raises(AttributeError, match=f"'{name}'"):
            getattr(fake_cupy, name)


def test_numpy_functions_on_device_arrays_need_a_cupy_counterpart(fake_cupy):
    x = fake_cupy.asarray(np.array([1, 2], dtype="datetime64[D]").astype(np.int64))
    with pytest.raises(TypeError, match="no implementation found for 'numpy.busday_count'"):
        np.busday_count(x, x)
    assert float(np.sum(fake_cupy.ones(3))) == 3.0  # one CuPy has goes through


def test_keywords_real_cupy_lacks_are_refused(fake_cupy):
    x = fake_cupy.ones((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match=r"cupy\.sum\(\) got an unexpected keyword argument 'where' "
                                        r"\(real CuPy \S+ lacks it\)"):
        fake_cupy.sum(x, where=x > 0)
    with pytest.raises(TypeError, match="unexpected keyword argument 'initial'"):
        np.sum(x, initial=1.0)  # NumPy's own function on a device array: CuPy's keywords apply too
    with pytest.raises(TypeError, match="unexpected keyword argument 'like'"):
        fake_cupy.zeros(3, like=x)
    with pytest.raises(TypeError, match=r"cupy\.add\(\) got an unexpected keyword argument 'where'"):
        fake_cupy.add(x, x, where=x > 0)  # a ufunc: CuPy documents out, dtype, casting
    assert fake_cupy.sum(x, axis=0, keepdims=True).shape == (1, 3)
    assert fake_cupy.add(x, x, dtype=np.float32, casting="same_kind").shape == (2, 3)


def test_ndarray_attributes_real_cupy_lacks_are_refused(fake_cupy):
    x = fake_cupy.ones(3)
    for name in ("ptp", "itemset", "tofile", "byteswap"):
        if name in __import__("fakecupy").API["ndarray"]:
            continue
        with pytest.raises(AttributeError, match=rf"cupy\.ndarray has no attribute '{name}'"):
            getattr(x, name)
    assert float(x.sum()) == 3.0


def test_everything_the_stand_in_defines_itself_exists_in_real_cupy(fake_cupy):
    import cupyx
    import fakecupy

    api = fakecupy.API["modules"]
    for name in ("ndarray", "asarray", "array", "asnumpy", "get_array_module", "cuda", "lib", "linalg", "random",
                 "fft", "get_default_memory_pool", "get_default_pinned_memory_pool"):
        assert name in api["cupy"], name
    assert "as_strided" in api["cupy.lib.stride_tricks"] and "scatter_add" in api["cupyx"]
    assert sorted(n for n in dir(cupyx) if not n.startswith("_")) == ["scatter_add"]


def test_the_snapshot_matches_the_installed_cupy():
    """cupy_api.json is what ``python tests/fakecupy/snapshot.py`` reads from real CuPy (skipped without CuPy)."""
    import importlib.util
    import os
    import subprocess
    import sys

    import fakecupy

    here = os.path.dirname(fakecupy.__file__)
    try:
        spec = importlib.util.find_spec("cupy")
    except ValueError:  # the stand-in (no __spec__) is in sys.modules
        spec = None
    if spec is None or (spec.origin or "").startswith(here):
        pytest.skip("CuPy is not installed (pip install cupy-cuda12x): the committed snapshot is used")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FAKECUPY_API")}
    done = subprocess.run([sys.executable, os.path.join(here, "snapshot.py"), "--check"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_allow_list_is_the_installed_cupy_when_there_is_one():
    import fakecupy

    try:
        import importlib.metadata

        version = importlib.metadata.version("cupy-cuda12x")
    except Exception:
        version = None
    with open(os.path.join(os.path.dirname(fakecupy.__file__), "cupy_api.json")) as f:
        snapshot = json.load(f)
    assert fakecupy.API["cupy_version"] == (version or snapshot["cupy_version"])
    assert len(fakecupy.API["modules"]["cupy"]) > 400 and "busday_count" not in fakecupy.API["modules"]["cupy"]


# -- where CuPy's results may differ from NumPy's ------------------------------------------------------------

def test_scatter_add_order_is_shuffled_yet_sums_are_right(fake_cupy, monkeypatch):
    import cupyx
    import fakecupy

    orders = []
    real_add_at = np.add.at

    def recording(a, index, values):
        orders.append(values.copy())
        real_add_at(a, index, values)

    monkeypatch.setattr(fakecupy.numpy, "add", type("add", (), {"at": staticmethod(recording)}))
    rng = np.random.default_rng(0)
    index = rng.integers(0, 5, size=200)
    values = rng.standard_normal((200, 3)).astype(np.float32)
    expected = np.zeros((5, 3), dtype=np.float64)
    for i, v in zip(index, values.astype(np.float64)):
        expected[i] += v
    results = []
    for _ in range(3):
        target = fake_cupy.zeros((5, 3), dtype=np.float32)
        cupyx.scatter_add(target, fake_cupy.asarray(index), fake_cupy.asarray(values))
        results.append(target.get())
        np.testing.assert_allclose(results[-1], expected, rtol=1e-5, atol=1e-5)
    assert len(orders) == 3
    assert not np.array_equal(orders[0], values) and not np.array_equal(orders[0], orders[1])
    assert sorted(map(tuple, orders[0].tolist())) == sorted(map(tuple, values.tolist()))  # a permutation


def test_scatter_add_with_a_tuple_of_indices_and_broadcast_values(fake_cupy):
    import cupyx

    target = fake_cupy.zeros((2, 3), dtype=np.float32)
    rows, cols = fake_cupy.asarray(np.array([0, 1, 1, 0])), fake_cupy.asarray(np.array([2, 0, 0, 2]))
    cupyx.scatter_add(target, (rows, cols), 1.5)
    assert target.get().tolist() == [[0.0, 0.0, 3.0], [3.0, 0.0, 0.0]]


def test_data_is_a_device_pointer_not_host_memory(fake_cupy):
    x = fake_cupy.arange(4, dtype=np.float32)
    pointer = x.data
    assert isinstance(pointer.ptr, int) and pointer.ptr != 0
    with pytest.raises(TypeError):
        memoryview(pointer)
    with pytest.raises(TypeError):
        bytes(pointer)
    with pytest.raises(TypeError):
        np.frombuffer(pointer, dtype=np.float32)


def test_out_of_bounds_integer_indices_are_not_checked_on_the_device(fake_cupy):
    x = fake_cupy.asarray(np.arange(5, dtype=np.float32))
    picked = x[fake_cupy.asarray(np.array([7, -6, 1]))]  # NumPy raises IndexError; CuPy wraps around
    assert picked.get().tolist() == [2.0, 4.0, 1.0]
    x[fake_cupy.asarray(np.array([5]))] = 9.0
    assert x.get().tolist()[0] == 9.0


def test_embedding_range_is_checked_on_the_host_and_not_on_the_device(fake_cupy):
    weight = npgan.randn(3, 2)
    with pytest.raises(ValueError, match=r"indices must be in \[0, 3\)"):
        F.embedding(npgan.tensor([0, 3]), weight)
    on_device = F.embedding(npgan.tensor([0, 3], device="cuda"), weight.to("cuda"))
    assert on_device.shape == (2, 2)  # wraps as CuPy does: a documented limit (docs/USAGE.md)


def test_without_cupy_installed_the_committed_snapshot_is_the_allow_list(monkeypatch):
    import importlib.util

    import fakecupy

    monkeypatch.delenv("FAKECUPY_API", raising=False)
    monkeypatch.delitem(__import__("sys").modules, "cupy", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with open(os.path.join(os.path.dirname(fakecupy.__file__), "cupy_api.json")) as f:
        assert fakecupy._load_api() == json.load(f)


def test_a_child_process_gets_the_same_allow_list(tmp_path):
    import subprocess
    import sys

    import fakecupy

    code = "import cupy, fakecupy, json; print(json.dumps(fakecupy.API, sort_keys=True)); cupy.busday_count"
    done = subprocess.run([sys.executable, "-c", code], env=fakecupy.subprocess_env(), capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert json.loads(done.stdout) == fakecupy.API
    assert "cupy has no attribute 'busday_count'" in done.stderr


def test_every_array_module_name_npgan_spells_exists_in_real_cupy():
    """``xp.<name>`` in npgan's source, also on paths the device tests do not run, is a name real CuPy has."""
    import fakecupy

    root = os.path.dirname(npgan.__file__)
    used = set()
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    used.update(re.findall(r"\bxp\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?", f.read()))
    assert len(used) > 10
    modules = fakecupy.API["modules"]
    missing = [f"xp.{a}" + (f".{b}" if b else "") for a, b in sorted(used)
               if a not in modules["cupy"] or (f"cupy.{a}" in modules and b and b not in modules[f"cupy.{a}"])]
    assert missing == []
