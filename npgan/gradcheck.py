"""Numerical gradient checks: central differences in float64, first and second order.

``gradcheck(fn, inputs)`` compares the gradient npgan's graph walk computes with
``(f(x + eps) - f(x - eps)) / 2 eps`` for every element of every input that requires grad.
``gradgradcheck`` does the same for the gradient itself, i.e. checks second derivatives.
Non-scalar outputs are reduced with a fixed random weighting ``v``: we check d(sum(v * f))/dx.
"""

from __future__ import annotations

from npgan import backend
from npgan.autograd import Tensor, grad

__all__ = ["GradcheckError", "gradcheck", "gradgradcheck"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def _as_outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: the function must return Tensors, got {type(o).__name__}")
    return tuple(outs)


def _weights(outputs, seed):
    rng = backend.numpy.random.default_rng(seed)
    return [
        Tensor(backend.to_device(rng.standard_normal(o.shape), o.device).astype(o.dtype)) for o in outputs
    ]


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, grad_outputs=None, seed=0,
              raise_exception=True) -> bool:
    """Check first derivatives of ``fn(*inputs)`` against central differences.

    ``inputs``: Tensors (float64). Those with ``requires_grad=True`` are checked. Raises
    ``GradcheckError`` naming the function, the input and the worst element (or returns False when
    ``raise_exception=False``).

    >>> npgan.gradcheck(lambda t: (t * t).sum(), [npgan.randn(3, dtype="float64", requires_grad=True)])
    True
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    for i in checked:
        if inputs[i].dtype != backend.numpy.float64:
            raise ValueError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64 inputs")
    outputs = _as_outputs(fn(*inputs))
    weights = list(grad_outputs) if grad_outputs is not None else _weights(outputs, seed)
    differentiable = [o for o in outputs if o.requires_grad]
    analytic = grad(
        differentiable,
        [inputs[i] for i in checked],
        grad_outputs=[w for o, w in zip(outputs, weights) if o.requires_grad],
        allow_unused=True,
    ) if differentiable else [None] * len(checked)

    def weighted_sum():
        outs = _as_outputs(fn(*inputs))  # with grad enabled: fn may itself call grad()
        return sum(float((o.data.astype("float64") * w.data).sum()) for o, w in zip(outs, weights))

    for slot, i in enumerate(checked):
        x = inputs[i].data
        numeric = backend.numpy.zeros(x.shape)
        flat_index = backend.numpy.ndindex(*x.shape)
        for idx in flat_index:
            original = float(x[idx])
            x[idx] = original + eps
            f_plus = weighted_sum()
            x[idx] = original - eps
            f_minus = weighted_sum()
            x[idx] = original
            numeric[idx] = (f_plus - f_minus) / (2 * eps)
        got = analytic[slot]
        got = backend.numpy.zeros(x.shape) if got is None else backend.asnumpy(got.data).astype("float64")
        if got.shape != numeric.shape:
            message = f"gradcheck({_name(fn)}): input {i} has shape {numeric.shape} but its gradient {got.shape}"
            if raise_exception:
                raise GradcheckError(message)
            return False
        error = abs(got - numeric) - (atol + rtol * abs(numeric))
        if error.size and error.max() > 0:
            worst = backend.numpy.unravel_index(int(error.argmax()), error.shape)
            message = (
                f"gradcheck({_name(fn)}): gradient of input {i} (shape {numeric.shape}) is wrong; worst "
                f"element {tuple(int(w) for w in worst)}: analytic {got[worst]:.8g} vs numeric "
                f"{numeric[worst]:.8g} (atol {atol}, rtol {rtol}); "
                f"{int((error > 0).sum())} of {error.size} elements off"
            )
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True) -> bool:
    """Check second derivatives: gradcheck of ``x, v -> grad(fn(x), x, v, create_graph=True)``.

    >>> npgan.gradgradcheck(lambda t: t.tanh(), [npgan.randn(3, dtype="float64", requires_grad=True)])
    True
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    outputs = _as_outputs(fn(*inputs))
    rng = backend.numpy.random.default_rng(seed + 1)
    vs = [
        Tensor(backend.to_device(rng.standard_normal(o.shape), o.device).astype(o.dtype), requires_grad=True)
        for o in outputs
    ]
    count = len(inputs)

    def first_derivative(*args):
        xs, v = args[:count], args[count:]
        outs = _as_outputs(fn(*xs))
        grads = grad(outs, [xs[i] for i in checked], grad_outputs=list(v), create_graph=True,
                     allow_unused=True)
        result = []
        for i, g in zip(checked, grads):
            if g is None:  # a gradient that does not depend on anything: zeros, with no graph
                xp = backend.get_array_module(xs[i].data)
                g = Tensor(xp.zeros(xs[i].shape, dtype=xs[i].dtype))
            result.append(g)
        return tuple(result)

    first_derivative.__qualname__ = f"grad of {_name(fn)}"
    return gradcheck(first_derivative, inputs + tuple(vs), eps=eps, atol=atol, rtol=rtol, seed=seed + 2,
                     raise_exception=raise_exception)
