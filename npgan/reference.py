"""The textbook versions of the places where npgan's fast code hides a simple rule under speed work.

Read these first. Each one states the rule, computes it the plain way, and names the fast version that
``tests/test_reference.py`` proves equal to it on random inputs:

==================================  =========================================================================
textbook version (here)             fast version (an optimisation of it)
==================================  =========================================================================
``backward``                        ``Tensor.backward`` and ``run_backward`` in ``npgan/autograd.py``
``linear``, ``linear_leaky_relu``   ``Linear``, ``LinearLeakyReLU`` and their gradient op ``LinearGrad`` in
                                    ``npgan/ops/linear.py`` (one GEMM each, two backwards)
``im2col``, ``col2im``              ``im2col``, ``col2im`` in ``npgan/ops/conv.py`` (batch-last, blocked)
``adam_step``                       ``npgan.optim.Adam.step`` (in place, blocked, bias correction folded in)
``differentiable_adam_step``,       ``npgan.optim.differentiable_step`` (each param group packed into one
``differentiable_sgd_step``         vector, the flat vectors reused from one step to the next)
``batch_norm_train``                ``BatchNorm`` in ``npgan/ops/norm.py`` (a fused op, two backwards)
==================================  =========================================================================

They are slow on purpose (loops, fresh arrays, no reuse of memory) and are not used by the library.
"""

from __future__ import annotations

import math

from npgan import backend
from npgan.autograd import Tensor, no_grad
from npgan.ops.activation import leaky_relu
from npgan.ops.core import mean, sqrt, sum_to, where

__all__ = ["adam_step", "backward", "batch_norm_train", "col2im", "differentiable_adam_step",
           "differentiable_sgd_step", "im2col", "linear", "linear_leaky_relu"]


# -- gradient accumulation ----------------------------------------------------------------------------


def _functions_in_order(output: Tensor) -> list:
    """Every Function behind ``output``, each after the creators of its inputs (a depth-first post-order)."""
    order, seen = [], set()

    def visit(fn):
        if id(fn) in seen:
            return
        seen.add(id(fn))
        for x in fn.inputs:
            if x.creator is not None:
                visit(x.creator)
        order.append(fn)

    if output.creator is not None:
        visit(output.creator)
    return order


def backward(output: Tensor) -> None:
    """Reverse-mode differentiation of a scalar ``output``, the textbook way.

    The rule: walk the functions from the output back to the leaves; each turns the gradient of its output
    into gradients of its inputs (the chain rule), and a tensor used twice **adds** the gradients that
    reach it. At a leaf that wants a gradient, ``leaf.grad = leaf.grad + g`` (or ``g`` the first time),
    so repeated ``backward()`` calls accumulate.

    Fast version: ``Tensor.backward`` (``npgan/autograd.py``). It follows the same rule, plus: no recursion,
    gradients only where needed, the graph's buffers freed as it goes, and ``.grad`` arrays added into in
    place and handed out without a copy when no one else can see them (which is most of its length).
    Unlike it, this version keeps the graph (as ``retain_graph=True``) and records no graph of the gradient.

    >>> x = npgan.tensor([1.0, 2.0], requires_grad=True); backward((x * x).sum()); x.grad   # 2x
    tensor([2., 4.], dtype=float32)
    """
    if output.numel() != 1:
        raise ValueError(f"reference.backward: the output must hold one number, got shape {output.shape}")
    xp = backend.get_array_module(output.data)
    grads = {id(output): Tensor(xp.ones(output.shape, dtype=output.dtype))}  # id(tensor) -> d output / d tensor
    alive = {id(output): output}  # keeps every tensor of ``grads`` alive, so no id is reused during the walk
    with no_grad():
        for fn in reversed(_functions_in_order(output)):
            outputs = [ref() for ref in fn._outputs]  # weak references: None for an output no one kept
            gys = [grads.get(id(y)) if y is not None else None for y in outputs]
            if all(gy is None for gy in gys):
                continue  # no path from here to the output
            gys = [gy if gy is not None else Tensor(xp.zeros(shape, dtype=dtype))  # an unused output: 0
                   for gy, (shape, dtype) in zip(gys, fn._output_meta)]
            gxs = fn.backward(*gys)
            gxs = gxs if isinstance(gxs, tuple) else (gxs,)
            for x, gx in zip(fn.inputs, gxs):
                if gx is None or not x.requires_grad:
                    continue
                gx = sum_to(gx, x.shape)  # a broadcast input gets the sum over the broadcast axes
                grads[id(x)] = grads[id(x)] + gx if id(x) in grads else gx  # the rule: add into what is there
                alive[id(x)] = x
        for key, t in alive.items():
            if t.is_leaf and t.requires_grad:
                t.grad = grads[key] if t.grad is None else t.grad + grads[key]


# -- linear ---------------------------------------------------------------------------------------------


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """A dense layer from plain ops: ``x @ weight.T + bias``, x (N, in), weight (out, in), bias (out,).

    The engine derives the gradients (gx = gy W, gW = gy^T x, gb = sum_n gy) and their own derivatives from
    MatMul's, Transpose's and Add's rules: five recorded nodes per layer under ``create_graph=True``.

    Fast version: ``F.linear`` runs one ``Linear`` op (one GEMM, the bias added in place) whose backward is
    one ``LinearGrad`` op with its second derivatives worked out by hand, on raw arrays when no graph of the
    gradient is recorded and in Tensor ops when one is (``npgan/ops/linear.py``).
    """
    y = x @ weight.T
    return y if bias is None else y + bias


def linear_leaky_relu(x: Tensor, weight: Tensor, bias: Tensor | None = None, negative_slope: float = 0.0) -> Tensor:
    """``leaky_relu(x @ weight.T + bias, negative_slope)`` from plain ops (slope 0: ReLU).

    Fast version: ``F.linear_leaky_relu``, one ``LinearLeakyReLU`` op (what ``nn.fuse`` makes of an
    ``nn.Linear`` followed by an ``nn.ReLU`` or ``nn.LeakyReLU``), its backward the same ``LinearGrad`` op
    with the activation's mask.
    """
    return leaky_relu(linear(x, weight, bias), negative_slope)


# -- im2col / col2im ----------------------------------------------------------------------------------


def _output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, KH, KW, SH=1, SW=1, PH=0, PW=0):
    """Every KH x KW window of ``x`` as one column: x (N, C, H, W) array -> col (C*KH*KW, OH*OW*N) array.

    The rule: ``col[(c, kh, kw), (oh, ow, n)] = x_padded[n, c, oh*SH + kh, ow*SW + kw]``, so a convolution
    is one matrix product, ``y[o, (oh, ow, n)] = sum weight[o, (c, kh, kw)] * col[(c, kh, kw), (oh, ow, n)]``.
    One strided slice per tap (kh, kw) fills that tap's row of every window.

    Fast version: ``npgan.ops.conv.im2col(pad_input(x, PH, PW), KH, KW, SH, SW, OW, (0, OH))``, which
    reads a batch-last input through one strided view and is used in blocks of output rows.

    >>> im2col(numpy.arange(16.0).reshape(1, 1, 4, 4), 2, 2, 2, 2).shape   # 4 windows of 2x2 taps
    (4, 4)
    """
    xp = backend.get_array_module(x)
    N, C, H, W = x.shape
    OH, OW = _output_size(H, KH, SH, PH), _output_size(W, KW, SW, PW)
    padded = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
    padded[:, :, PH:PH + H, PW:PW + W] = x
    col = xp.empty((C, KH, KW, OH, OW, N), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):  # tap (kh, kw) of window (oh, ow) is pixel (oh*SH + kh, ow*SW + kw)
            col[:, kh, kw] = padded[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW].transpose(1, 2, 3, 0)
    return col.reshape(C * KH * KW, OH * OW * N)


def col2im(col, x_shape, KH, KW, SH=1, SW=1, PH=0, PW=0):
    """The adjoint of ``im2col``: col (C*KH*KW, OH*OW*N) array -> an (N, C, H, W) array of ``x_shape``.

    The rule: every column entry is **added** back to the pixel it was copied from, so a pixel inside several
    windows gets the sum of their entries (``<im2col(x), col> == <x, col2im(col)>``). This is the input
    gradient of a convolution and the forward of a transposed convolution.

    Fast version: ``npgan.ops.conv.col2im(col, out, KH, KW, SH, SW, PH, PW, OH, OW)``, which writes into a
    batch-last ``out`` (C, H, W, N) one stride phase at a time (copying the first tap, adding the others).
    """
    xp = backend.get_array_module(col)
    N, C, H, W = x_shape
    OH, OW = _output_size(H, KH, SH, PH), _output_size(W, KW, SW, PW)
    col = col.reshape(C, KH, KW, OH, OW, N)
    padded = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=col.dtype)
    for kh in range(KH):
        for kw in range(KW):
            padded[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW] += col[:, kh, kw].transpose(3, 0, 1, 2)
    return padded[:, :, PH:PH + H, PW:PW + W]  # the border only collected the padding's share: dropped


# -- Adam -----------------------------------------------------------------------------------------------


def adam_step(param, grad, exp_avg, exp_avg_sq, step, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """One Adam step (Kingma & Ba, 2014, Algorithm 1) on arrays; returns new ``(param, exp_avg, exp_avg_sq)``.

    ``step`` counts from 1. The rule, as the paper writes it::

        m = beta1 m + (1 - beta1) g          the first moment (a moving average of the gradient)
        v = beta2 v + (1 - beta2) g^2        the second moment (of its square)
        m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)     the bias correction (m, v start at 0)
        p = p - lr m_hat / (sqrt(v_hat) + eps)

    with ``g = grad + weight_decay p`` (an L2 term). Every parameter moves about ``lr`` per step in the
    direction of its gradient's sign, whatever the gradient's scale.

    Fast version: ``npgan.optim.Adam`` (``step()``), which updates ``param`` and the moments in place in
    cache-sized blocks, with ``1 / sqrt(1 - beta2^t)`` moved out of the denominator (one pass fewer).
    """
    beta1, beta2 = betas
    g = grad + weight_decay * param
    m = beta1 * exp_avg + (1.0 - beta1) * g
    v = beta2 * exp_avg_sq + (1.0 - beta2) * g * g
    m_hat, v_hat = m / (1.0 - beta1**step), v / (1.0 - beta2**step)
    xp = backend.get_array_module(param)
    return param - lr * m_hat / (xp.sqrt(v_hat) + eps), m, v


# -- differentiable optimizer steps (unrolling) ----------------------------------------------------------


def differentiable_adam_step(params, grads, exp_avgs, exp_avg_sqs, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                             weight_decay=0.0):
    """One Adam step as Tensor expressions, one parameter at a time: new ``(params, exp_avgs, exp_avg_sqs)``.

    ``steps[i]`` is parameter i's step number, from 1. A parameter whose gradient is None keeps its value
    and moments. The rule is ``adam_step``'s, in ``torch.optim.Adam``'s order of operations (so float32
    results match to the bit)::

        g = grad + weight_decay p
        m = lerp(m, g, 1 - beta1)            m + (g - m)(1 - beta1), computed from the nearer end
        v = beta2 v + (1 - beta2) g^2
        p = p - (m / (sqrt(v) / sqrt(1 - beta2^t) + eps)) (lr / (1 - beta1^t))

    The results are expressions of ``params`` and ``grads``, so a loss of the new parameters differentiates
    through the step (unrolled GANs). sqrt(v) has derivative 0 where v is exactly 0, not infinity.

    Fast version: ``npgan.optim.differentiable_step`` with an ``optim.Adam``: each param group packed into
    one flat vector (``F.pack``) and updated by one set of ops, the flat vectors kept from step to step.
    """
    beta1, beta2 = betas
    new_params, new_m, new_v = list(params), list(exp_avgs), list(exp_avg_sqs)
    for i, (p, grad, m, v, t) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs, steps)):
        if grad is None:
            continue
        g = grad + weight_decay * p if weight_decay != 0 else grad
        weight = 1.0 - beta1  # lerp(m, g, weight), from the nearer end as torch.lerp computes it
        m = m + (g - m) * weight if weight < 0.5 else g - (g - m) * (1.0 - weight)
        v = v * beta2 + g * g * (1.0 - beta2)
        positive = v.data > 0
        sqrt_v = where(positive, sqrt(where(positive, v, 1.0)), 0.0)
        denom = sqrt_v / math.sqrt(1.0 - beta2**t) + eps
        new_params[i] = p - (m / denom) * (lr / (1.0 - beta1**t))
        new_m[i], new_v[i] = m, v
    return new_params, new_m, new_v


def differentiable_sgd_step(params, grads, momentum_buffers, lr, momentum=0.0, dampening=0.0, nesterov=False,
                            weight_decay=0.0):
    """One SGD step as Tensor expressions, one parameter at a time: new ``(params, momentum_buffers)``.

    ``momentum_buffers[i]`` is None before parameter i's first step with momentum. A parameter whose
    gradient is None keeps its value and buffer. The rule (``torch.optim.SGD``)::

        g = grad + weight_decay p
        b = g on the first step, else momentum b + (1 - dampening) g
        p = p - lr (g + momentum b)  with Nesterov,  p - lr b  without,  p - lr g  with no momentum

    Fast version: ``npgan.optim.differentiable_step`` with an ``optim.SGD`` (each param group packed).
    """
    new_params, new_buffers = list(params), list(momentum_buffers)
    for i, (p, grad, b) in enumerate(zip(params, grads, momentum_buffers)):
        if grad is None:
            continue
        g = grad + weight_decay * p if weight_decay != 0 else grad
        if momentum != 0:
            b = g if b is None else b * momentum + g * (1.0 - dampening)
            g = g + b * momentum if nesterov else b
            new_buffers[i] = b
        new_params[i] = p - g * lr
    return new_params, new_buffers


# -- batch norm -----------------------------------------------------------------------------------------


def batch_norm_train(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Training-mode batch norm of x (N, C) or (N, C, H, W), composed of differentiable Tensor ops.

    The rule: per channel c, over the batch (and the pixels), ``mean_c``, the biased ``var_c``, and
    ``y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c``. Composed this way the engine derives
    the backward (and the backward of the backward, for WGAN-GP) from the ops' own rules.

    Fast version: ``F.batch_norm(x, ..., training=True)`` runs one fused ``BatchNorm`` op
    (``npgan/ops/norm.py``) with the backward worked out by hand: on raw arrays when no graph of the gradient
    is recorded, and the same formulas in Tensor ops under ``create_graph=True``.
    """
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    centered = x - mean(x, axes, keepdims=True)
    var = mean(centered * centered, axes, keepdims=True)
    return centered / (var + eps) ** 0.5 * weight.reshape(shape) + bias.reshape(shape)
