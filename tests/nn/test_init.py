"""Weight initialisation (npgan/nn/init.py) and the layers' default init."""

import math

import numpy as np
import pytest

import npgan
import npgan.nn as nn
from npgan.nn import init


def large_tensor(shape=(400, 250)):
    """A float32 tensor large enough that its extremes are within 1% of a uniform bound."""
    return npgan.zeros(*shape)


# -- fan and gain --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, fan_in, fan_out", [
    ((5, 3), 3, 5),  # Linear weight (out, in)
    ((8, 3, 4, 2), 3 * 8, 8 * 8),  # Conv2d weight (out, in, kh, kw)
    ((100, 256, 4, 4), 256 * 16, 100 * 16),  # ConvTranspose2d weight (in, out, kh, kw): fan_in from dim 1
])
def test_fan_in_and_fan_out_follow_pytorch_dim_1_and_dim_0_times_the_receptive_field(shape, fan_in, fan_out):
    assert init._calculate_fan_in_and_fan_out(shape) == (fan_in, fan_out)


def test_fan_of_a_one_dimensional_tensor_is_a_value_error():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(npgan.zeros(4))


@pytest.mark.parametrize("nonlinearity, param, gain", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("conv_transpose2d", None, 1.0), ("sigmoid", None, 1.0),
    ("tanh", None, 5.0 / 3), ("relu", None, math.sqrt(2.0)), ("leaky_relu", None, math.sqrt(2.0 / (1 + 0.01**2))),
    ("leaky_relu", 0.2, math.sqrt(2.0 / 1.04)), ("leaky_relu", math.sqrt(5), math.sqrt(2.0 / 6)), ("selu", None, 0.75),
])
def test_calculate_gain_matches_the_recommended_values(nonlinearity, param, gain):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-12)


def test_calculate_gain_rejects_an_unknown_nonlinearity_and_a_non_numeric_slope():
    with pytest.raises(ValueError, match="swish"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="slope"):
        init.calculate_gain("leaky_relu", "0.2")


# -- in place, dtype, reproducibility ------------------------------------------------------------------


@pytest.mark.parametrize("fill", [
    lambda t: init.normal_(t, 0.0, 0.02), lambda t: init.uniform_(t, -1, 1), init.zeros_, init.ones_,
    lambda t: init.constant_(t, 0.5), init.xavier_uniform_, init.kaiming_uniform_, init.xavier_normal_,
    init.kaiming_normal_,
])
def test_init_fills_in_place_keeps_float32_and_returns_its_argument(fill):
    t = npgan.zeros(6, 5)
    array = t.data
    assert fill(t) is t
    assert t.data is array and t.dtype == np.float32


def test_init_works_on_a_raw_array_as_pytorch_code_passes_weight_data():
    conv = nn.Conv2d(2, 3, 3)
    init.normal_(conv.weight.data, 0.0, 0.02)  # pytorch/examples dcgan: weights_init(m)
    assert conv.weight.dtype == np.float32 and 0 < conv.weight.numpy().std() < 0.05


def test_manual_seed_makes_init_reproducible_and_a_new_seed_changes_it():
    npgan.manual_seed(7)
    a = nn.Linear(4, 3).weight.numpy()
    npgan.manual_seed(7)
    b = nn.Linear(4, 3).weight.numpy()
    npgan.manual_seed(8)
    c = nn.Linear(4, 3).weight.numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_init_on_the_device_keeps_the_array_on_the_device(device, xp):
    t = npgan.zeros(3, 4, device=device)
    init.kaiming_uniform_(t, a=math.sqrt(5))
    assert isinstance(t.data, xp.ndarray) and t.dtype == np.float32
    assert float(abs(t.data).max()) > 0


def test_non_numeric_arguments_are_type_errors_and_bad_ranges_value_errors():
    with pytest.raises(TypeError, match="std"):
        init.normal_(npgan.zeros(2), std="1")
    with pytest.raises(ValueError, match="std"):
        init.normal_(npgan.zeros(2), std=-1.0)
    with pytest.raises(ValueError, match="a <= b"):
        init.uniform_(npgan.zeros(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(npgan.zeros(2, 2), mode="fan_avg")
    with pytest.raises(TypeError, match="list"):
        init.zeros_([1.0, 2.0])


# -- distributions -------------------------------------------------------------------------------------
# 100,000 samples: the mean of N(m, s^2) is within 5 s / sqrt(n) = 0.016 s of m, and the sample std within
# ~1% of s, with overwhelming probability. The extremes of 100,000 uniform samples lie within 0.1% of the
# bounds. The bounds below are therefore both necessary and tight enough to catch a wrong formula.


def test_normal_has_the_requested_mean_and_std():
    npgan.manual_seed(0)
    t = init.normal_(large_tensor(), mean=1.0, std=0.02)
    assert t.numpy().mean() == pytest.approx(1.0, abs=0.016 * 0.02)
    assert t.numpy().std() == pytest.approx(0.02, rel=0.01)


def test_uniform_fills_the_interval():
    npgan.manual_seed(0)
    values = init.uniform_(large_tensor(), -0.5, 2.0).numpy()
    assert values.min() >= -0.5 and values.max() < 2.0
    assert values.min() < -0.497 and values.max() > 1.997


@pytest.mark.parametrize("shape", [(400, 250), (64, 100, 4, 4)])
def test_kaiming_uniform_bound_is_gain_times_sqrt_3_over_fan_in(shape):
    npgan.manual_seed(0)
    fan_in = shape[1] * int(np.prod(shape[2:]))
    bound = math.sqrt(2.0 / (1 + 0.2**2)) * math.sqrt(3.0 / fan_in)
    values = init.kaiming_uniform_(npgan.zeros(*shape), a=0.2).numpy()
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.999 * bound


def test_kaiming_uniform_fan_out_mode_uses_dim_0():
    npgan.manual_seed(0)
    values = init.kaiming_uniform_(npgan.zeros(400, 250), mode="fan_out", nonlinearity="relu").numpy()
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 400)
    assert bound * 0.999 < np.abs(values).max() <= bound


def test_xavier_uniform_bound_is_gain_times_sqrt_6_over_fan_in_plus_fan_out():
    npgan.manual_seed(0)
    values = init.xavier_uniform_(npgan.zeros(400, 250), gain=2.0).numpy()
    bound = 2.0 * math.sqrt(6.0 / 650)
    assert bound * 0.999 < np.abs(values).max() <= bound


def test_kaiming_normal_and_xavier_normal_have_the_expected_std():
    npgan.manual_seed(0)
    assert init.kaiming_normal_(npgan.zeros(400, 250), nonlinearity="relu").numpy().std() == pytest.approx(
        math.sqrt(2.0 / 250), rel=0.01)
    assert init.xavier_normal_(npgan.zeros(400, 250)).numpy().std() == pytest.approx(
        math.sqrt(2.0 / 650), rel=0.01)


# -- the layers' default init (PyTorch's reset_parameters) ---------------------------------------------


@pytest.mark.parametrize("make, fan_in", [
    (lambda: nn.Linear(300, 200), 300),
    (lambda: nn.Conv2d(20, 200, 4), 20 * 16),
    (lambda: nn.ConvTranspose2d(200, 20, 4), 20 * 16),  # PyTorch's fan_in of (in, out, kh, kw) is out*kh*kw
])
def test_default_weight_and_bias_are_uniform_within_one_over_sqrt_fan_in(make, fan_in):
    npgan.manual_seed(0)
    layer = make()
    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)): sqrt(2/6) * sqrt(3/fan_in) = 1/sqrt(fan_in)
    weight = np.abs(layer.weight.numpy())
    assert bound * 0.999 < weight.max() <= bound * (1 + 1e-6)
    bias = np.abs(layer.bias.numpy())
    assert bias.max() <= bound * (1 + 1e-6) and bias.max() > 0.5 * bound  # 200 or 20 samples: not at the edge


def test_default_norm_and_embedding_init():
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.numpy(), np.ones(3))
    np.testing.assert_array_equal(bn.bias.numpy(), np.zeros(3))
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))
    ln = nn.LayerNorm((2, 3))
    np.testing.assert_array_equal(ln.weight.numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(ln.bias.numpy(), np.zeros((2, 3)))
    npgan.manual_seed(0)
    emb = nn.Embedding(1000, 100).weight.numpy()
    assert emb.mean() == pytest.approx(0.0, abs=0.016) and emb.std() == pytest.approx(1.0, rel=0.01)
