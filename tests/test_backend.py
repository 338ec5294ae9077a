"""The array seam (npgan/backend.py) and npgan's dtype rules: float32 by default, never silent float64."""

import numpy as np
import pytest

import npgan
import npgan.functional as F
from npgan import backend

# -- the array module ----------------------------------------------------------------------------------


def test_get_array_module_returns_numpy_for_numpy_arrays():
    assert backend.get_array_module(np.zeros(3)) is np
    assert backend.get_array_module(np.zeros(3), np.ones(2)) is np


def test_get_array_module_of_a_device_array_is_the_device_module(xp):
    assert backend.get_array_module(xp.zeros(3)) is xp


def test_to_device_cpu_returns_a_numpy_array_with_the_same_values():
    a = np.arange(6.0).reshape(2, 3)
    moved = backend.to_device(a, "cpu")
    assert isinstance(moved, np.ndarray)
    np.testing.assert_array_equal(moved, a)


def test_to_device_cuda_without_cupy_raises_runtime_error_saying_what_to_install(monkeypatch):
    monkeypatch.setattr(backend, "_cupy", False)  # as if the import of cupy had failed
    monkeypatch.setattr(backend, "_cupy_error", ImportError("No module named 'cupy'"))
    with pytest.raises(RuntimeError, match=r"pip install .*cupy"):
        backend.to_device(np.zeros(3), "cuda")


def test_to_device_cuda_on_this_machine_either_works_or_explains_itself():
    if backend.cupy_available():
        assert backend.device_of(backend.to_device(np.zeros(3), "cuda")) == "cuda"
    else:
        with pytest.raises(RuntimeError, match="(?i)cupy"):
            backend.to_device(np.zeros(3), "cuda")


@pytest.mark.parametrize("name", ["gpu", "tpu", "", "CPU"])
def test_to_device_with_an_unknown_device_name_raises_value_error_listing_devices(name):
    with pytest.raises(ValueError, match="'cpu', 'cuda'"):
        backend.to_device(np.zeros(3), name)


@pytest.mark.parametrize("name", ["cuda:0", "cuda:1"])
def test_a_gpu_index_is_refused_with_the_way_to_pick_that_gpu(name):
    with pytest.raises(ValueError, match=f"CUDA_VISIBLE_DEVICES={name[5:]} and pass device='cuda'"):
        backend.check_device(name)
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES"):
        npgan.zeros(2, device=name)


def test_scatter_add_sums_values_at_repeated_indices(xp):
    target = xp.zeros(4, dtype=xp.float32)
    backend.scatter_add(target, xp.asarray([0, 2, 2, 2, 3]), xp.asarray([1.0, 1.0, 2.0, 3.0, 5.0], dtype=xp.float32))
    np.testing.assert_array_equal(backend.asnumpy(target), [1.0, 0.0, 6.0, 5.0])


def test_as_strided_gives_a_sliding_window_view_without_copying(xp):
    a = xp.arange(6, dtype=xp.float32)
    step = a.strides[0]
    windows = backend.as_strided(a, shape=(4, 3), strides=(step, step))
    expected = [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]]
    np.testing.assert_array_equal(backend.asnumpy(windows), expected)
    if xp is np:
        assert np.shares_memory(a, windows)


def test_manual_seed_makes_randn_and_rand_reproducible():
    npgan.manual_seed(123)
    first = (npgan.randn(3, 4).numpy(), npgan.rand(5).numpy())
    npgan.manual_seed(123)
    second = (npgan.randn(3, 4).numpy(), npgan.rand(5).numpy())
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    npgan.manual_seed(124)
    assert not np.array_equal(npgan.randn(3, 4).numpy(), first[0])


def test_rng_state_can_be_saved_and_restored():
    npgan.manual_seed(0)
    state = npgan.get_rng_state()
    a = npgan.randn(4).numpy()
    npgan.set_rng_state(state)
    np.testing.assert_array_equal(npgan.randn(4).numpy(), a)


def test_randn_on_the_device_matches_the_cpu_samples_for_the_same_seed(device):
    npgan.manual_seed(7)
    on_device = npgan.randn(2, 3, device=device)
    npgan.manual_seed(7)
    on_cpu = npgan.randn(2, 3)
    assert on_device.device == device
    np.testing.assert_array_equal(on_device.numpy(), on_cpu.numpy())


# -- float32 by default ---------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: npgan.tensor([1.0]),
    lambda: npgan.tensor(1.5),
    lambda: npgan.tensor([[1.0, 2.0], [3.0, 4.0]]),
    lambda: npgan.zeros(2, 3),
    lambda: npgan.ones(2),
    lambda: npgan.full((2,), 0.5),
    lambda: npgan.randn(2, 3),
    lambda: npgan.rand(4),
], ids=["tensor-list", "tensor-float", "tensor-nested", "zeros", "ones", "full", "randn", "rand"])
def test_new_float_tensors_are_float32_by_default(make):
    assert make().dtype == np.float32


def test_tensor_keeps_the_dtype_of_a_numpy_array_and_ints_stay_ints():
    assert npgan.tensor(np.zeros(2, dtype=np.float64)).dtype == np.float64
    assert npgan.tensor([1, 2]).dtype.kind == "i"


def test_tensor_copies_its_input_array():
    a = np.zeros(3, dtype=np.float32)
    t = npgan.tensor(a)
    a[0] = 1.0
    assert t.numpy()[0] == 0.0


# Python scalars (and NumPy scalars) take the dtype of the tensor they meet: float32 stays float32.
SCALAR_OPS = {
    "x*2.0": lambda x: x * 2.0,
    "2.0*x": lambda x: 2.0 * x,
    "x/3.0": lambda x: x / 3.0,
    "2.0/x": lambda x: 2.0 / x,
    "x**2": lambda x: x ** 2,
    "x**0.5": lambda x: (x * x) ** 0.5,
    "x**np.float64": lambda x: x ** np.float64(2.0),
    "2.0**x": lambda x: 2.0 ** x,
    "x+1": lambda x: x + 1,
    "1+x": lambda x: 1 + x,
    "x-0.5": lambda x: x - 0.5,
    "0.5-x": lambda x: 0.5 - x,
    "np.float64*x": lambda x: np.float64(2.0) * x,
    "x*np.float64": lambda x: x * np.float64(2.0),
    "neg": lambda x: -x,
    "exp": F.exp,
    "log": lambda x: F.log(F.abs(x) + 0.1),
    "sqrt": lambda x: F.sqrt(F.abs(x)),
    "abs": F.abs,
    "clip": lambda x: F.clip(x, -0.5, 0.5),
    "clip-np.float64": lambda x: F.clip(x, np.float64(-0.5), np.float64(0.5)),
    "maximum": lambda x: F.maximum(x, 0.0),
    "minimum": lambda x: F.minimum(x, 0.0),
    "where": lambda x: F.where(x.data > 0, x, 0.0),
    "pad": lambda x: F.pad(x, 1, value=0.5),
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "softplus": F.softplus,
    "log_sigmoid": F.log_sigmoid,
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
    "sum": lambda x: x.sum(),
    "sum-axis": lambda x: x.sum(axis=1),
    "mean": lambda x: x.mean(),
    "mean-axis": lambda x: x.mean(axis=0, keepdims=True),
    "max": lambda x: x.max(),
    "min": lambda x: x.min(axis=1),
    "var": lambda x: x.var(),
    "std": lambda x: x.std(axis=0),
    "matmul": lambda x: x @ x.T,
    "bce-logits": lambda x: F.binary_cross_entropy_with_logits(x, 1.0),
    "bce": lambda x: F.binary_cross_entropy(F.sigmoid(x), 0.0),
    "mse": lambda x: F.mse_loss(x, 0.25),
    "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 3, 1])),
}


@pytest.mark.parametrize("op", list(SCALAR_OPS.values()), ids=list(SCALAR_OPS))
def test_python_scalars_never_promote_float32_outputs_or_gradients_to_float64(op):
    npgan.manual_seed(0)
    x = npgan.randn(3, 4, requires_grad=True)
    y = op(x)
    assert y.dtype == np.float32, f"output is {y.dtype}"
    y.sum().backward()
    assert x.grad is not None and x.grad.dtype == np.float32, f"gradient is {x.grad.dtype}"


def test_second_order_gradients_of_float32_stay_float32():
    x = npgan.randn(3, 4, requires_grad=True)
    (g,) = npgan.grad((F.tanh(x * 0.5) ** 2 / 3.0).sum(), [x], create_graph=True)
    (gg,) = npgan.grad(((g * g).sum() + 1.0) ** 0.5, [x])
    assert g.dtype == np.float32 and gg.dtype == np.float32


def test_inside_random_source_npgans_draws_come_from_the_given_generator_and_its_state_is_untouched():
    npgan.manual_seed(3)
    state = npgan.get_rng_state()
    other = np.random.default_rng(11)
    with backend.random_source(other) as source:
        assert source is other and backend.host_rng() is other
        inside = (npgan.randn(2, 3).numpy(), F.dropout(npgan.ones(4, 5), 0.5).numpy())
        assert npgan.get_rng_state() == state  # the host generator did not move
        own = backend.random_normal((2,), rng=np.random.default_rng(5))  # a draw given its rng keeps it
    np.testing.assert_array_equal(own, np.random.default_rng(5).standard_normal(2, dtype=np.float32))
    expected = np.random.default_rng(11)
    np.testing.assert_array_equal(inside[0], expected.standard_normal((2, 3), dtype=np.float32))
    np.testing.assert_array_equal(inside[1], (expected.random((4, 5), dtype=np.float32) >= 0.5) * 2.0)
    assert backend.host_rng() is not other  # outside the block: the host generator again
    npgan.set_rng_state(state)
    first = npgan.randn(3).numpy()
    npgan.manual_seed(3)
    np.testing.assert_array_equal(first, npgan.randn(3).numpy())
