"""Fusion, by request: ``nn.fuse(model)`` runs each Linear followed by a ReLU or LeakyReLU as one op.

A model runs as written: ``nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2))`` records a ``Linear`` node and a
``LeakyReLU`` node. Every op costs some microseconds of Python before any arithmetic, and a small MLP's step
(a 2-D toy GAN) runs a few hundred of them, so the Trainer and the benchmarks ask for the fused layer: one op,
``F.linear_leaky_relu``, whose GEMM output takes the bias and the activation in place. It gives the same
values and first and second derivatives to the bit (the tests compare the two).

    before:  (0): Linear(in_features=2, out_features=8, bias=True)   (1): LeakyReLU(negative_slope=0.2)
    after:   (0): LinearLeakyReLU(in_features=2, out_features=8, bias=True, negative_slope=0.2)   (1): Identity()

The fused layer holds the Linear's own Parameter objects under the same names, and the activation's slot keeps
an ``Identity`` (as PyTorch's ``fuse_modules`` leaves), so ``state_dict()`` keys and values, an optimizer
built on ``model.parameters()`` before the fusion, and checkpoints all stay as they were.
"""

from __future__ import annotations

import npgan.functional as F
from npgan.nn.layers import Identity, LeakyReLU, Linear, ReLU, _check_features
from npgan.nn.module import Module, Sequential

__all__ = ["LinearLeakyReLU", "LinearReLU", "fuse"]


class LinearLeakyReLU(Module):
    """``leaky_relu(x W^T + b, negative_slope)`` as one op: a ``Linear`` and a ``LeakyReLU`` fused.

    Made by ``nn.fuse`` from a Linear it takes the weight and bias of (the same Parameter objects).
    """

    def __init__(self, linear: Linear, negative_slope: float):
        super().__init__()
        if type(linear) is not Linear:
            raise TypeError(f"{type(self).__name__}: expected an nn.Linear to fuse, got {type(linear).__name__}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.negative_slope = float(negative_slope)
        self.weight = linear.weight
        self.bias = linear.bias

    def forward(self, x):
        """x (N, in_features) -> (N, out_features)."""
        _check_features(self, x, self.in_features)
        return F.linear_leaky_relu(x, self.weight, self.bias, self.negative_slope)

    def extra_repr(self) -> str:
        """``in_features=2, out_features=8, bias=True, negative_slope=0.2``."""
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"negative_slope={self.negative_slope}")


class LinearReLU(LinearLeakyReLU):
    """``relu(x W^T + b)`` as one op: a ``Linear`` and a ``ReLU`` fused (negative slope 0)."""

    def __init__(self, linear: Linear):
        super().__init__(linear, 0.0)

    def extra_repr(self) -> str:
        """``in_features=2, out_features=8, bias=True``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def _fused(module: Module, following: Module | None) -> Module | None:
    """The fused layer for ``module`` then ``following``, or None when they are not an ``nn.Linear`` then an
    ``nn.ReLU`` or ``nn.LeakyReLU``, exactly those classes (a subclass may change ``forward``)."""
    if type(module) is not Linear:
        return None
    if type(following) is ReLU:
        return LinearReLU(module)
    if type(following) is LeakyReLU:
        return LinearLeakyReLU(module, following.negative_slope)
    return None


def fuse(module: Module) -> Module:
    """Fuse, in place, each ``nn.Linear`` directly followed by an ``nn.ReLU`` or ``nn.LeakyReLU`` in every
    ``nn.Sequential`` of ``module`` (itself included, at any depth) into one layer; returns ``module``.

    The Linear's slot gets a ``LinearReLU`` or ``LinearLeakyReLU`` holding the same weight and bias, the
    activation's slot an ``nn.Identity``: ``state_dict()`` is unchanged, outputs and first and second
    derivatives are equal to the bit, and ``repr(module)`` shows the fused layers. Fusing again changes
    nothing. A Sequential subclass with its own ``forward`` is left alone (it may not run its children in
    order). Fuse after initialising the weights, since an init loop over ``nn.Linear`` layers no longer
    finds the fused ones.

    >>> net = nn.fuse(nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)))
    >>> [type(m).__name__ for m in net]
    ['LinearLeakyReLU', 'Identity', 'Linear']
    """
    if not isinstance(module, Module):
        raise TypeError(f"nn.fuse: expected an nn.Module, got {type(module).__name__}")
    for container in list(module.modules()):
        if not isinstance(container, Sequential) or type(container).forward is not Sequential.forward:
            continue
        names = list(container._modules)
        for name, following_name in zip(names, names[1:]):
            fused = _fused(container._modules[name], container._modules[following_name])
            if fused is not None:
                container.add_module(name, fused.train(container._modules[name].training))
                container.add_module(following_name, Identity().train(container._modules[following_name].training))
    return module
