"""Resampling without sparse gradients: pixel shuffle, nearest-neighbour upsampling, average pooling.

GAN practice (soumith/ganhacks, "avoid sparse gradients") prefers these to max pooling; pixel shuffle
(Shi et al. 2016) and resize-then-convolve (Odena et al. 2016) are the alternatives to transposed
convolutions in a generator. Pixel shuffle and nearest upsampling are pure re-indexing, composed from
reshape, transpose and broadcast, so every derivative comes from those ops. Average pooling is one op
(``AvgPool2d``) whose backward is its adjoint (``AvgPool2dGrad``): both are linear, each the other's
backward, so second derivatives (a WGAN-GP critic that pools) come for free.

Notation: x (N, C, H, W); a K x K window moved by stride S over x padded by P zeros on each side gives
OH = (H + 2P - K) // S + 1 rows (and OW columns) of outputs.
"""

from __future__ import annotations

from npgan import backend
from npgan.autograd import Function, Tensor
from npgan.ops.core import broadcast_to, reshape, transpose

xp_of = backend.get_array_module


def _check_4d(op, x):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected input (N, C, H, W), got shape {tuple(x.shape)}")


# -- pixel shuffle ---------------------------------------------------------------------------------------


def pixel_shuffle(x, upscale_factor) -> Tensor:
    """(N, C r^2, H, W) -> (N, C, H r, W r): out[n, c, h r + i, w r + j] = x[n, c r^2 + i r + j, h, w]."""
    _check_4d("pixel_shuffle", x)
    r = int(upscale_factor)
    n, channels, h, w = x.shape
    if channels % (r * r):
        raise ValueError(f"pixel_shuffle: input channels ({channels}) must be divisible by upscale_factor^2 "
                         f"({r}^2 = {r * r}), input shape {tuple(x.shape)}")
    c = channels // (r * r)
    y = reshape(x, (n, c, r, r, h, w))
    y = transpose(y, (0, 1, 4, 2, 5, 3))  # (n, c, h, i, w, j)
    return reshape(y, (n, c, h * r, w * r))


def pixel_unshuffle(x, downscale_factor) -> Tensor:
    """The inverse of ``pixel_shuffle``: (N, C, H r, W r) -> (N, C r^2, H, W)."""
    _check_4d("pixel_unshuffle", x)
    r = int(downscale_factor)
    n, c, hr, wr = x.shape
    if hr % r or wr % r:
        raise ValueError(f"pixel_unshuffle: height and width must be divisible by downscale_factor ({r}), "
                         f"input shape {tuple(x.shape)}")
    y = reshape(x, (n, c, hr // r, r, wr // r, r))
    y = transpose(y, (0, 1, 3, 5, 2, 4))  # (n, c, i, j, h, w)
    return reshape(y, (n, c * r * r, hr // r, wr // r))


# -- nearest-neighbour upsampling ------------------------------------------------------------------------


def upsample_nearest(x, scale_factor) -> Tensor:
    """(N, C, H, W) -> (N, C, H s, W s), every pixel repeated in an s x s block (an int ``scale_factor``).

    The gradient of a pixel is the sum over its block (the broadcast's backward).
    """
    _check_4d("upsample_nearest", x)
    s = int(scale_factor)
    n, c, h, w = x.shape
    blocks = broadcast_to(reshape(x, (n, c, h, 1, w, 1)), (n, c, h, s, w, s))
    return reshape(blocks, (n, c, h * s, w * s))


# -- average pooling -------------------------------------------------------------------------------------


def _window_slices(k, stride, out_size):
    """The slice of the padded input that window offset k (0 <= k < K) reads for every output position."""
    return slice(k, k + stride * (out_size - 1) + 1, stride)


class AvgPool2d(Function):
    """y[n, c, oh, ow] = 1/(KH KW) sum_{i, j} x_pad[n, c, oh SH + i, ow SW + j] (zeros count, as PyTorch).

    Forward adds KH x KW strided slices of the padded input (no im2col copy); backward spreads
    gy / (KH KW) back over the same slices (``AvgPool2dGrad``).
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        xp = xp_of(x)
        H, W = x.shape[2:]
        OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
        padded = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW))) if PH or PW else x
        y = xp.zeros(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for i in range(KH):
            for j in range(KW):
                y += padded[:, :, _window_slices(i, SH, OH), _window_slices(j, SW, OW)]
        y *= 1.0 / (KH * KW)
        return y

    def backward(self, gy):  # linear: the gradient is the adjoint map applied to gy
        return AvgPool2dGrad(self.kernel_size, self.stride, self.padding, self.inputs[0].shape)(gy)


class AvgPool2dGrad(Function):
    """The adjoint of ``AvgPool2d``: gx_pad[.., oh SH + i, ow SW + j] += gy[.., oh, ow] / (KH KW), padding cut."""

    def __init__(self, kernel_size, stride, padding, input_shape):
        self.kernel_size, self.stride, self.padding, self.input_shape = kernel_size, stride, padding, input_shape

    def forward(self, gy):
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        xp = xp_of(gy)
        N, C, H, W = self.input_shape
        OH, OW = gy.shape[2:]
        gx = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=gy.dtype)
        scaled = gy * (1.0 / (KH * KW))
        for i in range(KH):
            for j in range(KW):
                gx[:, :, _window_slices(i, SH, OH), _window_slices(j, SW, OW)] += scaled
        return gx[:, :, PH:PH + H, PW:PW + W]

    def backward(self, ggx):  # the adjoint of the adjoint: pooling again
        return AvgPool2d(self.kernel_size, self.stride, self.padding)(ggx)


def _int_pair(value, name, op, minimum):
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in pair):
        bound = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be a {bound} int or a pair of them, got {value!r}")
    return pair


def avg_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Average over K x K windows moved by ``stride`` (default: the kernel size) over x padded by zeros.

    As PyTorch's default (``count_include_pad=True``, ``ceil_mode=False``): every window divides by K^2,
    padded zeros included, and a partial window at the end is dropped.
    """
    _check_4d("avg_pool2d", x)
    kernel = _int_pair(kernel_size, "kernel_size", "avg_pool2d", 1)
    stride = kernel if stride is None else _int_pair(stride, "stride", "avg_pool2d", 1)
    padding = _int_pair(padding, "padding", "avg_pool2d", 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"avg_pool2d: padding {padding} must be at most half the kernel size {kernel}")
    H, W = x.shape[2:]
    if H + 2 * padding[0] < kernel[0] or W + 2 * padding[1] < kernel[1]:
        raise ValueError(f"avg_pool2d: input of spatial size ({H}, {W}) padded by {padding} is smaller than "
                         f"the kernel {kernel}")
    return AvgPool2d(kernel, stride, padding)(x)
