"""PixelShuffle, Upsample, AvgPool2d and InstanceNorm2d against torch.nn's (only where PyTorch is installed):
forward values, gradients of the input and every parameter, running statistics, state_dict names.

Tolerance: as test_torch_layers.py (float32, rtol 1e-4, atol 2e-5 of the reference's scale); these layers
sum at most a few dozen terms, so they agree far closer, but a wrong index is off by O(1).
"""

import numpy as np
import pytest

import npgan
import npgan.nn as nn

torch = pytest.importorskip("torch")
tnn = torch.nn


def assert_close(actual, expected, what=""):
    expected = np.asarray(expected)
    scale = max(float(np.abs(expected).max()), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=2e-5 * scale, err_msg=what)


def compare(ours, theirs, shape, seed=0):
    """Same state_dict names; forward values and gradients for a random upstream gradient."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(seed)
    x_np = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    x, xt = npgan.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    y, yt = ours(x), theirs(xt)
    assert y.shape == tuple(yt.shape) and y.dtype == np.float32
    assert_close(y.numpy(), yt.detach().numpy(), "forward")
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(npgan.tensor(g))
    yt.backward(torch.from_numpy(g))
    assert_close(x.grad.numpy(), xt.grad.numpy(), "input gradient")
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad.numpy(), their_params[name].grad.numpy(), f"gradient of {name}")
    for name, buffer in ours.named_buffers():
        assert_close(np.asarray(buffer.numpy()), dict(theirs.named_buffers())[name].numpy(), name)


@pytest.mark.parametrize("r, shape", [(2, (2, 8, 3, 4)), (3, (1, 18, 2, 2)), (1, (2, 3, 2, 2))])
def test_pixel_shuffle_matches_torch(r, shape):
    compare(nn.PixelShuffle(r), tnn.PixelShuffle(r), shape)
    assert repr(nn.PixelShuffle(r)) == repr(tnn.PixelShuffle(r))


@pytest.mark.parametrize("scale, shape", [(2, (2, 3, 4, 5)), (3, (1, 2, 2, 3)), (2.0, (1, 1, 1, 1))])
def test_upsample_nearest_matches_torch(scale, shape):
    compare(nn.Upsample(scale_factor=scale), tnn.Upsample(scale_factor=scale, mode="nearest"), shape)
    assert repr(nn.Upsample(scale_factor=scale)) == repr(tnn.Upsample(scale_factor=scale, mode="nearest"))


@pytest.mark.parametrize("args, kwargs, shape", [
    ((2,), {}, (2, 3, 8, 8)),  # the DCGAN critic's downsampling
    ((2,), {}, (2, 3, 7, 7)),  # an odd size drops the last row and column
    ((3,), {"stride": 2, "padding": 1}, (2, 2, 7, 6)),
    (((2, 3),), {"stride": (1, 2)}, (1, 2, 5, 7)),
])
def test_avg_pool2d_matches_torch(args, kwargs, shape):
    compare(nn.AvgPool2d(*args, **kwargs), tnn.AvgPool2d(*args, **kwargs), shape)


@pytest.mark.parametrize("kwargs", [
    {},  # PyTorch's defaults: no affine, no running statistics
    {"affine": True},
    {"track_running_stats": True},
    {"affine": True, "track_running_stats": True, "momentum": 0.3},
])
def test_instance_norm_matches_torch_in_training_and_eval(kwargs):
    ours, theirs = nn.InstanceNorm2d(3, **kwargs), tnn.InstanceNorm2d(3, **kwargs)
    if kwargs.get("affine"):
        with torch.no_grad():
            theirs.weight.uniform_(0.5, 1.5)
            theirs.bias.uniform_(-0.5, 0.5)
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    for _ in range(2):  # running statistics move the same way over two batches
        compare(ours, theirs, (4, 3, 5, 4))
        for p in list(ours.parameters()):
            p.grad = None
        theirs.zero_grad()
    ours.eval()
    theirs.eval()
    compare(ours, theirs, (2, 3, 3, 3), seed=1)
