"""Normalisation, dropout and embedding.

Layer norm, dropout, embedding and batch norm in eval mode are composed from differentiable ops, so their
second derivatives (a WGAN-GP critic with LayerNorm) come for free. Batch norm in training mode, the hot
path of every DCGAN step, is one fused op (``BatchNorm``): a few NumPy passes over the raw arrays forward
and backward, and a composed, differentiable backward when a graph of the gradient is being built.
"""

from __future__ import annotations

import numbers

from npgan import backend
from npgan.autograd import Function, Tensor, as_tensor, is_grad_enabled
from npgan.ops.core import getitem, mean
from npgan.ops.core import sum as sum_

xp_of = backend.get_array_module


def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _to_rows(a):
    """a (N, C, ...) -> its (C, ...*N) rows, batch last: a view for conv outputs, stored that way (``ops/conv.py``)."""
    return a.transpose(tuple(range(1, a.ndim)) + (0,)).reshape(a.shape[1], -1)


def _from_rows(rows, shape):
    """The inverse of ``_to_rows``: (C, ...*N) rows -> the (N, C, ...) view of shape ``shape``."""
    ndim = len(shape)
    return rows.reshape(tuple(shape[1:]) + (shape[0],)).transpose((ndim - 1,) + tuple(range(ndim - 1)))


def _rowdot(a, b):
    """sum(a * b, axis=1) of two (C, M) arrays as C dot products (BLAS: fast, no temporary array)."""
    return (a[:, None, :] @ b[:, :, None]).reshape(a.shape[0])


class BatchNorm(Function):
    """Training-mode batch norm of x (N, C, ...) with its batch statistics, and affine weight and bias.

    Computed on the rows of the (C, M) view of x, M = N * H * W (a view, no copy, for conv outputs):
        mean = sum_j x_ij / M,   var = sum_j (x_ij - mean)^2 / M,   y = (x - mean) / sqrt(var + eps) * w + b
    Backward, with x_hat = (x - mean) / sqrt(var + eps) and g = gy:
        gx = w / sqrt(var + eps) * (g - mean_j(g) - x_hat * mean_j(g * x_hat))
        gw = sum_j g * x_hat,   gb = sum_j g
    When no graph of the gradient is recorded (plain ``backward()``) these run on raw arrays, a handful of
    passes; under ``create_graph=True`` the same formulas are written with Tensor ops of x, so they can be
    differentiated again. ``running_mean`` / ``running_var`` (arrays or None) are updated in place.
    """

    def __init__(self, eps, running_mean=None, running_var=None, momentum=0.1):
        self.eps, self.running_mean, self.running_var, self.momentum = eps, running_mean, running_var, momentum

    def forward(self, x, weight, bias):
        xp = xp_of(x)
        rows = _to_rows(x)
        count = rows.shape[1]
        mean_ = rows.mean(axis=1)
        centered = rows - mean_[:, None]
        var = _rowdot(centered, centered) / count
        inv_std = 1.0 / xp.sqrt(var + self.eps)
        self.mean, self.inv_std = mean_, inv_std
        if self.running_mean is not None and self.running_var is not None:
            unbiased = var * (count / (count - 1))
            self.running_mean *= 1.0 - self.momentum
            self.running_mean += self.momentum * mean_
            self.running_var *= 1.0 - self.momentum
            self.running_var += self.momentum * unbiased
        self.running_mean = self.running_var = None
        centered *= (inv_std * weight)[:, None]  # y = x_hat * w + b, in the buffer of (x - mean)
        centered += bias[:, None]
        return _from_rows(centered, x.shape)

    def backward(self, gy):
        if is_grad_enabled():
            return self._differentiable_backward(gy)
        x, weight, _ = self.inputs
        x_rows, g = _to_rows(x.data), _to_rows(gy.data)
        count = x_rows.shape[1]
        sum_g = g.sum(axis=1)
        gx_rows = x_rows - self.mean[:, None]  # x - mean, turned into gx in place below
        sum_g_xhat = _rowdot(g, gx_rows) * self.inv_std
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            # gx = w inv_std (g - sum_g / M - (x - mean) * inv_std * sum_g_xhat / M), four in-place passes
            gx_rows *= (self.inv_std * sum_g_xhat * (-1.0 / count))[:, None]
            gx_rows += g
            gx_rows -= (sum_g * (1.0 / count))[:, None]
            gx_rows *= (weight.data * self.inv_std)[:, None]
            gx = Tensor(_from_rows(gx_rows, x.shape))
        if self.needs_input_grad[1]:
            gw = Tensor(sum_g_xhat)
        if self.needs_input_grad[2]:
            gb = Tensor(sum_g)
        return gx, gw, gb

    def _differentiable_backward(self, gy):
        x, weight, _ = self.inputs
        axes = (0,) + tuple(range(2, x.ndim))
        shape = _channel_shape(x)
        centered = x - mean(x, axes, keepdims=True)
        inv_std = (mean(centered * centered, axes, keepdims=True) + self.eps) ** -0.5
        x_hat = centered * inv_std
        gx = gw = gb = None
        if self.needs_input_grad[0]:
            g_hat = gy * weight.reshape(shape)
            gx = inv_std * (g_hat - mean(g_hat, axes, keepdims=True)
                            - x_hat * mean(g_hat * x_hat, axes, keepdims=True))
        if self.needs_input_grad[1]:
            gw = sum_(gy * x_hat, axes)
        if self.needs_input_grad[2]:
            gb = sum_(gy, axes)
        return gx, gw, gb


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5) -> Tensor:
    """Batch normalisation over every axis but the channels (axis 1) of x (N, C) or (N, C, H, W).

    training: y = (x - mean_batch) / sqrt(var_batch + eps) * weight + bias, with the biased batch
    variance; ``running_mean`` / ``running_var`` (raw arrays, may be None) are updated in place:
    running = (1 - momentum) * running + momentum * batch, using the unbiased variance (as PyTorch).
    eval: the running statistics replace the batch ones.
    """
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected input (N, C), (N, C, L) or (N, C, H, W), got shape {x.shape}")
    channels = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},) for input {x.shape}, got {t.shape}")
    shape = _channel_shape(x)
    count = x.size // channels
    if training:
        if count < 2:
            raise ValueError(f"batch_norm: need more than 1 value per channel when training, got input {x.shape}")
        xp = xp_of(x.data)
        weight = weight if weight is not None else Tensor(xp.ones(channels, dtype=x.dtype))
        bias = bias if bias is not None else Tensor(xp.zeros(channels, dtype=x.dtype))
        return BatchNorm(eps, running_mean, running_var, momentum)(x, weight, bias)
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: eval mode needs running_mean and running_var")
    inv_std = (running_var + eps) ** -0.5
    scale = Tensor((inv_std).reshape(shape).astype(x.dtype, copy=False))
    x_hat = (x - Tensor(running_mean.reshape(shape).astype(x.dtype, copy=False))) * scale
    if weight is not None:
        x_hat = x_hat * weight.reshape(shape)
    if bias is not None:
        x_hat = x_hat + bias.reshape(shape)
    return x_hat


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` axes of each sample (biased variance)."""
    if isinstance(normalized_shape, numbers.Integral):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if x.shape[x.ndim - k:] != normalized_shape:
        raise ValueError(f"layer_norm: input's last dims must be {normalized_shape}, got input shape {x.shape}")
    axes = tuple(range(x.ndim - k, x.ndim))
    centered = x - mean(x, axes, keepdims=True)
    x_hat = centered * (mean(centered * centered, axes, keepdims=True) + eps) ** -0.5
    if weight is not None:
        x_hat = x_hat * weight
    if bias is not None:
        x_hat = x_hat + bias
    return x_hat


def dropout(x, p=0.5, training=True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (inverted dropout)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = backend.random_uniform(x.shape, dtype=x.dtype, device=x.device) >= p
    return x * Tensor(keep.astype(x.dtype) * (1.0 / (1.0 - p)))


def embedding(indices, weight) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices`` (any shape)."""
    indices = indices.data if isinstance(indices, Tensor) else indices
    if not backend.is_array(indices):
        indices = as_tensor(indices).data
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype}")
    # Host arrays only: on the GPU the check would be two device-to-host syncs per call (see nn.Embedding).
    if indices.size and not backend.is_cupy_array(indices) and \
            (int(indices.min()) < 0 or int(indices.max()) >= weight.shape[0]):
        raise ValueError(
            f"embedding: indices must be in [0, {weight.shape[0]}), got values in "
            f"[{int(indices.min())}, {int(indices.max())}]"
        )
    return getitem(weight, indices)
