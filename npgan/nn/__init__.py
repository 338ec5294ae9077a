"""Layers and models: ``import npgan.nn as nn``, then ``nn.Sequential(nn.Linear(2, 8), nn.ReLU(), ...)``.

The names, argument orders, weight layouts and default initialisation follow ``torch.nn``, so a model's
``state_dict`` copies between npgan and PyTorch. A model runs as written; ``nn.fuse(model)`` is the opt-in
pass that runs each Linear + ReLU / LeakyReLU pair as one op.
"""

from npgan.nn import init
from npgan.nn.fuse import LinearLeakyReLU, LinearReLU, fuse
from npgan.nn.layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Embedding,
    Flatten,
    GaussianNoise,
    Identity,
    InstanceNorm2d,
    LayerNorm,
    LeakyReLU,
    Linear,
    Maxout,
    PixelShuffle,
    ReLU,
    Sigmoid,
    Tanh,
    Unflatten,
    Upsample,
    VirtualBatchNorm,
)
from npgan.nn.module import IncompatibleKeys, Module, Parameter, Sequential, StateDictError
from npgan.nn.stateless import functional_call

__all__ = [
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dropout", "Embedding", "Flatten",
    "GaussianNoise", "Identity", "IncompatibleKeys", "InstanceNorm2d", "LayerNorm", "LeakyReLU", "Linear",
    "LinearLeakyReLU", "LinearReLU", "Maxout", "Module", "Parameter", "PixelShuffle", "ReLU", "Sequential", "Sigmoid",
    "StateDictError", "Tanh", "Unflatten", "Upsample", "VirtualBatchNorm", "functional_call", "fuse", "init",
]
