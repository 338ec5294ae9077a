"""Layers (npgan/nn/layers.py): forward values, first and second derivatives (float64 finite differences),
BatchNorm's running statistics, float32 throughout, argument and input errors."""

import numpy as np
import pytest

import npgan
import npgan.nn as nn
from npgan import optim

# Forward values are compared with float64 NumPy formulas evaluated on float64 layers: both sides sum the
# same few dozen products in a different order, so they agree to ~1e-15 relative; rtol 1e-10 is ample.
EXACT = {"rtol": 1e-10, "atol": 1e-12}


def leaf(shape, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return npgan.tensor(scale * rng.standard_normal(shape), requires_grad=True)  # float64


def layer64(layer, seed=1):
    """The layer in float64, with its parameters (and any bias) drawn at random so no value is special."""
    layer.double()
    rng = np.random.default_rng(seed)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5 + (1.0 if p.ndim == 1 and "Norm" in type(layer).__name__
                                                            else 0.0)
    return layer


def check_gradients(layer, x, second_order=False):
    """gradcheck (and gradgradcheck) of ``layer`` w.r.t. its input and every parameter."""
    params = list(layer.parameters())

    def fn(x, *params):
        return layer(x)

    fn.__qualname__ = repr(layer)
    assert npgan.gradcheck(fn, [x, *params])
    if second_order:
        assert npgan.gradgradcheck(fn, [x, *params])


# -- Linear --------------------------------------------------------------------------------------------


def test_linear_computes_x_times_weight_transposed_plus_bias():
    layer = layer64(nn.Linear(3, 2))
    x = leaf((4, 3))
    expected = x.numpy() @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, **EXACT)


@pytest.mark.parametrize("shape, bias", [((4, 3), True), ((1, 3), True), ((2, 2, 3), False)])
def test_linear_gradients_match_finite_differences(shape, bias):
    check_gradients(layer64(nn.Linear(3, 2, bias=bias)), leaf(shape), second_order=shape == (4, 3))


# -- Maxout --------------------------------------------------------------------------------------------


def test_maxout_keeps_the_largest_of_each_units_pieces():
    layer = layer64(nn.Maxout(3, 2, pieces=4))
    x = leaf((5, 3))
    linear = x.numpy() @ layer.linear.weight.numpy().T + layer.linear.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), linear.reshape(5, 2, 4).max(axis=2), **EXACT)


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3)])
def test_maxout_first_and_second_derivatives_match_finite_differences(shape):
    check_gradients(layer64(nn.Maxout(3, 2, pieces=3)), leaf(shape), second_order=True)


# -- Conv2d --------------------------------------------------------------------------------------------


def naive_conv2d(x, w, b, stride, padding):
    (SH, SW), (PH, PW) = stride, padding
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    y = np.zeros((N, O, OH, OW))
    for i in range(OH):
        for j in range(OW):
            window = xp[:, :, i * SH:i * SH + KH, j * SW:j * SW + KW]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", window, w)
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


def naive_conv_transpose2d(x, w, b, stride, padding, output_padding):
    """Each input pixel scatters weight * value into the output; then the padding is cropped."""
    (SH, SW), (PH, PW), (OPH, OPW) = stride, padding, output_padding
    N, C, H, W = x.shape
    _, O, KH, KW = w.shape
    full = np.zeros((N, O, (H - 1) * SH + KH + OPH, (W - 1) * SW + KW + OPW))
    for i in range(H):
        for j in range(W):
            full[:, :, i * SH:i * SH + KH, j * SW:j * SW + KW] += np.einsum("nc,cohw->nohw", x[:, :, i, j], w)
    y = full[:, :, PH:full.shape[2] - PH, PW:full.shape[3] - PW]
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


CONV_CONFIGS = [  # in, out, kernel, stride, padding, input shape, bias
    (2, 3, 3, 1, 1, (2, 2, 5, 5), True),
    (2, 2, 3, 2, 1, (1, 2, 5, 6), True),  # odd sizes, batch 1
    (3, 2, 1, 1, 0, (2, 3, 3, 3), True),  # 1x1 kernel
    (1, 2, 5, 2, 2, (2, 1, 6, 5), False),  # 5x5 kernel
    (2, 2, (3, 2), (2, 1), (1, 0), (1, 2, 5, 4), True),  # pairs
    (1, 2, 4, 2, 1, (2, 1, 4, 4), False),  # the dcgan critic's first layer, small
]


@pytest.mark.parametrize("cin, cout, k, s, p, shape, bias", CONV_CONFIGS)
def test_conv2d_matches_the_definition_of_cross_correlation(cin, cout, k, s, p, shape, bias):
    layer = layer64(nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=bias))
    x = leaf(shape)
    expected = naive_conv2d(x.numpy(), layer.weight.numpy(), layer.bias.numpy() if bias else None,
                            layer.stride, layer.padding)
    np.testing.assert_allclose(layer(x).numpy(), expected, **EXACT)


@pytest.mark.parametrize("cin, cout, k, s, p, shape, bias", CONV_CONFIGS)
def test_conv2d_gradients_match_finite_differences(cin, cout, k, s, p, shape, bias):
    check_gradients(layer64(nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=bias)), leaf(shape))


def test_conv2d_second_derivatives_match_finite_differences():
    check_gradients(layer64(nn.Conv2d(2, 2, 3, stride=2, padding=1)), leaf((1, 2, 5, 4)), second_order=True)


# -- ConvTranspose2d -----------------------------------------------------------------------------------


CONVT_CONFIGS = [  # in, out, kernel, stride, padding, output_padding, input shape, bias
    (2, 3, 3, 2, 1, 1, (2, 2, 3, 3), True),
    (2, 2, 4, 2, 1, 0, (1, 2, 3, 2), False),  # the dcgan generator's upsampling layer, small; batch 1
    (3, 2, 1, 1, 0, 0, (2, 3, 3, 3), True),  # 1x1 kernel
    (1, 2, 5, 2, 2, 1, (2, 1, 3, 2), True),  # 5x5 kernel
    (2, 1, 4, 1, 0, 0, (2, 2, 1, 1), False),  # the generator's first layer: a 1x1 noise "image"
    (2, 2, (3, 2), (2, 3), (1, 0), (1, 2), (1, 2, 2, 3), True),  # pairs
]


@pytest.mark.parametrize("cin, cout, k, s, p, op, shape, bias", CONVT_CONFIGS)
def test_conv_transpose2d_matches_the_scatter_definition(cin, cout, k, s, p, op, shape, bias):
    layer = layer64(nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, bias=bias))
    x = leaf(shape)
    expected = naive_conv_transpose2d(x.numpy(), layer.weight.numpy(), layer.bias.numpy() if bias else None,
                                      layer.stride, layer.padding, layer.output_padding)
    np.testing.assert_allclose(layer(x).numpy(), expected, **EXACT)


@pytest.mark.parametrize("cin, cout, k, s, p, op, shape, bias", CONVT_CONFIGS)
def test_conv_transpose2d_gradients_match_finite_differences(cin, cout, k, s, p, op, shape, bias):
    layer = nn.ConvTranspose2d(cin, cout, k, stride=s, padding=p, output_padding=op, bias=bias)
    check_gradients(layer64(layer), leaf(shape))


def test_conv_transpose2d_second_derivatives_match_finite_differences():
    layer = layer64(nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1))
    check_gradients(layer, leaf((1, 2, 2, 3)), second_order=True)


def test_conv_weight_layouts_are_pytorchs():
    assert nn.Conv2d(3, 5, (4, 2)).weight.shape == (5, 3, 4, 2)
    assert nn.ConvTranspose2d(3, 5, (4, 2)).weight.shape == (3, 5, 4, 2)
    assert nn.Conv2d(3, 5, 3).bias.shape == (5,) and nn.ConvTranspose2d(3, 5, 3).bias.shape == (5,)
    assert nn.Conv2d(3, 5, 3, bias=False).bias is None


@pytest.mark.parametrize("layer, shape, out", [
    (nn.ConvTranspose2d(100, 8, 4, 1, 0, bias=False), (2, 100, 1, 1), (2, 8, 4, 4)),
    (nn.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), (2, 8, 4, 4), (2, 4, 8, 8)),
    (nn.Conv2d(1, 4, 4, 2, 1, bias=False), (2, 1, 32, 32), (2, 4, 16, 16)),
    (nn.Conv2d(8, 1, 4, 1, 0, bias=False), (2, 8, 4, 4), (2, 1, 1, 1)),
    (nn.ConvTranspose2d(2, 2, 3, 2, 1, 1), (1, 2, 5, 5), (1, 2, 10, 10)),
])
def test_output_shapes_of_the_dcgan_layers(layer, shape, out):
    assert layer(npgan.randn(*shape)).shape == out


# -- BatchNorm -----------------------------------------------------------------------------------------


def batch_norm_reference(x, weight, bias, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight.reshape(shape) + bias.reshape(shape)


@pytest.mark.parametrize("make, shape", [
    (nn.BatchNorm1d, (5, 3)), (nn.BatchNorm1d, (3, 3, 4)), (nn.BatchNorm2d, (2, 3, 3, 2)),
])
def test_batch_norm_training_normalises_with_batch_statistics(make, shape):
    bn = layer64(make(3))
    x = leaf(shape)
    np.testing.assert_allclose(bn(x).numpy(), batch_norm_reference(x.numpy(), bn.weight.numpy(), bn.bias.numpy()),
                               **EXACT)


def test_batch_norm_eval_uses_the_running_statistics():
    bn = layer64(nn.BatchNorm2d(3))
    bn.running_mean.data[...] = [0.5, -1.0, 2.0]
    bn.running_var.data[...] = [2.0, 0.5, 1.5]
    bn.eval()
    x = leaf((2, 3, 2, 2))
    shape = (1, 3, 1, 1)
    expected = ((x.numpy() - bn.running_mean.numpy().reshape(shape)) / np.sqrt(bn.running_var.numpy() + 1e-5)
                .reshape(shape) * bn.weight.numpy().reshape(shape) + bn.bias.numpy().reshape(shape))
    np.testing.assert_allclose(bn(x).numpy(), expected, **EXACT)
    assert int(bn.num_batches_tracked.item()) == 0  # eval leaves the statistics alone
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0.5, -1.0, 2.0])


@pytest.mark.parametrize("make, shape", [(nn.BatchNorm1d, (4, 3)), (nn.BatchNorm2d, (3, 3, 2, 2))])
def test_batch_norm_running_statistics_follow_momentum_with_the_unbiased_variance(make, shape):
    bn = make(3, momentum=0.3)
    mean, var = np.zeros(3), np.ones(3)
    axes = (0,) + tuple(range(2, len(shape)))
    for step in range(3):
        x = npgan.tensor(np.random.default_rng(step).standard_normal(shape).astype(np.float32) * 2 + 1)
        bn(x)
        mean = 0.7 * mean + 0.3 * x.numpy().mean(axis=axes)
        var = 0.7 * var + 0.3 * x.numpy().var(axis=axes, ddof=1)
    # float32 statistics of a dozen values: a few ulps of values of size ~4.
    np.testing.assert_allclose(bn.running_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), var, rtol=1e-5, atol=1e-6)
    assert bn.running_mean.dtype == np.float32 and bn.running_var.dtype == np.float32
    assert int(bn.num_batches_tracked.item()) == 3


def test_batch_norm_momentum_none_keeps_a_cumulative_average():
    bn = nn.BatchNorm1d(2, momentum=None)
    batches = [np.random.default_rng(s).standard_normal((5, 2)).astype(np.float32) for s in range(3)]
    for b in batches:
        bn(npgan.tensor(b))
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean([b.mean(0) for b in batches], axis=0),
                               rtol=1e-5, atol=1e-6)


def test_batch_norm_without_running_statistics_uses_batch_statistics_in_eval():
    bn = layer64(nn.BatchNorm1d(3, track_running_stats=False)).eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    x = leaf((4, 3))
    np.testing.assert_allclose(bn(x).numpy(), batch_norm_reference(x.numpy(), bn.weight.numpy(), bn.bias.numpy()),
                               **EXACT)


def test_batch_norm_without_affine_has_no_parameters():
    bn = nn.BatchNorm2d(3, affine=False)
    assert list(bn.parameters()) == []
    x = npgan.randn(4, 3, 2, 2)
    out = bn(x).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-6)


@pytest.mark.parametrize("make, shape, training", [
    (nn.BatchNorm1d, (4, 2), True), (nn.BatchNorm1d, (4, 2), False), (nn.BatchNorm1d, (2, 2, 3), True),
    (nn.BatchNorm2d, (2, 2, 2, 3), True), (nn.BatchNorm2d, (1, 2, 2, 2), False),
])
def test_batch_norm_gradients_match_finite_differences(make, shape, training):
    bn = layer64(make(2))
    bn.running_mean.data[...] = [0.3, -0.2]
    bn.running_var.data[...] = [1.5, 0.7]
    bn.train(training)
    check_gradients(bn, leaf(shape))


def test_batch_norm_second_derivatives_match_finite_differences():
    check_gradients(layer64(nn.BatchNorm2d(2)), leaf((2, 2, 2, 2)), second_order=True)
    check_gradients(layer64(nn.BatchNorm1d(2)).eval(), leaf((3, 2)), second_order=True)


def test_batch_norm_in_training_needs_more_than_one_value_per_channel():
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        nn.BatchNorm1d(3)(npgan.randn(1, 3))
    assert nn.BatchNorm1d(3).eval()(npgan.randn(1, 3)).shape == (1, 3)


# -- LayerNorm -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalized, shape", [(4, (3, 4)), ((2, 3), (2, 2, 3))])
def test_layer_norm_normalises_each_sample_over_its_last_dims(normalized, shape):
    ln = layer64(nn.LayerNorm(normalized))
    x = leaf(shape)
    axes = tuple(range(x.ndim - ln.weight.ndim, x.ndim))
    a = x.numpy()
    expected = ((a - a.mean(axis=axes, keepdims=True)) / np.sqrt(a.var(axis=axes, keepdims=True) + 1e-5)
                * ln.weight.numpy() + ln.bias.numpy())
    np.testing.assert_allclose(ln(x).numpy(), expected, **EXACT)
    check_gradients(ln, x, second_order=True)


# -- activations ---------------------------------------------------------------------------------------


def test_activations_compute_their_functions():
    x = npgan.tensor(np.array([-2.0, -0.5, 0.0, 0.5, 3.0]))
    a = x.numpy()
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), np.maximum(a, 0), **EXACT)
    np.testing.assert_allclose(nn.LeakyReLU(0.2)(x).numpy(), np.where(a > 0, a, 0.2 * a), **EXACT)
    np.testing.assert_allclose(nn.LeakyReLU()(x).numpy(), np.where(a > 0, a, 0.01 * a), **EXACT)
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(a), **EXACT)
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-a)), **EXACT)


def test_leaky_relu_first_and_second_derivatives_match_finite_differences():
    x = leaf((3, 4))
    x.data[np.abs(x.data) < 0.01] = 0.5  # finite differences across the kink would be meaningless
    check_gradients(nn.LeakyReLU(0.2), x, second_order=True)


def test_activations_accept_pytorchs_inplace_flag():
    assert repr(nn.ReLU(True)) == "ReLU(inplace=True)"
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    x = npgan.tensor([-1.0, 1.0])
    np.testing.assert_array_equal(nn.ReLU(inplace=True)(x).numpy(), [0.0, 1.0])
    np.testing.assert_array_equal(x.numpy(), [-1.0, 1.0])  # the input is left alone


# -- a WGAN-GP critic: second derivatives through the whole stack --------------------------------------


def test_critic_gradient_penalty_second_derivatives_match_finite_differences():
    critic = nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(2, 2, 3, stride=2, padding=1),
        nn.LayerNorm((2, 2, 2)), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8, 1),
    )
    for layer in critic:
        if list(layer.parameters()):
            layer64(layer)
    x = leaf((2, 1, 8, 8))

    def penalty(x, *params):
        (g,) = npgan.grad(critic(x).sum(), [x], create_graph=True)
        return ((g.reshape(2, -1) ** 2).sum(axis=1) - 1.0) ** 2

    assert npgan.gradcheck(penalty, [x, *critic.parameters()])


# -- Dropout -------------------------------------------------------------------------------------------


def test_dropout_zeros_a_fraction_p_and_scales_the_rest_while_training():
    npgan.manual_seed(0)
    x = npgan.ones(100, 100)
    out = nn.Dropout(0.3)(x).numpy()
    # 10,000 Bernoulli(0.3) draws: the fraction is within 5 sigma = 5 * sqrt(0.21 / 10,000) = 0.023 of 0.3.
    assert abs((out == 0).mean() - 0.3) < 0.023
    np.testing.assert_allclose(out[out != 0], 1 / 0.7, rtol=1e-6)


def test_dropout_keeps_float32():
    assert nn.Dropout(0.3)(npgan.ones(4, 4)).dtype == np.float32


def test_dropout_is_the_identity_in_eval_and_with_p_zero():
    x = npgan.randn(4, 5)
    np.testing.assert_array_equal(nn.Dropout(0.5).eval()(x).numpy(), x.numpy())
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).numpy(), x.numpy())


def test_dropout_masks_are_reproducible_with_manual_seed():
    npgan.manual_seed(3)
    a = nn.Dropout()(npgan.ones(20)).numpy()
    npgan.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout()(npgan.ones(20)).numpy(), a)


# -- Embedding, Flatten, Unflatten ---------------------------------------------------------------------


def test_embedding_picks_rows_and_accumulates_gradients_of_repeated_indices():
    emb = nn.Embedding(5, 3)
    idx = npgan.tensor(np.array([[1, 4], [1, 0]]))
    out = emb(idx)
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out.numpy(), emb.weight.numpy()[[[1, 4], [1, 0]]])
    out.sum().backward()
    np.testing.assert_array_equal(emb.weight.grad.numpy()[:, 0], [1, 2, 0, 0, 1])
    assert emb([2, 3]).shape == (2, 3)


def test_embedding_rejects_float_and_out_of_range_indices():
    emb = nn.Embedding(5, 3)
    with pytest.raises(TypeError, match=r"layer 'Embedding'.*integer indices.*float"):
        emb(npgan.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[0, 5\).*\[-1, 5\]"):
        emb(npgan.tensor(np.array([5, -1])))


def test_flatten_and_unflatten_reshape_as_pytorch():
    x = npgan.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(-2)(x).shape == (2, 3, 20)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Unflatten(-1, (5, -1))(x).shape == (2, 3, 4, 5, 1)
    assert nn.Unflatten(2, (-1, 2))(x).shape == (2, 3, 2, 2, 5)
    np.testing.assert_array_equal(nn.Unflatten(1, (3, 4, 5))(nn.Flatten()(x)).numpy(), x.numpy())


def test_flatten_and_unflatten_errors_name_the_layer_and_shapes():
    with pytest.raises(ValueError, match=r"layer 'Flatten'.*dims 1\.\.3.*\(2, 3\)"):
        nn.Flatten(1, 3)(npgan.randn(2, 3))
    with pytest.raises(ValueError, match=r"layer 'Unflatten'.*size 6 into \(4, 2\)"):
        nn.Unflatten(1, (4, 2))(npgan.randn(2, 6))
    with pytest.raises(ValueError, match=r"layer 'Unflatten'.*size 5 into \(2, -1\)"):
        nn.Unflatten(1, (2, -1))(npgan.randn(2, 5))


# -- float32 through forward, backward and an optimizer step -------------------------------------------


def test_a_dcgan_style_model_stays_float32_through_forward_backward_and_adam():
    G = nn.Sequential(nn.ConvTranspose2d(8, 4, 4, 1, 0, bias=False), nn.BatchNorm2d(4), nn.ReLU(True),
                      nn.ConvTranspose2d(4, 1, 4, 2, 1, bias=False), nn.Tanh())
    D = nn.Sequential(nn.Conv2d(1, 4, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(4, 4, 3, 1, 1), nn.BatchNorm2d(4),
                      nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1), nn.Sigmoid())
    emb, ln = nn.Embedding(3, 8), nn.LayerNorm(8)
    models = nn.Sequential(G, D, emb, ln)
    opt = optim.Adam(models.parameters(), lr=2e-4, betas=(0.5, 0.999))
    z = npgan.randn(4, 8) + ln(emb(npgan.tensor(np.array([0, 1, 2, 0]))))
    out = D(G(nn.Unflatten(1, (8, 1, 1))(z)))
    assert out.dtype == np.float32
    out.mean().backward()
    opt.step()
    for name, p in models.named_parameters():
        assert p.dtype == np.float32, name
        assert p.grad.dtype == np.float32, name
    assert all(b.dtype in (np.float32, np.int64) for b in models.buffers())


# -- argument and input errors -------------------------------------------------------------------------


@pytest.mark.parametrize("make, words", [
    (lambda: nn.Linear(0, 3), ["Linear", "in_features", "0"]),
    (lambda: nn.Linear(3, -1), ["Linear", "out_features", "-1"]),
    (lambda: nn.Linear(2.5, 3), ["in_features", "2.5"]),
    (lambda: nn.Conv2d(0, 3, 3), ["Conv2d", "in_channels"]),
    (lambda: nn.Conv2d(1, 3, 0), ["Conv2d", "kernel_size", "0"]),
    (lambda: nn.Conv2d(1, 3, (3, 3, 3)), ["kernel_size", "(3, 3, 3)"]),
    (lambda: nn.Conv2d(1, 3, 3, stride=0), ["stride", "0"]),
    (lambda: nn.Conv2d(1, 3, 3, padding=-1), ["padding", "-1"]),
    (lambda: nn.ConvTranspose2d(1, 3, 3, padding=(1, -2)), ["ConvTranspose2d", "padding", "(1, -2)"]),
    (lambda: nn.ConvTranspose2d(1, 3, 3, stride=2, output_padding=2), ["output_padding", "stride"]),
    (lambda: nn.ConvTranspose2d(1, 3, 3, output_padding=-1), ["output_padding", "-1"]),
    (lambda: nn.BatchNorm1d(0), ["BatchNorm1d", "num_features", "0"]),
    (lambda: nn.BatchNorm2d(3, eps=-1e-5), ["BatchNorm2d", "eps"]),
    (lambda: nn.BatchNorm2d(3, momentum=1.5), ["momentum", "1.5"]),
    (lambda: nn.LayerNorm(0), ["LayerNorm", "normalized_shape", "0"]),
    (lambda: nn.LayerNorm(()), ["LayerNorm", "normalized_shape"]),
    (lambda: nn.Dropout(1.0), ["Dropout", "p", "1.0"]),
    (lambda: nn.Dropout(-0.1), ["Dropout", "p", "-0.1"]),
    (lambda: nn.Embedding(0, 3), ["Embedding", "num_embeddings"]),
    (lambda: nn.Maxout(2, 3, 0), ["Maxout", "pieces", "0"]),
    (lambda: nn.Maxout(2, 0, 5), ["Maxout", "out_features", "0"]),
    (lambda: nn.Embedding(3, 0), ["Embedding", "embedding_dim"]),
    (lambda: nn.LeakyReLU("0.2"), ["LeakyReLU", "negative_slope"]),
    (lambda: nn.Unflatten(1, ()), ["Unflatten", "unflattened_size"]),
    (lambda: nn.Unflatten(1, (-1, -1)), ["Unflatten", "unflattened_size"]),
])
def test_invalid_constructor_arguments_raise_value_error_naming_the_argument(make, words):
    with pytest.raises(ValueError) as info:
        make()
    for word in words:
        assert word in str(info.value)


class Critic(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(1, 16, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
                                  nn.Conv2d(16, 32, 4, 2, 1, bias=False), nn.BatchNorm2d(32), nn.LeakyReLU(0.2),
                                  nn.Flatten(), nn.Linear(32 * 8 * 8, 1))

    def forward(self, x):
        return self.main(x)


@pytest.mark.parametrize("layer_input, pattern", [
    ((2, lambda: npgan.randn(8, 8, 16, 16)),
     r"layer 'main\.2' \(Conv2d\(16, 32, kernel_size=\(4, 4\), stride=\(2, 2\), padding=\(1, 1\), bias=False\)\) "
     r"expected input with 16 channels, shape \(N, 16, H, W\), got \(8, 8, 16, 16\)"),
    ((0, lambda: npgan.randn(1, 32, 32)), r"layer 'main\.0'.*1 channels.*\(N, 1, H, W\), got \(1, 32, 32\)"),
    ((3, lambda: npgan.randn(2, 16, 4, 4)), r"layer 'main\.3' \(BatchNorm2d\(32.*32 features.*\(N, 32, H, W\)"),
    ((6, lambda: npgan.randn(2, 100)), r"layer 'main\.6' \(Linear\(in_features=2048.*2048 features.*\(2, 100\)"),
])
def test_a_wrong_input_names_the_layer_by_its_path_and_shows_expected_and_received_shapes(layer_input, pattern):
    index, make = layer_input
    critic = Critic()
    with pytest.raises(ValueError, match=pattern):
        critic.main[index](make())


def test_a_whole_model_given_the_wrong_image_size_points_at_the_failing_layer():
    with pytest.raises(ValueError, match=r"layer 'main\.6' \(Linear\(in_features=2048.*got \(2, 512\)"):
        Critic()(npgan.randn(2, 1, 16, 16))


@pytest.mark.parametrize("layer, shape, pattern", [
    (nn.Conv2d(1, 2, 5), (1, 1, 4, 6), r"layer 'Conv2d'.*spatial size \(4, 6\) is too small for kernel \(5, 5\)"),
    (nn.Conv2d(1, 2, 4, 2, 1), (1, 1, 1, 1), r"too small.*output would be 0x0"),
    (nn.ConvTranspose2d(1, 2, 1, 1, padding=1), (1, 1, 1, 1), r"layer 'ConvTranspose2d'.*too small"),
])
def test_a_spatial_input_too_small_for_the_kernel_is_a_clear_error(layer, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        layer(npgan.randn(*shape))


def test_layer_norm_and_layers_reject_non_tensors():
    with pytest.raises(ValueError, match=r"layer 'LayerNorm'.*ending in \(4,\).*got \(2, 3\)"):
        nn.LayerNorm(4)(npgan.randn(2, 3))
    with pytest.raises(TypeError, match=r"layer 'Linear'.*Tensor.*ndarray"):
        nn.Linear(2, 2)(np.zeros((1, 2), dtype=np.float32))


def test_kernel_size_stride_and_padding_accept_lists_as_in_pytorch():
    conv = nn.Conv2d(1, 1, [3, 1], stride=[2, 1], padding=[1, 0])
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 1), (2, 1), (1, 0))


def test_maxout_names_itself_and_the_expected_features_on_a_wrong_input():
    with pytest.raises(ValueError, match=r"layer 'Maxout'.*3 features.*\(N, 3\), got \(2, 4\)"):
        nn.Maxout(3, 2, 5)(npgan.randn(2, 4))
