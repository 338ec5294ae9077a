"""Generators and discriminators of the GAN family, built from ``npgan.nn`` layers.

- Original GAN (Goodfellow 2014): multilayer perceptrons (``MLPGenerator``, ``MLPDiscriminator``).
- DCGAN (Radford 2015): transposed-conv generator and strided-conv discriminator, BatchNorm, ReLU/LeakyReLU,
  for 28x28, 32x32 and 64x64 images (the 64x64 nets are pytorch/examples' dcgan).
- WGAN-GP critic: the DCGAN discriminator without BatchNorm (``norm=None``) or with LayerNorm; the gradient
  penalty is per sample, which batch statistics would break.
- Conditional GAN: every model takes ``num_classes``; the label is embedded and fed to G (joined to z) and to D
  (an extra input channel, or joined to the input vector); or D reads it as one-hot label maps
  (``cond="channel"``).
- The tricks of soumith/ganhacks (docs/TRICKS.md) as options: G's normalisation (batch, virtual batch, none),
  Gaussian noise after every hidden layer of G, upsampling by pixel shuffle or nearest neighbour + conv,
  downsampling by average pooling, instance normalisation in D.

Every network's output is the raw score (a logit for GANs, a critic value for WGANs): losses add the sigmoid.
"""

from __future__ import annotations

import npgan
import npgan.functional as F
from npgan import backend, nn

IMAGE_SIZES = (28, 32, 64)


def dcgan_init_(module: nn.Module) -> nn.Module:
    """DCGAN's initialisation: conv weights N(0, 0.02); BatchNorm gamma N(1, 0.02), beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.VirtualBatchNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return module


def _check_labels(labels, num_classes, batch, who):
    if num_classes == 0:
        if labels is not None:
            raise ValueError(f"{who} is unconditional (num_classes=0) but was given labels")
        return None
    if labels is None:
        raise ValueError(f"{who} is conditional on {num_classes} classes: pass labels of shape ({batch},)")
    labels = labels.data if isinstance(labels, npgan.Tensor) else labels
    if tuple(labels.shape) != (batch,):
        raise ValueError(f"{who}: labels must have shape ({batch},), got {tuple(labels.shape)}")
    return labels


G_NORMS = ("batch", "virtual", None)  # a generator's normalisation: BatchNorm, virtual batch norm, none


def _check_g_norm(norm, who):
    if norm not in G_NORMS:
        raise ValueError(f"{who}: norm must be one of {G_NORMS}, got {norm!r}")


class _ReferenceBatch:
    """Virtual batch norm's reference inputs (Salimans et al. 2016), for a generator that mixes this in.

    A batch of R noise vectors (and labels, cycling through the classes) fixed when the generator is built
    and kept as buffers (so checkpoints carry them). Every forward pass puts them in front of the batch,
    the ``VirtualBatchNorm`` layers take their statistics from those R rows, and the R outputs are dropped.
    """

    def _init_reference(self, size, nz, num_classes, noise):
        self.reference_size = size
        if not size:
            return
        if noise is None:
            noise = npgan.randn(size, nz)
        if tuple(noise.shape) != (size, nz):
            raise ValueError(f"{type(self).__name__}: reference_noise must have shape ({size}, {nz}), "
                             f"got {tuple(noise.shape)}")
        self.register_buffer("reference_noise", noise)
        if num_classes:
            self.register_buffer("reference_labels", npgan.tensor(backend.numpy.arange(size) % num_classes))

    def _with_reference(self, z, labels):
        if not self.reference_size:
            return z, labels
        ref = self.reference_noise.reshape((self.reference_size,) + tuple(z.shape[1:]))
        z = F.concatenate([ref, z], axis=0)
        if labels is not None:
            ref_labels = self.reference_labels.data
            xp = backend.get_array_module(ref_labels)
            labels = npgan.tensor(xp.concatenate([ref_labels, labels.astype(ref_labels.dtype)]), device=z.device)
        return z, labels

    def _without_reference(self, out):
        return out[self.reference_size:] if self.reference_size else out


# -- original GAN: multilayer perceptrons -----------------------------------------------------------------


MLP_ACTIVATIONS = ("leaky_relu", "relu")  # hidden activations an MLPGenerator can take


class MLPGenerator(_ReferenceBatch, nn.Module):
    """z (N, nz) -> x (N, *out_shape): Linear + LeakyReLU(0.2) hidden layers, then Tanh (or identity).

    ``norm="batch"`` puts BatchNorm1d after each hidden Linear (which then has no
    bias), ``norm="virtual"`` a VirtualBatchNorm with a reference batch of ``reference_size``;
    ``layer_noise=True`` adds a ``GaussianNoise`` after each hidden activation (its std set by the trainer);
    ``activation`` is ``"leaky_relu"`` or ``"relu"``; ``out_scale`` multiplies the output (the 2-D toys' extent).

    >>> MLPGenerator(16, (32, 32), (2,), out_activation=None)(npgan.randn(4, 16)).shape
    (4, 2)
    """

    def __init__(self, nz=100, hidden=(256, 512, 1024), out_shape=(1, 28, 28), num_classes=0,
                 out_activation="tanh", dropout=0.0, activation="leaky_relu", out_scale=1.0,
                 norm=None, reference_size=64, reference_noise=None, layer_noise=False):
        super().__init__()
        self.out_scale = float(out_scale)
        if activation not in MLP_ACTIVATIONS:
            raise ValueError(f"MLPGenerator: activation must be 'leaky_relu' or 'relu', got {activation!r}")
        _check_g_norm(norm, "MLPGenerator")
        self.nz, self.num_classes, self.out_shape = nz, num_classes, tuple(out_shape)
        if num_classes:
            self.label_embedding = nn.Embedding(num_classes, num_classes)
        self._init_reference(reference_size if norm == "virtual" else 0, nz, num_classes, reference_noise)
        layers, width = [], nz + num_classes
        for size in hidden:
            layers.append(nn.Linear(width, size, bias=norm is None))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(size))
            elif norm == "virtual":
                layers.append(nn.VirtualBatchNorm(size, reference_size))
            layers.append(nn.LeakyReLU(0.2) if activation == "leaky_relu" else nn.ReLU())
            if layer_noise:
                layers.append(nn.GaussianNoise())
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        out_features = 1
        for s in self.out_shape:
            out_features *= s
        layers.append(nn.Linear(width, out_features))
        if out_activation == "tanh":
            layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)

    def forward(self, z, labels=None):
        """z (N, nz) [and labels (N,) when conditional] -> samples (N, *out_shape)."""
        labels = _check_labels(labels, self.num_classes, z.shape[0], "MLPGenerator")
        h, labels = self._with_reference(z.reshape(z.shape[0], -1), labels)
        if labels is not None:
            h = F.concatenate([h, self.label_embedding(labels)], axis=1)
        out = self._without_reference(self.main(h)).reshape((z.shape[0],) + self.out_shape)
        return out * self.out_scale if self.out_scale != 1.0 else out


class MLPDiscriminator(nn.Module):
    """x (N, *in_shape) -> score (N,): Linear + LeakyReLU(0.2) hidden layers, then one output.

    ``maxout=k`` (k > 1) makes each hidden layer a ``Maxout`` with k pieces instead (PacGAN's toy D);
    the input is divided by ``in_scale`` first (the 2-D toys' extent).

    >>> MLPDiscriminator((2,), (32, 32))(npgan.randn(4, 2)).shape
    (4,)
    """

    def __init__(self, in_shape=(1, 28, 28), hidden=(512, 256), num_classes=0, maxout=1, in_scale=1.0):
        super().__init__()
        self.in_scale = float(in_scale)
        self.num_classes, self.in_shape = num_classes, tuple(in_shape)
        in_features = 1
        for s in self.in_shape:
            in_features *= s
        if num_classes:
            self.label_embedding = nn.Embedding(num_classes, num_classes)
        layers, width = [], in_features + num_classes
        for size in hidden:
            layers += [nn.Maxout(width, size, maxout)] if maxout > 1 else [nn.Linear(width, size), nn.LeakyReLU(0.2)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.main = nn.Sequential(*layers)

    def forward(self, x, labels=None):
        """x (N, *in_shape) [and labels (N,) when conditional] -> one raw score per sample (N,)."""
        labels = _check_labels(labels, self.num_classes, x.shape[0], "MLPDiscriminator")
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"MLPDiscriminator expected inputs of shape (N, {', '.join(map(str, self.in_shape))}), "
                             f"got {tuple(x.shape)}")
        h = x.reshape(x.shape[0], -1)
        if self.in_scale != 1.0:
            h = h * (1.0 / self.in_scale)
        if labels is not None:
            h = F.concatenate([h, self.label_embedding(labels)], axis=1)
        return self.main(h).reshape(-1)


# -- DCGAN ----------------------------------------------------------------------------------------------

# (in multiple of ngf, out multiple, kernel, stride, padding) per transposed conv, from z to the image.
_G_LAYERS = {
    28: [(None, 4, 3, 1, 0), (4, 2, 3, 2, 0), (2, 1, 4, 2, 1), (1, None, 4, 2, 1)],  # 1-3-7-14-28
    32: [(None, 4, 4, 1, 0), (4, 2, 4, 2, 1), (2, 1, 4, 2, 1), (1, None, 4, 2, 1)],  # 1-4-8-16-32
    64: [(None, 8, 4, 1, 0), (8, 4, 4, 2, 1), (4, 2, 4, 2, 1), (2, 1, 4, 2, 1), (1, None, 4, 2, 1)],
}
# The discriminators mirror them, from the image to one score.
_D_LAYERS = {
    28: [(None, 1, 4, 2, 1), (1, 2, 4, 2, 1), (2, 4, 3, 2, 0), (4, None, 3, 1, 0)],  # 28-14-7-3-1
    32: [(None, 1, 4, 2, 1), (1, 2, 4, 2, 1), (2, 4, 4, 2, 1), (4, None, 4, 1, 0)],  # 32-16-8-4-1
    64: [(None, 1, 4, 2, 1), (1, 2, 4, 2, 1), (2, 4, 4, 2, 1), (4, 8, 4, 2, 1), (8, None, 4, 1, 0)],
}


def _check_image_size(image_size, who):
    if image_size not in IMAGE_SIZES:
        raise ValueError(f"{who}: image_size must be one of {IMAGE_SIZES}, got {image_size}")


G_UPSAMPLING = ("convtranspose", "pixelshuffle", "nearest")
D_DOWNSAMPLING = ("strided", "avgpool")


def _conv_to(size_in, size_out):
    """(kernel, padding) of a stride-1 conv taking size_in to size_out: kernel 3 or 4, padding 1 or 2."""
    for padding in (1, 2):
        kernel = size_in + 2 * padding + 1 - size_out
        if kernel in (3, 4):
            return kernel, padding
    raise ValueError(f"no 3x3 or 4x4 conv takes {size_in}x{size_in} to {size_out}x{size_out}")


def icnr_(conv: nn.Conv2d, upscale_factor: int) -> nn.Conv2d:
    """ICNR initialisation (Aitken et al. 2017) of a conv followed by PixelShuffle(r): the r^2 output channels
    that shuffle into one channel get the same kernel, so at the start conv + shuffle equals nearest
    upsampling of one conv's output, with no checkerboard; training then lets the r^2 kernels differ.
    """
    r2 = upscale_factor * upscale_factor
    weight = conv.weight.data
    grouped = weight.reshape((weight.shape[0] // r2, r2) + tuple(weight.shape[1:]))  # a view of the weight
    grouped[...] = grouped[:, :1].copy()
    return conv


def _upsampling(c_in, c_out, k, s, p, size_in, size_target, mode):
    """Layers that take (c_in, size_in) maps to (c_out, size_target) in the way ``mode`` names, and the size
    they actually reach.

    - convtranspose: the DCGAN layer itself, ConvTranspose2d(k, s, p).
    - nearest (Odena et al. 2016, "resize-convolution"): Upsample(2), then a 3x3 conv (4x4 with padding 2
      where the transposed conv gave 2H + 1: 3 -> 7 in the 28x28 net).
    - pixelshuffle (Shi et al. 2016): a conv to 4 c_out channels, then PixelShuffle(2). An odd target
      (7 in the 28x28 net) is reached as 8, and the next conv (4x4) takes 8 back to the 7 it expects.
      The generator initialises these convs with ICNR (``icnr_``) after its N(0, 0.02) initialisation.
    Stride-1 layers (the projection of z) stay transposed convolutions in every mode.
    """
    if mode == "convtranspose" or s == 1:
        return [nn.ConvTranspose2d(c_in, c_out, k, s, p, bias=False)], size_target
    if mode == "nearest":
        kernel, padding = _conv_to(2 * size_in, size_target)
        return [nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, kernel, 1, padding, bias=False)], size_target
    half = (size_target + 1) // 2
    kernel, padding = _conv_to(size_in, half)
    return [nn.Conv2d(c_in, 4 * c_out, kernel, 1, padding, bias=False), nn.PixelShuffle(2)], 2 * half


class DCGANGenerator(_ReferenceBatch, nn.Module):
    """z (N, nz, 1, 1) or (N, nz) -> images (N, nc, S, S) in [-1, 1]: ConvT-BN-ReLU blocks, Tanh.

    Options (defaults: pytorch/examples' DCGAN): ``norm`` "batch", "virtual" (VirtualBatchNorm with a
    fixed reference batch of ``reference_size`` noise vectors) or None; ``upsample`` "convtranspose",
    "pixelshuffle" or "nearest" (see ``_upsampling``); ``layer_noise`` adds a ``GaussianNoise`` after every
    hidden block (its std set by the trainer); ``dropout`` after every hidden block.

    >>> DCGANGenerator(nz=100, ngf=8, nc=1, image_size=32)(npgan.randn(2, 100)).shape
    (2, 1, 32, 32)
    """

    def __init__(self, nz=100, ngf=64, nc=1, image_size=32, num_classes=0, dropout=0.0, norm="batch",
                 upsample="convtranspose", layer_noise=False, reference_size=64, reference_noise=None):
        super().__init__()
        _check_image_size(image_size, "DCGANGenerator")
        _check_g_norm(norm, "DCGANGenerator")
        if upsample not in G_UPSAMPLING:
            raise ValueError(f"DCGANGenerator: upsample must be one of {G_UPSAMPLING}, got {upsample!r}")
        self.nz, self.nc, self.image_size, self.num_classes = nz, nc, image_size, num_classes
        self.upsample = upsample
        if num_classes:
            self.label_embedding = nn.Embedding(num_classes, num_classes)
        self._init_reference(reference_size if norm == "virtual" else 0, nz, num_classes, reference_noise)
        layers = []
        spec = _G_LAYERS[image_size]
        size = nominal = 1  # the size reached, and the one DCGAN's layers give (they differ by one at most)
        for i, (mult_in, mult_out, k, s, p) in enumerate(spec):
            c_in = nz + num_classes if mult_in is None else ngf * mult_in
            c_out = nc if mult_out is None else ngf * mult_out
            nominal = (nominal - 1) * s - 2 * p + k
            block, size = _upsampling(c_in, c_out, k, s, p, size, nominal, upsample)
            layers += block
            if i < len(spec) - 1:
                if norm == "batch":
                    layers.append(nn.BatchNorm2d(c_out))
                elif norm == "virtual":
                    layers.append(nn.VirtualBatchNorm(c_out, reference_size))
                layers.append(nn.ReLU())
                if layer_noise:
                    layers.append(nn.GaussianNoise())
                if dropout:
                    layers.append(nn.Dropout(dropout))
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)
        for conv, shuffle in zip(layers, layers[1:]):
            if isinstance(shuffle, nn.PixelShuffle):
                icnr_(conv, shuffle.upscale_factor)

    def forward(self, z, labels=None):
        """z (N, nz) or (N, nz, 1, 1) [and labels (N,) when conditional] -> images (N, nc, S, S) in [-1, 1]."""
        labels = _check_labels(labels, self.num_classes, z.shape[0], "DCGANGenerator")
        if z.ndim == 2:
            z = z.reshape(z.shape[0], z.shape[1], 1, 1)
        z, labels = self._with_reference(z, labels)
        if labels is not None:
            code = self.label_embedding(labels).reshape(z.shape[0], self.num_classes, 1, 1)
            z = F.concatenate([z, code], axis=1)
        return self._without_reference(self.main(z))


class DCGANDiscriminator(nn.Module):
    """images (N, nc, S, S) -> score (N,): Conv-[norm]-LeakyReLU(0.2) blocks, one final conv.

    ``norm``: 'batch' (DCGAN), None (WGAN-GP critic), 'layer' (LayerNorm, also fine under a penalty) or
    'instance' (InstanceNorm2d, PyTorch's defaults: per-sample statistics, so also fine under a penalty).
    ``downsample``: 'strided' (DCGAN's stride-2 convs) or 'avgpool' (a 3x3 stride-1 conv, then AvgPool2d(2)).
    ``cond`` (conditional D): 'embed' (the label embedded as one extra input plane) or 'channel'
    (``num_classes`` one-hot label planes joined to the image's channels).

    >>> DCGANDiscriminator(ndf=8, nc=1, image_size=32)(npgan.randn(2, 1, 32, 32)).shape
    (2,)
    """

    NORMS = ("batch", "layer", "instance", None)
    CONDS = ("embed", "channel")

    def __init__(self, ndf=64, nc=1, image_size=32, num_classes=0, norm="batch", downsample="strided",
                 cond="embed"):
        super().__init__()
        _check_image_size(image_size, "DCGANDiscriminator")
        if norm not in self.NORMS:
            raise ValueError(f"DCGANDiscriminator: norm must be one of {self.NORMS}, got {norm!r}")
        if downsample not in D_DOWNSAMPLING:
            raise ValueError(f"DCGANDiscriminator: downsample must be one of {D_DOWNSAMPLING}, got {downsample!r}")
        if cond not in self.CONDS:
            raise ValueError(f"DCGANDiscriminator: cond must be one of {self.CONDS}, got {cond!r}")
        self.nc, self.image_size, self.num_classes, self.cond = nc, image_size, num_classes, cond
        label_channels = 0
        if num_classes and cond == "embed":  # the label becomes one extra input channel
            self.label_embedding = nn.Embedding(num_classes, image_size * image_size)
            label_channels = 1
        elif num_classes:
            label_channels = num_classes
        layers, size = [], image_size
        spec = _D_LAYERS[image_size]
        for i, (mult_in, mult_out, k, s, p) in enumerate(spec):
            c_in = nc + label_channels if mult_in is None else ndf * mult_in
            c_out = 1 if mult_out is None else ndf * mult_out
            if downsample == "avgpool" and s == 2:  # ganhacks: average pooling, no sparse gradients
                layers += [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.AvgPool2d(2)]
                size //= 2  # equals the strided conv's (size + 2p - k) // 2 + 1 for every layer of _D_LAYERS
            else:
                layers.append(nn.Conv2d(c_in, c_out, k, s, p, bias=False))
                size = (size + 2 * p - k) // s + 1
            if i == len(spec) - 1:
                break
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif i > 0 and norm == "layer":
                layers.append(nn.LayerNorm([c_out, size, size]))
            elif i > 0 and norm == "instance":
                layers.append(nn.InstanceNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x, labels=None):
        """images (N, nc, S, S) [and labels (N,) when conditional] -> one raw score per image (N,)."""
        labels = _check_labels(labels, self.num_classes, x.shape[0], "DCGANDiscriminator")
        expected = (self.nc, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"DCGANDiscriminator expected images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        if labels is not None and self.cond == "embed":
            plane = self.label_embedding(labels).reshape(x.shape[0], 1, self.image_size, self.image_size)
            x = F.concatenate([x, plane], axis=1)
        elif labels is not None:
            x = F.concatenate([x, one_hot_planes(labels, self.num_classes, self.image_size, x.dtype)], axis=1)
        return self.main(x).reshape(-1)


def one_hot_planes(labels, num_classes, size, dtype):
    """Labels (N,) -> (N, num_classes, size, size) constant planes: 1 in the label's plane, 0 elsewhere."""
    xp = backend.get_array_module(labels)
    one_hot = (labels.reshape(-1, 1) == xp.arange(num_classes).reshape(1, -1)).astype(dtype)
    return npgan.Tensor(xp.broadcast_to(one_hot.reshape(-1, num_classes, 1, 1), (len(labels), num_classes, size, size)))
