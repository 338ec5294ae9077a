"""Tensor, the graph walk (backward, grad, no_grad) and errors on bad input (npgan/autograd.py)."""

import numpy as np
import pytest

import npgan
import npgan.functional as F
from npgan.nn import Linear

# Gradients below are of small polynomials evaluated in float64: exact up to a few ulps.
TOL = {"rtol": 1e-12, "atol": 1e-12}


def leaf(values):
    return npgan.tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# -- Tensor attributes and conversions -----------------------------------------------------------------


def test_size_is_pytorchs_method_returning_the_shape_and_numel_counts_elements():
    t = npgan.zeros(2, 3, 4)
    assert t.size() == (2, 3, 4) == t.shape
    assert t.size(0) == 2 and t.size(-1) == 4 and t.size(1) == 3
    assert t.numel() == 24 == t.data.size  # NumPy's array.size is the element count
    assert npgan.tensor(5.0).size() == () and npgan.tensor(5.0).numel() == 1


def test_size_rejects_a_dimension_out_of_range_or_not_an_int():
    t = npgan.zeros(2, 3)
    with pytest.raises(IndexError, match="dim 2 is out of range.*2 dimensions"):
        t.size(2)
    with pytest.raises(IndexError, match="dim -3"):
        t.size(-3)
    with pytest.raises(TypeError, match="dim must be an int"):
        t.size(1.0)



def test_tensor_exposes_data_grad_requires_grad_shape_dtype_ndim_device(device, xp):
    t = npgan.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True, device=device)
    assert isinstance(t.data, xp.ndarray)
    assert t.grad is None
    assert t.requires_grad is True
    assert t.shape == (2, 3)
    assert t.dtype == np.float32
    assert t.ndim == 2
    assert t.device == device
    assert t.is_leaf


def test_numpy_returns_a_numpy_array_and_item_a_python_number(device):
    t = npgan.tensor([[1.5, 2.5]], device=device)
    assert isinstance(t.numpy(), np.ndarray)
    np.testing.assert_array_equal(t.numpy(), [[1.5, 2.5]])
    assert type(t[0, 1].item()) is float and t[0, 1].item() == 2.5
    assert type(npgan.tensor(3).item()) is int


def test_item_of_a_tensor_with_several_elements_raises_value_error_with_the_shape():
    with pytest.raises(ValueError, match=r"\(2,\)"):
        npgan.tensor([1.0, 2.0]).item()


def test_to_cpu_keeps_values_and_gradients_flow_back_through_it(device):
    x = npgan.tensor([1.0, 2.0], requires_grad=True, device=device)
    y = x.to("cpu")
    assert y.device == "cpu" and isinstance(y.data, np.ndarray)
    np.testing.assert_array_equal(y.numpy(), [1.0, 2.0])
    (y * y).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_to_dtype_casts_and_the_gradient_comes_back_in_the_original_dtype():
    x = npgan.tensor([1.0, 2.0], requires_grad=True)
    y = x.to(dtype="float64")
    assert y.dtype == np.float64
    (y * 3.0).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_detach_shares_data_but_cuts_the_graph():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    d = y.detach()
    assert d.requires_grad is False and d.creator is None
    assert d.data is y.data
    z = (d * x).sum()
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])  # d is a constant: dz/dx = d


def test_ndarray_times_tensor_is_a_tensor_thanks_to_array_ufunc_none():
    assert npgan.Tensor.__array_ufunc__ is None
    x = leaf([1.0, 2.0])
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, npgan.Tensor)
    assert isinstance(np.array([1.0, 1.0]) + x, npgan.Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])


def test_only_floating_point_tensors_can_require_grad():
    with pytest.raises(TypeError, match="floating"):
        npgan.tensor([1, 2], requires_grad=True)


@pytest.mark.parametrize("bad", ["abc", {"a": 1}, [1.0, "x"], object(), None])
def test_tensor_from_unsupported_data_raises_type_error_saying_what_is_accepted(bad):
    with pytest.raises(TypeError, match="accepts a Tensor, a NumPy/CuPy array, a Python number"):
        npgan.tensor(bad)


# -- backward ------------------------------------------------------------------------------------------


def test_gradient_of_a_node_used_twice_is_the_sum_of_both_paths():
    x = leaf([1.0, -2.0, 3.0])
    y = x * 3.0
    z = (y * y + y).sum()  # dz/dx = 3 (2y + 1)
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * (2.0 * 3.0 * np.array([1.0, -2.0, 3.0]) + 1.0), **TOL)


def test_x_times_x_has_gradient_two_x():
    x = leaf([1.5, -2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -4.0], **TOL)


def test_two_backward_calls_accumulate_into_grad():
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0 + 2.0, 2.0 + 4.0], **TOL)


def test_a_second_backward_adds_into_the_same_grad_array():
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    first = x.grad.data
    (x * x).sum().backward()
    assert x.grad.data is first  # in place, as PyTorch: no new array for each accumulation
    np.testing.assert_allclose(first, [4.0, 6.0], **TOL)


def test_accumulating_into_a_graph_made_grad_leaves_that_graph_alone():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward(create_graph=True)  # x.grad = 2x, a tensor of a recorded graph
    graph_grad = x.grad
    (x * 3.0).sum().backward()
    assert x.grad is not graph_grad
    np.testing.assert_allclose(graph_grad.numpy(), [2.0, 4.0], **TOL)
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0], **TOL)


def test_accumulating_into_a_read_only_or_other_dtype_grad_makes_a_new_array():
    x = leaf([1.0, 2.0])
    x.grad = npgan.Tensor(np.broadcast_to(np.float64(1.0), (2,)))  # read-only
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0], **TOL)
    y = npgan.tensor([1.0, 2.0], requires_grad=True)  # float32
    y.grad = npgan.Tensor(np.array([0.5, 0.5]))  # float64: the sum is float64, as without accumulation
    (y * 2.0).sum().backward()
    assert y.grad.dtype == np.float64
    np.testing.assert_allclose(y.grad.numpy(), [2.5, 2.5])


def test_backward_twice_through_the_same_graph_without_retain_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = leaf([1.0, 2.0])
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2.0 * 3.0 * np.array([1.0, 4.0]), **TOL)


def test_gradients_of_two_leaves_are_independent_arrays():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (x + y).sum().backward()
    x.grad.zero_()  # what an optimizer's zero_grad may do: it must not reach y.grad
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0])


def test_grad_of_a_broadcast_gradient_is_writable_in_place():
    x = leaf(np.zeros((2, 3)))
    x.sum().backward()  # sum's gradient is a broadcast of one value
    x.grad.data *= 2.0
    np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), 2.0))


def test_leaves_sharing_the_callers_grad_each_get_their_own_copy():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    g = np.array([5.0, 6.0])
    (x + y).backward(g)  # add hands g itself to both operands
    assert not np.shares_memory(x.grad.data, g) and not np.shares_memory(y.grad.data, g)
    assert not np.shares_memory(x.grad.data, y.grad.data)
    x.grad.data[...] = 0.0
    np.testing.assert_array_equal(g, [5.0, 6.0])
    np.testing.assert_array_equal(y.grad.numpy(), [5.0, 6.0])


def test_a_gradient_whose_memory_is_a_buffer_not_an_array_is_copied():
    x = leaf([[1.0, 2.0]])
    g = np.frombuffer(np.array([3.0, 4.0]).tobytes())  # read-only, owned by a bytes object
    x.reshape(2).backward(g)  # reshape's gradient is a view of g
    x.grad.data[...] = 0.0
    np.testing.assert_array_equal(g, [3.0, 4.0])


def test_slices_of_one_gradient_array_are_copied_out():
    x, y = leaf([1.0, 2.0]), leaf([3.0])
    F.cat([x, y]).backward(np.array([1.0, 2.0, 3.0]))  # the pieces of cat's gradient are views of one array
    x.grad.data[...] = 0.0
    np.testing.assert_array_equal(y.grad.numpy(), [3.0])


class _Keeps(npgan.Function):
    """Its backward hands out an array it made in forward (a stand-in for a buffer a graph keeps)."""

    made = []

    def forward(self, x):
        self.kept = np.full_like(x, 7.0)
        _Keeps.made.append(self.kept)
        return x.copy()

    def backward(self, gy):
        return npgan.Tensor(self.kept)


def test_a_gradient_no_one_else_holds_becomes_grad_without_a_copy():
    x = leaf([1.0, 2.0])
    _Keeps()(x).backward(np.ones(2))  # the graph is freed after backward: the array is x.grad's alone
    assert x.grad.data is _Keeps.made[-1]


def test_a_gradient_a_retained_graph_still_holds_is_copied():
    y = leaf([1.0, 2.0])
    _Keeps()(y).backward(np.ones(2), retain_graph=True)
    assert not np.shares_memory(y.grad.data, _Keeps.made[-1])
    np.testing.assert_array_equal(y.grad.numpy(), [7.0, 7.0])


def test_a_linear_layers_gradients_are_not_copied(monkeypatch):
    layer = Linear(3, 2)
    exclusive, copied = npgan.autograd._exclusive, []

    def watched(array, claimed):
        result = exclusive(array, claimed)
        copied.append(result is not array)
        return result

    monkeypatch.setattr(npgan.autograd, "_exclusive", watched)
    layer(npgan.randn(4, 3)).sum().backward()
    assert copied == [False, False]  # weight and bias: their GEMM's and their sum's own results


def test_create_graph_gives_each_leaf_its_own_grad_tensor():
    x, y = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (x + y).sum().backward(create_graph=True)
    assert x.grad is not y.grad
    x.grad.zero_()
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0])


def test_backward_through_a_50000_op_chain_does_not_hit_the_recursion_limit():
    x = npgan.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y + 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_backward_of_a_non_scalar_without_grad_raises_a_clear_runtime_error():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2,\)"):
        (x * 2.0).backward()


def test_backward_of_a_non_scalar_with_an_explicit_grad_weights_the_outputs():
    x = leaf([1.0, 2.0])
    (x * x).backward(npgan.tensor(np.array([10.0, 100.0])))
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 400.0], **TOL)


def test_backward_with_a_grad_of_the_wrong_shape_raises_value_error_naming_both_shapes():
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        (x * x).backward(npgan.tensor(np.ones(3)))


def test_backward_on_a_tensor_that_does_not_require_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        npgan.tensor([1.0]).sum().backward()


def test_backward_with_create_graph_gives_a_grad_that_can_be_differentiated():
    x = leaf([2.0, 3.0])
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad  # 3 x^2, with a graph
    assert g.requires_grad
    (second,) = npgan.grad(g.sum(), x)
    np.testing.assert_allclose(second.numpy(), [12.0, 18.0], **TOL)  # 6 x


# -- npgan.grad ----------------------------------------------------------------------------------------


def test_grad_returns_gradients_without_touching_dot_grad():
    x, w = leaf([1.0, 2.0]), leaf([3.0, 5.0])
    gx, gw = npgan.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx.numpy(), [3.0, 5.0], **TOL)
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0], **TOL)
    assert x.grad is None and w.grad is None
    assert not gx.requires_grad  # no create_graph: plain values


def test_grad_of_a_single_tensor_input_returns_a_one_element_tuple():
    x = leaf([1.0, 2.0])
    result = npgan.grad((x * x).sum(), x)
    assert isinstance(result, tuple) and len(result) == 1


def test_grad_weights_non_scalar_outputs_with_grad_outputs():
    x = leaf([1.0, 2.0, 3.0])
    (gx,) = npgan.grad(x * x, [x], grad_outputs=[npgan.tensor(np.array([1.0, 10.0, 100.0]))])
    np.testing.assert_allclose(gx.numpy(), [2.0, 40.0, 600.0], **TOL)


def test_grad_with_several_outputs_sums_their_weighted_gradients():
    x = leaf([1.0, 2.0])
    a, b = x * 2.0, x * x
    (gx,) = npgan.grad([a, b], [x], grad_outputs=[npgan.tensor(np.ones(2)), npgan.tensor(np.full(2, 3.0))])
    np.testing.assert_allclose(gx.numpy(), [2.0 + 6.0, 2.0 + 12.0], **TOL)


def test_grad_with_create_graph_gives_differentiable_gradients():
    x = leaf([0.5, -1.0])
    (g,) = npgan.grad((x ** 4).sum(), [x], create_graph=True)  # 4 x^3
    assert g.requires_grad
    (gg,) = npgan.grad(g.sum(), [x])  # 12 x^2
    np.testing.assert_allclose(gg.numpy(), 12.0 * np.array([0.5, -1.0]) ** 2, **TOL)


def test_grad_of_a_gradient_norm_penalty_matches_the_closed_form():
    # The WGAN-GP shape: penalty = (|d f/dx| - 1)^2 with f = sum(w * x^2), differentiated w.r.t. w.
    x, w = leaf([1.0, 2.0]), leaf([0.5, -1.5])
    (gx,) = npgan.grad((w * x * x).sum(), [x], create_graph=True)  # 2 w x
    norm = ((gx * gx).sum()) ** 0.5
    penalty = (norm - 1.0) ** 2
    (gw,) = npgan.grad(penalty, [w])
    g = 2.0 * np.array([0.5, -1.5]) * np.array([1.0, 2.0])
    n = np.linalg.norm(g)
    expected = 2.0 * (n - 1.0) * (g / n) * 2.0 * np.array([1.0, 2.0])
    np.testing.assert_allclose(gw.numpy(), expected, **TOL)


def test_grad_of_an_unused_input_raises_unless_allow_unused():
    x, unused = leaf([1.0]), leaf([2.0])
    with pytest.raises(RuntimeError, match="allow_unused"):
        npgan.grad((x * x).sum(), [x, unused])
    gx, gu = npgan.grad((x * 3.0).sum(), [x, unused], allow_unused=True)
    np.testing.assert_allclose(gx.numpy(), [3.0], **TOL)
    assert gu is None


def test_grad_with_respect_to_a_non_leaf_input():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    y = (h * h).sum()
    gh, gx = npgan.grad(y, [h, x])
    np.testing.assert_allclose(gh.numpy(), 2.0 * 3.0 * np.array([1.0, 2.0]), **TOL)
    np.testing.assert_allclose(gx.numpy(), 18.0 * np.array([1.0, 2.0]), **TOL)


def test_grad_of_an_input_that_does_not_require_grad_raises():
    x = npgan.tensor([1.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        npgan.grad((x * 2.0).sum(), [x])


# -- no_grad -------------------------------------------------------------------------------------------


def test_no_grad_as_a_context_manager_records_no_graph():
    x = leaf([1.0, 2.0])
    with npgan.no_grad():
        assert not npgan.is_grad_enabled()
        y = (x * 2.0).exp()
    assert npgan.is_grad_enabled()
    assert y.requires_grad is False and y.creator is None
    np.testing.assert_allclose(y.numpy(), np.exp([2.0, 4.0]), **TOL)


def test_no_grad_as_a_decorator_records_no_graph():
    @npgan.no_grad()
    def step(t):
        return t * t + 1.0

    x = leaf([1.0, 2.0])
    y = step(x)
    assert y.requires_grad is False and y.creator is None
    assert npgan.is_grad_enabled()
    z = step(x)  # the same decorator twice: still no graph, and grad mode restored afterwards
    assert z.requires_grad is False and npgan.is_grad_enabled()


def test_no_grad_works_as_a_bare_decorator_too():
    @npgan.no_grad
    def step(t):
        return t * 2.0

    y = step(leaf([1.0]))
    assert y.requires_grad is False and npgan.is_grad_enabled()
    assert step.__name__ == "step"


def test_enable_grad_inside_no_grad_records_again():
    x = leaf([1.0])
    with npgan.no_grad(), npgan.enable_grad():
        y = x * 2.0
    assert y.requires_grad


# -- broadcasting --------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("shape_a, shape_b", [
    ((3, 1), (1, 4)),
    ((5, 4), (4,)),
    ((4,), (5, 4)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((2, 1, 3), (4, 1)),
])
def test_broadcast_gradients_are_reduced_to_each_operands_shape(op, shape_a, shape_b):
    rng = np.random.default_rng(0)
    a_np, b_np = rng.uniform(0.5, 2.0, shape_a), rng.uniform(0.5, 2.0, shape_b)
    a, b = leaf(a_np), leaf(b_np)
    getattr(F, op)(a, b).sum().backward()
    assert a.grad.shape == shape_a and b.grad.shape == shape_b
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    ones = np.ones(out_shape)
    grad_a, grad_b = {
        "add": (ones, ones),
        "sub": (ones, -ones),
        "mul": (ones * b_np, ones * a_np),
        "div": (ones / b_np, -ones * a_np / b_np ** 2),
    }[op]

    def reduce_to(g, shape):
        g = g.sum(axis=tuple(range(g.ndim - len(shape))))
        return g.sum(axis=tuple(i for i, s in enumerate(shape) if s == 1), keepdims=True).reshape(shape)

    np.testing.assert_allclose(a.grad.numpy(), reduce_to(grad_a, shape_a), **TOL)
    np.testing.assert_allclose(b.grad.numpy(), reduce_to(grad_b, shape_b), **TOL)


# -- devices -------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_mixing_cpu_and_gpu_tensors_raises_naming_both_devices():
    a = npgan.tensor([1.0, 2.0])
    b = npgan.tensor([1.0, 2.0], device="cuda")
    with pytest.raises(RuntimeError, match="cpu.*cuda"):
        a + b


@pytest.mark.gpu
def test_gradients_flow_back_across_devices():
    x = npgan.tensor([1.0, 2.0], requires_grad=True)
    y = x.to("cuda")
    (y * y).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_set_grad_enabled_called_as_a_function_switches_recording_at_once():
    x = npgan.ones(2, requires_grad=True)
    npgan.set_grad_enabled(False)
    try:
        assert not npgan.is_grad_enabled()
        assert not (x * 2.0).requires_grad
    finally:
        npgan.set_grad_enabled(True)
    assert (x * 2.0).requires_grad
    with npgan.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert npgan.is_grad_enabled()
