"""The dense layer as ops: linear (y = x W^T + b), its gradients as one op, and linear + LeakyReLU fused.

Notation: N batch, ``in`` input features, ``out`` output features; x (N, in), W (out, in), b (out,).

    y = x W^T + b                 forward, one GEMM with the bias added in place
    gx = gy W,  gW = gy^T x,  gb = sum_n gy      backward, as one differentiable op (``LinearGrad``)

The textbook version, ``x @ W.T + b`` from plain ops, is ``npgan.reference.linear``; the tests prove the
two equal, first and second derivatives included.
"""

from __future__ import annotations

from npgan import backend
from npgan.autograd import Function, Tensor, is_grad_enabled
from npgan.ops.activation import LeakyReLUGrad, leaky_relu
from npgan.ops.core import broadcast_to, gemm, matmul, transpose

xp_of = backend.get_array_module


class Linear(Function):
    """y = x weight^T + b for x (N, in), weight (out, in), b (out,): one GEMM, the bias added in place.

    Backward: gx = gy weight, gw = gy^T x, gb = sum_n gy, as one op (``LinearGrad``), so it differentiates
    again. gw = gy^T x comes out (out, in) and contiguous like weight, so the optimizer reads it at full speed.
    """

    def forward(self, x, weight, b=None):
        y = gemm(x, weight.T)
        if b is not None:
            y += b
        return y

    def backward(self, gy):
        return _linear_grads(self, gy)


def _linear_grads(fn, gy, activation=None):
    """The input gradients of ``fn`` (a Linear or a LinearLeakyReLU, whose ``activation`` is a LeakyReLUGrad)
    for its output gradient gy: (gx, gW[, gb]), each only where ``fn`` needs it, from one ``LinearGrad``."""
    x, weight = fn.inputs[:2]
    wanted = tuple(fn.needs_input_grad[:3]) + (False,) * (3 - len(fn.inputs))  # (gx, gW, gb)
    if not any(wanted):
        return (None,) * len(fn.inputs)
    # gx needs W and gW needs x: an input that no wanted gradient reads is left out of the graph, so a
    # gradient penalty's graph does not keep the forward pass's activations alive for nothing
    inputs = (gy,) + ((weight,) if wanted[0] else ()) + ((x,) if wanted[1] else ())
    results = iter(LinearGrad(wanted, activation)(*inputs))
    grads = tuple(next(results) if want else None for want in wanted)
    return grads[:len(fn.inputs)]


class LinearGrad(Function):
    """A linear layer's gradients as one op: the wanted ones of (gx, gW, gb), with g = gy * mask,

        gx = g W,   gW = g^T x,   gb = sum_n g

    (mask: the LeakyReLU's 1 where y > 0, slope elsewhere, for ``LinearLeakyReLU``; none for ``Linear``).
    ``wanted`` = (gx?, gW?, gb?) says which are computed and returned, in that order; the inputs are gy,
    then W if gx is wanted, then x if gW is wanted.

    Why one op: under ``create_graph=True`` (WGAN-GP's penalty, R1, unrolled GANs) every layer's gradient is
    recorded and walked back again, and the plain composition (mask, two products, a transpose, a sum) is
    five nodes of the graph, each with its own backward of several more: a K = 5 unrolled step ran ~2,100
    ops. Its backward, for upstream gradients hx, hW, hb of gx, gW, gb (the outputs are linear in gy and in
    x, and in gy and in W):

        d/dgy = (hx W^T + x hW^T + hb) * mask,   d/dW = g^T hx,   d/dx = g hW

    runs on raw arrays when no graph of it is recorded and in Tensor ops when one is (``BatchNorm``'s pattern,
    see ``Function``). The composed ops stay the reference (``npgan.reference.linear``): the tests compare
    the three, derivatives included.
    """

    def __init__(self, wanted, activation=None):
        self.wanted, self.activation = wanted, activation

    def _masked(self, gy):
        """g = gy * mask on raw arrays."""
        return gy if self.activation is None else self.activation.forward(gy)

    def _split(self, items):
        """(gy, W or None, x or None) from the inputs (or their gradients), as ``wanted`` laid them out."""
        items = iter(items)
        gy = next(items)
        weight = next(items) if self.wanted[0] else None
        x = next(items) if self.wanted[1] else None
        return gy, weight, x

    def forward(self, *inputs):
        gy, weight, x = self._split(inputs)
        g = self.g = self._masked(gy)  # kept for the raw backward (the composed ops' graph held it too)
        results = []
        if weight is not None:
            results.append(gemm(g, weight))
        if x is not None:
            results.append(gemm(g.T, x))
        if self.wanted[2]:
            results.append(g.sum(axis=0))
        return tuple(results)

    def backward(self, *upstream):
        upstream = iter(upstream)
        hx, hw, hb = (next(upstream) if want else None for want in self.wanted)
        if is_grad_enabled():
            grads = self._differentiable_backward(hx, hw, hb)
        else:
            grads = self._raw_backward(hx, hw, hb)
        return tuple(g for g, present in zip(grads, (True,) + self.wanted[:2]) if present)

    def _raw_backward(self, hx, hw, hb):
        gy, weight, x = self._split(t.data for t in self.inputs)
        need_gy, need_w, need_x = self._split(self.needs_input_grad)
        ggy = gw = gx = None
        if need_gy:  # (hx W^T + x hW^T + hb) * mask
            total = gemm(hx.data, weight.T) if hx is not None else None
            if hw is not None:
                term = gemm(x, hw.data.T)
                if total is None:
                    total = term
                else:
                    total += term
            if hb is not None:
                if total is None:
                    total = xp_of(gy).broadcast_to(hb.data, gy.shape).copy()
                else:
                    total += hb.data
            ggy = Tensor(self._masked(total))
        if need_w:
            gw = Tensor(gemm(self.g.T, hx.data))
        if need_x:
            gx = Tensor(gemm(self.g, hw.data))
        return ggy, gw, gx

    def _differentiable_backward(self, hx, hw, hb):
        gy, weight, x = self._split(self.inputs)
        need_gy, need_w, need_x = self._split(self.needs_input_grad)
        act = self.activation
        mask = (lambda t: t) if act is None else (lambda t: LeakyReLUGrad(act.positive, act.slope, act.mask)(t))
        ggy = gw = gx = None
        if need_gy:  # (hx W^T + x hW^T + hb) * mask, summed in the raw path's order
            terms = []
            if hx is not None:
                terms.append(matmul(hx, transpose(weight)))
            if hw is not None:
                terms.append(matmul(x, transpose(hw)))
            if hb is not None:
                terms.append(broadcast_to(hb, gy.shape) if not terms else hb)
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            ggy = mask(total)
        g = mask(gy) if need_w or need_x else None
        if need_w:
            gw = matmul(transpose(g), hx)
        if need_x:
            gx = matmul(g, hw)
        return ggy, gw, gx


class LinearLeakyReLU(Function):
    """y = leaky_relu(x W^T + b, slope) in one op (slope 0 is ReLU): ``Linear`` then ``LeakyReLU``, fused.

    The GEMM's output takes the bias and the activation in place, so an MLP layer is one node of the graph
    instead of two, with no intermediate Tensor: each op costs some microseconds of Python before any math,
    and a 2-D toy's step runs a few hundred. ``nn.fuse(model)`` puts it in a model, in place of an
    ``nn.Linear`` followed by an ``nn.ReLU`` or ``nn.LeakyReLU``. ``Linear`` followed by ``LeakyReLU`` stays
    the reference (``npgan.reference.linear_leaky_relu``): the tests compare the two, first and second
    derivatives included.

    Backward: g = gy * mask (``LeakyReLUGrad``'s mask: 1 where y > 0, slope elsewhere), then Linear's
    gx = g W, gW = g^T x, gb = sum_n g, all in one ``LinearGrad``.
    """

    def __init__(self, slope):
        self.slope = slope

    def forward(self, x, W, b=None):
        xp = xp_of(x)
        y = gemm(x, W.T)
        if b is not None:
            y += b
        self.positive = y > 0
        if self.slope == 0.0:
            return xp.maximum(y, 0, out=y)
        scaled = y * self.slope
        if 0.0 < self.slope < 1.0:
            return xp.maximum(y, scaled, out=y)  # max(y, slope y): y above 0, slope y below
        return xp.where(self.positive, y, scaled)

    def backward(self, gy):
        return _linear_grads(self, gy, LeakyReLUGrad(self.positive, self.slope))


def linear_leaky_relu(x, weight, bias=None, negative_slope=0.0) -> Tensor:
    """``leaky_relu(linear(x, weight, bias), negative_slope)`` as one op (``negative_slope=0``: ReLU)."""
    if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
        raise TypeError(f"linear_leaky_relu: negative_slope must be a number, got {type(negative_slope).__name__}")
    if (weight.ndim == 2 and x.ndim == 2 and x.shape[1] == weight.shape[1] and x.dtype == weight.dtype
            and (bias is None or bias.dtype == weight.dtype)):
        fused = LinearLeakyReLU(float(negative_slope))
        return fused(x, weight) if bias is None else fused(x, weight, bias)
    return leaky_relu(linear(x, weight, bias), float(negative_slope))  # other shapes: the two ops


def linear(x, weight, bias=None) -> Tensor:
    """y = x weight^T + b, with weight (out_features, in_features) as PyTorch.

    >>> F.linear(npgan.zeros(4, 3), npgan.zeros(2, 3), npgan.ones(2))
    tensor([[1., 1.],
           [1., 1.],
           [1., 1.],
           [1., 1.]], dtype=float32)
    """
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input's last dimension must be {weight.shape[1]} (in_features), got input shape {x.shape}"
        )
    if x.ndim == 2 and x.dtype == weight.dtype and (bias is None or bias.dtype == weight.dtype):
        return Linear()(x, weight) if bias is None else Linear()(x, weight, bias)
    y = x @ weight.T
    return y if bias is None else y + bias
