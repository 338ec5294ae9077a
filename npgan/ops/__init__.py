"""Differentiable ops, one ``Function`` class each, forward beside backward, one file per family:

    core.py        arithmetic, reductions, shapes, indexing, matmul
    activation.py  activations and losses
    linear.py      the dense layer (linear, linear + LeakyReLU fused, their gradients as one op)
    conv.py        conv2d, conv_transpose2d and the conv weight gradient (im2col, col2im)
    norm.py        batch, layer, instance and virtual batch norm
    pool.py        pooling and resampling (avg_pool2d, pixel shuffle, nearest upsampling)
    dropout.py     dropout
    embedding.py   embedding (a row lookup)

``npgan.functional`` re-exports everything here; import that (``import npgan.functional as F``).
"""
