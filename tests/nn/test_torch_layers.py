"""npgan's layers against torch.nn's (runs only where PyTorch is installed).

Each layer is built in both libraries, the weights are copied through ``state_dict`` (same names and
layouts), and forward values and the gradients w.r.t. the input and every parameter are compared in
float32, for several configurations including every layer shape of the dcgan-32 benchmark (batch 2).

Tolerance: see torch_compare.py (float32, rtol 1e-4, atol 2e-5 of the reference's scale).
"""

import numpy as np
import pytest

import npgan
import npgan.nn as nn

from .torch_compare import assert_close, compare, copy_from_torch, copy_to_torch

torch = pytest.importorskip("torch")
tnn = torch.nn


# -- dense and convolution layers ----------------------------------------------------------------------


@pytest.mark.parametrize("args, shape", [
    ((5, 3), (4, 5)), ((5, 3, False), (1, 5)), ((4, 2), (2, 3, 4)),
    ((100, 256), (3, 100)), ((1024, 784), (2, 1024)),  # gan-mlp generator shapes
])
def test_linear_matches_torch(args, shape):
    ours = nn.Linear(*args)
    theirs = tnn.Linear(*args)
    copy_to_torch(ours, theirs)
    compare(ours, theirs, shape)


DCGAN_CRITIC = [  # (in, out, kernel, stride, padding), input shape
    ((1, 64, 4, 2, 1), (2, 1, 32, 32)),
    ((64, 128, 4, 2, 1), (2, 64, 16, 16)),
    ((128, 256, 4, 2, 1), (2, 128, 8, 8)),
    ((256, 1, 4, 1, 0), (2, 256, 4, 4)),
]
DCGAN_GENERATOR = [
    ((100, 256, 4, 1, 0), (2, 100, 1, 1)),
    ((256, 128, 4, 2, 1), (2, 256, 4, 4)),
    ((128, 64, 4, 2, 1), (2, 128, 8, 8)),
    ((64, 1, 4, 2, 1), (2, 64, 16, 16)),
]


@pytest.mark.parametrize("args, kwargs, shape", [
    ((3, 4, 3), {}, (2, 3, 7, 6)),
    ((3, 4, 3), dict(stride=2, padding=1), (1, 3, 7, 7)),
    ((2, 3, 1), {}, (2, 2, 5, 5)),
    ((2, 3, 5), dict(stride=2, padding=2, bias=False), (2, 2, 9, 8)),
    ((2, 3, (3, 2)), dict(stride=(2, 1), padding=(1, 0)), (2, 2, 6, 5)),
] + [(args, dict(bias=False), shape) for args, shape in DCGAN_CRITIC])
def test_conv2d_matches_torch(args, kwargs, shape):
    ours = nn.Conv2d(*args, **kwargs)
    theirs = tnn.Conv2d(*args, **kwargs)
    copy_to_torch(ours, theirs)
    compare(ours, theirs, shape)


@pytest.mark.parametrize("args, kwargs, shape", [
    ((3, 4, 3), {}, (2, 3, 4, 5)),
    ((3, 4, 3), dict(stride=2, padding=1, output_padding=1), (1, 3, 4, 4)),
    ((2, 3, 1), {}, (2, 2, 5, 5)),
    ((2, 3, 5), dict(stride=2, padding=2, output_padding=1, bias=False), (2, 2, 3, 4)),
    ((2, 3, (3, 2)), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2)), (2, 2, 3, 3)),
] + [(args, dict(bias=False), shape) for args, shape in DCGAN_GENERATOR])
def test_conv_transpose2d_matches_torch(args, kwargs, shape):
    ours = nn.ConvTranspose2d(*args, **kwargs)
    theirs = tnn.ConvTranspose2d(*args, **kwargs)
    copy_to_torch(ours, theirs)
    compare(ours, theirs, shape)


# -- normalisation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kwargs, shape", [
    ("BatchNorm1d", {}, (6, 4)),
    ("BatchNorm1d", dict(momentum=0.3), (3, 4, 5)),
    ("BatchNorm1d", dict(momentum=None), (5, 4)),
    ("BatchNorm2d", {}, (2, 4, 3, 3)),
    ("BatchNorm2d", dict(affine=False, eps=1e-3), (3, 4, 2, 5)),
    ("BatchNorm2d", {}, (2, 256, 4, 4)),  # the dcgan-32 generator's first BatchNorm
])
def test_batch_norm_training_and_eval_and_running_statistics_match_torch(name, kwargs, shape):
    ours, theirs = getattr(nn, name)(shape[1], **kwargs), getattr(tnn, name)(shape[1], **kwargs)
    if ours.affine:  # non-trivial affine parameters
        rng = np.random.default_rng(5)
        ours.weight.data[...] = rng.uniform(0.5, 1.5, shape[1])
        ours.bias.data[...] = rng.standard_normal(shape[1])
    copy_to_torch(ours, theirs)
    for step in range(3):  # three training steps move the running statistics
        compare(ours, theirs, shape, seed=step)
    # float32 statistics of at most 512 values per channel, updated three times: a few ulps.
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-5, atol=1e-6)
    assert int(ours.num_batches_tracked.item()) == int(theirs.num_batches_tracked) == 3
    ours.eval()
    theirs.eval()
    compare(ours, theirs, shape, seed=9)


def test_batch_norm_without_running_statistics_matches_torch_in_eval():
    ours, theirs = nn.BatchNorm2d(3, track_running_stats=False), tnn.BatchNorm2d(3, track_running_stats=False)
    copy_to_torch(ours, theirs)
    ours.eval()
    theirs.eval()
    compare(ours, theirs, (2, 3, 2, 2))


@pytest.mark.parametrize("normalized, kwargs, shape", [
    (6, {}, (4, 6)), ((3, 4), dict(eps=1e-3), (2, 3, 4)), ((2, 3, 3), dict(elementwise_affine=False), (2, 2, 3, 3)),
])
def test_layer_norm_matches_torch(normalized, kwargs, shape):
    ours, theirs = nn.LayerNorm(normalized, **kwargs), tnn.LayerNorm(normalized, **kwargs)
    if ours.elementwise_affine:
        rng = np.random.default_rng(3)
        ours.weight.data[...] = rng.uniform(0.5, 1.5, ours.weight.shape)
        ours.bias.data[...] = rng.standard_normal(ours.bias.shape)
    copy_to_torch(ours, theirs)
    compare(ours, theirs, shape)


# -- activations and shape layers ----------------------------------------------------------------------


@pytest.mark.parametrize("ours, theirs, shape", [
    (nn.ReLU(), tnn.ReLU(), (3, 5)),
    (nn.LeakyReLU(), tnn.LeakyReLU(), (3, 5)),
    (nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2), (2, 3, 4, 4)),
    (nn.Tanh(), tnn.Tanh(), (3, 5)),
    (nn.Sigmoid(), tnn.Sigmoid(), (3, 5)),
    (nn.Dropout(0.5).eval(), tnn.Dropout(0.5).eval(), (3, 5)),
    (nn.Flatten(), tnn.Flatten(), (2, 3, 4, 5)),
    (nn.Flatten(0, 2), tnn.Flatten(0, 2), (2, 3, 4, 5)),
    (nn.Unflatten(1, (2, 3)), tnn.Unflatten(1, (2, 3)), (4, 6)),
])
def test_parameterless_layers_match_torch(ours, theirs, shape):
    compare(ours, theirs, shape)
    assert repr(ours) == repr(theirs)


def test_embedding_matches_torch():
    ours, theirs = nn.Embedding(10, 4), tnn.Embedding(10, 4)
    copy_to_torch(ours, theirs)
    compare(ours, theirs, (3, 5), integer_input=10)


# -- whole models, names, repr, init -------------------------------------------------------------------


def dcgan32(lib, nz=100, ngf=64, ndf=64):
    """The dcgan-32 generator and discriminator of benchmarks/CONFIGS.md, built with ``lib``."""
    G = lib.Sequential(
        lib.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), lib.BatchNorm2d(ngf * 4), lib.ReLU(True),
        lib.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), lib.BatchNorm2d(ngf * 2), lib.ReLU(True),
        lib.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), lib.BatchNorm2d(ngf), lib.ReLU(True),
        lib.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), lib.Tanh(),
    )
    D = lib.Sequential(
        lib.Conv2d(1, ndf, 4, 2, 1, bias=False), lib.LeakyReLU(0.2, inplace=True),
        lib.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), lib.BatchNorm2d(ndf * 2), lib.LeakyReLU(0.2, inplace=True),
        lib.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), lib.BatchNorm2d(ndf * 4), lib.LeakyReLU(0.2, inplace=True),
        lib.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),
    )
    return G, D


def test_dcgan32_models_have_torchs_state_dict_names_shapes_and_repr():
    (G, D), (tG, tD) = dcgan32(nn), dcgan32(tnn)
    for ours, theirs in ((G, tG), (D, tD)):
        assert list(ours.state_dict()) == list(theirs.state_dict())
        assert [v.shape for v in ours.state_dict().values()] == [tuple(v.shape) for v in theirs.state_dict().values()]
        # recent PyTorch versions also print BatchNorm's optional bias flag, which npgan does not have
        assert repr(ours) == repr(theirs).replace("affine=True, bias=True,", "affine=True,")


def test_dcgan32_training_steps_match_torch_and_weights_copy_back_from_torch():
    torch.manual_seed(0)  # the same initial weights in every run: a failure here can be replayed
    (G, D), (tG, tD) = dcgan32(nn, ngf=8, ndf=8), dcgan32(tnn, ngf=8, ndf=8)
    copy_from_torch(tG, G)  # torch -> npgan
    copy_from_torch(tD, D)
    rng = np.random.default_rng(0)
    for step in range(3):
        z = rng.standard_normal((2, 100, 1, 1)).astype(np.float32)
        fake, tfake = G(npgan.tensor(z)), tG(torch.from_numpy(z))
        assert_close(fake.numpy(), tfake.detach().numpy(), f"G forward, step {step}")
        logits, tlogits = D(fake), tD(tfake)
        assert_close(logits.numpy(), tlogits.detach().numpy(), f"D forward, step {step}")
        logits.sum().backward()
        tlogits.sum().backward()
        for model, tmodel in ((G, tG), (D, tD)):
            tgrads = dict(tmodel.named_parameters())
            for name, p in model.named_parameters():
                assert_close(p.grad.numpy(), tgrads[name].grad.numpy(), f"gradient of {name}, step {step}")
                p.grad = None
                tgrads[name].grad = None
    for model, tmodel in ((G, tG), (D, tD)):  # running statistics after 3 steps, then npgan -> torch
        theirs = tmodel.state_dict()
        for name, value in model.state_dict().items():
            np.testing.assert_allclose(value, theirs[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
        copy_to_torch(model, tmodel)


def test_fan_computation_and_gains_match_torch():
    from torch.nn import init as tinit

    for shape in [(5, 3), (64, 1, 4, 4), (100, 256, 4, 4), (3, 7, 2, 5)]:
        assert nn.init._calculate_fan_in_and_fan_out(shape) == tinit._calculate_fan_in_and_fan_out(
            torch.empty(shape))
    for name, param in [("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("tanh", None),
                        ("sigmoid", None), ("conv_transpose2d", None), ("selu", None)]:
        assert nn.init.calculate_gain(name, param) == pytest.approx(tinit.calculate_gain(name, param), rel=1e-12)


@pytest.mark.parametrize("make", [
    lambda lib: lib.Linear(50, 40), lambda lib: lib.Conv2d(8, 30, 3), lambda lib: lib.ConvTranspose2d(30, 8, 3),
])
def test_default_init_bounds_match_torch(make):
    # The random streams differ; the bounds of the uniform distributions must agree. With >= 2,000 weight
    # samples the extremes of both lie within 0.5% of the bound. The biases (8..40 samples) must stay
    # within torch's bound 1/sqrt(fan_in) and reach at least 30% of it.
    torch.manual_seed(0)
    npgan.manual_seed(0)
    ours, theirs = make(nn), make(tnn)
    ours_max = np.abs(ours.weight.numpy()).max()
    assert ours_max == pytest.approx(float(theirs.weight.detach().abs().max()), rel=0.005)
    fan_in, _ = torch.nn.init._calculate_fan_in_and_fan_out(theirs.weight)
    bound = 1 / np.sqrt(fan_in)
    assert 0.3 * bound < np.abs(ours.bias.numpy()).max() <= bound * (1 + 1e-6)
    assert float(theirs.bias.detach().abs().max()) <= bound * (1 + 1e-6)
