"""Dropout: zero random elements during training and rescale the rest (inverted dropout).

Composed from a multiplication by a fixed random mask, so its second derivatives come for free.
"""

from __future__ import annotations

from npgan import backend
from npgan.autograd import Tensor


def dropout(x, p=0.5, training=True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (inverted dropout).

    >>> F.dropout(npgan.ones(4), 0.5, training=False)
    tensor([1., 1., 1., 1.], dtype=float32)
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = backend.random_uniform(x.shape, dtype=x.dtype, device=x.device) >= p
    return x * Tensor(keep.astype(x.dtype) * (1.0 / (1.0 - p)))
