"""Normalisation, dropout and embedding, composed from differentiable ops.

Because they are built from ops whose backward is itself differentiable, their second derivatives (the
WGAN-GP critic with LayerNorm, or BatchNorm) come for free.
"""

from __future__ import annotations

import numbers

from npgan import backend
from npgan.autograd import Tensor, as_tensor
from npgan.ops.core import getitem, mean

xp_of = backend.get_array_module


def _channel_shape(x):
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


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
    axes = (0,) + tuple(range(2, x.ndim))
    count = x.size // channels
    if training:
        if count < 2:
            raise ValueError(f"batch_norm: need more than 1 value per channel when training, got input {x.shape}")
        batch_mean = mean(x, axes, keepdims=True)
        centered = x - batch_mean
        batch_var = mean(centered * centered, axes, keepdims=True)
        if running_mean is not None and running_var is not None:
            unbiased = batch_var.data.reshape(channels) * (count / (count - 1))
            running_mean *= 1.0 - momentum
            running_mean += momentum * batch_mean.data.reshape(channels)
            running_var *= 1.0 - momentum
            running_var += momentum * unbiased
        x_hat = centered * (batch_var + eps) ** -0.5
    else:
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
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= weight.shape[0]):
        raise ValueError(
            f"embedding: indices must be in [0, {weight.shape[0]}), got values in "
            f"[{int(indices.min())}, {int(indices.max())}]"
        )
    return getitem(weight, indices)
