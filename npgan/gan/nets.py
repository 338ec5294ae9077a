"""The nets of a run: G and D for a config and the shape of one sample, and PacGAN's packing of samples."""

from __future__ import annotations

import npgan
from npgan import backend
from npgan.data import toy_scale
from npgan.gan.config import VARIANTS, TrainConfig
from npgan.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator, dcgan_init_


def _norm(name):
    """A config's normalisation name as the models take it: "none" is None."""
    return None if name == "none" else name


def build_nets(config: TrainConfig, sample_shape, num_classes=0, is_toy=False):
    """G, D and the latent size for a config and the shape of one sample, on ``config.device``."""
    c, v = config.resolved(), VARIANTS[config.model]
    scale = toy_scale(c.dataset) if is_toy else 1.0  # toy nets work in units of the toy's extent
    g_norm = _norm(c.g_norm)

    def g_tricks(nz):
        """ganhacks options of G: layer noise, and virtual batch norm's reference batch (one batch of z from the
        run's noise distribution; checkpoints carry it)."""
        tricks = dict(layer_noise=c.g_layer_noise > 0, reference_size=c.batch_size)
        if g_norm == "virtual":
            shape = (c.batch_size, nz)
            draw = backend.random_uniform(shape, -1.0, 1.0) if c.noise == "uniform" else backend.random_normal(shape)
            tricks["reference_noise"] = npgan.Tensor(draw)
        return tricks

    nz = c.nz
    if is_toy and c.toy_nets == "pacgan":
        # PacGAN's (and VEEGAN's) toy nets: G has 4 hidden layers of 400 units with BatchNorm and ReLU and
        # z of size 2; D has 3 maxout layers of 200 units with 5 pieces; weights N(0, 0.02), biases 0
        # (``hidden`` sets G's width, D gets half).
        G = MLPGenerator(nz, (c.hidden,) * 4, sample_shape, out_activation=None, dropout=c.g_dropout,
                         norm=g_norm, activation="relu", out_scale=scale, **g_tricks(nz))
        D = MLPDiscriminator(packed_shape(sample_shape, c.pack), (max(1, c.hidden // 2),) * 3, maxout=5,
                             in_scale=scale)
        dcgan_init_(G)
        dcgan_init_(D)
    elif is_toy:  # 2-D points: MLPs with three hidden layers, a linear output
        hidden = (c.hidden,) * 3
        G = MLPGenerator(nz, hidden, sample_shape, out_activation=None, dropout=c.g_dropout, out_scale=scale,
                         activation=c.g_activation, norm=g_norm, **g_tricks(nz))
        D = MLPDiscriminator(packed_shape(sample_shape, c.pack), hidden, in_scale=scale)
    elif v.nets == "mlp":  # the original GAN on images
        width = c.hidden
        G = MLPGenerator(nz, (width, width * 2, width * 4), sample_shape, num_classes=num_classes,
                         dropout=c.g_dropout, activation=c.g_activation, norm=g_norm, **g_tricks(nz))
        D = MLPDiscriminator(packed_shape(sample_shape, c.pack), (width * 2, width), num_classes=num_classes)
    else:
        nc, size = sample_shape[0], sample_shape[1]
        G = DCGANGenerator(nz, c.ngf, nc, size, num_classes, dropout=c.g_dropout, norm=g_norm,
                           upsample=c.g_upsample, **g_tricks(nz))
        D = DCGANDiscriminator(c.ndf, nc * c.pack, size, num_classes, norm=_norm(c.critic_norm),
                               downsample=c.d_downsample, cond=c.cond)
    return G.to(c.device), D.to(c.device), nz


def packed_shape(sample_shape, pack):
    """The shape D sees when it judges ``pack`` samples at once: joined along the first axis."""
    return (sample_shape[0] * pack,) + tuple(sample_shape[1:])


def pack_samples(x, pack):
    """(N, C, ...) -> (N / pack, pack * C, ...): consecutive samples side by side (PacGAN, Lin et al. 2018)."""
    if pack == 1:
        return x
    return x.reshape((x.shape[0] // pack, x.shape[1] * pack) + tuple(x.shape[2:]))
