"""Embedding: a lookup of rows of a weight table by integer index (a conditional GAN's label embedding).

Composed from ``getitem`` (indexing), whose backward scatter-adds the gradient back into the picked rows.
"""

from __future__ import annotations

from npgan import backend
from npgan.autograd import Tensor, as_tensor
from npgan.ops.core import getitem


def embedding(indices, weight) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices`` (any shape).

    >>> F.embedding(npgan.tensor([2, 0]), npgan.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]))
    tensor([[4., 5.],
           [0., 1.]], dtype=float32)
    """
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
