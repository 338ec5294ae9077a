"""The ganhacks options of the models: G's normalisation, upsampling and layer noise, D's instance norm,
average-pool downsampling and one-hot label channels."""

import numpy as np
import pytest

import npgan
from npgan import nn
from npgan.gan import losses
from npgan.gan.models import DCGANDiscriminator, DCGANGenerator, MLPGenerator, one_hot_planes


def kinds(module, kind):
    return [m for m in module.modules() if isinstance(m, kind)]


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("upsample, layer", [("pixelshuffle", nn.PixelShuffle), ("nearest", nn.Upsample)])
def test_generator_upsampling_alternatives_keep_every_image_size(size, upsample, layer):
    G = DCGANGenerator(nz=8, ngf=4, nc=3, image_size=size, upsample=upsample)
    assert G(npgan.randn(2, 8)).shape == (2, 3, size, size)
    assert len(kinds(G, nn.ConvTranspose2d)) == 1  # only the projection of z stays a transposed conv
    assert len(kinds(G, layer)) == (4 if size == 64 else 3)  # one per stride-2 layer of DCGAN's G


def test_pixel_shuffle_generator_starts_without_checkerboard_icnr():
    G = DCGANGenerator(nz=8, ngf=4, nc=1, image_size=32, upsample="pixelshuffle", norm=None)
    layers = list(G.main)
    for conv, shuffle in zip(layers, layers[1:]):
        if isinstance(shuffle, nn.PixelShuffle):  # the 4 kernels that shuffle into one channel are equal
            w = conv.weight.numpy().reshape(-1, 4, *conv.weight.shape[1:])
            assert np.array_equal(w, np.broadcast_to(w[:, :1], w.shape)) and w.std() > 0
    image = G(npgan.randn(1, 8)).numpy()[0, 0]
    assert np.array_equal(image[0::2, 0::2], image[1::2, 1::2])  # each 2x2 block is one value at the start


@pytest.mark.parametrize("size", [28, 32, 64])
def test_average_pooling_critic_has_no_strided_conv_and_keeps_the_sizes(size):
    D = DCGANDiscriminator(ndf=4, nc=1, image_size=size, downsample="avgpool", norm="instance")
    assert D(npgan.randn(2, 1, size, size)).shape == (2,)
    assert all(m.stride == (1, 1) for m in kinds(D, nn.Conv2d))
    assert len(kinds(D, nn.AvgPool2d)) == (4 if size == 64 else 3)


def test_instance_norm_critic_scores_each_image_on_its_own_unlike_batch_norm():
    x = npgan.randn(4, 1, 32, 32)
    for norm, independent in (("instance", True), ("batch", False)):
        D = DCGANDiscriminator(ndf=4, nc=1, image_size=32, norm=norm)
        assert len(kinds(D, nn.InstanceNorm2d)) == (2 if norm == "instance" else 0)
        together, alone = D(x).numpy()[:2], D(x[:2]).numpy()
        assert np.allclose(together, alone, atol=1e-6) == independent


def test_gradient_penalty_passes_through_instance_norm_and_average_pooling():
    D = DCGANDiscriminator(ndf=4, nc=1, image_size=28, norm="instance", downsample="avgpool")
    penalty = losses.gradient_penalty(D, npgan.randn(3, 1, 28, 28), npgan.randn(3, 1, 28, 28))
    penalty.backward()
    assert all(p.grad is not None and np.isfinite(p.grad.numpy()).all() for p in D.parameters())


@pytest.mark.parametrize("make", [
    lambda: DCGANGenerator(nz=8, ngf=4, nc=1, image_size=28, norm="virtual", reference_size=5),
    lambda: MLPGenerator(8, (16, 16), (2,), out_activation=None, norm="virtual", reference_size=5),
])
def test_virtual_batch_norm_generator_gives_each_sample_independently_of_its_batch(make):
    npgan.manual_seed(0)
    G = make()
    assert len(kinds(G, nn.VirtualBatchNorm)) >= 2 and not kinds(G, nn.BatchNorm2d)
    assert tuple(G.reference_noise.shape) == (5, 8) and "reference_noise" in G.state_dict()
    z = npgan.randn(4, 8)
    batch = G(z).numpy()
    assert np.allclose(G(z[1:2]).numpy()[0], batch[1], atol=1e-6)  # no other live sample matters
    G.eval()
    assert np.allclose(G(z).numpy(), batch, atol=1e-6)  # sampling computes the same function
    G.train()
    G.reference_noise.data[...] = npgan.randn(5, 8).data  # but the reference batch does
    assert not np.allclose(G(z).numpy(), batch, atol=1e-4)


def test_virtual_batch_norm_conditional_generator_carries_reference_labels():
    G = DCGANGenerator(nz=8, ngf=4, nc=1, image_size=28, num_classes=10, norm="virtual", reference_size=12)
    assert list(G.reference_labels.numpy()) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert G(npgan.randn(3, 8), npgan.tensor([1, 2, 3])).shape == (3, 1, 28, 28)


def test_gradients_reach_the_generator_through_the_reference_statistics():
    G = MLPGenerator(3, (6,), (2,), out_activation=None, norm="virtual", reference_size=4)
    G.to(dtype="float64")
    z = npgan.randn(2, 3, dtype="float64")
    # the first Linear's weight (perturbed in place by gradcheck) shapes the reference rows' statistics too
    assert npgan.gradcheck(lambda w: G(z), [G.main[0].weight], atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("make, blocks", [
    (lambda: DCGANGenerator(nz=8, ngf=4, nc=1, image_size=32, layer_noise=True), 3),
    (lambda: MLPGenerator(8, (16, 16, 16), (2,), layer_noise=True), 3),
])
def test_layer_noise_puts_noise_after_every_hidden_block(make, blocks):
    G = make()
    noises = kinds(G, nn.GaussianNoise)
    assert len(noises) == blocks and all(m.std == 0.0 for m in noises)
    z = npgan.randn(3, 8)
    quiet = G(z).numpy()
    for m in noises:
        m.std = 0.5
    assert not np.allclose(G(z).numpy(), quiet)


def test_one_hot_label_channels_of_the_conditional_critic():
    planes = one_hot_planes(npgan.tensor([2, 0]).data, 3, 4, np.float32).numpy()
    assert planes.shape == (2, 3, 4, 4) and planes[0, 2].min() == 1 and planes[0, :2].max() == 0
    assert planes[1, 0].min() == 1
    D = DCGANDiscriminator(ndf=4, nc=1, image_size=28, num_classes=10, cond="channel")
    assert D.main[0].in_channels == 11 and not hasattr(D, "label_embedding")
    x = npgan.randn(2, 1, 28, 28)
    assert not np.allclose(D(x, npgan.tensor([1, 2])).numpy(), D(x, npgan.tensor([3, 4])).numpy())


@pytest.mark.parametrize("make, message", [
    (lambda: DCGANGenerator(upsample="bilinear"), "DCGANGenerator: upsample must be one of"),
    (lambda: DCGANGenerator(norm="instance"), "DCGANGenerator: norm must be one of"),
    (lambda: MLPGenerator(norm="layer"), "MLPGenerator: norm must be one of"),
    (lambda: DCGANDiscriminator(downsample="maxpool"), "DCGANDiscriminator: downsample must be one of"),
    (lambda: DCGANDiscriminator(cond="film"), "DCGANDiscriminator: cond must be one of"),
])
def test_bad_options_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()
