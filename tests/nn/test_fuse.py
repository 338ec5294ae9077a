"""nn.fuse (npgan/nn/fuse.py): a model runs as written until it is fused, and the fused model is the same model:
the same state_dict, outputs and first and second derivatives equal to the bit in float32, on NumPy and the
CuPy stand-in."""

import numpy as np
import pytest

import npgan
import npgan.functional as F
import npgan.nn as nn
from npgan.ops.activation import LeakyReLU as LeakyReLUOp
from npgan.ops.linear import Linear as LinearOp
from npgan.ops.linear import LinearLeakyReLU as LinearLeakyReLUOp


def mlp(bias=True):
    """Two Linear + activation pairs at the top, one inside a nested Sequential, and a last plain Linear."""
    npgan.manual_seed(0)
    return nn.Sequential(
        nn.Linear(3, 8, bias=bias), nn.LeakyReLU(0.2),
        nn.Sequential(nn.Linear(8, 8, bias=bias), nn.ReLU()),
        nn.Linear(8, 6, bias=bias), nn.LeakyReLU(0.01),
        nn.Linear(6, 1, bias=bias),
    )


def test_sequential_runs_the_layers_as_written():
    x = npgan.randn(4, 3)
    y = nn.Sequential(nn.Linear(3, 5), nn.LeakyReLU(0.2))(x)
    assert isinstance(y.creator, LeakyReLUOp) and y.creator.slope == 0.2
    assert isinstance(y.creator.inputs[0].creator, LinearOp)


def test_fuse_replaces_each_linear_and_activation_pair_at_any_depth_and_repr_shows_it():
    model = mlp()
    assert nn.fuse(model) is model
    assert [type(m).__name__ for m in model] == [
        "LinearLeakyReLU", "Identity", "Sequential", "LinearLeakyReLU", "Identity", "Linear"]
    assert [type(m).__name__ for m in model[2]] == ["LinearReLU", "Identity"]
    text = repr(model)
    assert "(0): LinearLeakyReLU(in_features=3, out_features=8, bias=True, negative_slope=0.2)" in text
    assert "(0): LinearReLU(in_features=8, out_features=8, bias=True)" in text
    assert "(1): Identity()" in text and "(5): Linear(in_features=6, out_features=1, bias=True)" in text
    y = model(npgan.randn(4, 3))
    assert isinstance(y.creator, LinearOp)
    assert isinstance(y.creator.inputs[0].creator, LinearLeakyReLUOp)


def test_fuse_keeps_the_state_dict_keys_values_and_parameter_objects():
    plain, fused = mlp(), mlp()
    parameters = list(fused.parameters())
    nn.fuse(fused)
    assert [p is q for p, q in zip(parameters, fused.parameters())] == [True] * len(parameters)
    assert list(fused.state_dict()) == list(plain.state_dict())
    for (key, a), b in zip(plain.state_dict().items(), fused.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=key)
    fused.load_state_dict(plain.state_dict(), strict=True)  # checkpoints of either load into the other
    plain.load_state_dict(fused.state_dict(), strict=True)


def test_fuse_is_idempotent():
    model = nn.fuse(mlp())
    layers = list(model.modules())
    text = repr(model)
    nn.fuse(model)
    assert repr(model) == text
    assert [a is b for a, b in zip(layers, model.modules())] == [True] * len(layers)


def _values_and_two_derivatives(model, x):
    params = list(model.parameters())
    y = model(x)
    grads = npgan.grad((y * y).sum(), [x] + params, create_graph=True)
    penalty = sum((g * g).sum() for g in grads)  # a gradient penalty: differentiated again
    second = npgan.grad(penalty, [x] + params)
    return [y] + list(grads) + list(second)


@pytest.mark.parametrize("bias", [True, False])
def test_fused_model_equals_the_written_one_to_the_bit_in_values_and_first_and_second_derivatives(bias, device):
    plain, fused = mlp(bias).to(device), nn.fuse(mlp(bias).to(device))
    rng = np.random.default_rng(1)
    x = npgan.tensor(rng.standard_normal((5, 3)).astype(np.float32), device=device, requires_grad=True)
    expected = _values_and_two_derivatives(plain, x)
    got = _values_and_two_derivatives(fused, x)
    assert len(got) == len(expected) == 1 + 2 * (1 + len(list(plain.parameters())))
    for a, b in zip(expected, got):
        assert a.dtype == b.dtype == np.float32 and a.device == b.device == device
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fused_model_runs_under_functional_call_with_substituted_weights():
    plain, fused = mlp(), nn.fuse(mlp())
    x = npgan.randn(4, 3)
    weights = {name: p * 0.5 for name, p in plain.named_parameters()}
    np.testing.assert_array_equal(nn.functional_call(plain, weights, x).numpy(),
                                  nn.functional_call(fused, weights, x).numpy())


def test_fuse_leaves_linear_subclasses_other_activations_and_custom_sequentials_alone():
    class ScaledLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 2.0

    class Reversed(nn.Sequential):
        def forward(self, x):
            for module in reversed(list(self)):
                x = module(x)
            return x

    model = nn.Sequential(ScaledLinear(3, 5), nn.LeakyReLU(0.2), nn.Linear(5, 5), nn.Tanh(),
                          Reversed(nn.Linear(5, 5), nn.ReLU()))
    nn.fuse(model)
    assert [type(m).__name__ for m in model] == ["ScaledLinear", "LeakyReLU", "Linear", "Tanh", "Reversed"]
    assert [type(m).__name__ for m in model[4]] == ["Linear", "ReLU"]
    x = npgan.randn(4, 3)
    expected = F.leaky_relu(F.linear(x, model[0].weight, model[0].bias) * 2.0, 0.2)  # its own forward ran
    np.testing.assert_array_equal(model[:2](x).numpy(), expected.numpy())


def test_fuse_keeps_each_layers_mode_and_its_path_for_error_messages():
    model = mlp().eval()
    nn.fuse(model)
    assert not any(m.training for m in model.modules())
    with pytest.raises(ValueError, match=r"layer '2\.0' \(LinearReLU\(in_features=8.*8 features.*\(4, 3\)"):
        model[2](npgan.randn(4, 3))


def test_fuse_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match="nn.fuse: expected an nn.Module, got list"):
        nn.fuse([nn.Linear(2, 2), nn.ReLU()])
    with pytest.raises(TypeError, match="expected an nn.Linear to fuse, got ReLU"):
        nn.LinearReLU(nn.ReLU())
