"""PixelShuffle, Upsample, AvgPool2d and InstanceNorm2d against torch.nn's (only where PyTorch is installed):
forward values, gradients of the input and every parameter, running statistics, state_dict names.

Tolerance: as torch_compare.py (float32, rtol 1e-4, atol 2e-5 of the reference's scale); these layers
sum at most a few dozen terms, so they agree far closer, but a wrong index is off by O(1).
"""

import pytest

import npgan.nn as nn

from . import torch_compare
from .torch_compare import copy_to_torch

torch = pytest.importorskip("torch")
tnn = torch.nn


def compare(ours, theirs, shape, seed=0):
    """Same state_dict names in the same order; then values, gradients and buffers (inputs around 0.5)."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    copy_to_torch(ours, theirs)
    torch_compare.compare(ours, theirs, shape, seed, input_scale=2.0, input_shift=0.5, buffers=True)


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
