"""The layers behind the GAN tricks: PixelShuffle, Upsample, AvgPool2d, InstanceNorm2d, VirtualBatchNorm,
GaussianNoise: their errors name the layer and the expected shape, and their modes behave."""

import numpy as np
import pytest

import npgan
import npgan.nn as nn


@pytest.mark.parametrize("layer, shape, message", [
    (nn.PixelShuffle(2), (1, 6, 2, 2), r"PixelShuffle.* expected input \(N, C \* 4, H, W\), channels divisible"),
    (nn.PixelShuffle(2), (6, 2, 2), "PixelShuffle.* expected input"),
    (nn.Upsample(2), (3, 2, 2), r"Upsample.* expected input \(N, C, H, W\)"),
    (nn.AvgPool2d(3), (1, 1, 2, 2), r"AvgPool2d.*: input of spatial size \(2, 2\) .* smaller than the kernel"),
    (nn.InstanceNorm2d(3), (2, 4, 3, 3), r"InstanceNorm2d.* expected input with 3 channels, shape \(N, 3, H, W\)"),
    (nn.InstanceNorm2d(3), (2, 3, 1, 1), "InstanceNorm2d.* needs more than 1 spatial element"),
    (nn.VirtualBatchNorm(3, 4), (4, 3), r"VirtualBatchNorm.* expected the 4 reference rows followed by the batch"),
    (nn.VirtualBatchNorm(3, 4), (6, 2), r"shape \(4 \+ N, 3\) or \(4 \+ N, 3, H, W\)"),
])
def test_bad_inputs_name_the_layer_and_the_expected_shape(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer(npgan.zeros(*shape))


@pytest.mark.parametrize("make, message", [
    (lambda: nn.PixelShuffle(0), "PixelShuffle: upscale_factor must be a positive int"),
    (lambda: nn.Upsample(1.5), "Upsample: scale_factor must be a positive whole number"),
    (lambda: nn.Upsample(2, mode="bilinear"), "Upsample: only mode='nearest'"),
    (lambda: nn.AvgPool2d(2, padding=2), "AvgPool2d: padding .* at most half the kernel"),
    (lambda: nn.VirtualBatchNorm(3, 0), "VirtualBatchNorm: reference_size must be a positive int"),
    (lambda: nn.GaussianNoise(-1.0), "GaussianNoise: std must be a non-negative number"),
])
def test_bad_arguments_name_the_layer(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_gaussian_noise_adds_noise_of_its_std_only_while_training():
    layer = nn.GaussianNoise(0.5)
    x = npgan.zeros(200, 50)
    noisy = layer(x).numpy()
    assert noisy.dtype == np.float32 and abs(noisy.std() - 0.5) < 0.01
    layer.std = 0.0
    assert np.array_equal(layer(x).numpy(), x.numpy())
    layer.std = 0.5
    layer.eval()
    assert np.array_equal(layer(x).numpy(), x.numpy())


def test_virtual_batch_norm_is_the_same_function_in_training_and_eval():
    layer = nn.VirtualBatchNorm(3, 2)
    x = npgan.randn(5, 3, 2, 2)
    train_out = layer(x).numpy()
    layer.eval()
    assert np.array_equal(layer(x).numpy(), train_out)
    assert list(layer.state_dict()) == ["weight", "bias"]  # no running statistics
