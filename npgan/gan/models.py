"""Generators and discriminators of the GAN family, built from ``npgan.nn`` layers.

- Original GAN (Goodfellow 2014): multilayer perceptrons (``MLPGenerator``, ``MLPDiscriminator``).
- DCGAN (Radford 2015): transposed-conv generator and strided-conv discriminator, BatchNorm, ReLU/LeakyReLU,
  for 28x28, 32x32 and 64x64 images (the 64x64 nets are pytorch/examples' dcgan).
- WGAN-GP critic: the DCGAN discriminator without BatchNorm (``norm=None``) or with LayerNorm; the gradient
  penalty is per sample, which batch statistics would break.
- Conditional GAN: every model takes ``num_classes``; the label is embedded and fed to G (joined to z) and to D
  (an extra input channel, or joined to the input vector).

Every network's output is the raw score (a logit for GANs, a critic value for WGANs): losses add the sigmoid.
"""

from __future__ import annotations

import npgan
import npgan.functional as F
from npgan import nn

IMAGE_SIZES = (28, 32, 64)


def dcgan_init_(module: nn.Module) -> nn.Module:
    """DCGAN's initialisation: conv weights N(0, 0.02); BatchNorm gamma N(1, 0.02), beta 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
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


# -- original GAN: multilayer perceptrons -----------------------------------------------------------------


MLP_ACTIVATIONS = ("leaky_relu", "relu")  # hidden activations an MLPGenerator can take


class MLPGenerator(nn.Module):
    """z (N, nz) -> x (N, *out_shape): Linear + LeakyReLU(0.2) hidden layers, then Tanh (or identity).

    ``batch_norm=True`` puts BatchNorm1d after each hidden Linear (which then has no bias); ``activation`` is
    ``"leaky_relu"`` or ``"relu"``; ``out_scale`` multiplies the output (the 2-D toys' extent).
    """

    def __init__(self, nz=100, hidden=(256, 512, 1024), out_shape=(1, 28, 28), num_classes=0,
                 out_activation="tanh", dropout=0.0, batch_norm=False, activation="leaky_relu", out_scale=1.0):
        super().__init__()
        self.out_scale = float(out_scale)
        if activation not in MLP_ACTIVATIONS:
            raise ValueError(f"MLPGenerator: activation must be 'leaky_relu' or 'relu', got {activation!r}")
        self.nz, self.num_classes, self.out_shape = nz, num_classes, tuple(out_shape)
        if num_classes:
            self.label_embedding = nn.Embedding(num_classes, num_classes)
        layers, width = [], nz + num_classes
        for size in hidden:
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.LeakyReLU(0.2) if activation == "leaky_relu" else nn.ReLU())
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
        h = z.reshape(z.shape[0], -1)
        if labels is not None:
            h = F.concatenate([h, self.label_embedding(labels)], axis=1)
        out = self.main(h).reshape((z.shape[0],) + self.out_shape)
        return out * self.out_scale if self.out_scale != 1.0 else out


class MLPDiscriminator(nn.Module):
    """x (N, *in_shape) -> score (N,): Linear + LeakyReLU(0.2) hidden layers, then one output.

    ``maxout=k`` (k > 1) makes each hidden layer a ``Maxout`` with k pieces instead (PacGAN's toy D);
    the input is divided by ``in_scale`` first (the 2-D toys' extent).
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


class DCGANGenerator(nn.Module):
    """z (N, nz, 1, 1) or (N, nz) -> images (N, nc, S, S) in [-1, 1]: ConvT-BN-ReLU blocks, Tanh."""

    def __init__(self, nz=100, ngf=64, nc=1, image_size=32, num_classes=0, dropout=0.0):
        super().__init__()
        _check_image_size(image_size, "DCGANGenerator")
        self.nz, self.nc, self.image_size, self.num_classes = nz, nc, image_size, num_classes
        if num_classes:
            self.label_embedding = nn.Embedding(num_classes, num_classes)
        layers = []
        spec = _G_LAYERS[image_size]
        for i, (mult_in, mult_out, k, s, p) in enumerate(spec):
            c_in = nz + num_classes if mult_in is None else ngf * mult_in
            c_out = nc if mult_out is None else ngf * mult_out
            layers.append(nn.ConvTranspose2d(c_in, c_out, k, s, p, bias=False))
            if i < len(spec) - 1:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
                if dropout:
                    layers.append(nn.Dropout(dropout))
        layers.append(nn.Tanh())
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z, labels=None):
        """z (N, nz) or (N, nz, 1, 1) [and labels (N,) when conditional] -> images (N, nc, S, S) in [-1, 1]."""
        labels = _check_labels(labels, self.num_classes, z.shape[0], "DCGANGenerator")
        if z.ndim == 2:
            z = z.reshape(z.shape[0], z.shape[1], 1, 1)
        if labels is not None:
            code = self.label_embedding(labels).reshape(z.shape[0], self.num_classes, 1, 1)
            z = F.concatenate([z, code], axis=1)
        return self.main(z)


class DCGANDiscriminator(nn.Module):
    """images (N, nc, S, S) -> score (N,): Conv-[norm]-LeakyReLU(0.2) blocks, one final conv.

    ``norm``: 'batch' (DCGAN), None (WGAN-GP critic) or 'layer' (LayerNorm, also fine under a penalty).
    """

    NORMS = ("batch", "layer", None)

    def __init__(self, ndf=64, nc=1, image_size=32, num_classes=0, norm="batch"):
        super().__init__()
        _check_image_size(image_size, "DCGANDiscriminator")
        if norm not in self.NORMS:
            raise ValueError(f"DCGANDiscriminator: norm must be one of {self.NORMS}, got {norm!r}")
        self.nc, self.image_size, self.num_classes = nc, image_size, num_classes
        if num_classes:  # the label becomes one extra input channel
            self.label_embedding = nn.Embedding(num_classes, image_size * image_size)
        layers, size = [], image_size
        spec = _D_LAYERS[image_size]
        for i, (mult_in, mult_out, k, s, p) in enumerate(spec):
            c_in = nc + (1 if num_classes else 0) if mult_in is None else ndf * mult_in
            c_out = 1 if mult_out is None else ndf * mult_out
            layers.append(nn.Conv2d(c_in, c_out, k, s, p, bias=False))
            size = (size + 2 * p - k) // s + 1
            if i == len(spec) - 1:
                break
            if i > 0 and norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif i > 0 and norm == "layer":
                layers.append(nn.LayerNorm([c_out, size, size]))
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
        if labels is not None:
            plane = self.label_embedding(labels).reshape(x.shape[0], 1, self.image_size, self.image_size)
            x = F.concatenate([x, plane], axis=1)
        return self.main(x).reshape(-1)
