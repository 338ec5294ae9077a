"""Weight initialisation, in place, as ``torch.nn.init``: ``nn.init.normal_(conv.weight, 0.0, 0.02)``.

Every function fills a Tensor's array (or a raw array, so ``normal_(m.weight.data, ...)`` from PyTorch
code works too) in place, keeps its dtype and device, and draws from npgan's host generator:
``npgan.manual_seed(s)`` makes the initial weights reproducible, on the CPU and the GPU alike.
"""

from __future__ import annotations

import math
import numbers

from npgan import backend
from npgan.autograd import Tensor

__all__ = [
    "calculate_gain", "constant_", "kaiming_normal_", "kaiming_uniform_", "normal_", "ones_", "uniform_",
    "xavier_normal_", "xavier_uniform_", "zeros_",
]


def _array(tensor, fn: str):
    if isinstance(tensor, Tensor):
        return tensor.data
    if backend.is_array(tensor):
        return tensor
    raise TypeError(f"init.{fn}: expected a Tensor or an array, got {type(tensor).__name__}")


def _check_number(value, name: str, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"init.{fn}: {name} must be a number, got {type(value).__name__}")
    return float(value)


def _fill_random(tensor, fn: str, sample) -> Tensor:
    """``array[...] = sample(shape, dtype, device)``: random numbers from the host generator, copied in."""
    array = _array(tensor, fn)
    if array.size:
        array[...] = sample(array.shape, array.dtype, backend.device_of(array))
    return tensor


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with N(mean, std^2)."""
    mean, std = _check_number(mean, "mean", "normal_"), _check_number(std, "std", "normal_")
    if std < 0:
        raise ValueError(f"init.normal_: std must be non-negative, got {std}")
    return _fill_random(tensor, "normal_",
                        lambda shape, dtype, device: backend.random_normal(shape, dtype, device) * std + mean)


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with U(a, b)."""
    a, b = _check_number(a, "a", "uniform_"), _check_number(b, "b", "uniform_")
    if a > b:
        raise ValueError(f"init.uniform_: needs a <= b, got a={a}, b={b}")
    return _fill_random(tensor, "uniform_",
                        lambda shape, dtype, device: backend.random_uniform(shape, a, b, dtype, device))


def constant_(tensor, val):
    """Fill ``tensor`` (a Tensor, Parameter or array) with ``val`` in place; returns it: ``init.constant_(b, 0.1)``."""
    array = _array(tensor, "constant_")
    array[...] = _check_number(val, "val", "constant_")
    return tensor


def zeros_(tensor):
    """Fill ``tensor`` with 0 in place; returns it: ``init.zeros_(layer.bias)``."""
    return constant_(tensor, 0.0)


def ones_(tensor):
    """Fill ``tensor`` with 1 in place; returns it: ``init.ones_(bn.weight)``."""
    return constant_(tensor, 1.0)


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain torch.nn.init recommends for ``nonlinearity``: tanh 5/3, relu sqrt(2), leaky_relu
    sqrt(2 / (1 + slope^2)) (slope ``param``, default 0.01), selu 3/4, linear/conv/sigmoid 1."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, numbers.Real):
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        else:
            slope = float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
        f"{', '.join(linear + ('tanh', 'relu', 'leaky_relu', 'selu'))}"
    )


def _calculate_fan_in_and_fan_out(shape) -> tuple[int, int]:
    """PyTorch's rule: fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field.

    For a ConvTranspose2d weight (in, out, kh, kw) this makes fan_in = out * kh * kw, as in PyTorch.
    """
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape {tuple(shape)}")
    receptive_field = math.prod(shape[2:])
    return int(shape[1]) * receptive_field, int(shape[0]) * receptive_field


def _calculate_correct_fan(shape, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(shape)
    return fan_in if mode == "fan_in" else fan_out


def xavier_uniform_(tensor, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_array(tensor, "xavier_uniform_").shape)
    std = float(gain) * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(_array(tensor, "xavier_normal_").shape)
    return normal_(tensor, 0.0, float(gain) * math.sqrt(2.0 / float(fan_in + fan_out)))


def _kaiming_std(tensor, a, mode, nonlinearity, fn) -> float | None:
    shape = _array(tensor, fn).shape
    if 0 in shape:
        return None  # nothing to fill (PyTorch warns and returns)
    fan = _calculate_correct_fan(shape, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al., 2015)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2) with std = gain / sqrt(fan)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std)
