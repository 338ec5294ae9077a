"""The benchmark configurations' networks (``benchmarks/CONFIGS.md``): npgan's models and their PyTorch copies.

``build_models`` builds npgan's G and D of a configuration from ``npgan.gan.models``; ``torch_models`` builds
the PyTorch reference models layer by layer from them and loads npgan's weights with ``strict=True``, so the
two libraries start from the same numbers and every name and shape must match.
"""

from __future__ import annotations

CONFIGS = ("gan-mlp", "dcgan-32", "wgan-gp-32", "wgan-32", "dcgan-64", "toy-mlp", "toy-wgan-gp")
PHASES = {  # what one row times; WGANs time the critic and the generator step separately
    "gan-mlp": ("step",),
    "dcgan-32": ("step",),
    "wgan-gp-32": ("critic", "generator"),
    "wgan-32": ("critic", "generator"),
    "dcgan-64": ("step",),
    "toy-mlp": ("step",),
    "toy-wgan-gp": ("critic",),
}
TOY_CONFIGS = ("toy-mlp", "toy-wgan-gp")  # 2-D points, MLPs of three hidden layers of 256 units, z of 16
GP_CONFIGS = ("wgan-gp-32", "toy-wgan-gp")  # critic steps with the gradient penalty
MLP_CONFIGS = ("gan-mlp",) + TOY_CONFIGS


def default_batch_size(config: str) -> int:
    """The batch of benchmarks/CONFIGS.md: 256 points for the 2-D toys, 64 images otherwise."""
    return 256 if config in TOY_CONFIGS else 64


def default_steps(config: str) -> int:
    """Timed steps per row: 20, and 200 for the 2-D toys, whose steps are so short that 20 of them, split into
    rounds, would be too brief for a median that holds still on a shared machine."""
    return 200 if config in TOY_CONFIGS else 20


def latent_size(config: str) -> int:
    return 16 if config in TOY_CONFIGS else 100


def build_models(config: str, device: str = "cpu"):
    """npgan's G and D of a configuration (``npgan.gan.models``), and G's latent size."""
    from npgan.gan.models import DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator  # noqa: PLC0415

    if config == "gan-mlp":
        G = MLPGenerator(100, (256, 512, 1024), (1, 28, 28))
        D = MLPDiscriminator((1, 28, 28), (512, 256))
    elif config in ("dcgan-32", "wgan-32", "wgan-gp-32"):
        G = DCGANGenerator(nz=100, ngf=64, nc=1, image_size=32)
        D = DCGANDiscriminator(ndf=64, nc=1, image_size=32, norm=None if config == "wgan-gp-32" else "batch")
    elif config in TOY_CONFIGS:
        G = MLPGenerator(16, (256, 256, 256), (2,), out_activation=None, activation="relu")
        D = MLPDiscriminator((2,), (256, 256, 256))
    elif config == "dcgan-64":
        G = DCGANGenerator(nz=100, ngf=64, nc=3, image_size=64)
        D = DCGANDiscriminator(ndf=64, nc=3, image_size=64, norm="batch")
    else:
        raise ValueError(f"unknown benchmark configuration {config!r}; choose from {', '.join(CONFIGS)}")
    return G.to(device), D.to(device), latent_size(config)


def image_shape(config: str) -> tuple:
    """One sample's shape: an image (C, H, W), or a 2-D point for the toys."""
    if config in TOY_CONFIGS:
        return (2,)
    return {"gan-mlp": (1, 28, 28), "dcgan-64": (3, 64, 64)}.get(config, (1, 32, 32))


def torch_models(config: str, device: str):
    """PyTorch copies of npgan's G and D: the same layers, built from npgan's models, with their weights.

    Loading npgan's state dict with ``strict=True`` fails unless every name and shape matches.
    """
    import torch  # noqa: PLC0415
    from torch import nn as tnn  # noqa: PLC0415

    from npgan import nn  # noqa: PLC0415

    def translate(module):
        if isinstance(module, nn.Linear):
            return tnn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        if isinstance(module, nn.Conv2d):
            return tnn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                              module.padding, bias=module.bias is not None)
        if isinstance(module, nn.ConvTranspose2d):
            return tnn.ConvTranspose2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                                       module.padding, module.output_padding, bias=module.bias is not None)
        if isinstance(module, nn.BatchNorm2d):
            return tnn.BatchNorm2d(module.num_features, eps=module.eps, momentum=module.momentum)
        if isinstance(module, nn.LeakyReLU):
            return tnn.LeakyReLU(module.negative_slope)
        if isinstance(module, nn.ReLU):
            return tnn.ReLU()
        if isinstance(module, nn.Tanh):
            return tnn.Tanh()
        raise TypeError(f"no PyTorch counterpart for {type(module).__name__}")

    class Net(tnn.Module):
        def __init__(self, npgan_model, in_shape, out_shape):
            super().__init__()
            self.main = tnn.Sequential(*[translate(m) for m in npgan_model.main])
            self.in_shape, self.out_shape = in_shape, out_shape
            state = {k: torch.from_numpy(v.copy()) for k, v in npgan_model.state_dict().items()}
            self.load_state_dict(state, strict=True)

        def forward(self, x):
            return self.main(x.reshape(self.in_shape)).reshape(self.out_shape)

    G, D, nz = build_models(config)
    batch_image = (-1,) + image_shape(config)
    if config in MLP_CONFIGS:
        flat = 1
        for s in image_shape(config):
            flat *= s
        tG, tD = Net(G, (-1, nz), batch_image), Net(D, (-1, flat), (-1,))
    else:
        tG, tD = Net(G, (-1, nz, 1, 1), batch_image), Net(D, batch_image, (-1,))
    return tG.to(device), tD.to(device), nz
