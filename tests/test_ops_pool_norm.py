"""Pixel shuffle, nearest upsampling, average pooling, instance norm and virtual batch norm (npgan/ops/pool.py,
npgan/ops/norm.py): gradients against central differences in float64, second derivatives for the ops a
WGAN-GP critic can contain (average pooling, instance norm), and the forward maths against NumPy.

Tolerance as test_ops.py: atol 1e-8, rtol 1e-6 (central differences in float64 err by ~1e-10 here).
"""

import numpy as np
import pytest

import npgan
import npgan.functional as F

TOL = {"atol": 1e-8, "rtol": 1e-6}


def leaf(shape, seed=0, device="cpu"):
    rng = np.random.default_rng(seed)
    return npgan.tensor(rng.standard_normal(shape), requires_grad=True, device=device)


FIRST_ORDER = [
    pytest.param(lambda x: F.pixel_shuffle(x, 2), (2, 8, 2, 3), id="pixel_shuffle-2"),
    pytest.param(lambda x: F.pixel_shuffle(x, 3), (1, 9, 2, 2), id="pixel_shuffle-3"),
    pytest.param(lambda x: F.pixel_unshuffle(x, 2), (2, 2, 4, 2), id="pixel_unshuffle-2"),
    pytest.param(lambda x: F.upsample_nearest(x, 2), (2, 3, 2, 3), id="upsample_nearest-2"),
    pytest.param(lambda x: F.upsample_nearest(x, 3), (1, 2, 2, 2), id="upsample_nearest-3"),
    pytest.param(lambda x: F.avg_pool2d(x, 2), (2, 3, 4, 5), id="avg_pool2d-2"),
    pytest.param(lambda x: F.avg_pool2d(x, 3, 2, 1), (2, 2, 5, 4), id="avg_pool2d-k3-s2-p1"),
    pytest.param(lambda x: F.avg_pool2d(x, (2, 3), 1), (1, 2, 3, 4), id="avg_pool2d-overlapping"),
    pytest.param(lambda x: F.instance_norm(x), (2, 3, 2, 3), id="instance_norm"),
    pytest.param(lambda x: F.virtual_batch_norm(x, 3), (5, 2, 2, 2), id="virtual_batch_norm-images"),
    pytest.param(lambda x: F.virtual_batch_norm(x, 2), (4, 3), id="virtual_batch_norm-vectors"),
]


@pytest.mark.parametrize("fn, shape", FIRST_ORDER)
def test_gradient_matches_finite_differences(fn, shape, device):
    assert npgan.gradcheck(fn, [leaf(shape, device=device)], **TOL)


def test_affine_instance_and_virtual_batch_norm_gradients_reach_weight_and_bias(device):
    x, w, b = leaf((2, 3, 2, 2), device=device), leaf((3,), 1, device), leaf((3,), 2, device)
    assert npgan.gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), [x, w, b], **TOL)
    x = leaf((5, 3, 2, 2), device=device)
    assert npgan.gradcheck(lambda x, w, b: F.virtual_batch_norm(x, 2, w, b), [x, w, b], **TOL)


SECOND_ORDER = [  # what a critic holds between its input and its score: the penalty differentiates these twice
    pytest.param(lambda x: F.avg_pool2d(x * x, 2), (1, 2, 4, 4), id="avg_pool2d-2"),
    pytest.param(lambda x: F.avg_pool2d(x * x, 3, 2, 1), (1, 2, 5, 5), id="avg_pool2d-k3-s2-p1"),
    pytest.param(lambda x: F.instance_norm(x), (2, 2, 2, 3), id="instance_norm"),
    pytest.param(lambda x: F.upsample_nearest(x * x, 2), (1, 2, 2, 2), id="upsample_nearest"),
    pytest.param(lambda x: F.pixel_shuffle(x * x, 2), (1, 4, 2, 2), id="pixel_shuffle"),
    pytest.param(lambda x: F.virtual_batch_norm(x, 2), (3, 2, 2, 2), id="virtual_batch_norm"),
]


@pytest.mark.parametrize("fn, shape", SECOND_ORDER)
def test_second_derivative_matches_finite_differences(fn, shape, device):
    assert npgan.gradgradcheck(fn, [leaf(shape, device=device)], **TOL)


def test_a_critic_with_instance_norm_and_average_pooling_has_a_differentiable_gradient_penalty():
    # conv -> instance norm -> leaky relu -> avg pool -> score: the penalty's second derivative w.r.t. the weight
    x, weight = leaf((2, 1, 4, 4)), leaf((2, 1, 3, 3), 1)

    def critic_gradient(x, weight):
        h = F.leaky_relu(F.instance_norm(F.conv2d(x, weight, padding=1)), 0.2)
        score = F.avg_pool2d(h, 2).sum()
        (g,) = npgan.grad(score, x, create_graph=True)
        return (g * g).sum()

    assert npgan.gradcheck(critic_gradient, [x, weight], **TOL)


# -- forward maths -------------------------------------------------------------------------------------


def test_pixel_shuffle_places_channel_i_r_plus_j_at_offset_i_j():
    x = np.arange(2 * 8 * 2 * 3, dtype=np.float32).reshape(2, 8, 2, 3)
    y = F.pixel_shuffle(npgan.tensor(x), 2).numpy()
    assert y.shape == (2, 2, 4, 6)
    for c, i, j, h, w in [(0, 0, 0, 0, 0), (1, 1, 0, 1, 2), (0, 1, 1, 0, 1), (1, 0, 1, 1, 0)]:
        assert y[1, c, h * 2 + i, w * 2 + j] == x[1, c * 4 + i * 2 + j, h, w]
    assert np.array_equal(F.pixel_unshuffle(npgan.tensor(y), 2).numpy(), x)


def test_upsample_nearest_repeats_each_pixel_in_a_block():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 3)).astype(np.float32)
    y = F.upsample_nearest(npgan.tensor(x), 2).numpy()
    assert np.array_equal(y, x.repeat(2, axis=2).repeat(2, axis=3))


def test_avg_pool2d_is_the_window_mean_with_padded_zeros_counted():
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 4))
    y = F.avg_pool2d(npgan.tensor(x), 3, 2, 1).numpy()
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.stack([np.stack([padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].sum(axis=(2, 3)) / 9
                                   for j in range(2)], -1) for i in range(3)], -2)
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_instance_norm_normalises_each_sample_and_channel_on_its_own():
    x = np.random.default_rng(0).standard_normal((3, 2, 4, 4)) * 5 + 2
    y = F.instance_norm(npgan.tensor(x), eps=0.0).numpy()
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(2, 3)), 1, rtol=1e-12)
    single = F.instance_norm(npgan.tensor(x[1:2]), eps=0.0).numpy()
    np.testing.assert_allclose(single[0], y[1], rtol=1e-12)  # the other samples do not matter


def test_virtual_batch_norm_uses_the_reference_batch_plus_the_example_itself():
    rng = np.random.default_rng(0)
    R, x = 4, rng.standard_normal((4 + 3, 2, 3, 3)) * 2 + 1
    y = F.virtual_batch_norm(npgan.tensor(x), R, eps=0.0).numpy()
    ref = x[:R]
    ref_stats = ref.mean(axis=(0, 2, 3), keepdims=True), ref.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y[:R], (ref - ref_stats[0]) / np.sqrt(ref_stats[1]), rtol=1e-10)
    for i in range(R, len(x)):  # the union of the reference batch and example i, each example weighing 1/(R+1)
        union = np.concatenate([ref, x[i:i + 1]])
        m, v = union.mean(axis=(0, 2, 3), keepdims=True), union.var(axis=(0, 2, 3), keepdims=True)
        np.testing.assert_allclose(y[i:i + 1], (x[i:i + 1] - m) / np.sqrt(v), rtol=1e-10)
    # an example's output does not depend on the other live examples
    alone = F.virtual_batch_norm(npgan.tensor(np.concatenate([ref, x[5:6]])), R, eps=0.0).numpy()
    np.testing.assert_allclose(alone[R], y[5], rtol=1e-12)


def test_instance_norm_updates_running_statistics_as_pytorch_describes():
    x = np.random.default_rng(0).standard_normal((3, 2, 2, 2)).astype(np.float32)
    running_mean, running_var = np.zeros(2, np.float32), np.ones(2, np.float32)
    F.instance_norm(npgan.tensor(x), running_mean, running_var, momentum=0.5)
    np.testing.assert_allclose(running_mean, 0.5 * x.mean(axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(running_var, 0.5 + 0.5 * x.var(axis=(2, 3), ddof=1).mean(axis=0), rtol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda: F.pixel_shuffle(npgan.zeros(1, 6, 2, 2), 2), r"channels \(6\) must be divisible by .*4"),
    (lambda: F.pixel_shuffle(npgan.zeros(6, 2, 2), 2), r"expected input \(N, C, H, W\)"),
    (lambda: F.pixel_unshuffle(npgan.zeros(1, 1, 3, 4), 2), "divisible by downscale_factor"),
    (lambda: F.avg_pool2d(npgan.zeros(1, 1, 4, 4), 2, padding=2), "at most half the kernel"),
    (lambda: F.avg_pool2d(npgan.zeros(1, 1, 2, 2), 3), "smaller than the kernel"),
    (lambda: F.instance_norm(npgan.zeros(2, 3, 1, 1)), "more than 1 spatial element"),
    (lambda: F.virtual_batch_norm(npgan.zeros(3, 2), 3), "3 reference rows first and at least one live row"),
])
def test_bad_inputs_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_outputs_stay_float32():
    x = npgan.randn(2, 4, 4, 4, requires_grad=True)
    for y in (F.pixel_shuffle(x, 2), F.upsample_nearest(x, 2), F.avg_pool2d(x, 2), F.instance_norm(x),
              F.virtual_batch_norm(x, 1)):
        assert y.dtype == np.float32
        (g,) = npgan.grad(y.sum(), x)
        assert g.dtype == np.float32
