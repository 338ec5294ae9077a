"""Parameter, Module and Sequential: registration, iteration, modes, devices, state_dict, repr, paths
(npgan/nn/module.py)."""

import copy
from collections import OrderedDict

import numpy as np
import pytest

import npgan
import npgan.nn as nn


class Block(nn.Module):
    """A module with parameters, a buffer and children, like a small critic."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(npgan.ones(3))
        self.register_buffer("count", npgan.zeros(()))
        self.main = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LeakyReLU(0.2), nn.Linear(4, 2))

    def forward(self, x):
        return self.main(x * self.scale)


# -- Parameter -----------------------------------------------------------------------------------------


def test_parameter_requires_grad_and_shares_the_array_of_the_tensor_it_wraps():
    t = npgan.zeros(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, npgan.Tensor) and p.requires_grad and p.is_leaf
    assert p.data is t.data
    assert nn.Parameter(npgan.zeros(2), requires_grad=False).requires_grad is False


def test_parameter_from_python_floats_is_float32():
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32


# -- registration and iteration ------------------------------------------------------------------------


def test_parameters_buffers_and_children_are_registered_in_assignment_order():
    m = Block()
    assert [name for name, _ in m.named_children()] == ["main"]
    assert [name for name, _ in m.named_parameters()] == [
        "scale", "main.0.weight", "main.0.bias", "main.1.weight", "main.1.bias", "main.3.weight", "main.3.bias",
    ]
    assert [name for name, _ in m.named_buffers()] == [
        "count", "main.1.running_mean", "main.1.running_var", "main.1.num_batches_tracked",
    ]
    assert [type(x).__name__ for x in m.modules()] == [
        "Block", "Sequential", "Linear", "BatchNorm1d", "LeakyReLU", "Linear",
    ]
    assert [name for name, _ in m.named_parameters(recurse=False)] == ["scale"]
    assert len(list(m.parameters())) == 7 and len(list(m.buffers())) == 4


def test_a_module_shared_by_two_parents_has_its_parameters_listed_once():
    shared = nn.Linear(2, 2)
    m = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(m.parameters())) == 2
    assert len(list(m.modules())) == 3  # the Sequential, the shared Linear, the ReLU


def test_reassigning_an_attribute_replaces_the_registration():
    m = nn.Linear(2, 3)
    m.bias = None
    assert [name for name, _ in m.named_parameters()] == ["weight"]
    assert m.bias is None
    m.weight = nn.Parameter(npgan.zeros(3, 2))
    assert m.weight.shape == (3, 2) and len(list(m.parameters())) == 1
    with pytest.raises(TypeError, match="weight"):
        m.weight = npgan.zeros(3, 2)  # a plain Tensor is not a Parameter
    m.extra = 5  # a plain attribute is not registered
    assert m.extra == 5 and len(list(m.parameters())) == 1
    del m.weight
    assert list(m.parameters()) == [] and not hasattr(m, "weight")


def test_assigning_a_parameter_before_module_init_raises_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(npgan.zeros(1))
            super().__init__()

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_a_missing_attribute_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="nonexistent"):
        _ = nn.Linear(1, 1).nonexistent


def test_register_buffer_rejects_non_arrays_and_dotted_names():
    m = nn.Module()
    with pytest.raises(TypeError, match="buf"):
        m.register_buffer("buf", [1, 2])
    with pytest.raises(ValueError, match="a.b"):
        m.register_buffer("a.b", npgan.zeros(1))


def test_buffers_may_be_raw_arrays_and_non_persistent_buffers_are_left_out_of_state_dict():
    m = nn.Module()
    m.register_buffer("raw", np.arange(3, dtype=np.float32))
    m.register_buffer("scratch", npgan.zeros(2), persistent=False)
    assert list(m.state_dict()) == ["raw"]
    assert len(list(m.buffers())) == 2
    m.raw = np.ones(3, dtype=np.float32)  # assigning to a buffer's name updates the buffer
    np.testing.assert_array_equal(m.state_dict()["raw"], [1, 1, 1])


def test_apply_visits_children_before_the_parent():
    visited = []
    Block().apply(lambda mod: visited.append(type(mod).__name__))
    assert visited == ["Linear", "BatchNorm1d", "LeakyReLU", "Linear", "Sequential", "Block"]


# -- modes, gradients, devices, dtypes -----------------------------------------------------------------


def test_train_and_eval_set_the_flag_on_every_submodule():
    m = Block()
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    with pytest.raises(TypeError, match="bool"):
        m.train("no")


def test_zero_grad_sets_every_gradient_to_none():
    m = Block()
    m(npgan.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_zero_grad_without_set_to_none_gives_writable_zero_arrays():
    m = nn.Linear(2, 2)
    m(npgan.randn(3, 2)).sum().backward()
    m.zero_grad(set_to_none=False)
    for p in m.parameters():
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape))
        assert p.grad.data.flags.writeable


def test_requires_grad_false_freezes_every_parameter():
    m = Block().requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())


def test_double_casts_floating_parameters_and_buffers_and_keeps_the_integer_counter():
    m = Block().double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    buffers = dict(m.named_buffers())
    assert buffers["main.1.running_mean"].dtype == np.float64
    assert buffers["main.1.num_batches_tracked"].dtype == np.int64
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_to_device_moves_parameters_buffers_and_gradients_in_place(device, xp):
    m = Block()
    params = list(m.parameters())
    m(npgan.randn(4, 3)).sum().backward()
    assert m.to(device) is m
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]  # same Parameter objects
    for p in m.parameters():
        assert isinstance(p.data, xp.ndarray) and isinstance(p.grad.data, xp.ndarray)
        assert p.dtype == np.float32
    assert all(isinstance(b.data, xp.ndarray) for b in m.buffers())
    assert m(npgan.randn(4, 3, device=device)).device == device
    m.to("cpu")
    assert all(isinstance(p.data, np.ndarray) for p in m.parameters())


# -- state_dict ----------------------------------------------------------------------------------------


def test_state_dict_uses_pytorch_names_and_holds_numpy_copies():
    m = Block()
    state = m.state_dict()
    assert isinstance(state, OrderedDict)
    assert list(state) == [
        "scale", "count", "main.0.weight", "main.0.bias", "main.1.weight", "main.1.bias", "main.1.running_mean",
        "main.1.running_var", "main.1.num_batches_tracked", "main.3.weight", "main.3.bias",
    ]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    assert state["main.0.weight"].dtype == np.float32 and state["main.1.num_batches_tracked"].dtype == np.int64
    state["scale"][...] = 7.0  # a copy: the model is untouched
    np.testing.assert_array_equal(m.scale.numpy(), np.ones(3))


def test_state_dict_round_trip_gives_a_new_model_the_same_outputs():
    npgan.manual_seed(0)
    a = Block()
    a(npgan.randn(8, 3))  # a training step moves the BatchNorm statistics away from their defaults
    a.eval()
    npgan.manual_seed(1)
    b = Block().eval()
    x = npgan.randn(5, 3)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    arrays_before = [p.data for p in b.parameters()]
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert all(p.data is before for p, before in zip(b.parameters(), arrays_before))  # copied in place
    assert int(b.main[1].num_batches_tracked.item()) == 1


def test_load_state_dict_keeps_float32_when_given_float64_arrays():
    m = nn.Linear(2, 2)
    m.load_state_dict({k: v.astype(np.float64) for k, v in m.state_dict().items()})
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_load_state_dict_accepts_tensors_as_values():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.load_state_dict(dict(a.named_parameters()))
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())


def test_strict_load_lists_every_missing_unexpected_and_misshaped_entry_in_one_error():
    m = Block()
    state = m.state_dict()
    del state["main.0.bias"], state["count"]
    state["main.9.weight"] = np.zeros(2, dtype=np.float32)
    state["main.3.weight"] = np.zeros((5, 5), dtype=np.float32)
    with pytest.raises(ValueError) as info:
        m.load_state_dict(state)
    message = str(info.value)
    for expected in ("main.0.bias", "count", "main.9.weight", "main.3.weight", "(2, 4)", "(5, 5)"):
        assert expected in message
    with pytest.raises(KeyError):  # the same error is also a KeyError, as in PyTorch
        m.load_state_dict(state)


def test_non_strict_load_reports_missing_and_unexpected_keys_and_loads_the_rest():
    m = nn.Linear(2, 2)
    result = m.load_state_dict({"weight": np.full((2, 2), 3.0), "other": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["bias"] and result.unexpected_keys == ["other"]
    np.testing.assert_array_equal(m.weight.numpy(), np.full((2, 2), 3.0))


def test_a_shape_mismatch_is_an_error_even_when_not_strict_and_loads_nothing():
    m = nn.Linear(2, 2)
    before = m.weight.numpy().copy()
    with pytest.raises(ValueError, match="bias"):
        m.load_state_dict({"weight": np.zeros((2, 2)), "bias": np.zeros(3)}, strict=False)
    np.testing.assert_array_equal(m.weight.numpy(), before)


# -- repr and paths ------------------------------------------------------------------------------------


def test_repr_shows_the_layer_tree_as_pytorch_does():
    assert repr(Block()) == (
        "Block(\n"
        "  (main): Sequential(\n"
        "    (0): Linear(in_features=3, out_features=4, bias=True)\n"
        "    (1): BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
        "    (2): LeakyReLU(negative_slope=0.2)\n"
        "    (3): Linear(in_features=4, out_features=2, bias=True)\n"
        "  )\n"
        ")"
    )


def test_a_layer_is_named_by_its_path_and_the_path_follows_when_the_parent_is_assigned():
    m = Block()
    with pytest.raises(ValueError, match=r"layer 'main\.3' \(Linear\(in_features=4, out_features=2"):
        m.main[3](npgan.randn(2, 5))

    class Gan(nn.Module):
        def __init__(self, critic):
            super().__init__()
            self.D = critic

    Gan(m)
    with pytest.raises(ValueError, match=r"layer 'D\.main\.0'"):
        m.main[0](npgan.randn(2, 5))


def test_a_top_level_layer_is_named_by_its_class():
    with pytest.raises(ValueError, match=r"layer 'Linear' \(Linear\(in_features=3"):
        nn.Linear(3, 1)(npgan.randn(2, 4))


# -- Sequential ----------------------------------------------------------------------------------------


def test_sequential_calls_its_layers_in_order():
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = npgan.randn(5, 3)
    expected = seq[2](seq[1](seq[0](x)))
    np.testing.assert_array_equal(seq(x).numpy(), expected.numpy())


def test_sequential_is_indexable_sliceable_iterable_and_appendable():
    a, b, c = nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1)
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and seq[0] is a and seq[-1] is b and list(seq) == [a, b]
    assert seq.append(c) is seq and len(seq) == 3 and seq[2] is c
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    part = seq[1:]
    assert isinstance(part, nn.Sequential) and list(part) == [b, c]
    with pytest.raises(IndexError, match="3"):
        seq[3]
    with pytest.raises(TypeError, match="Linear"):
        nn.Sequential(nn.Linear(1, 1), nn.Linear)


def test_slicing_a_sequential_keeps_the_layers_paths_in_the_original_model():
    m = Block()
    head = m.main[2:]
    with pytest.raises(ValueError, match=r"layer 'main\.3'"):
        head(npgan.randn(2, 5))


def test_sequential_from_an_ordered_dict_uses_its_names():
    seq = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 3)), ("act", nn.ReLU())]))
    assert list(seq.state_dict()) == ["fc.weight", "fc.bias"]
    assert seq.fc is seq[0]


def test_deepcopy_gives_an_independent_model_with_the_same_outputs():
    m = Block().eval()
    twin = copy.deepcopy(m)
    x = npgan.randn(3, 3)
    np.testing.assert_array_equal(twin(x).numpy(), m(x).numpy())
    twin.main[0].weight.data[...] = 0.0
    assert not np.array_equal(twin(x).numpy(), m(x).numpy())
