"""Activations and losses.

ReLU's and LeakyReLU's gradients are linear maps of ``gy`` with a fixed mask (Chainer's pattern): the
gradient op is its own backward, so second derivatives (WGAN-GP) need nothing more.
"""

from __future__ import annotations

from npgan import backend
from npgan.autograd import Function, Tensor, as_tensor
from npgan.ops.core import _check_broadcast, _one_axis, exp, log, mean, sum

xp_of = backend.get_array_module


class LeakyReLUGrad(Function):
    """gy -> gy where x > 0, slope * gy elsewhere. Linear in gy, so it is its own derivative.

    It multiplies by a float mask (1 or slope) instead of ``xp.where(positive, gy, slope * gy)``: on the
    random signs of activations ``where`` mispredicts a branch per element and runs many times slower on
    NumPy.
    """

    def __init__(self, positive, slope, mask=None):
        self.positive, self.slope, self.mask = positive, slope, mask

    def forward(self, gy):
        if self.slope == 0.0:
            return gy * self.positive  # bool * float32 stays float32
        if self.mask is None or self.mask.dtype != gy.dtype:
            mask = self.positive.astype(gy.dtype)  # 1 where x > 0, else 0 ...
            mask *= 1.0 - self.slope
            mask += self.slope  # ... then 1 where x > 0, else slope
            self.mask = mask
        return gy * self.mask

    def backward(self, ggx):
        return LeakyReLUGrad(self.positive, self.slope, self.mask)(ggx)


class LeakyReLU(Function):
    def __init__(self, slope):
        self.slope = slope

    def forward(self, x):
        xp = xp_of(x)
        self.positive = x > 0
        if self.slope == 0.0:
            return xp.maximum(x, 0)
        y = x * self.slope
        if 0.0 < self.slope < 1.0:
            return xp.maximum(x, y, out=y)  # max(x, slope x) is x for x > 0 and slope x below 0
        return xp.where(self.positive, x, y)  # slopes outside (0, 1): rare, keep the plain definition

    def backward(self, gy):  # d/dx = 1 for x > 0, slope otherwise
        return LeakyReLUGrad(self.positive, self.slope)(gy)


def relu(x) -> Tensor:
    """max(0, x) elementwise, any shape (LeakyReLU with slope 0).

    >>> F.relu(npgan.tensor([-1.0, 2.0]))
    tensor([0., 2.], dtype=float32)
    """
    return LeakyReLU(0.0)(x)


def leaky_relu(x, negative_slope=0.01) -> Tensor:
    """x where x > 0, else ``negative_slope`` * x, elementwise, any shape; DCGAN's D uses slope 0.2.

    >>> F.leaky_relu(npgan.tensor([-1.0, 2.0]), 0.2)
    tensor([-0.2,  2. ], dtype=float32)
    """
    if not isinstance(negative_slope, (int, float)):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {type(negative_slope).__name__}")
    return LeakyReLU(float(negative_slope))(x)


class Tanh(Function):
    def forward(self, x):
        return xp_of(x).tanh(x)

    def backward(self, gy):  # d/dx tanh(x) = 1 - y^2
        y = self.output()
        return gy * (1.0 - y * y)


class Sigmoid(Function):
    def forward(self, x):
        xp = xp_of(x)
        # 0.5 * (1 + tanh(x/2)) equals 1 / (1 + e^-x) and never overflows
        return xp.tanh(x * 0.5) * 0.5 + 0.5

    def backward(self, gy):  # d/dx s(x) = s (1 - s)
        y = self.output()
        return gy * y * (1.0 - y)


class Softplus(Function):
    def forward(self, x):
        xp = xp_of(x)
        # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): stable for |x| in the thousands
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(self, gy):  # d/dx softplus(x) = sigmoid(x)
        return gy * sigmoid(self.inputs[0])


def tanh(x) -> Tensor:
    """tanh(x) elementwise, any shape; d/dx tanh(x) = 1 - tanh(x)^2. DCGAN's G ends with it (pixels in [-1, 1]).

    >>> F.tanh(npgan.zeros(2))
    tensor([0., 0.], dtype=float32)
    """
    return Tanh()(x)


def sigmoid(x) -> Tensor:
    """1 / (1 + e^-x) elementwise, any shape; d/dx s(x) = s(x) (1 - s(x)).

    >>> F.sigmoid(npgan.zeros(2))
    tensor([0.5, 0.5], dtype=float32)
    """
    return Sigmoid()(x)


def softplus(x) -> Tensor:
    """log(1 + e^x) elementwise, computed without overflow; d/dx softplus(x) = sigmoid(x).

    >>> F.softplus(npgan.tensor([0.0, 100.0]))
    tensor([  0.6931472, 100.       ], dtype=float32)
    """
    return Softplus()(x)


def log_sigmoid(x) -> Tensor:
    # log s(x) = -log(1 + e^-x) = -softplus(-x)
    """log(sigmoid(x)) = -softplus(-x) elementwise, stable for large |x|.

    >>> F.log_sigmoid(npgan.tensor([0.0]))
    tensor([-0.6931472], dtype=float32)
    """
    return -softplus(-x)


# -- losses --------------------------------------------------------------------------------------------

REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss: Tensor, reduction: str, op: str) -> Tensor:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _loss_pair(op, input, target):
    input = as_tensor(input)
    target = as_tensor(target, like=input)
    if input.shape != target.shape:
        _check_broadcast(op, input, target)
        if backend.broadcast_shapes(input.shape, target.shape) != input.shape:
            raise ValueError(f"{op}: target shape {target.shape} does not match input shape {input.shape}")
    return input, target


def binary_cross_entropy_with_logits(logits, target, reduction="mean") -> Tensor:
    """-[t log s(x) + (1 - t) log(1 - s(x))] = softplus(x) - t x, stable for logits of +-1000.

    >>> F.binary_cross_entropy_with_logits(npgan.zeros(4), npgan.ones(4))      # log 2
    tensor(0.6931472, dtype=float32)
    """
    logits, target = _loss_pair("binary_cross_entropy_with_logits", logits, target)
    return _reduce(softplus(logits) - logits * target, reduction, "binary_cross_entropy_with_logits")


def binary_cross_entropy(probs, target, reduction="mean", eps=1e-7) -> Tensor:
    """BCE on probabilities (after a sigmoid). Probabilities are clamped to [eps, 1 - eps] so the loss
    and its gradient stay finite at 0 and 1 (where the gradient is then 0); PyTorch clamps log at -100
    instead, so the two differ only for saturated probabilities. Prefer the ``_with_logits`` form.

    >>> F.binary_cross_entropy(npgan.full((4,), 0.5), npgan.ones(4))
    tensor(0.6931472, dtype=float32)
    """
    probs, target = _loss_pair("binary_cross_entropy", probs, target)
    from npgan.ops.core import clip  # noqa: PLC0415

    p = clip(probs, eps, 1.0 - eps)
    return _reduce(-(target * log(p) + (1.0 - target) * log(1.0 - p)), reduction, "binary_cross_entropy")


def mse_loss(input, target, reduction="mean") -> Tensor:
    """Mean squared error (input - target)^2, same shapes (target may broadcast); ``reduction`` mean, sum or none.

    >>> F.mse_loss(npgan.tensor([1.0, 3.0]), npgan.tensor([0.0, 0.0]))
    tensor(5., dtype=float32)
    """
    input, target = _loss_pair("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def log_softmax(x, axis=-1, *, dim=None) -> Tensor:
    """log(softmax(x)) along ``axis`` (``dim=`` is PyTorch's name for it).

    >>> F.log_softmax(npgan.zeros(1, 2), dim=1)
    tensor([[-0.6931472, -0.6931472]], dtype=float32)
    """
    from npgan.ops.core import max as max_  # noqa: PLC0415

    axis = _one_axis(axis if dim is None else dim, x.ndim, "softmax")
    shifted = x - max_(x, axis, keepdims=True).detach()  # constant shift: exact and overflow-free
    return shifted - log(sum(exp(shifted), axis, keepdims=True))


def softmax(x, axis=-1, *, dim=None) -> Tensor:
    """e^x / sum(e^x) along ``axis`` (``dim=``), computed as exp(log_softmax(x)); each slice sums to 1.

    >>> F.softmax(npgan.zeros(2, 4), dim=1)[0]
    tensor([0.25, 0.25, 0.25, 0.25], dtype=float32)
    """
    return exp(log_softmax(x, axis if dim is None else dim))


def cross_entropy(logits, labels, reduction="mean") -> Tensor:
    """Softmax cross-entropy of ``logits`` (N, C) against integer ``labels`` (N,).

    >>> F.cross_entropy(npgan.zeros(3, 10), npgan.tensor([1, 5, 9]))     # log 10
    tensor(2.3025851, dtype=float32)
    """
    from npgan.ops.core import getitem  # noqa: PLC0415

    labels = labels.data if isinstance(labels, Tensor) else labels
    if logits.ndim != 2 or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"cross_entropy: expected logits (N, C) and labels (N,), got {logits.shape} and {labels.shape}"
        )
    xp = xp_of(logits.data)
    picked = getitem(log_softmax(logits, 1), (xp.arange(logits.shape[0]), labels))
    return _reduce(-picked, reduction, "cross_entropy")
