"""Run a module with substituted weights: ``functional_call`` (as ``torch.func.functional_call``).

A module is a function of its input *and* of its parameters. ``functional_call(D, params, x)`` computes
``D(x)`` with some parameters (or buffers) replaced by the Tensors in ``params``, graph and all: when those
Tensors come out of a computation (say, an optimizer step written with Tensor ops), ``backward()`` on the
result reaches whatever produced them. That is what unrolled GANs need: D's weights after K more training
steps, as a differentiable function of G's weights.

The module itself is left as it was: its own parameters and buffers are put back afterwards (also when
the forward pass raises), and BatchNorm does not update its running statistics inside ``functional_call``
(a BatchNorm in training mode still normalises with the batch's statistics). A call may be a trial
forward pass, as in unrolling, and must not leave a trace in the model.
"""

from __future__ import annotations

import contextlib
import contextvars

from npgan.autograd import Tensor
from npgan.nn.module import Module

__all__ = ["functional_call", "running_stats_frozen"]

# How many functional_call's are running in this thread (or asyncio task); BatchNorm reads it.
_frozen_depth: contextvars.ContextVar[int] = contextvars.ContextVar("npgan_running_stats_frozen", default=0)


def running_stats_frozen() -> bool:
    """True inside ``functional_call``: BatchNorm layers then leave their running statistics alone."""
    return _frozen_depth.get() > 0


@contextlib.contextmanager
def _frozen_running_stats():
    token = _frozen_depth.set(_frozen_depth.get() + 1)
    try:
        yield
    finally:
        _frozen_depth.reset(token)


def _slots(module: Module) -> dict:
    """``name -> (owner, store, key)`` for every parameter and buffer, named as ``named_parameters`` does."""
    slots = {}
    for prefix, owner in module.named_modules():
        dot = prefix + "." if prefix else ""
        for store in ("_parameters", "_buffers"):
            for key, value in getattr(owner, store).items():
                if value is not None:
                    slots.setdefault(dot + key, (owner, store, key))
    return slots


def _check_substitutes(module: Module, params, slots: dict) -> None:
    if not hasattr(params, "items"):
        raise TypeError(f"functional_call: params must be a dict name -> Tensor, got {type(params).__name__}")
    unknown = [name for name in params if name not in slots]
    if unknown:
        parameters = [name for name, (_, store, _) in slots.items() if store == "_parameters"]
        buffers = [name for name, (_, store, _) in slots.items() if store == "_buffers"]
        raise KeyError(
            f"functional_call: {type(module).__name__} has no parameter or buffer named "
            f"{', '.join(repr(n) for n in unknown)}; its parameters are {', '.join(parameters) or 'none'}; "
            f"its buffers are {', '.join(buffers) or 'none'}"
        )
    for name, value in params.items():
        owner, store, key = slots[name]
        if not isinstance(value, Tensor):
            raise TypeError(f"functional_call: params[{name!r}] must be a Tensor, got {type(value).__name__}")
        current = getattr(owner, store)[key]
        expected = tuple(current.shape)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"functional_call: params[{name!r}] has shape {tuple(value.shape)}, but {name} of "
                f"{type(module).__name__} has shape {expected}"
            )


def functional_call(module: Module, params, *args, **kwargs):
    """``module(*args, **kwargs)`` with the parameters and buffers named in ``params`` replaced.

    ``params`` maps names as ``named_parameters()`` / ``named_buffers()`` give them (``"main.0.weight"``)
    to Tensors of the same shapes; names left out keep the module's own values. The substitutes may be
    any Tensors, non-leaf ones included: gradients of the result flow back to what produced them.
    Substituted buffers are read as values (BatchNorm's running statistics in eval mode get no gradient).

    Afterwards the module holds exactly its own parameters and buffers again, even when the forward pass
    raised. No BatchNorm updates its running statistics during the call (in training mode it still uses
    the batch's statistics), so ``functional_call(G, {}, z)`` is also "run G without touching its state".

    >>> new = {name: p - 0.1 * g for (name, p), g in zip(D.named_parameters(), grads)}
    >>> score = functional_call(D, new, x)   # D after one SGD step, differentiable w.r.t. the step
    """
    if not isinstance(module, Module):
        raise TypeError(f"functional_call: expected a Module, got {type(module).__name__}")
    slots = _slots(module)
    _check_substitutes(module, params, slots)
    saved = []
    try:
        for name, value in params.items():
            owner, store, key = slots[name]
            registry = getattr(owner, store)
            # Straight into the registry: Module.__setattr__ only takes Parameters for parameter slots.
            saved.append((registry, key, registry[key]))
            registry[key] = value
        with _frozen_running_stats():
            return module(*args, **kwargs)
    finally:
        for registry, key, original in reversed(saved):
            registry[key] = original
