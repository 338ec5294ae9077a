"""Layers, with PyTorch's names, argument orders, weight layouts and default initialisation.

A layer checks its input (number of dims, channels or features) and names itself by its path in the
model when the input is wrong, then calls the op in ``npgan.functional``; the maths lives there.
"""

from __future__ import annotations

import math
import numbers

from npgan import backend
from npgan import functional as F
from npgan.autograd import Tensor, as_tensor, ones, zeros
from npgan.nn import init, stateless
from npgan.nn.module import Module, Parameter

__all__ = [
    "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "ConvTranspose2d", "Dropout", "Embedding", "Flatten",
    "GaussianNoise", "Identity", "InstanceNorm2d", "LayerNorm", "LeakyReLU", "Linear", "Maxout", "PixelShuffle", "ReLU",
    "Sigmoid", "Tanh", "Unflatten", "Upsample", "VirtualBatchNorm",
]


# -- argument checks -----------------------------------------------------------------------------------


def _positive_int(value, name: str, layer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def _pair(value, name: str, layer: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= ``minimum``, as a pair."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2
            or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in pair)):
        raise ValueError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        bound = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{layer}: {name} must be {bound}, got {value!r}")
    return int(pair[0]), int(pair[1])


def _non_negative_float(value, name: str, layer: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{layer}: {name} must be a non-negative number, got {value!r}")
    return float(value)


def _empty(*shape) -> Parameter:
    """A float32 parameter of zeros; ``reset_parameters`` fills it."""
    return Parameter(zeros(*shape))


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _check_tensor(module: Module, x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{module._describe()} expected a Tensor input, got {type(x).__name__}")


def _check_features(module: Module, x, features: int) -> None:
    """A Tensor whose last dimension holds ``features`` numbers (the input of Linear and Maxout)."""
    _check_tensor(module, x)
    if x.ndim < 1 or x.shape[-1] != features:
        raise ValueError(
            f"{module._describe()} expected input with {features} features in its last dimension, "
            f"shape (N, {features}), got {_shape_text(x.shape)}"
        )


def _reset_weight_and_bias(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default: weight ~ kaiming_uniform(a=sqrt(5)), bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight.shape)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


# -- dense and convolution layers ----------------------------------------------------------------------


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), input (..., in_features).

    >>> nn.Linear(2, 3)(npgan.zeros(4, 2)).shape
    (4, 3)
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features", "Linear")
        self.out_features = _positive_int(out_features, "out_features", "Linear")
        self.weight = _empty(self.out_features, self.in_features)
        self.bias = _empty(self.out_features) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation: weight and bias ~ U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        _reset_weight_and_bias(self.weight, self.bias)

    def forward(self, x):
        """x (..., in_features) -> (..., out_features)."""
        _check_features(self, x, self.in_features)
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        """``in_features=2, out_features=3, bias=True``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Maxout(Module):
    """Goodfellow et al. 2013: ``pieces`` linear maps per output unit, keep the largest.

    y[..., j] = max_k (x W^T + b)[..., j * pieces + k]; weight (out_features * pieces, in_features).

    >>> nn.Maxout(2, 3, pieces=5)(npgan.zeros(4, 2)).shape
    (4, 3)
    """

    def __init__(self, in_features, out_features, pieces):
        super().__init__()
        self.pieces = _positive_int(pieces, "pieces", "Maxout")
        self.out_features = _positive_int(out_features, "out_features", "Maxout")
        self.linear = Linear(in_features, self.out_features * self.pieces)
        self.in_features = self.linear.in_features

    def forward(self, x):
        """x (..., in_features) -> (..., out_features): the largest of each unit's ``pieces`` linear maps."""
        _check_features(self, x, self.in_features)
        y = self.linear(x)
        return y.reshape(tuple(x.shape[:-1]) + (self.out_features, self.pieces)).max(axis=-1)

    def extra_repr(self) -> str:
        """``in_features=..., out_features=..., pieces=...``."""
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"


class _ConvNd(Module):
    def _init_conv(self, layer, in_channels, out_channels, kernel_size, stride, padding):
        self.in_channels = _positive_int(in_channels, "in_channels", layer)
        self.out_channels = _positive_int(out_channels, "out_channels", layer)
        self.kernel_size = _pair(kernel_size, "kernel_size", layer, 1)
        self.stride = _pair(stride, "stride", layer, 1)
        self.padding = _pair(padding, "padding", layer, 0)

    def reset_parameters(self) -> None:
        _reset_weight_and_bias(self.weight, self.bias)

    def _check_input(self, x) -> None:
        _check_tensor(self, x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{self._describe()} expected input with {self.in_channels} channels, "
                f"shape (N, {self.in_channels}, H, W), got {_shape_text(x.shape)}"
            )

    def _too_small(self, x, out_size) -> ValueError:
        return ValueError(
            f"{self._describe()}: input of spatial size {_shape_text(x.shape[2:])} is too small for kernel "
            f"{self.kernel_size} with stride {self.stride} and padding {self.padding}: the output would be "
            f"{out_size[0]}x{out_size[1]} (input shape {_shape_text(x.shape)})"
        )

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            text += f", output_padding={self.output_padding}"
        if self.bias is None:
            text += ", bias=False"
        return text


class Conv2d(_ConvNd):
    """2-D convolution: weight (out_channels, in_channels, KH, KW), input (N, in_channels, H, W).

    >>> nn.Conv2d(1, 8, 4, stride=2, padding=1)(npgan.zeros(2, 1, 28, 28)).shape
    (2, 8, 14, 14)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self._init_conv("Conv2d", in_channels, out_channels, kernel_size, stride, padding)
        self.weight = _empty(self.out_channels, self.in_channels, *self.kernel_size)
        self.bias = _empty(self.out_channels) if bias else None
        self.reset_parameters()

    def forward(self, x):
        """x (N, in_channels, H, W) -> (N, out_channels, OH, OW), OH = (H + 2 padding - kernel) // stride + 1."""
        self._check_input(x)
        out = tuple((x.shape[2 + i] + 2 * self.padding[i] - self.kernel_size[i]) // self.stride[i] + 1
                    for i in range(2))
        if min(out) < 1:
            raise self._too_small(x, out)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution: weight (in_channels, out_channels, KH, KW) (PyTorch's layout),
    output size (H - 1) * stride - 2 * padding + kernel_size + output_padding.

    >>> nn.ConvTranspose2d(8, 1, 4, stride=2, padding=1)(npgan.zeros(2, 8, 14, 14)).shape
    (2, 1, 28, 28)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, bias=True):
        super().__init__()
        self._init_conv("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding)
        self.output_padding = _pair(output_padding, "output_padding", "ConvTranspose2d", 0)
        if self.output_padding[0] >= self.stride[0] or self.output_padding[1] >= self.stride[1]:
            raise ValueError(
                f"ConvTranspose2d: output_padding must be smaller than stride, got output_padding="
                f"{self.output_padding}, stride={self.stride}"
            )
        self.weight = _empty(self.in_channels, self.out_channels, *self.kernel_size)
        self.bias = _empty(self.out_channels) if bias else None
        self.reset_parameters()

    def forward(self, x):
        """x (N, in_channels, H, W) -> (N, out_channels, OH, OW), OH = (H - 1) stride - 2 padding + kernel
        + output_padding.
        """
        self._check_input(x)
        out = tuple((x.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i] + self.kernel_size[i]
                    + self.output_padding[i] for i in range(2))
        if min(out) < 1:
            raise self._too_small(x, out)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, self.output_padding)


# -- normalisation -------------------------------------------------------------------------------------


class _BatchNorm(Module):
    _dims: tuple = ()
    _layout: str = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        layer = type(self).__name__
        self.num_features = _positive_int(num_features, "num_features", layer)
        self.eps = _non_negative_float(eps, "eps", layer)
        if momentum is not None:
            momentum = _non_negative_float(momentum, "momentum", layer)
            if momentum > 1:
                raise ValueError(f"{layer}: momentum must be in [0, 1] (or None), got {momentum}")
        self.momentum = momentum  # None: a cumulative average of every batch seen
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight = _empty(self.num_features)
            self.bias = _empty(self.num_features)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", zeros(self.num_features))
            self.register_buffer("running_var", ones(self.num_features))
            self.register_buffer("num_batches_tracked", zeros((), dtype="int64"))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        _check_tensor(self, x)
        if x.ndim not in self._dims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self._describe()} expected input with {self.num_features} features, shape "
                f"{self._layout.format(C=self.num_features)}, got {_shape_text(x.shape)}"
            )
        if self.training and x.numel() // x.shape[1] < 2:
            raise ValueError(
                f"{self._describe()} needs more than 1 value per channel when training, got input "
                f"{_shape_text(x.shape)}; use a batch of 2 or more, or eval()"
            )
        factor = 0.0 if self.momentum is None else self.momentum
        # Inside nn.functional_call (a trial forward pass) the running statistics are left alone.
        update_stats = self.training and self.track_running_stats and not stateless.running_stats_frozen()
        if update_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.data)
        # Batch statistics when training, or when there are no running statistics to use.
        use_batch_stats = self.training or self.running_mean is None
        track = not use_batch_stats or update_stats
        return F.batch_norm(
            x,
            self.running_mean.data if track else None,
            self.running_var.data if track else None,
            self.weight, self.bias, training=use_batch_stats, momentum=factor, eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over the batch (and length) axes.

    >>> nn.BatchNorm1d(3)(npgan.randn(8, 3)).shape
    (8, 3)
    """

    _dims = (2, 3)
    _layout = "(N, {C}) or (N, {C}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over the batch and spatial axes.

    >>> nn.BatchNorm2d(3)(npgan.randn(8, 3, 4, 4)).shape
    (8, 3, 4, 4)
    """

    _dims = (4,)
    _layout = "(N, {C}, H, W)"


class LayerNorm(Module):
    """Normalise each sample over its last dims ``normalized_shape``; weight ones, bias zeros.

    >>> nn.LayerNorm(4)(npgan.randn(2, 4)).shape
    (2, 4)
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else normalized_shape
        if not isinstance(shape, (tuple, list)) or not shape:
            raise ValueError(f"LayerNorm: normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(_positive_int(s, "normalized_shape", "LayerNorm") for s in shape)
        self.eps = _non_negative_float(eps, "eps", "LayerNorm")
        self.elementwise_affine = bool(elementwise_affine)
        if self.elementwise_affine:
            self.weight = _empty(*self.normalized_shape)
            self.bias = _empty(*self.normalized_shape)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight to ones, bias to zeros (when ``elementwise_affine``)."""
        if self.elementwise_affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        """x (..., *normalized_shape) -> the same shape, each sample normalised over its last dims."""
        _check_tensor(self, x)
        k = len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != self.normalized_shape:
            raise ValueError(
                f"{self._describe()} expected input ending in {self.normalized_shape}, shape "
                f"(*, {', '.join(map(str, self.normalized_shape))}), got {_shape_text(x.shape)}"
            )
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        """``(8,), eps=1e-05, elementwise_affine=True``."""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class InstanceNorm2d(_BatchNorm):
    """Instance normalisation (Ulyanov et al. 2016): each sample's channels over their H x W positions.

    PyTorch's defaults: no affine weight and bias, no running statistics (so eval normalises each sample
    with its own statistics too). With ``track_running_stats=True``, eval uses the running ones.
    """

    _dims = (4,)
    _layout = "(N, {C}, H, W)"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x):
        _check_tensor(self, x)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{self._describe()} expected input with {self.num_features} channels, shape "
                f"(N, {self.num_features}, H, W), got {_shape_text(x.shape)}"
            )
        use_input_stats = self.training or not self.track_running_stats
        if use_input_stats and x.shape[2] * x.shape[3] < 2:
            raise ValueError(f"{self._describe()} needs more than 1 spatial element per channel, got input "
                             f"{_shape_text(x.shape)}")
        # As PyTorch's InstanceNorm: num_batches_tracked is kept but not counted, and momentum=None means 0.
        track = self.track_running_stats
        return F.instance_norm(
            x, self.running_mean.data if track else None, self.running_var.data if track else None,
            self.weight, self.bias, use_input_stats=use_input_stats,
            momentum=0.0 if self.momentum is None else self.momentum, eps=self.eps,
        )


class VirtualBatchNorm(Module):
    """Virtual batch normalisation (Salimans et al. 2016) of (R + N, C) or (R + N, C, H, W) inputs.

    The first ``reference_size`` (R) rows of every input are the reference batch's activations (the
    model feeds its fixed reference inputs in front of each batch and drops their outputs at the end);
    each live example is normalised with the statistics of the reference batch plus itself
    (``F.virtual_batch_norm`` gives the formulas). No running statistics: training and eval compute the
    same function. Affine weight (ones) and bias (zeros) per channel, as BatchNorm.
    """

    def __init__(self, num_features, reference_size, eps=1e-5, affine=True):
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features", "VirtualBatchNorm")
        self.reference_size = _positive_int(reference_size, "reference_size", "VirtualBatchNorm")
        self.eps = _non_negative_float(eps, "eps", "VirtualBatchNorm")
        self.affine = bool(affine)
        if self.affine:
            self.weight = Parameter(ones(self.num_features))
            self.bias = Parameter(zeros(self.num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        _check_tensor(self, x)
        R = self.reference_size
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features or x.shape[0] <= R:
            raise ValueError(
                f"{self._describe()} expected the {R} reference rows followed by the batch, shape "
                f"({R} + N, {self.num_features}) or ({R} + N, {self.num_features}, H, W) with N >= 1, "
                f"got {_shape_text(x.shape)}"
            )
        return F.virtual_batch_norm(x, R, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, reference_size={self.reference_size}, eps={self.eps}, affine={self.affine}"


# -- activations, dropout, embedding, reshaping --------------------------------------------------------


class _Activation(Module):
    """``inplace`` is accepted so PyTorch code runs unchanged; npgan always computes out of place."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Activation):
    """max(0, x) elementwise, any shape.

    >>> nn.ReLU()(npgan.tensor([-1.0, 2.0]))
    tensor([0., 2.], dtype=float32)
    """
    def forward(self, x):
        """x -> max(0, x), same shape."""
        _check_tensor(self, x)
        return F.relu(x)


class LeakyReLU(_Activation):
    """max(0, x) + negative_slope * min(0, x).

    >>> nn.LeakyReLU(0.2)(npgan.tensor([-1.0, 2.0]))
    tensor([-0.2,  2. ], dtype=float32)
    """

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(inplace)
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
            raise ValueError(f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}")
        self.negative_slope = float(negative_slope)

    def forward(self, x):
        """x -> x where x > 0, else negative_slope * x; same shape."""
        _check_tensor(self, x)
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        """``negative_slope=0.2``."""
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Tanh(Module):
    """tanh(x) elementwise, any shape (DCGAN's G ends with it: pixels in [-1, 1]).

    >>> nn.Tanh()(npgan.zeros(2))
    tensor([0., 0.], dtype=float32)
    """
    def forward(self, x):
        """x -> tanh(x), same shape."""
        _check_tensor(self, x)
        return F.tanh(x)


class Sigmoid(Module):
    """1 / (1 + e^-x) elementwise, any shape.

    >>> nn.Sigmoid()(npgan.zeros(2))
    tensor([0.5, 0.5], dtype=float32)
    """
    def forward(self, x):
        """x -> sigmoid(x), same shape."""
        _check_tensor(self, x)
        return F.sigmoid(x)


class Dropout(Module):
    """Zero each element with probability p while training and scale the rest by 1 / (1 - p).

    >>> nn.Dropout(0.5).eval()(npgan.ones(3))     # the identity in eval mode
    tensor([1., 1., 1.], dtype=float32)
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.inplace = bool(inplace)

    def forward(self, x):
        """x -> x with elements zeroed (training mode only), same shape."""
        _check_tensor(self, x)
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        """``p=0.5, inplace=False``."""
        return f"p={self.p}, inplace={self.inplace}"


class Embedding(Module):
    """A lookup table: integer indices of any shape -> rows of weight (num_embeddings, embedding_dim) ~ N(0, 1).

    >>> nn.Embedding(10, 4)(npgan.tensor([1, 7])).shape
    (2, 4)
    """

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.num_embeddings = _positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = _positive_int(embedding_dim, "embedding_dim", "Embedding")
        self.weight = _empty(self.num_embeddings, self.embedding_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight ~ N(0, 1), as PyTorch."""
        init.normal_(self.weight)

    def forward(self, indices):
        """integer indices (any shape) -> (*indices.shape, embedding_dim)."""
        if isinstance(indices, (list, tuple)) or isinstance(indices, numbers.Integral):
            indices = as_tensor(indices)
        array = indices.data if isinstance(indices, Tensor) else indices
        if not backend.is_array(array) or array.dtype.kind not in "iu":
            kind = f"dtype {array.dtype}" if backend.is_array(array) else type(indices).__name__
            raise TypeError(f"{self._describe()} expected integer indices (a Tensor or array of ints), got {kind}")
        # Range-checked on the host only: on the GPU, reading min/max back would stop the device twice per call
        # (labels come from the data loader or the sampler, already in range there).
        if array.size and not backend.is_cupy_array(array) and \
                (int(array.min()) < 0 or int(array.max()) >= self.num_embeddings):
            raise ValueError(
                f"{self._describe()} expected indices in [0, {self.num_embeddings}), got values in "
                f"[{int(array.min())}, {int(array.max())}]"
            )
        return F.embedding(array, self.weight)

    def extra_repr(self) -> str:
        """``num_embeddings, embedding_dim``."""
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Identity(Module):
    """Returns its input unchanged; ``nn.fuse`` leaves one in the slot of an activation it fused away.

    >>> nn.Identity()(npgan.tensor([1.0, 2.0]))
    tensor([1., 2.], dtype=float32)
    """

    def forward(self, x):
        """x, as it is."""
        return x


class Flatten(Module):
    """Merge dims ``start_dim`` .. ``end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by default.

    >>> nn.Flatten()(npgan.zeros(2, 3, 4, 4)).shape
    (2, 48)
    """

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"Flatten: {name} must be an int, got {value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x):
        """(N, C, H, W) -> (N, C*H*W) by default (dims start_dim .. end_dim merged)."""
        _check_tensor(self, x)
        ndim = max(x.ndim, 1)
        start, end = self.start_dim, self.end_dim
        if not (-ndim <= start < ndim and -ndim <= end < ndim) or start % ndim > end % ndim:
            raise ValueError(
                f"{self._describe()} cannot flatten dims {start}..{end} of an input with {x.ndim} dims, "
                f"shape {_shape_text(x.shape)}"
            )
        return F.flatten(x, start, end)

    def extra_repr(self) -> str:
        """``start_dim=1, end_dim=-1``."""
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size``: Unflatten(1, (C, H, W)) turns (N, C*H*W) into (N, C, H, W).

    >>> nn.Unflatten(1, (3, 4, 4))(npgan.zeros(2, 48)).shape
    (2, 3, 4, 4)
    """

    def __init__(self, dim, unflattened_size):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise ValueError(f"Unflatten: dim must be an int, got {dim!r}")
        size = tuple(unflattened_size) if isinstance(unflattened_size, (tuple, list)) else None
        if (not size or not all(isinstance(s, numbers.Integral) and (s > 0 or s == -1) for s in size)
                or size.count(-1) > 1):
            raise ValueError(
                f"Unflatten: unflattened_size must be a non-empty tuple of positive ints (at most one -1), "
                f"got {unflattened_size!r}"
            )
        self.dim, self.unflattened_size = int(dim), tuple(int(s) for s in size)

    def forward(self, x):
        """dim ``dim`` split into ``unflattened_size``: (N, C*H*W) -> (N, C, H, W)."""
        _check_tensor(self, x)
        if not -x.ndim <= self.dim < x.ndim:
            raise ValueError(f"{self._describe()} has no dim {self.dim} in an input of shape {_shape_text(x.shape)}")
        dim = self.dim % x.ndim
        known = math.prod(s for s in self.unflattened_size if s != -1)
        length = x.shape[dim]
        if (-1 in self.unflattened_size and length % known) or (-1 not in self.unflattened_size and length != known):
            raise ValueError(
                f"{self._describe()} cannot split dim {self.dim} of size {length} into "
                f"{_shape_text(self.unflattened_size)}, input shape {_shape_text(x.shape)}"
            )
        return F.reshape(x, x.shape[:dim] + self.unflattened_size + x.shape[dim + 1:])

    def extra_repr(self) -> str:
        """``dim=1, unflattened_size=(C, H, W)``."""
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# -- resampling and noise --------------------------------------------------------------------------------


class PixelShuffle(Module):
    """(N, C r^2, H, W) -> (N, C, H r, W r): sub-pixel upsampling (Shi et al. 2016); r = ``upscale_factor``."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.upscale_factor = _positive_int(upscale_factor, "upscale_factor", "PixelShuffle")

    def forward(self, x):
        _check_tensor(self, x)
        r2 = self.upscale_factor ** 2
        if x.ndim != 4 or x.shape[1] % r2:
            raise ValueError(
                f"{self._describe()} expected input (N, C * {r2}, H, W), channels divisible by upscale_factor^2 "
                f"= {r2}, got {_shape_text(x.shape)}"
            )
        return F.pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class Upsample(Module):
    """(N, C, H, W) -> (N, C, H s, W s) by repeating each pixel (``mode="nearest"``, an integer s)."""

    def __init__(self, scale_factor, mode="nearest"):
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is implemented, got mode={mode!r}")
        integral = isinstance(scale_factor, numbers.Real) and not isinstance(scale_factor, bool) \
            and float(scale_factor) == int(scale_factor)
        if not integral or int(scale_factor) < 1:
            raise ValueError(f"Upsample: scale_factor must be a positive whole number, got {scale_factor!r}")
        self.scale_factor = float(scale_factor)  # PyTorch stores a float
        self.mode = mode

    def forward(self, x):
        _check_tensor(self, x)
        if x.ndim != 4:
            raise ValueError(f"{self._describe()} expected input (N, C, H, W), got {_shape_text(x.shape)}")
        return F.upsample_nearest(x, int(self.scale_factor))

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}, mode='{self.mode}'"


class AvgPool2d(Module):
    """Average over ``kernel_size`` windows moved by ``stride`` (default: the kernel) over zero-padded input."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size", "AvgPool2d", 1)
        self.stride = self.kernel_size if stride is None else _pair(stride, "stride", "AvgPool2d", 1)
        self.padding = _pair(padding, "padding", "AvgPool2d", 0)
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise ValueError(f"AvgPool2d: padding {self.padding} must be at most half the kernel size "
                             f"{self.kernel_size}")

    def forward(self, x):
        _check_tensor(self, x)
        if x.ndim != 4:
            raise ValueError(f"{self._describe()} expected input (N, C, H, W), got {_shape_text(x.shape)}")
        (KH, KW), (PH, PW) = self.kernel_size, self.padding
        if x.shape[2] + 2 * PH < KH or x.shape[3] + 2 * PW < KW:
            raise ValueError(
                f"{self._describe()}: input of spatial size {_shape_text(x.shape[2:])} padded by {self.padding} "
                f"is smaller than the kernel {self.kernel_size} (input shape {_shape_text(x.shape)})"
            )
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class GaussianNoise(Module):
    """x + N(0, std^2) noise while training (identity in eval); the trainer lowers ``std`` as it goes.

    ganhacks' "add noise to every layer of the generator" (Zhao et al. 2016); npgan's random stream, so a
    seeded run repeats.
    """

    def __init__(self, std=0.0):
        super().__init__()
        self.std = _non_negative_float(std, "std", "GaussianNoise")

    def forward(self, x):
        _check_tensor(self, x)
        if not self.training or self.std == 0.0:
            return x
        noise = backend.random_normal(x.shape, x.dtype, x.device)
        return x + Tensor(noise) * self.std

    def extra_repr(self) -> str:
        return f"std={self.std}"
