"""The functional API: ``import npgan.functional as F``.

Every differentiable op of npgan, by its PyTorch name. The ops themselves (forward beside backward)
live in ``npgan/ops/``; this module gathers them and gives ``Tensor`` its operators and methods.
"""

from __future__ import annotations

from npgan.autograd import Tensor, as_tensor
from npgan.ops.activation import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    leaky_relu,
    log_sigmoid,
    log_softmax,
    mse_loss,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from npgan.ops.conv import conv2d, conv2d_grad_weight, conv_transpose2d
from npgan.ops.core import (
    abs,
    add,
    broadcast_to,
    cast,
    cat,
    clamp,
    clip,
    concatenate,
    copy,
    div,
    exp,
    flatten,
    getitem,
    log,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    neg,
    pack,
    pad,
    permute,
    pow,
    reshape,
    sqrt,
    squeeze,
    stack,
    std,
    sub,
    sum,
    sum_to,
    to_device,
    transpose,
    unpack,
    unsqueeze,
    var,
    view,
    where,
)
from npgan.ops.dropout import dropout
from npgan.ops.embedding import embedding
from npgan.ops.linear import linear, linear_leaky_relu
from npgan.ops.norm import batch_norm, instance_norm, layer_norm, virtual_batch_norm
from npgan.ops.pool import avg_pool2d, pixel_shuffle, pixel_unshuffle, upsample_nearest

__all__ = [
    "avg_pool2d", "batch_norm", "conv2d", "conv2d_grad_weight", "conv_transpose2d", "dropout", "embedding",
    "instance_norm", "layer_norm", "linear", "linear_leaky_relu", "pixel_shuffle", "pixel_unshuffle",
    "upsample_nearest",
    "virtual_batch_norm", "abs", "add", "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "broadcast_to", "cast", "cat", "clamp", "clip", "concatenate", "copy", "cross_entropy", "div", "exp",
    "flatten", "getitem",
    "leaky_relu", "log", "log_sigmoid", "log_softmax", "matmul", "max", "maximum", "mean", "min",
    "minimum", "mse_loss", "mul", "neg", "pack", "pad", "permute", "pow", "relu", "reshape", "sigmoid", "softmax",
    "softplus", "sqrt", "squeeze", "stack", "std", "sub", "sum", "sum_to", "tanh", "to_device",
    "transpose", "unpack", "unsqueeze", "var", "view", "where",
]


def _compare(op):
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))  # a boolean mask: not differentiable
    return compare


def _transpose_method(a, *axes):
    """``x.transpose()`` reverses the axes, ``x.transpose(0, 1)`` swaps two (as PyTorch), a tuple permutes them.

    >>> npgan.zeros(2, 3, 4).transpose(0, 2).shape
    (4, 3, 2)
    """
    return transpose(a, *axes)


def _install_tensor_methods() -> None:
    """Operators and PyTorch-style methods on Tensor."""
    T = Tensor
    T.__add__ = lambda a, b: add(a, b)
    T.__radd__ = lambda a, b: add(b, a)
    T.__sub__ = lambda a, b: sub(a, b)
    T.__rsub__ = lambda a, b: sub(b, a)
    T.__mul__ = lambda a, b: mul(a, b)
    T.__rmul__ = lambda a, b: mul(b, a)
    T.__truediv__ = lambda a, b: div(a, b)
    T.__rtruediv__ = lambda a, b: div(b, a)
    T.__pow__ = lambda a, b: pow(a, b)
    T.__rpow__ = lambda a, b: pow(as_tensor(b, like=a), a)
    T.__matmul__ = lambda a, b: matmul(a, b)
    T.__rmatmul__ = lambda a, b: matmul(as_tensor(b, like=a), a)
    T.__neg__ = lambda a: neg(a)
    T.__abs__ = lambda a: abs(a)
    T.__getitem__ = lambda a, index: getitem(a, index)
    T.__lt__ = _compare(lambda a, b: a < b)
    T.__le__ = _compare(lambda a, b: a <= b)
    T.__gt__ = _compare(lambda a, b: a > b)
    T.__ge__ = _compare(lambda a, b: a >= b)
    T.__eq__ = _compare(lambda a, b: a == b)
    T.__ne__ = _compare(lambda a, b: a != b)
    T.__hash__ = object.__hash__
    for name in ("exp", "log", "sqrt", "abs", "clip", "clamp", "sum", "mean", "max", "min", "var", "std",
                 "reshape", "view", "flatten", "permute", "squeeze", "unsqueeze", "relu", "tanh",
                 "sigmoid", "softplus", "matmul", "pow", "broadcast_to"):
        setattr(T, name, globals()[name])
    T.transpose = _transpose_method
    T.T = property(lambda a: transpose(a), doc="The tensor with its axes reversed (a matrix transposed): ``x.T``.")
    T.leaky_relu = leaky_relu


_install_tensor_methods()
