"""The CuPy stand-in (tests/fakecupy) keeps CuPy's rules, so the device tests it runs can fail as on a GPU."""

import io
import re

import numpy as np
import pytest

import npgan
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
