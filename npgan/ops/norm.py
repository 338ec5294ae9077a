"""Normalisation: batch, layer, instance and virtual batch norm.

Layer, instance and virtual batch norm and batch norm in eval mode are composed from differentiable ops,
so their second derivatives (a WGAN-GP critic with LayerNorm) come for free. Batch norm in training mode, the hot
path of every DCGAN step, is one fused op (``BatchNorm``): a few NumPy passes over the raw arrays forward
and backward, and a composed, differentiable backward when a graph of the gradient is being built.
"""

from __future__ import annotations

import numbers

from npgan import backend
from npgan.autograd import Function, Tensor, is_grad_enabled
from npgan.ops.core import concatenate, getitem, mean
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
    This fused op is an optimisation of ``npgan.reference.batch_norm_train`` (batch norm composed of Tensor
    ops, differentiated by the engine); the tests prove both backwards equal to it (``Function`` explains
    the exception to the rule that backwards use Tensor ops).
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

    >>> F.batch_norm(npgan.randn(8, 3), None, None, training=True).mean(axis=0).abs().max().item() < 1e-6
    True
    """
    if x.ndim not in (2, 3, 4):
        raise ValueError(f"batch_norm: expected input (N, C), (N, C, L) or (N, C, H, W), got shape {x.shape}")
    channels = x.shape[1]
    _check_per_channel("batch_norm", x, weight=weight, bias=bias, running_mean=running_mean, running_var=running_var)
    shape = _channel_shape(x)
    count = x.numel() // channels
    if training:
        if count < 2:
            raise ValueError(f"batch_norm: need more than 1 value per channel when training, got input {x.shape}")
        xp = xp_of(x.data)
        weight = weight if weight is not None else Tensor(xp.ones(channels, dtype=x.dtype))
        bias = bias if bias is not None else Tensor(xp.zeros(channels, dtype=x.dtype))
        return BatchNorm(eps, running_mean, running_var, momentum)(x, weight, bias)
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: eval mode needs running_mean and running_var")
    return _affine(_normalize_with(running_mean, running_var, x, eps, shape), weight, bias, shape)


def _check_per_channel(op, x, **tensors) -> None:
    """Each given tensor (None: absent) must hold one number per channel of x (N, C, ...)."""
    channels = x.shape[1]
    for name, t in tensors.items():
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"{op}: {name} must have shape ({channels},) for input {x.shape}, got {t.shape}")


def _normalize_with(running_mean, running_var, x, eps, shape) -> Tensor:
    """(x - mean) / sqrt(var + eps) with stored statistics (C,) broadcast as ``shape``: eval-mode norms."""
    scale = Tensor(((running_var + eps) ** -0.5).reshape(shape).astype(x.dtype, copy=False))
    return (x - Tensor(running_mean.reshape(shape).astype(x.dtype, copy=False))) * scale


def _affine(x_hat, weight, bias, shape) -> Tensor:
    """x_hat * weight + bias, each (C,) broadcast as ``shape``; either may be None (no scale, no shift)."""
    if weight is not None:
        x_hat = x_hat * weight.reshape(shape)
    if bias is not None:
        x_hat = x_hat + bias.reshape(shape)
    return x_hat


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` axes of each sample (biased variance).

    >>> F.layer_norm(npgan.randn(2, 5), 5).shape
    (2, 5)
    """
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


def instance_norm(x, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5) -> Tensor:
    """Normalise each sample's channels over their spatial positions (Ulyanov et al. 2016), x (N, C, H, W).

    y = (x - mean_hw) / sqrt(var_hw + eps) * weight + bias, biased variance, statistics per (n, c). Composed
    of differentiable ops, so a WGAN-GP penalty can differentiate it twice. As PyTorch: with running
    statistics (raw arrays, updated in place), running = (1 - momentum) * running + momentum * (the batch
    mean of the per-sample means, or of the unbiased per-sample variances); ``use_input_stats=False``
    (eval with running statistics) normalises with the running ones instead.
    """
    if x.ndim != 4:
        raise ValueError(f"instance_norm: expected input (N, C, H, W), got shape {tuple(x.shape)}")
    _check_per_channel("instance_norm", x, weight=weight, bias=bias, running_mean=running_mean,
                       running_var=running_var)
    shape = _channel_shape(x)
    if use_input_stats:
        count = x.shape[2] * x.shape[3]
        if count < 2:
            raise ValueError(f"instance_norm: need more than 1 spatial element per channel, got input {x.shape}")
        centered = x - mean(x, (2, 3), keepdims=True)
        var = mean(centered * centered, (2, 3), keepdims=True)
        x_hat = centered * (var + eps) ** -0.5
        if running_mean is not None and running_var is not None:
            batch_mean = x.data.mean(axis=(0, 2, 3))
            unbiased = var.data.reshape(x.shape[:2]).mean(axis=0) * (count / (count - 1))
            running_mean *= 1.0 - momentum
            running_mean += momentum * batch_mean.astype(running_mean.dtype, copy=False)
            running_var *= 1.0 - momentum
            running_var += momentum * unbiased.astype(running_var.dtype, copy=False)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("instance_norm: use_input_stats=False needs running_mean and running_var")
        x_hat = _normalize_with(running_mean, running_var, x, eps, shape)
    return _affine(x_hat, weight, bias, shape)


def virtual_batch_norm(x, reference_size, weight=None, bias=None, eps=1e-5) -> Tensor:
    """Virtual batch normalisation (Salimans et al. 2016) of x (R + N, C) or (R + N, C, H, W).

    The first R = ``reference_size`` rows of x are the activations of a reference batch fixed at the start
    of training, computed with the current weights; the other N rows are the live batch. As in the
    paper's code (openai/improved-gan), the reference rows are normalised with their own statistics,
    and each live example i with the statistics of a *virtual batch*: the R reference examples plus i
    itself, each weighing 1 / (R + 1), per channel (over positions too for images):
        mean_i = (R ref_mean + mean_hw(x_i)) / (R + 1)
        var_i  = (R (ref_var + (ref_mean - mean_i)^2) + var_hw(x_i) + (mean_hw(x_i) - mean_i)^2) / (R + 1)
    (the variance of the union, written with centred terms so float32 cannot make it negative).
    So an example's output does not depend on the other live examples, and training and sampling
    compute the same function; gradients flow into the reference statistics too.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"virtual_batch_norm: expected input (R + N, C) or (R + N, C, H, W), got {tuple(x.shape)}")
    R = int(reference_size)
    if R < 1 or x.shape[0] <= R:
        raise ValueError(f"virtual_batch_norm: input {tuple(x.shape)} must hold the {R} reference rows first "
                         f"and at least one live row")
    shape = _channel_shape(x)
    batch_axes = (0,) + tuple(range(2, x.ndim))
    reference, live = getitem(x, slice(0, R)), getitem(x, slice(R, None))
    ref_mean = mean(reference, batch_axes, keepdims=True)
    ref_centered = reference - ref_mean
    ref_var = mean(ref_centered * ref_centered, batch_axes, keepdims=True)
    ref_out = ref_centered * (ref_var + eps) ** -0.5
    new, old = 1.0 / (R + 1), R / (R + 1)
    if x.ndim == 4:
        live_mean = mean(live, (2, 3), keepdims=True)
        live_centered = live - live_mean
        live_var = mean(live_centered * live_centered, (2, 3), keepdims=True)
    else:  # one value per channel: the example is its own mean, with no spread
        live_mean, live_var = live, None
    mean_i = live_mean * new + ref_mean * old
    ref_gap, live_gap = ref_mean - mean_i, live_mean - mean_i
    var_i = (ref_var + ref_gap * ref_gap) * old + live_gap * live_gap * new
    if live_var is not None:
        var_i = var_i + live_var * new
    live_out = (live - mean_i) * (var_i + eps) ** -0.5
    out = concatenate([ref_out, live_out], axis=0)
    if weight is not None:
        out = out * weight.reshape(shape)
    if bias is not None:
        out = out + bias.reshape(shape)
    return out
