import numpy as np
import pytest

import npgan
from npgan import nn
from npgan.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("size", [28, 32, 64])
def test_dcgan_generator_and_discriminator_shapes_for_each_image_size(size):
    G = DCGANGenerator(nz=8, ngf=4, nc=3, image_size=size)
    D = DCGANDiscriminator(ndf=4, nc=3, image_size=size)
    images = G(npgan.randn(5, 8))
    assert images.shape == (5, 3, size, size)
    assert float(images.numpy().min()) >= -1.0 and float(images.numpy().max()) <= 1.0  # tanh output
    assert D(images).shape == (5,)


def test_dcgan32_layers_match_the_benchmark_configuration():
    G = DCGANGenerator(nz=100, ngf=64, nc=1, image_size=32)
    D = DCGANDiscriminator(ndf=64, nc=1, image_size=32)
    g_convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [tuple(m.weight.shape) for m in g_convs] == [(100, 256, 4, 4), (256, 128, 4, 4), (128, 64, 4, 4),
                                                         (64, 1, 4, 4)]
    assert [tuple(m.weight.shape) for m in d_convs] == [(64, 1, 4, 4), (128, 64, 4, 4), (256, 128, 4, 4),
                                                         (1, 256, 4, 4)]
    assert all(m.bias is None for m in g_convs + d_convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in G.modules()) == 3
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 2


def test_dcgan_init_is_normal_with_std_0_02_and_batchnorm_gamma_around_1():
    npgan.manual_seed(0)
    G = DCGANGenerator(nz=100, ngf=64, nc=1, image_size=32)
    weight = G.main[0].weight.numpy()
    assert weight.dtype == np.float32
    assert abs(weight.std() - 0.02) < 0.001 and abs(weight.mean()) < 0.001
    gamma = G.main[1].weight.numpy()
    assert abs(gamma.mean() - 1.0) < 0.01 and 0.01 < gamma.std() < 0.03


@pytest.mark.parametrize("norm, layer", [(None, None), ("layer", nn.LayerNorm), ("batch", nn.BatchNorm2d)])
def test_critic_normalisation_options(norm, layer):
    D = DCGANDiscriminator(ndf=4, nc=1, image_size=32, norm=norm)
    kinds = {type(m) for m in D.modules()}
    for other in (nn.LayerNorm, nn.BatchNorm2d):
        assert (other in kinds) == (other is layer)
    assert D(npgan.randn(2, 1, 32, 32)).shape == (2,)


def test_conditional_models_use_the_label():
    npgan.manual_seed(0)
    G = DCGANGenerator(nz=8, ngf=4, nc=1, image_size=28, num_classes=10)
    D = DCGANDiscriminator(ndf=4, nc=1, image_size=28, num_classes=10)
    G.eval()
    z = npgan.randn(2, 8)
    a = G(z, npgan.tensor(np.array([1, 1])))
    b = G(z, npgan.tensor(np.array([1, 7])))
    assert np.allclose(a.numpy()[0], b.numpy()[0]) and not np.allclose(a.numpy()[1], b.numpy()[1])
    assert D(a, npgan.tensor(np.array([1, 1]))).shape == (2,)


def test_mlp_gan_matches_the_gan_mlp_benchmark_and_handles_labels():
    G = MLPGenerator(100, (256, 512, 1024), (1, 28, 28))
    D = MLPDiscriminator((1, 28, 28), (512, 256))
    assert [tuple(m.weight.shape) for m in G.modules() if isinstance(m, nn.Linear)] == [
        (256, 100), (512, 256), (1024, 512), (784, 1024)]
    assert [tuple(m.weight.shape) for m in D.modules() if isinstance(m, nn.Linear)] == [(512, 784), (256, 512),
                                                                                        (1, 256)]
    assert D(G(npgan.randn(3, 100))).shape == (3,)
    Gc = MLPGenerator(4, (8,), (2,), num_classes=3, out_activation=None)
    assert Gc(npgan.randn(2, 4), npgan.tensor(np.array([0, 2]))).shape == (2, 2)


def test_mlp_options_batchnorm_relu_generator_and_maxout_discriminator():
    G = MLPGenerator(2, (16, 16), (2,), out_activation=None, norm="batch", activation="relu")
    kinds = [type(m).__name__ for m in G.main]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert G.main[0].bias is None and G.main[-1].bias is not None  # BatchNorm's beta replaces the bias
    D = MLPDiscriminator((2,), (8, 8), maxout=5)
    assert [type(m).__name__ for m in D.main] == ["Maxout", "Maxout", "Linear"]
    assert tuple(D.main[1].linear.weight.shape) == (40, 8)
    assert D(G(npgan.randn(4, 2))).shape == (4,)
    with pytest.raises(ValueError, match="activation must be 'leaky_relu' or 'relu', got 'tanh'"):
        MLPGenerator(2, (4,), (2,), activation="tanh")


def test_mlp_out_scale_and_in_scale_multiply_and_divide():
    npgan.manual_seed(0)
    G = MLPGenerator(3, (8,), (2,), out_activation=None)
    G4 = MLPGenerator(3, (8,), (2,), out_activation=None, out_scale=4.0)
    G4.load_state_dict(G.state_dict())
    z = npgan.randn(5, 3)
    np.testing.assert_allclose(G4(z).numpy(), 4.0 * G(z).numpy(), rtol=1e-6)
    D = MLPDiscriminator((2,), (8,))
    D4 = MLPDiscriminator((2,), (8,), in_scale=4.0)
    D4.load_state_dict(D.state_dict())
    x = npgan.randn(5, 2)
    np.testing.assert_allclose(D4(x * 4.0).numpy(), D(x).numpy(), rtol=1e-5, atol=1e-7)


def test_label_errors_are_clear():
    G = DCGANGenerator(nz=8, ngf=4, nc=1, image_size=28, num_classes=10)
    with pytest.raises(ValueError, match="conditional on 10 classes"):
        G(npgan.randn(2, 8))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        G(npgan.randn(2, 8), npgan.tensor(np.array([1, 2, 3])))
    with pytest.raises(ValueError, match="unconditional"):
        DCGANGenerator(nz=8, ngf=4, nc=1, image_size=28)(npgan.randn(2, 8), npgan.tensor(np.array([0, 1])))


def test_wrong_image_shape_and_size_are_clear_errors():
    with pytest.raises(ValueError, match=r"image_size must be one of \(28, 32, 64\)"):
        DCGANGenerator(image_size=48)
    D = DCGANDiscriminator(ndf=4, nc=1, image_size=32)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 32, 32\), got \(2, 1, 28, 28\)"):
        D(npgan.randn(2, 1, 28, 28))
    with pytest.raises(ValueError, match="norm must be one of"):
        DCGANDiscriminator(norm="group")
