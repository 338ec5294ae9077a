"""Dense and convolution layers as ops: linear, conv2d, conv_transpose2d.

Notation (once, for the whole file):
    N batch, C input channels, O output channels, H W input height/width,
    KH KW kernel size, SH SW stride, PH PW zero padding, OH OW output height/width,
    OH = (H + 2 PH - KH) // SH + 1   (and the same for OW).

How a convolution becomes one matrix product (im2col):
    col[(c, kh, kw), (n, oh, ow)] = x_padded[n, c, oh*SH + kh, ow*SW + kw]      shape (C*KH*KW, N*OH*OW)
    y[o, (n, oh, ow)] = sum_(c,kh,kw) W[o, (c, kh, kw)] * col[(c, kh, kw), (n, oh, ow)]    one GEMM
The reverse, col2im, adds every column entry back to the pixel it came from: KH*KW strided slice-adds.

The three ops are each other's gradients (Chainer's pattern), and each is a differentiable Function:
    conv2d(x, W)            d/dx -> conv_transpose2d(gy, W)     d/dW -> conv2d_grad_weight(x, gy)
    conv_transpose2d(x, W)  d/dx -> conv2d(gy, W)               d/dW -> conv2d_grad_weight(gy, x)
    conv2d_grad_weight(x, gy) with upstream gradient gW:
                            d/dx -> conv_transpose2d(gy, gW)    d/dgy -> conv2d(x, gW)
so second derivatives through convolutions (WGAN-GP's penalty) need no extra code.

Memory layout: activations are stored channel-major (C, N, H, W) in memory and handed out as (N, C, H, W)
views. That is the order the GEMM produces and im2col reads, so no large transposes are copied; NumPy's
elementwise ops keep the layout of their inputs.
"""

from __future__ import annotations

import numbers

from npgan import backend
from npgan.autograd import Function, Tensor

xp_of = backend.get_array_module


def _pair(value, name):
    if isinstance(value, numbers.Integral):
        value = (int(value), int(value))
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, numbers.Integral) for v in value):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(value[0]), int(value[1])


def conv_output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def conv_transpose_output_size(size, kernel, stride, padding, output_padding=0):
    return (size - 1) * stride - 2 * padding + kernel + output_padding


# -- im2col / col2im -------------------------------------------------------------------------------------


def im2col(x, KH, KW, SH, SW, PH, PW):
    """x (N, C, H, W) -> col (C*KH*KW, N*OH*OW): one strided view of the padded input, copied once."""
    xp = xp_of(x)
    N, C, H, W = x.shape
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    if PH or PW:
        padded = xp.zeros((C, N, H + 2 * PH, W + 2 * PW), dtype=x.dtype)
        padded[:, :, PH:PH + H, PW:PW + W] = x.transpose(1, 0, 2, 3)
    else:
        padded = x.transpose(1, 0, 2, 3)  # a view; as_strided below works with any strides
    sC, sN, sH, sW = padded.strides
    windows = backend.as_strided(padded, (C, KH, KW, N, OH, OW), (sC, sH, sW, sN, sH * SH, sW * SW))
    return windows.reshape(C * KH * KW, N * OH * OW)  # the copy into GEMM order


def col2im(col, shape, KH, KW, SH, SW, PH, PW, OH, OW):
    """col (C*KH*KW, N*OH*OW) -> (N, C, H, W), adding overlapping windows: KH*KW strided slice-adds."""
    xp = xp_of(col)
    N, C, H, W = shape
    col = col.reshape(C, KH, KW, N, OH, OW)
    padded = xp.zeros((C, N, H + 2 * PH, W + 2 * PW), dtype=col.dtype)
    for kh in range(KH):
        for kw in range(KW):
            padded[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW] += col[:, kh, kw]
    return padded[:, :, PH:PH + H, PW:PW + W].transpose(1, 0, 2, 3)


def _channel_major(x):
    """(N, C, H, W) -> (C, N*H*W); free when x is already stored channel-major."""
    N, C, H, W = x.shape
    return x.transpose(1, 0, 2, 3).reshape(C, N * H * W)


# -- the three convolution Functions -----------------------------------------------------------------------


class Conv2d(Function):
    """y = conv2d(x, W): x (N, C, H, W), W (O, C, KH, KW) -> y (N, O, OH, OW)."""

    def __init__(self, stride, padding):
        self.stride, self.padding = stride, padding

    def forward(self, x, W):
        (SH, SW), (PH, PW) = self.stride, self.padding
        O, C, KH, KW = W.shape
        N, _, H, W_in = x.shape
        OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W_in, KW, SW, PW)
        self.col = im2col(x, KH, KW, SH, SW, PH, PW)  # kept for the weight gradient
        y = W.reshape(O, C * KH * KW) @ self.col  # (O, N*OH*OW)
        return y.reshape(O, N, OH, OW).transpose(1, 0, 2, 3)

    def backward(self, gy):
        x, W = self.inputs
        gx = gW = None
        if self.needs_input_grad[0]:
            gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, W)
        if self.needs_input_grad[1]:
            gW = Conv2dGradWeight(W.shape[2:], self.stride, self.padding, col=self.col)(x, gy)
        return gx, gW


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, W): x (N, C, H, W), W (C, O, KH, KW) -> y (N, O, *out_size).

    The adjoint of conv2d: the GEMM spreads each input pixel over a KH x KW window (col2im adds them).
    """

    def __init__(self, stride, padding, out_size):
        self.stride, self.padding, self.out_size = stride, padding, tuple(out_size)

    def forward(self, x, W):
        (SH, SW), (PH, PW) = self.stride, self.padding
        C, O, KH, KW = W.shape
        N, _, H, W_in = x.shape
        col = W.reshape(C, O * KH * KW).T @ _channel_major(x)  # (O*KH*KW, N*H*W)
        return col2im(col, (N, O) + self.out_size, KH, KW, SH, SW, PH, PW, H, W_in)

    def backward(self, gy):
        x, W = self.inputs
        gx = gW = None
        if self.needs_input_grad[0]:
            gx = Conv2d(self.stride, self.padding)(gy, W)
        if self.needs_input_grad[1]:
            gW = Conv2dGradWeight(W.shape[2:], self.stride, self.padding)(gy, x)
        return gx, gW


class Conv2dGradWeight(Function):
    """gW = conv2d_grad_weight(x, gy): the gradient of conv2d(x, W) with respect to W.

    gW[o, (c, kh, kw)] = sum_(n, oh, ow) gy[n, o, oh, ow] * col[(c, kh, kw), (n, oh, ow)]    one GEMM
    """

    def __init__(self, kernel_size, stride, padding, col=None):
        self.kernel_size, self.stride, self.padding, self.col = tuple(kernel_size), stride, padding, col

    def forward(self, x, gy):
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        col = self.col if self.col is not None else im2col(x, KH, KW, SH, SW, PH, PW)
        self.col = None  # the forward pass's buffer is not needed any longer
        O, C = gy.shape[1], x.shape[1]
        return (_channel_major(gy) @ col.T).reshape(O, C, KH, KW)

    def backward(self, ggW):
        x, gy = self.inputs
        gx = ggy = None
        if self.needs_input_grad[0]:
            gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, ggW)
        if self.needs_input_grad[1]:
            ggy = Conv2d(self.stride, self.padding)(x, ggW)
        return gx, ggy


# -- public functions --------------------------------------------------------------------------------------


def _check_conv_input(op, x, weight, channel_dim):
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}: input and weight must be Tensors")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight, got shape {weight.shape}")
    if x.shape[1] != weight.shape[channel_dim]:
        raise ValueError(
            f"{op}: input has {x.shape[1]} channels (shape {x.shape}) but the weight {weight.shape} "
            f"expects {weight.shape[channel_dim]}"
        )


def _add_bias(y, bias):
    if bias is None:
        return y
    return y + bias.reshape(1, -1, 1, 1)


def conv2d(x, weight, bias=None, stride=1, padding=0) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch): x (N, C, H, W), weight (O, C, KH, KW)."""
    _check_conv_input("conv2d", x, weight, 1)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, got stride {stride}, padding {padding}")
    KH, KW = weight.shape[2:]
    OH = conv_output_size(x.shape[2], KH, stride[0], padding[0])
    OW = conv_output_size(x.shape[3], KW, stride[1], padding[1])
    if OH < 1 or OW < 1:
        raise ValueError(
            f"conv2d: input of spatial size {x.shape[2:]} is too small for kernel {(KH, KW)} with padding "
            f"{padding} (output would be {OH}x{OW})"
        )
    return _add_bias(Conv2d(stride, padding)(x, weight), bias)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0) -> Tensor:
    """Transposed convolution: x (N, C, H, W), weight (C, O, KH, KW) -> (N, O, OH, OW), with
    OH = (H - 1) * SH - 2 PH + KH + output_padding."""
    _check_conv_input("conv_transpose2d", x, weight, 0)
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    output_padding = _pair(output_padding, "output_padding")
    if min(stride) < 1 or min(padding) < 0 or min(output_padding) < 0:
        raise ValueError(f"conv_transpose2d: need stride >= 1, padding >= 0, output_padding >= 0, got "
                         f"{stride}, {padding}, {output_padding}")
    if output_padding[0] >= stride[0] or output_padding[1] >= stride[1]:
        raise ValueError(f"conv_transpose2d: output_padding {output_padding} must be smaller than stride {stride}")
    KH, KW = weight.shape[2:]
    out_size = tuple(
        conv_transpose_output_size(x.shape[2 + i], (KH, KW)[i], stride[i], padding[i], output_padding[i])
        for i in range(2)
    )
    if min(out_size) < 1:
        raise ValueError(f"conv_transpose2d: output size would be {out_size} for input {x.shape}")
    return _add_bias(ConvTranspose2d(stride, padding, out_size)(x, weight), bias)


def conv2d_grad_weight(x, gy, kernel_size, stride=1, padding=0) -> Tensor:
    """The weight gradient of conv2d as a differentiable op (exposed for learners and tests)."""
    return Conv2dGradWeight(_pair(kernel_size, "kernel_size"), _pair(stride, "stride"),
                            _pair(padding, "padding"))(x, gy)


def linear(x, weight, bias=None) -> Tensor:
    """y = x W^T + b, with weight (out_features, in_features) as PyTorch."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input's last dimension must be {weight.shape[1]} (in_features), got input shape {x.shape}"
        )
    y = x @ weight.T
    return y if bias is None else y + bias
