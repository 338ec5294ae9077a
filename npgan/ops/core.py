"""Arithmetic, reductions, shapes and indexing.

Each op is a ``Function``: ``forward`` works on raw arrays (``xp`` is NumPy or CuPy), ``backward`` on
Tensors, so gradients are differentiable again. Broadcasting is undone by the graph walk (``sum_to``),
so binary ops return gradients of the broadcast shape.
"""

from __future__ import annotations

import builtins
import math
import numbers

from npgan import backend
from npgan.autograd import Function, Tensor, as_tensor

xp_of = backend.get_array_module


def _pair(a, b):
    """Two Tensors from a mix of Tensors and Python numbers; numbers take the tensor's dtype."""
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
    a = as_tensor(a, like=b if isinstance(b, Tensor) else None)
    b = as_tensor(b, like=a)
    return a, b


def _python_number(value):
    """A NumPy scalar as a Python int/float: ``float32 ** np.float64(2)`` would be float64 under NumPy 2."""
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _check_broadcast(op: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape and a.data.ndim and b.data.ndim:  # a 0-d operand (a Python number) always fits
        try:
            backend.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


# -- arithmetic ----------------------------------------------------------------------------------------


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, gy):  # d(a+b)/da = d(a+b)/db = 1
        return gy, gy


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, gy):  # d(a-b)/da = 1, d(a-b)/db = -1
        return gy, (-gy if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        return a * b

    def backward(self, gy):  # d(ab)/da = b, d(ab)/db = a
        a, b = self.inputs
        return (gy * b if self.needs_input_grad[0] else None,
                gy * a if self.needs_input_grad[1] else None)


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class PowScalar(Function):
    """x ** c for a Python number c."""

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):  # d/dx x^c = c x^(c-1)
        (x,) = self.inputs
        if self.c == 2:
            return gy * x * 2.0
        return gy * self.c * x ** (self.c - 1)


def add(a, b) -> Tensor:
    """a + b with broadcasting; shapes broadcast as in NumPy (e.g. (N, D) + (D,) -> (N, D)).

    >>> F.add(npgan.ones(2, 3), npgan.tensor([1.0, 2.0, 3.0])).shape
    (2, 3)
    """
    a, b = _pair(a, b)
    _check_broadcast("add", a, b)
    return Add()(a, b)


def sub(a, b) -> Tensor:
    """a - b with broadcasting; d(a-b)/da = 1, d(a-b)/db = -1.

    >>> F.sub(npgan.tensor([3.0]), 1.0)
    tensor([2.], dtype=float32)
    """
    a, b = _pair(a, b)
    _check_broadcast("sub", a, b)
    return Sub()(a, b)


def mul(a, b) -> Tensor:
    """a * b elementwise with broadcasting; d(ab)/da = b, d(ab)/db = a.

    >>> F.mul(npgan.tensor([2.0, 3.0]), npgan.tensor([4.0, 5.0]))
    tensor([ 8., 15.], dtype=float32)
    """
    a, b = _pair(a, b)
    _check_broadcast("mul", a, b)
    return Mul()(a, b)


def neg(x) -> Tensor:
    """-x, any shape.

    >>> F.neg(npgan.tensor([1.0, -2.0]))
    tensor([-1.,  2.], dtype=float32)
    """
    return Neg()(x)


def pow(x, exponent) -> Tensor:  # noqa: A001 - the PyTorch name
    """x ** exponent: a Python number (d/dx x^p = p x^(p-1)) or a tensor (then e^(exponent ln x), needs x > 0).

    >>> F.pow(npgan.tensor([2.0, 3.0]), 2)
    tensor([4., 9.], dtype=float32)
    """
    if isinstance(exponent, numbers.Number) and isinstance(x, Tensor):
        return PowScalar(_python_number(exponent))(x)
    x, exponent = _pair(x, exponent)
    _check_broadcast("pow", x, exponent)
    return exp(exponent * log(x))  # x^y = e^(y ln x)


def div(a, b) -> Tensor:
    """a / b with broadcasting (composed as a * b^-1).

    >>> F.div(npgan.tensor([1.0, 2.0]), 4.0)
    tensor([0.25, 0.5 ], dtype=float32)
    """
    if isinstance(b, numbers.Number):
        return mul(a, 1.0 / b)
    a, b = _pair(a, b)
    _check_broadcast("div", a, b)
    return Mul()(a, PowScalar(-1)(b))


# -- elementwise math ----------------------------------------------------------------------------------


class Exp(Function):
    def forward(self, x):
        return xp_of(x).exp(x)

    def backward(self, gy):  # d/dx e^x = e^x
        return gy * self.output()


class Log(Function):
    def forward(self, x):
        return xp_of(x).log(x)

    def backward(self, gy):  # d/dx ln x = 1/x
        return gy / self.inputs[0]


class Sqrt(Function):
    def forward(self, x):
        return xp_of(x).sqrt(x)

    def backward(self, gy):  # d/dx sqrt(x) = 1 / (2 sqrt(x))
        return gy / (self.output() * 2.0)


class Abs(Function):
    def forward(self, x):
        self.sign = xp_of(x).sign(x)
        return xp_of(x).abs(x)

    def backward(self, gy):  # d/dx |x| = sign(x) (0 at 0)
        return gy * Tensor(self.sign)


class Clip(Function):
    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        xp = xp_of(x)
        self.inside = xp.ones(x.shape, dtype=x.dtype)
        if self.low is not None:
            self.inside *= x >= self.low
        if self.high is not None:
            self.inside *= x <= self.high
        return xp.clip(x, self.low, self.high)

    def backward(self, gy):  # gradient 1 inside [low, high], 0 outside
        return gy * Tensor(self.inside)


def exp(x) -> Tensor:
    """e^x elementwise, any shape; d/dx e^x = e^x.

    >>> F.exp(npgan.zeros(2))
    tensor([1., 1.], dtype=float32)
    """
    return Exp()(x)


def log(x) -> Tensor:
    """Natural logarithm elementwise (x > 0), any shape; d/dx ln x = 1 / x.

    >>> F.log(npgan.ones(2))
    tensor([0., 0.], dtype=float32)
    """
    return Log()(x)


def sqrt(x) -> Tensor:
    """Square root elementwise (x >= 0), any shape; d/dx sqrt(x) = 1 / (2 sqrt(x)).

    >>> F.sqrt(npgan.tensor([4.0, 9.0]))
    tensor([2., 3.], dtype=float32)
    """
    return Sqrt()(x)


def abs(x) -> Tensor:  # noqa: A001 - the PyTorch name
    """|x| elementwise, any shape (gradient sign(x), 0 at 0).

    >>> F.abs(npgan.tensor([-1.5, 2.0]))
    tensor([1.5, 2. ], dtype=float32)
    """
    return Abs()(x)


def clip(x, min=None, max=None) -> Tensor:  # noqa: A002 - the PyTorch names
    """x limited to [min, max] elementwise (either may be None); gradient 1 inside, 0 where clipped. ``clamp``
    is the same function (PyTorch's name).

    >>> F.clip(npgan.tensor([-2.0, 0.5, 2.0]), -1.0, 1.0)
    tensor([-1. ,  0.5,  1. ], dtype=float32)
    """
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min ({min}) must not exceed max ({max})")
    return Clip(None if min is None else _python_number(min), None if max is None else _python_number(max))(x)


clamp = clip


# -- broadcasting and reductions -----------------------------------------------------------------------


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        return xp_of(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].shape)


class SumTo(Function):
    """Sum ``x`` down to ``shape`` (the reverse of broadcasting)."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, s in enumerate(self.shape) if s == 1 and x.shape[lead + i] != 1
        )
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].shape)


def broadcast_to(x, shape) -> Tensor:
    """x repeated (as a view) to ``shape`` by NumPy's broadcasting rules; its backward is ``sum_to``.

    >>> F.broadcast_to(npgan.tensor([1.0, 2.0]), (3, 2)).shape
    (3, 2)
    """
    x = as_tensor(x)
    shape = tuple(shape)
    if x.shape == shape:
        return x
    if backend.broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"broadcast_to: shape {x.shape} cannot be broadcast to {shape}")
    return BroadcastTo(shape)(x)


def sum_to(x, shape) -> Tensor:
    """x summed down to ``shape``, the reverse of broadcasting: the gradient of a broadcast operand.

    >>> F.sum_to(npgan.ones(2, 3), (3,))
    tensor([2., 2., 2.], dtype=float32)
    """
    shape = tuple(shape)
    if x.shape == shape:
        return x
    return SumTo(shape)(x)


def _axes(axis, ndim, op):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    normalised = []
    for a in axes:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        normalised.append(a % ndim if ndim else 0)
    return tuple(sorted(set(normalised)))


def _check_int_axis(axis, op):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")


def _one_axis(axis, ndim, op) -> int:
    """A single axis (an int in [-ndim, ndim)) as a non-negative index, or an error naming ``op``."""
    _check_int_axis(axis, op)
    return _axes(axis, ndim, op)[0]


def _keepdims_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    def __init__(self, axes, keepdims):
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):  # every summed element gets the gradient of the sum
        x = self.inputs[0]
        if not self.keepdims:
            gy = reshape(gy, _keepdims_shape(x.shape, self.axes))
        return broadcast_to(gy, x.shape)


class MaxMin(Function):
    """max or min over axes; ties share the gradient equally (as PyTorch's amax/amin)."""

    def __init__(self, axes, keepdims, is_max):
        self.axes, self.keepdims, self.is_max = axes, keepdims, is_max

    def forward(self, x):
        y = (x.max if self.is_max else x.min)(axis=self.axes, keepdims=True)
        hit = (x == y).astype(x.dtype)
        self.share = hit / hit.sum(axis=self.axes, keepdims=True)
        return y if self.keepdims else y.reshape([s for i, s in enumerate(y.shape) if i not in self.axes])

    def backward(self, gy):
        x = self.inputs[0]
        if not self.keepdims:
            gy = reshape(gy, _keepdims_shape(x.shape, self.axes))
        return broadcast_to(gy, x.shape) * Tensor(self.share)


def _reduce_args(axis, keepdims, dim, keepdim):
    return (dim if axis is None else axis), (keepdim if keepdim is not None else keepdims)


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (an int, a tuple, or None for all; ``dim=`` is PyTorch's name), dropping the summed axes
    unless ``keepdims`` (``keepdim``).

    >>> F.sum(npgan.ones(2, 3), axis=1)
    tensor([3., 3.], dtype=float32)
    """
    axis, keepdims = _reduce_args(axis, keepdims, dim, keepdim)
    return Sum(_axes(axis, x.ndim, "sum"), keepdims)(x)


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None) -> Tensor:
    """Mean over ``axis`` (int, tuple or None for all; ``dim=`` too), as ``sum`` divided by the count.

    >>> F.mean(npgan.tensor([[1.0, 3.0], [5.0, 7.0]]), dim=0)
    tensor([3., 5.], dtype=float32)
    """
    axis, keepdims = _reduce_args(axis, keepdims, dim, keepdim)
    axes = _axes(axis, x.ndim, "mean")
    count = 1
    for a in axes:
        count *= x.shape[a]
    return Sum(axes, keepdims)(x) * (1.0 / builtins.max(count, 1))


def max(x, axis=None, keepdims=False, *, dim=None, keepdim=None) -> Tensor:  # noqa: A001
    """Largest value over ``axis`` (int, tuple or None; ``dim=`` too); the gradient goes to the maximum (split
    evenly between ties).

    >>> F.max(npgan.tensor([[1.0, 5.0], [7.0, 2.0]]), axis=1)
    tensor([5., 7.], dtype=float32)
    """
    axis, keepdims = _reduce_args(axis, keepdims, dim, keepdim)
    return MaxMin(_axes(axis, x.ndim, "max"), keepdims, True)(x)


def min(x, axis=None, keepdims=False, *, dim=None, keepdim=None) -> Tensor:  # noqa: A001
    """Smallest value over ``axis`` (int, tuple or None; ``dim=`` too); the gradient goes to the minimum.

    >>> F.min(npgan.tensor([[1.0, 5.0], [7.0, 2.0]]), axis=1)
    tensor([1., 2.], dtype=float32)
    """
    axis, keepdims = _reduce_args(axis, keepdims, dim, keepdim)
    return MaxMin(_axes(axis, x.ndim, "min"), keepdims, False)(x)


def var(x, axis=None, keepdims=False, correction=1, *, dim=None, keepdim=None, unbiased=None) -> Tensor:
    """Variance with Bessel's ``correction`` (1 by default, as PyTorch; 0 for the population variance).

    >>> F.var(npgan.tensor([1.0, 3.0])), F.var(npgan.tensor([1.0, 3.0]), correction=0)
    (tensor(2., dtype=float32), tensor(1., dtype=float32))
    """
    axis, keepdims = _reduce_args(axis, keepdims, dim, keepdim)
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axes = _axes(axis, x.ndim, "var")
    count = 1
    for a in axes:
        count *= x.shape[a]
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) * (1.0 / builtins.max(count - correction, 1))


def std(x, axis=None, keepdims=False, correction=1, *, dim=None, keepdim=None) -> Tensor:
    """Standard deviation over ``axis``: sqrt of ``var`` with Bessel's ``correction`` (1, as PyTorch).

    >>> F.std(npgan.tensor([1.0, 3.0]))
    tensor(1.4142135, dtype=float32)
    """
    return sqrt(var(x, axis, keepdims, correction, dim=dim, keepdim=keepdim))


# -- matmul --------------------------------------------------------------------------------------------


def _swap_last(t: Tensor) -> Tensor:
    axes = list(range(t.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return transpose(t, axes)


def _blas_ready(a, xp):
    """``a`` itself, or a contiguous copy when a dimension is broadcast (stride 0, as the gradient of a
    ``sum`` is): NumPy cannot hand such an operand to BLAS and multiplies it in a plain loop, far slower."""
    if a.flags.c_contiguous or a.flags.f_contiguous:  # the usual case, decided without a loop
        return a
    if any(stride == 0 and size > 1 for stride, size in zip(a.strides, a.shape)):
        return xp.ascontiguousarray(a)
    return a


def gemm(a, b, out=None):
    """The 2-D matrix product of every layer (MatMul, Linear, the convolutions): one function, so
    ``npgan bench --profile`` can time it."""
    xp = xp_of(a, b)
    if a.shape[1] == 1:  # an outer product (a 1-unit layer's gradient): a plain multiply beats a BLAS call
        return xp.multiply(a, b, out=out)
    return backend.matmul(_blas_ready(a, xp), _blas_ready(b, xp), out=out)


class MatMul(Function):
    def forward(self, a, b):
        if a.ndim == 2 and b.ndim == 2:
            return gemm(a, b)
        return a @ b

    def backward(self, gy):  # d(AB)/dA = G B^T, d(AB)/dB = A^T G
        a, b = self.inputs
        ga = gy @ _swap_last(b) if self.needs_input_grad[0] else None
        gb = _swap_last(a) @ gy if self.needs_input_grad[1] else None
        return ga, gb


def matmul(a, b) -> Tensor:
    """Matrix product with NumPy's rules: (n, k) @ (k, m) -> (n, m), batched over leading dims, 1-D operands
    as vectors; d(AB)/dA = G B^T, d(AB)/dB = A^T G.

    >>> F.matmul(npgan.ones(2, 3), npgan.ones(3, 4)).shape
    (2, 4)
    """
    a, b = as_tensor(a), as_tensor(b, like=a)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                         f"({a.shape[-1]} != {b.shape[-2 if b.ndim > 1 else 0]})")
    if a.ndim == 1:  # a row vector whose row dimension is dropped again; 1-D @ 1-D is a scalar
        return reshape(matmul(reshape(a, (1, -1)), b), b.shape[:-2] + b.shape[-1:] if b.ndim > 1 else ())
    if b.ndim == 1:
        return reshape(matmul(a, reshape(b, (-1, 1))), a.shape[:-1])
    if a.ndim == 2 and b.ndim == 2:  # no batch dimensions to broadcast
        return MatMul()(a, b)
    try:
        backend.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of shapes {a.shape} and {b.shape} cannot be broadcast") from None
    return MatMul()(a, b)


# -- shapes --------------------------------------------------------------------------------------------


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.inputs[0].shape)


class Transpose(Function):
    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return transpose(gy, inverse)


def _target_shape(size, shape, old_shape):
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension can be -1, got {shape} for a tensor of shape {old_shape}")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
    if -1 in shape:
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {old_shape} into {shape}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif known != size:
        raise ValueError(f"reshape: cannot reshape a tensor of shape {old_shape} ({size} elements) into {shape}")
    return shape


def reshape(x, *shape) -> Tensor:
    """x with a new ``shape`` of the same number of elements (one entry may be -1); ``view`` is the same.

    >>> F.reshape(npgan.zeros(2, 3), (3, -1)).shape
    (3, 2)
    """
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    shape = _target_shape(x.numel(), shape, x.shape)
    if shape == x.shape:
        return x
    return Reshape(shape)(x)


view = reshape


def flatten(x, start_dim=0, end_dim=-1) -> Tensor:
    """Merge dims ``start_dim`` .. ``end_dim`` into one (all of them by default).

    >>> F.flatten(npgan.zeros(2, 3, 4), 1).shape
    (2, 12)
    """
    end = end_dim % x.ndim if x.ndim else 0
    start = start_dim % x.ndim if x.ndim else 0
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def transpose(x, *axes) -> Tensor:
    """Permute axes (NumPy style: ``transpose(x, (1, 0, 2))``; none reverses them).

    With exactly two ints (not a tuple) it swaps those two dims, as ``torch.transpose(x, 0, 1)``.

    >>> F.transpose(npgan.zeros(2, 3)).shape, F.transpose(npgan.zeros(2, 3, 4), 0, 2).shape
    ((3, 2), (4, 3, 2))
    """
    as_permutation = len(axes) == 1 and isinstance(axes[0], (tuple, list))
    if as_permutation:
        axes = tuple(axes[0])
    if len(axes) == 0:
        axes = tuple(reversed(range(x.ndim)))
    elif len(axes) == 2 and not as_permutation:
        swap = list(range(x.ndim))
        i, j = (a % x.ndim for a in axes)
        swap[i], swap[j] = swap[j], swap[i]
        axes = tuple(swap)
    axes = tuple(a % x.ndim for a in axes) if x.ndim else axes
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of a tensor with {x.ndim} dimensions")
    return Transpose(axes)(x)


def permute(x, *dims) -> Tensor:
    """Reorder the dims: ``permute(x, (2, 0, 1))`` puts dim 2 first (PyTorch's name for ``transpose(x, axes)``).

    >>> F.permute(npgan.zeros(2, 3, 4), 2, 0, 1).shape
    (4, 2, 3)
    """
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != x.ndim:
        raise ValueError(f"permute: need {x.ndim} dims for shape {x.shape}, got {dims}")
    return transpose(x, dims)


def squeeze(x, axis=None) -> Tensor:
    """Drop dims of length 1 (all of them, or only ``axis``).

    >>> F.squeeze(npgan.zeros(2, 1, 3)).shape
    (2, 3)
    """
    if axis is None:
        return reshape(x, tuple(s for s in x.shape if s != 1))
    axis = axis % x.ndim
    if x.shape[axis] != 1:
        return x
    return reshape(x, x.shape[:axis] + x.shape[axis + 1:])


def unsqueeze(x, axis) -> Tensor:
    """Insert a dim of length 1 at ``axis``.

    >>> F.unsqueeze(npgan.zeros(2, 3), 0).shape
    (1, 2, 3)
    """
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


# -- indexing, joining, padding ------------------------------------------------------------------------


def _index_arrays(index):
    """Tensors inside an index become their arrays."""
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index.data if isinstance(index, Tensor) else index


class GetItem(Function):
    def __init__(self, index):
        self.index = index

    def forward(self, x):
        return x[self.index]

    def backward(self, gy):  # scatter the gradient back where the elements came from
        x = self.inputs[0]
        return GetItemGrad(self.index, x.shape)(gy)


class GetItemGrad(Function):
    def __init__(self, index, shape):
        self.index, self.shape = index, shape

    def forward(self, gy):
        gx = xp_of(gy).zeros(self.shape, dtype=gy.dtype)
        if _is_basic(self.index):
            gx[self.index] = gy  # slices and ints never repeat an element
        else:
            backend.scatter_add(gx, self.index, gy)  # repeated integer indices add up
        return gx

    def backward(self, ggx):
        return ggx[self.index]


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (slice, numbers.Integral)) for i in items)


def getitem(x, index) -> Tensor:
    """x[index] with NumPy's indexing (ints, slices, None, Ellipsis, integer arrays); ``t[index]`` calls it. The
    gradient is scattered back into x's shape (added where an index repeats).

    >>> F.getitem(npgan.tensor([[1.0, 2.0], [3.0, 4.0]]), (slice(None), 1))
    tensor([2., 4.], dtype=float32)
    """
    index = _index_arrays(index)
    try:
        x.data[index]
    except IndexError as err:
        raise IndexError(f"index {index!r} is invalid for a tensor of shape {x.shape}: {err}") from None
    return GetItem(index)(x)


class Concatenate(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        return xp_of(*xs).concatenate(xs, axis=self.axis)

    def backward(self, gy):  # split the gradient back into the pieces
        grads, start = [], 0
        for x in self.inputs:
            stop = start + x.shape[self.axis]
            index = (slice(None),) * self.axis + (slice(start, stop),)
            grads.append(gy[index])
            start = stop
        return tuple(grads)


def concatenate(tensors, axis=0, *, dim=None) -> Tensor:
    """Join tensors along an existing axis (``dim=`` is PyTorch's name for it).

    >>> F.concatenate([npgan.zeros(2, 3), npgan.ones(1, 3)], dim=0).shape
    (3, 3)
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: need at least one tensor")
    ndim = tensors[0].ndim
    if ndim == 0:
        raise ValueError("concatenate: 0-dimensional tensors have no axis to join along; use stack")
    axis = _one_axis(axis if dim is None else dim, ndim, "concatenate")
    def outside(shape):
        return shape[:axis] + shape[axis + 1:]

    for t in tensors:
        if t.ndim != ndim or outside(t.shape) != outside(tensors[0].shape):
            raise ValueError(f"concatenate: shapes {[x.shape for x in tensors]} differ outside axis {axis}")
    return Concatenate(axis)(*tensors)


cat = concatenate


class Pack(Function):
    """Tensors of any shapes -> one 1-D tensor of all their numbers, one after the other.

    ``reshape(-1)`` of each and ``concatenate`` in one op; ``Unpack`` is its adjoint, and each is the other's
    backward. ``optim.differentiable_step`` updates a group's parameters as one vector with them: an unrolled
    GAN takes K such steps and walks back through every op of them.
    """

    def forward(self, *xs):
        return xp_of(*xs).concatenate([x.reshape(-1) for x in xs])

    def backward(self, gy):
        return Unpack([x.shape for x in self.inputs])(gy)


class Unpack(Function):
    """A 1-D tensor -> its consecutive pieces, each a view reshaped to one of ``shapes`` (the sizes add up)."""

    def __init__(self, shapes):
        self.shapes = [tuple(shape) for shape in shapes]

    def forward(self, flat):
        pieces, start = [], 0
        for shape in self.shapes:
            size = math.prod(shape)
            pieces.append(flat[start:start + size].reshape(shape))
            start += size
        return tuple(pieces)

    def backward(self, *gys):
        return Pack()(*gys)


def pack(tensors) -> Tensor:
    """All the numbers of ``tensors`` (any shapes) in one 1-D tensor, in order; ``unpack`` undoes it.

    >>> F.pack([npgan.zeros(2, 3), npgan.ones(4)]).shape
    (10,)
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("pack: need at least one tensor")
    return Pack()(*tensors)


def unpack(flat, shapes) -> tuple:
    """The pieces of the 1-D tensor ``flat`` with the given ``shapes``, in order (views of it): ``pack``'s inverse.

    >>> [t.shape for t in F.unpack(npgan.zeros(10), [(2, 3), (4,)])]
    [(2, 3), (4,)]
    """
    flat = as_tensor(flat)
    shapes = [tuple(int(n) for n in shape) for shape in shapes]
    total = builtins.sum(math.prod(shape) for shape in shapes)
    if flat.ndim != 1 or flat.shape[0] != total:
        raise ValueError(f"unpack: expected a 1-D tensor of {total} numbers for shapes {shapes}, "
                         f"got shape {flat.shape}")
    return Unpack(shapes)(flat)


def stack(tensors, axis=0, *, dim=None) -> Tensor:
    """Join same-shaped tensors along a new axis (``dim=`` is PyTorch's name for it).

    >>> F.stack([npgan.zeros(3), npgan.ones(3)], dim=0).shape
    (2, 3)
    """
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: need at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors need the same shape, got {[t.shape for t in tensors]}")
    axis, ndim = axis if dim is None else dim, tensors[0].ndim + 1
    _check_int_axis(axis, "stack")
    if not -ndim <= axis < ndim:  # the new axis may also come last: the range of the result's dimensions
        raise ValueError(f"stack: axis must be an int in [{-ndim}, {ndim - 1}] for tensors of {ndim - 1} "
                         f"dimensions, got {axis!r}")
    axis %= ndim
    return concatenate([unsqueeze(t, axis) for t in tensors], axis)


class Pad(Function):
    def __init__(self, pad_width, value):
        self.pad_width, self.value = pad_width, value

    def forward(self, x):
        return xp_of(x).pad(x, self.pad_width, mode="constant", constant_values=self.value)

    def backward(self, gy):  # the gradient of the original region, padding cut away
        index = tuple(slice(before, gy.shape[i] - after) for i, (before, after) in enumerate(self.pad_width))
        return gy[index]


def pad(x, pad_width, value=0.0) -> Tensor:
    """Constant padding, NumPy style: ``pad_width`` is ``((before, after),)`` per axis (or one int).

    >>> F.pad(npgan.ones(2), 1)
    tensor([0., 1., 1., 0.], dtype=float32)
    """
    if isinstance(pad_width, numbers.Integral):
        pad_width = ((int(pad_width), int(pad_width)),) * x.ndim
    pad_width = tuple((int(b), int(a)) for b, a in pad_width)
    if len(pad_width) != x.ndim or any(b < 0 or a < 0 for b, a in pad_width):
        raise ValueError(f"pad: need {x.ndim} non-negative (before, after) pairs, got {pad_width}")
    return Pad(pad_width, value)(x)


class Where(Function):
    """``where(condition, a, b)``; the condition is a constant mask."""

    def __init__(self, condition):
        self.condition = condition

    def forward(self, a, b):
        return xp_of(a, b).where(self.condition, a, b)

    def backward(self, gy):  # the gradient goes to the side that was chosen, 0 to the other
        return (where(self.condition, gy, 0.0) if self.needs_input_grad[0] else None,
                where(self.condition, 0.0, gy) if self.needs_input_grad[1] else None)


def where(condition, a, b) -> Tensor:
    """Elementwise choice: ``a`` where ``condition`` (a boolean array or Tensor) holds, else ``b``; broadcasting.

    >>> F.where(npgan.tensor([1.0, -1.0]) > 0, npgan.ones(2), npgan.zeros(2))
    tensor([1., 0.], dtype=float32)
    """
    condition = condition.data if isinstance(condition, Tensor) else condition
    a, b = _pair(a, b)
    shape = backend.broadcast_shapes(condition.shape, a.shape, b.shape)
    out = Where(condition)(a, b)
    return out if out.shape == shape else broadcast_to(out, shape)


def maximum(a, b) -> Tensor:
    """Elementwise larger of a and b (broadcast); the gradient goes to the larger (to a on ties).

    >>> F.maximum(npgan.tensor([1.0, 4.0]), npgan.tensor([3.0, 2.0]))
    tensor([3., 4.], dtype=float32)
    """
    a, b = _pair(a, b)
    _check_broadcast("maximum", a, b)
    return where(a.data >= b.data, a, b)


def minimum(a, b) -> Tensor:
    """Elementwise smaller of a and b (broadcast); the gradient goes to the smaller (to a on ties).

    >>> F.minimum(npgan.tensor([1.0, 4.0]), npgan.tensor([3.0, 2.0]))
    tensor([1., 2.], dtype=float32)
    """
    a, b = _pair(a, b)
    _check_broadcast("minimum", a, b)
    return where(a.data <= b.data, a, b)


# -- type and device -----------------------------------------------------------------------------------


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = backend.host_dtype(dtype)

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.inputs[0].dtype)


class ToDevice(Function):
    def __init__(self, device):
        self.device = device

    def forward(self, x):
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return to_device(gy, self.inputs[0].device)


class Copy(Function):
    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


def cast(x, dtype) -> Tensor:
    """x converted to ``dtype`` (e.g. "float64"); the gradient is cast back. ``Tensor.to(dtype=...)`` uses it.

    >>> F.cast(npgan.ones(2), "float64").dtype
    dtype('float64')
    """
    return Cast(dtype)(x)


def to_device(x, device) -> Tensor:
    # Skip the device check of Function.__call__: moving between devices is this op's job.
    """x moved to ``device`` ("cpu" or "cuda"); the gradient moves back. ``Tensor.to(device)`` uses it.

    >>> F.to_device(npgan.ones(2), "cpu").device
    'cpu'
    """
    fn = ToDevice(backend.check_device(device))
    return fn(x)


def copy(x) -> Tensor:
    """A copy of x with memory of its own, in the graph (gradient passes through); ``Tensor.clone()``.

    >>> F.copy(npgan.ones(2))
    tensor([1., 1.], dtype=float32)
    """
    return Copy()(x)
