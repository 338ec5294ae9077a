"""Convolution layers as ops: conv2d, conv_transpose2d and the weight gradient conv2d_grad_weight.

Notation (once, for the whole file):
    N batch, C input channels, O output channels, H W input height/width,
    KH KW kernel size, SH SW stride, PH PW zero padding, OH OW output height/width,
    OH = (H + 2 PH - KH) // SH + 1   (and the same for OW).

How a convolution becomes one matrix product (im2col):
    col[(c, kh, kw), (oh, ow, n)] = x_padded[n, c, oh*SH + kh, ow*SW + kw]      shape (C*KH*KW, OH*OW*N)
    y[o, (oh, ow, n)] = sum_(c,kh,kw) weight[o, (c, kh, kw)] * col[(c, kh, kw), (oh, ow, n)]    one GEMM
The reverse, col2im, adds every column entry back to the pixel it came from (see ``col2im``).

The three ops are each other's gradients (Chainer's pattern), and each is a differentiable Function:
    conv2d(x, weight)            d/dx -> conv_transpose2d(gy, weight)   d/dweight -> conv2d_grad_weight(x, gy)
    conv_transpose2d(x, weight)  d/dx -> conv2d(gy, weight)             d/dweight -> conv2d_grad_weight(gy, x)
    conv2d_grad_weight(x, gy) with upstream gradient ggw:
                                 d/dx -> conv_transpose2d(gy, ggw)      d/dgy -> conv2d(x, ggw)
so second derivatives through convolutions (WGAN-GP's penalty) need no extra code.

Memory layout: activations are stored batch-last, (C, H, W, N) in memory, and handed out as (N, C, H, W)
views. That is the order the GEMM produces (one row per channel), so no large transposes are copied, and
the shifted, strided windows of im2col and col2im then move runs of N contiguous numbers instead of rows of
W numbers: several times faster on NumPy than the (C, N, H, W) order. NumPy's elementwise ops keep the layout of
their inputs, so the activations, BatchNorm and their gradients stay batch-last too.
"""

from __future__ import annotations

import numbers

from npgan import backend
from npgan.autograd import Function, Tensor
from npgan.ops.core import gemm

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


# -- layout, GEMM, im2col / col2im -----------------------------------------------------------------------


def batch_last(x):
    """(N, C, H, W) -> the (C, H, W, N) view; its memory is contiguous when x came from a conv."""
    return x.transpose(1, 2, 3, 0)


def batch_first(a):
    """(C, H, W, N) -> the (N, C, H, W) view that ops hand out."""
    return a.transpose(3, 0, 1, 2)


def channel_rows(x):
    """(N, C, H, W) -> (C, H*W*N): a view when x is stored batch-last, else one copy."""
    return batch_last(x).reshape(x.shape[1], -1)


# im2col matrices are 4x the input for a 4x4 stride-2 kernel (16.8 MB for DCGAN's 64x16x16 layer, batch 64).
# They are built and consumed in blocks of about this many bytes: less peak memory, and each block is
# still in cache when the GEMM (or col2im) reads it.
BLOCK_BYTES = 4 * 2**20


def _blocks(total, bytes_per_item, min_items=1):
    """[(start, stop), ...] covering range(total) in blocks of about BLOCK_BYTES, but of at least
    ``min_items``: a GEMM dimension cut much below a few hundred runs at half speed or worse."""
    size = max(1, min_items, min(total, BLOCK_BYTES // max(1, bytes_per_item)))
    return [(start, min(total, start + size)) for start in range(0, total, size)]


MIN_GEMM_ROWS, MIN_GEMM_COLS = 256, 2048  # smallest block GEMM: its rows (c or o, kh, kw), columns (oh, ow, n)


def pad_input(x, PH, PW):
    """x (N, C, H, W) -> batch-last (C, H + 2 PH, W + 2 PW, N) with a zero border (a view if no padding)."""
    if not (PH or PW):
        return batch_last(x)  # as_strided in im2col works with any strides
    xp = xp_of(x)
    N, C, H, W = x.shape
    padded = xp.empty((C, H + 2 * PH, W + 2 * PW, N), dtype=x.dtype)
    padded[:, :PH] = 0  # zero only the border, then copy the image in
    padded[:, PH + H:] = 0
    padded[:, PH:PH + H, :PW] = 0
    padded[:, PH:PH + H, PW + W:] = 0
    padded[:, PH:PH + H, PW:PW + W] = batch_last(x)
    return padded


def im2col(padded, KH, KW, SH, SW, OW, rows):
    """The windows of output rows ``rows = (a, b)`` -> col (C*KH*KW, (b - a)*OW*N): a strided view, copied once.

    ``padded`` is the batch-last padded input from ``pad_input``. An optimisation of the textbook
    ``npgan.reference.im2col`` (one strided slice per tap), which the tests prove equal to it.
    """
    a, b = rows
    C, _, _, N = padded.shape
    sC, sH, sW, sN = padded.strides
    windows = backend.as_strided(padded[:, a * SH:], (C, KH, KW, b - a, OW, N), (sC, sH, sW, sH * SH, sW * SW, sN))
    return windows.reshape(C * KH * KW, (b - a) * OW * N)  # the copy into GEMM order


def col2im(col, out, KH, KW, SH, SW, PH, PW, H, W):
    """col (C*KH*KW, H*W*N) -> out (C, OH, OW, N), adding each column entry to the output pixel it feeds.

    Input pixel (ih, iw) and tap (kh, kw) land on output (ih*SH - PH + kh, iw*SW - PW + kw). Output rows of
    one phase oh % SH = r, oh = r + SH*m, get the taps kh with (kh - PH - r) % SH == 0, each one a shifted
    copy of an input plane: m = ih + (kh - PH - r) // SH. So every phase is a sum of shifted slices, written
    into the strided view out[:, r::SH, q::SW] (no scatter, no atomics: it runs unchanged on CuPy).
    An optimisation of the textbook ``npgan.reference.col2im`` (add each tap's slice), proven equal by tests.
    """
    C, OH, OW, N = out.shape
    col = col.reshape(C, KH, KW, H, W, N)
    if (H, W, PH, PW, OH, OW) == (1, 1, 0, 0, KH, KW):  # one input pixel: the columns are the output
        out[...] = col.reshape(C, KH, KW, N)
        return out
    for r in range(min(SH, OH)):
        MH = (OH - r + SH - 1) // SH  # output rows of this phase
        taps_h = [(kh, (kh - PH - r) // SH) for kh in range(KH) if (kh - PH - r) % SH == 0]
        for q in range(min(SW, OW)):
            MW = (OW - q + SW - 1) // SW
            taps_w = [(kw, (kw - PW - q) // SW) for kw in range(KW) if (kw - PW - q) % SW == 0]
            pieces = []  # ((m0, m1, n0, n1), slice of col): the phase's rows m0:m1 and columns n0:n1 get it
            for kh, dh in taps_h:
                for kw, dw in taps_w:
                    m0, m1, n0, n1 = max(0, dh), min(MH, H + dh), max(0, dw), min(MW, W + dw)
                    if m0 < m1 and n0 < n1:
                        pieces.append(((m0, m1, n0, n1), col[:, kh, kw, m0 - dh:m1 - dh, n0 - dw:n1 - dw]))
            _sum_pieces(out[:, r::SH, q::SW], pieces)
    return out


def _sum_pieces(target, pieces):
    """target = the sum of the pieces, each added to its own rectangle (zero where none lands), in as few
    passes over memory as possible: a piece that covers the whole target is copied in, not added to zeros,
    and the first two are summed in one pass (col2im is bound by memory bandwidth: a pass saved is time saved)."""
    _, MH, MW, _ = target.shape
    whole = (0, MH, 0, MW)
    pieces = sorted(pieces, key=lambda piece: piece[0] != whole)  # a whole piece first (sorted() is stable)
    if not pieces or pieces[0][0] != whole:
        target[...] = 0
    elif len(pieces) == 1:
        target[...] = pieces[0][1]
        pieces = []
    else:  # first + second where the second lands, the first alone around it
        first = pieces[0][1]
        (m0, m1, n0, n1), second = pieces[1]
        xp_of(target).add(first[:, m0:m1, n0:n1], second, out=target[:, m0:m1, n0:n1])
        target[:, :m0] = first[:, :m0]
        target[:, m1:] = first[:, m1:]
        target[:, m0:m1, :n0] = first[:, m0:m1, :n0]
        target[:, m0:m1, n1:] = first[:, m0:m1, n1:]
        pieces = pieces[2:]
    for (m0, m1, n0, n1), piece in pieces:
        target[:, m0:m1, n0:n1] += piece


# -- the three convolution Functions -----------------------------------------------------------------------


class Conv2d(Function):
    """y = conv2d(x, weight): x (N, C, H, W), weight (O, C, KH, KW) -> y (N, O, OH, OW).

    y is computed in blocks of output rows: im2col of a block, then its GEMM straight into y's columns.
    The im2col matrix is not kept for the weight gradient (backward rebuilds it: one more copy, much less
    peak memory). ``keep_col=True`` builds it whole and keeps it for a caller that needs it right away
    (ConvTranspose2d.backward, whose two gradients share one im2col).
    """

    def __init__(self, stride, padding, keep_col=False):
        self.stride, self.padding, self.keep_col = stride, padding, keep_col
        self.col = None

    def forward(self, x, weight):
        xp = xp_of(x, weight)
        (SH, SW), (PH, PW) = self.stride, self.padding
        O, C, KH, KW = weight.shape
        N, _, H, W = x.shape
        OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
        padded = pad_input(x, PH, PW)
        weight_rows = weight.reshape(O, C * KH * KW)
        if self.keep_col:
            self.col = im2col(padded, KH, KW, SH, SW, OW, (0, OH))
            y = gemm(weight_rows, self.col)
        else:
            y = xp.empty((O, OH * OW * N), dtype=xp.result_type(x, weight))  # columns (oh, ow, n)
            for a, b in _blocks(OH, C * KH * KW * OW * N * x.itemsize, -(-MIN_GEMM_COLS // (OW * N))):
                gemm(weight_rows, im2col(padded, KH, KW, SH, SW, OW, (a, b)), out=y[:, a * OW * N:b * OW * N])
        return batch_first(y.reshape(O, OH, OW, N))

    def backward(self, gy):
        x, weight = self.inputs
        gx = gw = None
        if self.needs_input_grad[0]:
            gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, weight)
        if self.needs_input_grad[1]:
            gw = Conv2dGradWeight(weight.shape[2:], self.stride, self.padding)(x, gy)
        return gx, gw


class ConvTranspose2d(Function):
    """y = conv_transpose2d(x, weight): x (N, C, H, W), weight (C, O, KH, KW) -> y (N, O, *out_size).

    The adjoint of conv2d: the GEMM spreads each input pixel over a KH x KW window (col2im adds them),
    in blocks of output channels.
    """

    def __init__(self, stride, padding, out_size):
        self.stride, self.padding, self.out_size = stride, padding, tuple(out_size)

    def forward(self, x, weight):
        xp = xp_of(x, weight)
        (SH, SW), (PH, PW) = self.stride, self.padding
        C, O, KH, KW = weight.shape
        N, _, H, W = x.shape
        x_rows, weight_rows = channel_rows(x), weight.reshape(C, O * KH * KW)
        out = xp.empty((O,) + self.out_size + (N,), dtype=xp.result_type(x, weight))
        blocks = _blocks(O, KH * KW * H * W * N * x.itemsize, -(-MIN_GEMM_ROWS // (KH * KW)))
        # one work array for all blocks (the first block is the largest): a fresh one per block costs its
        # page faults every time
        work = xp.empty(((blocks[0][1] - blocks[0][0]) * KH * KW, H * W * N), dtype=out.dtype)
        for o0, o1 in blocks:
            col = gemm(weight_rows[:, o0 * KH * KW:o1 * KH * KW].T, x_rows, out=work[:(o1 - o0) * KH * KW])
            col2im(col, out[o0:o1], KH, KW, SH, SW, PH, PW, H, W)  # col: (block*KH*KW, H*W*N)
        return batch_first(out)

    def backward(self, gy):
        x, weight = self.inputs
        gx = gw = None
        col = None
        if self.needs_input_grad[0]:
            conv = Conv2d(self.stride, self.padding, keep_col=self.needs_input_grad[1])
            gx = conv(gy, weight)
            col, conv.col = conv.col, None  # im2col(gy), needed again by the weight gradient
        if self.needs_input_grad[1]:
            gw = Conv2dGradWeight(weight.shape[2:], self.stride, self.padding, col=col)(gy, x)
        return gx, gw


class Conv2dGradWeight(Function):
    """gw = conv2d_grad_weight(x, gy): the gradient of conv2d(x, weight) with respect to weight.

    gw[o, (c, kh, kw)] = sum_(oh, ow, n) gy[n, o, oh, ow] * col[(c, kh, kw), (oh, ow, n)]    one GEMM
    per block of input channels (or one with a given ``col``).
    """

    def __init__(self, kernel_size, stride, padding, col=None):
        self.kernel_size, self.stride, self.padding, self.col = tuple(kernel_size), stride, padding, col

    def forward(self, x, gy):
        xp = xp_of(x, gy)
        (KH, KW), (SH, SW), (PH, PW) = self.kernel_size, self.stride, self.padding
        O, C, OH, OW = gy.shape[1], x.shape[1], gy.shape[2], gy.shape[3]
        gy_rows = channel_rows(gy)
        col, self.col = self.col, None  # a shared buffer is not needed after this
        if col is not None:
            return gemm(gy_rows, col.T).reshape(O, C, KH, KW)
        gw = xp.empty((O, C * KH * KW), dtype=xp.result_type(x, gy))
        for c0, c1 in _blocks(C, KH * KW * OH * OW * x.shape[0] * x.itemsize, -(-MIN_GEMM_ROWS // (KH * KW))):
            padded = pad_input(x[:, c0:c1], PH, PW)
            gemm(gy_rows, im2col(padded, KH, KW, SH, SW, OW, (0, OH)).T, out=gw[:, c0 * KH * KW:c1 * KH * KW])
        return gw.reshape(O, C, KH, KW)

    def backward(self, ggw):
        x, gy = self.inputs
        gx = ggy = None
        if self.needs_input_grad[0]:
            gx = ConvTranspose2d(self.stride, self.padding, x.shape[2:])(gy, ggw)
        if self.needs_input_grad[1]:
            ggy = Conv2d(self.stride, self.padding)(x, ggw)
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
    """2-D convolution (cross-correlation, as PyTorch): x (N, C, H, W), weight (O, C, KH, KW).

    >>> F.conv2d(npgan.zeros(2, 1, 28, 28), npgan.zeros(8, 1, 4, 4), stride=2, padding=1).shape
    (2, 8, 14, 14)
    """
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
    OH = (H - 1) * SH - 2 PH + KH + output_padding.

    >>> F.conv_transpose2d(npgan.zeros(2, 8, 14, 14), npgan.zeros(8, 1, 4, 4), stride=2, padding=1).shape
    (2, 1, 28, 28)
    """
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
    """The weight gradient of conv2d as a differentiable op (exposed for learners and tests).

    >>> F.conv2d_grad_weight(npgan.zeros(2, 1, 28, 28), npgan.zeros(2, 8, 14, 14), 4, 2, 1).shape
    (8, 1, 4, 4)
    """
    return Conv2dGradWeight(_pair(kernel_size, "kernel_size"), _pair(stride, "stride"),
                            _pair(padding, "padding"))(x, gy)
