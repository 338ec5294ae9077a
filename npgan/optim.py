"""Optimizers: SGD (momentum, Nesterov), Adam and RMSprop, with PyTorch's exact update rules, and an
exponential moving average of a module's weights (``EMA``).

Each step updates ``p.data`` in place (``out=`` arrays, no new parameter arrays, float32 kept) from
``p.grad.data``, skipping parameters without a gradient. Gradient arrays are only read, never written:
the graph walk may hand several parameters one shared (or read-only, broadcast) gradient array.

``state_dict()`` holds NumPy arrays and plain numbers only, so a checkpoint can store it in an ``.npz``
without pickle; ``load_state_dict`` puts the moment arrays back on each parameter's device.
"""

from __future__ import annotations

import copy
import math
import numbers

from npgan import backend
from npgan.autograd import Tensor
from npgan.ops.core import pack, sqrt, unpack, where

__all__ = ["EMA", "SGD", "Adam", "Optimizer", "RMSprop", "clip_grad_norm_"]


def _check_non_negative(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"invalid {name}: {value} (must be >= 0)")
    return float(value)


def _check_betas(betas) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"invalid betas: {betas!r} (expected a pair (beta1, beta2))")
    for i, beta in enumerate(betas):
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not 0.0 <= beta < 1.0:
            raise ValueError(f"invalid beta parameter at index {i}: {beta!r} (must be in [0, 1))")
    return float(betas[0]), float(betas[1])


# Adam's update is a dozen elementwise passes over a parameter and its moments. On NumPy they run over
# blocks of this many elements (128 KB of float32 per array), so a block stays in the core's cache from the
# first pass to the last instead of every pass streaming the whole array from memory. CuPy gets whole
# arrays (one kernel per pass).
BLOCK_ELEMENTS = 2**15


def _blocks(written, read):
    """Flat slices of same-shaped arrays, block by block: ``written`` (updated in place) then ``read``.

    Falls back to one block of the arrays themselves when a flat view of a written array does not exist
    (reshaping would copy it, and the update would land in the copy).
    """
    first = written[0]
    if backend.is_cupy_array(first) or first.size <= BLOCK_ELEMENTS or not all(a.flags.c_contiguous for a in written):
        yield (*written, *read)
        return
    flat = [a.reshape(-1) for a in (*written, *read)]  # views; a strided gradient is copied once
    for start in range(0, first.size, BLOCK_ELEMENTS):
        yield [a[start:start + BLOCK_ELEMENTS] for a in flat]


class Optimizer:
    """Holds ``param_groups`` (dicts with ``'params'`` and the hyperparameters) and per-parameter ``state``.

    ``params`` is an iterable of Parameters, or of dicts ``{'params': [...], 'lr': ...}`` giving groups
    their own hyperparameters (the others come from the constructor's defaults), as in PyTorch.
    """

    _number_state = ("step",)  # state entries that are plain numbers; every other entry is an array

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict = {}  # parameter -> {'step': int, 'exp_avg': array, ...}
        if isinstance(params, Tensor):
            raise TypeError(
                "params must be an iterable of Tensors or dicts (e.g. model.parameters()), got a single Tensor"
            )
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Add a group ``{'params': [...], 'lr': ...}`` whose missing hyperparameters come from the defaults.

        >>> opt.add_param_group({"params": head.parameters(), "lr": 1e-3})
        """
        if not isinstance(group, dict):
            raise TypeError(f"a param group is a dict with a 'params' entry, got {type(group).__name__}")
        params = group.get("params")
        params = [params] if isinstance(params, Tensor) else list(params or ())
        if not params:
            raise ValueError(f"{type(self).__name__} got a param group with an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__} at {i}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__} can only optimize leaf tensors (parameter {i} has a creator)")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{type(self).__name__}: a parameter appears more than once in the param groups")
        new_group = dict(self.defaults)
        new_group.update({k: v for k, v in group.items() if k != "params"})
        new_group["params"] = params
        self._validate(new_group)
        self.param_groups.append(new_group)

    def _validate(self, group: dict) -> None:
        """Check (and normalise) a group's hyperparameters; ValueError naming the bad one."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None, or to fresh zeros with ``set_to_none=False``)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:  # a fresh array: gradient arrays may be shared or read-only
                    p.grad = Tensor(backend.get_array_module(p.data).zeros_like(p.data))

    def step(self, closure=None):
        """One update of every parameter that has a gradient; ``closure`` re-evaluates the loss first."""
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = p.grad.data
                    if grad.shape != p.data.shape:
                        raise ValueError(f"gradient of shape {grad.shape} for a parameter of shape {p.data.shape}")
                    self._update(p, grad, group, self.state.setdefault(p, {}))
        return loss

    def _update(self, p: Tensor, grad, group: dict, state: dict) -> None:
        raise NotImplementedError

    # -- state -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{'state': {index: {name: NumPy array or number}}, 'param_groups': [...]}`` (PyTorch's layout).

        Parameters are numbered in group order; ``param_groups`` hold the hyperparameters and those numbers.
        """
        index, groups, state = {}, [], {}
        for group in self.param_groups:
            packed = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state and self.state[p]:
                    state[index[id(p)]] = {
                        k: (backend.asnumpy(v).copy() if backend.is_array(v) else v) for k, v in self.state[p].items()
                    }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and moments saved by ``state_dict`` into this optimizer's parameters."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("an optimizer state_dict is a dict with 'state' and 'param_groups' entries")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"the loaded state_dict has {len(saved_groups)} parameter groups, this optimizer "
                f"{len(self.param_groups)}"
            )
        params = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {i} of the loaded state_dict has {len(saved['params'])} parameters, "
                    f"this optimizer's has {len(group['params'])}"
                )
            params.update({int(k): p for k, p in zip(saved["params"], group["params"])})
        new_state = {}
        for key, entries in state_dict["state"].items():
            if int(key) not in params:
                raise ValueError(f"the loaded state_dict has state for parameter {key}, which no group holds")
            p = params[int(key)]
            xp = backend.get_array_module(p.data)
            restored = {}
            for name, value in entries.items():
                if name in self._number_state:  # an .npz gives numbers back as 0-d arrays
                    restored[name] = value.item() if backend.is_array(value) else value
                    continue
                value = backend.asnumpy(value) if not backend.is_array(value) else value
                if tuple(value.shape) != tuple(p.data.shape):
                    raise ValueError(
                        f"state '{name}' of parameter {key} has shape {tuple(value.shape)}, "
                        f"the parameter {tuple(p.data.shape)}"
                    )
                restored[name] = xp.array(value, dtype=p.data.dtype)  # a copy, on the parameter's device
            new_state[p] = restored
        for saved, group in zip(saved_groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(v, list) else v
            self._validate(group)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's rule)::

        g = grad + weight_decay * p
        b = g (first step), else b = momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
        p = p - lr * g

    >>> opt = SGD(model.parameters(), lr=0.01, momentum=0.9); loss.backward(); opt.step()
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _validate(self, group):
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            group[name] = _check_non_negative(name, group[name])
        group["nesterov"] = bool(group["nesterov"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"Nesterov momentum requires a momentum > 0 and zero dampening, got momentum={group['momentum']}, "
                f"dampening={group['dampening']}"
            )

    def _update(self, p, grad, group, state):
        xp = backend.get_array_module(p.data)
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * p.data
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = xp.array(grad, dtype=p.data.dtype)
            else:
                xp.multiply(buf, momentum, out=buf)
                buf += (1.0 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= lr * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2014) with PyTorch's bias correction; ``weight_decay`` is an L2 term::

        g = grad + weight_decay * p
        m = beta1 * m + (1 - beta1) * g          v = beta2 * v + (1 - beta2) * g^2
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The step below is an optimisation of the paper's four lines (``npgan.reference.adam_step``, proven
    equal by tests): in place, in cache-sized blocks, with sqrt(1 - beta2^t) moved out of the denominator.

    >>> opt = Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999)); loss.backward(); opt.step()
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _validate(self, group):
        for name in ("lr", "eps", "weight_decay"):
            group[name] = _check_non_negative(name, group[name])
        group["betas"] = _check_betas(group["betas"])

    def _update(self, p, grad, group, state):
        xp = backend.get_array_module(p.data)
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        step_size = group["lr"] / (1.0 - beta1**step)
        bias_correction2_sqrt = math.sqrt(1.0 - beta2**step)
        scratch = None  # the one temporary array, as large as the first (the largest) block
        for p_, m_, v_, g in _blocks((p.data, m, v), (grad,)):
            if scratch is None:
                scratch = xp.empty(p_.size, dtype=p_.dtype)
            s = scratch[:p_.size].reshape(p_.shape)
            xp.subtract(g, m_, out=s)
            s *= 1.0 - beta1
            m_ += s  # m.lerp_(g, 1 - beta1) = m + (1 - beta1) (g - m), as PyTorch computes it
            xp.multiply(g, g, out=s)
            s *= 1.0 - beta2
            v_ *= beta2
            v_ += s
            # step_size m / (sqrt(v) / bc2 + eps) with bc2 = sqrt(1 - beta2^t), computed with bc2 moved out
            # of the denominator: (step_size bc2) m / (sqrt(v) + eps bc2), one pass fewer (a division)
            denom = xp.sqrt(v_, out=s)
            denom += group["eps"] * bias_correction2_sqrt
            update = xp.divide(m_, denom, out=s)
            update *= step_size * bias_correction2_sqrt
            p_ -= update


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), PyTorch's variant with eps outside the square root::

        g = grad + weight_decay * p
        s = alpha * s + (1 - alpha) * g^2
        centered: a = alpha * a + (1 - alpha) * g;  d = sqrt(s - a^2) + eps, else d = sqrt(s) + eps
        momentum: b = momentum * b + g / d;  p = p - lr * b,   else p = p - lr * g / d

    >>> opt = RMSprop(critic.parameters(), lr=5e-5)     # WGAN's optimizer
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    def _validate(self, group):
        for name in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            group[name] = _check_non_negative(name, group[name])
        group["centered"] = bool(group["centered"])

    def _update(self, p, grad, group, state):
        xp = backend.get_array_module(p.data)
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = xp.zeros_like(p.data)
            if momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * p.data
        square_avg = state["square_avg"]
        scratch = xp.multiply(grad, grad)  # the one temporary array of this step
        scratch *= 1.0 - alpha
        square_avg *= alpha
        square_avg += scratch
        if group["centered"]:
            grad_avg = state.setdefault("grad_avg", xp.zeros_like(p.data))
            xp.subtract(grad, grad_avg, out=scratch)
            scratch *= 1.0 - alpha
            grad_avg += scratch  # grad_avg.lerp_(g, 1 - alpha)
            avg = xp.multiply(grad_avg, grad_avg, out=scratch)
            xp.subtract(square_avg, avg, out=avg)
            xp.sqrt(avg, out=avg)
        else:
            avg = xp.sqrt(square_avg, out=scratch)
        avg += group["eps"]
        update = xp.divide(grad, avg, out=avg)
        if momentum > 0:
            buf = state.setdefault("momentum_buffer", xp.zeros_like(p.data))
            buf *= momentum
            buf += update
            update = xp.multiply(buf, group["lr"], out=update)
        else:
            update *= group["lr"]
        p.data -= update


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False) -> float:
    """Scale the gradients so their joint ``norm_type``-norm is at most ``max_norm``; returns the norm before.

    As PyTorch: every gradient is multiplied by ``min(1, max_norm / (total_norm + 1e-6))``. The scaled
    gradients are new arrays (gradient arrays may be shared between parameters).
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    max_norm = _check_non_negative("max_norm", max_norm)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"invalid norm_type: {norm_type} (must be > 0 or inf)")
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    # PyTorch's order: the norm of each gradient, then the norm of those norms (one host sync at the end).
    xp = backend.get_array_module(grads[0].grad.data)
    norms = xp.stack([xp.linalg.norm(p.grad.data.ravel(), ord=norm_type) for p in grads])
    total = float(xp.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite ({total}); "
            "pass error_if_nonfinite=False to clip anyway"
        )
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in grads:
            p.grad = Tensor(p.grad.data * scale)
    return total


class EMA:
    """An exponential moving average of a module's weights, kept in a copy of the module (``ema.module``).

    After each optimizer step, ``ema.update()`` moves every averaged weight toward the trained one::

        average <- average + (1 - d) * (weight - average),   d = min(decay, (1 + n) / (10 + n))

    where n counts the updates so far: early on d is small, so the average forgets the random initial
    weights within a few steps instead of ~1 / (1 - decay). Buffers (BatchNorm's running statistics) are
    copied, not averaged. For GANs, sampling from an average of G's weights smooths out the oscillation of
    the two-player game (Karras et al. 2018; Yazici et al. 2019, "The unusual effectiveness of averaging in
    GAN training"). The copy never trains: it is in eval mode and needs no gradients.

    >>> ema = EMA(G, decay=0.999)
    >>> opt_g.step(); ema.update()
    >>> samples = ema.module(z)
    """

    def __init__(self, module, decay: float = 0.999):
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0.0 <= decay < 1.0:
            raise ValueError(f"invalid EMA decay: {decay!r} (must be in [0, 1))")
        self.decay = float(decay)
        self.source = module
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next ``update()`` uses: min(decay, (1 + n) / (10 + n)) after n updates."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    def update(self) -> None:
        """Move every averaged weight toward the trained one by (1 - current_decay()); copy the buffers."""
        d = self.current_decay()
        for average, weight in zip(self.module.parameters(), self.source.parameters()):
            xp = backend.get_array_module(average.data)
            delta = xp.subtract(weight.data, average.data)
            delta *= 1.0 - d
            average.data += delta
        for copied, buffer in zip(self.module.buffers(), self.source.buffers()):
            copied_array = copied.data if isinstance(copied, Tensor) else copied
            copied_array[...] = buffer.data if isinstance(buffer, Tensor) else buffer
        self.updates += 1

    def state_dict(self) -> dict:
        """``{'decay', 'updates', 'module'}``: what a checkpoint needs to continue the average exactly."""
        return {"decay": self.decay, "updates": self.updates, "module": dict(self.module.state_dict())}

    def load_state_dict(self, state: dict) -> None:
        """Restore an average saved by ``state_dict`` (the averaged weights and the update count)."""
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])


# -- differentiable steps (unrolled optimisation) ------------------------------------------------------
#
# First the rule: one step of SGD or Adam as plain Tensor expressions (PyTorch's formulas, in its order of
# operations), so a loss of the new parameters can be differentiated through the step. Then the fast path,
# ``differentiable_step``, which applies the same rule to each param group packed into one flat vector. The
# rule is elementwise, so packed or one parameter at a time gives the same numbers: ``reference.py`` has the
# one-at-a-time version and ``tests/test_reference.py`` proves the two equal, gradients through them included.


def sgd_rule(p, g, momentum_buffer, group):
    """One SGD step: returns ``(new p, new momentum buffer)`` (None without momentum; ``momentum_buffer`` is
    None before the first step). ``group`` holds lr, momentum, dampening, nesterov and weight_decay."""
    lr, momentum = group["lr"], group["momentum"]
    if group["weight_decay"] != 0:
        g = g + group["weight_decay"] * p  # an L2 term
    b = None
    if momentum != 0:
        b = g if momentum_buffer is None else momentum_buffer * momentum + g * (1.0 - group["dampening"])
        g = g + b * momentum if group["nesterov"] else b
    return p - g * lr, b


def adam_rule(p, g, m, v, t, group):
    """One Adam step, the ``t``-th (from 1): returns ``(new p, new m, new v)``. ``group`` holds lr, betas, eps
    and weight_decay. For a packed group whose parameters have taken different numbers of steps, ``t`` is the
    list of ``(t, size)`` of its parameters."""
    beta1, beta2 = group["betas"]
    if group["weight_decay"] != 0:
        g = g + group["weight_decay"] * p  # an L2 term
    m = _lerp(m, g, 1.0 - beta1)  # m = beta1 m + (1 - beta1) g
    v = v * beta2 + g * g * (1.0 - beta2)  # v = beta2 v + (1 - beta2) g^2
    step_size, v_hat_scale = _bias_corrections(t, group, p)  # lr / (1 - beta1^t), 1 / sqrt(1 - beta2^t)
    denom = _sqrt(v) * v_hat_scale + group["eps"]  # sqrt(v_hat) + eps, with v_hat = v / (1 - beta2^t)
    return p - (m / denom) * step_size, m, v


def _lerp(a, b, weight):
    """a + (b - a) weight, computed from the nearer end as ``torch.lerp`` does (so the roundings match)."""
    return a + (b - a) * weight if weight < 0.5 else b - (b - a) * (1.0 - weight)


def _sqrt(v):
    """sqrt(v), with derivative 0 where v is exactly 0 (a weight that never had a gradient), not infinity."""
    positive = v.data > 0
    return where(positive, sqrt(where(positive, v, 1.0)), 0.0)


def _bias_corrections(t, group, like):
    """``lr / (1 - beta1^t)`` and ``1 / sqrt(1 - beta2^t)``: Python numbers for one step number ``t``; for a
    list of ``(t, size)``, constant Tensors holding each parameter's numbers over its ``size`` elements (each
    number computed as for one parameter, then rounded to the parameter's dtype as a Python number is)."""
    beta1, beta2 = group["betas"]
    if isinstance(t, numbers.Integral):
        return group["lr"] / (1.0 - beta1**t), 1.0 / math.sqrt(1.0 - beta2**t)
    xp = backend.get_array_module(like.data)

    def per_element(value_of):
        return Tensor(xp.concatenate([xp.full(size, value_of(k), dtype=like.dtype) for k, size in t]))

    return (per_element(lambda k: group["lr"] / (1.0 - beta1**k)),
            per_element(lambda k: 1.0 / math.sqrt(1.0 - beta2**k)))


# -- the fast path: each group as one flat vector ---------------------------------------------------------


def optimizer_parameters(optimizer: Optimizer) -> list:
    """The optimizer's parameters in ``param_groups`` order: the order ``differentiable_step`` expects."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def differentiable_step(optimizer: Optimizer, params, grads, state=None):
    """One step of ``optimizer``'s rule written with Tensor ops: returns ``(new_params, new_state)``.

    Nothing is mutated: not the optimizer, not its moments, not the parameters. The new parameters are
    Tensor expressions of ``params`` and ``grads``, so a loss computed with them (``nn.functional_call``)
    can be differentiated through the step -- through ``grads`` too, when they were taken with
    ``npgan.grad(..., create_graph=True)``. Unrolled GANs chain K such steps of D's optimizer.

    - ``params``: one Tensor per parameter of the optimizer, in ``optimizer_parameters`` order: the
      parameters themselves (or stand-ins for them) for a first step, the previous call's results after.
    - ``grads``: Tensors of the same shapes, or None for a parameter that got no gradient (it is left
      as it is, with its moments, as ``step()`` leaves it).
    - ``state``: None to start from the optimizer's current state (its hyperparameters per group and the
      moments its next real ``step()`` would use; missing state is zeros at step 0), else the
      ``new_state`` a previous call returned (one dict per parameter; pass it back as it is).

    The rule is ``sgd_rule`` or ``adam_rule`` (PyTorch's formulas, Adam with its bias correction). Speed:
    each group's parameters with a gradient are packed into one flat vector (``F.pack``) and the rule runs
    once on it, a dozen ops per step instead of a dozen per parameter, so the graph unrolling builds and
    walks back is that much smaller; ``F.unpack`` hands out the pieces. The flat parameters and moments are
    kept in the state, and reused without re-packing when the next call gets back the very pieces. The
    moments read from the optimizer may share arrays with it: use the results before its next real step.
    """
    if not isinstance(optimizer, (SGD, Adam)):
        raise TypeError(f"differentiable_step supports SGD and Adam optimizers, got {type(optimizer).__name__}")
    owned = optimizer_parameters(optimizer)
    params, grads = list(params), list(grads)
    if len(params) != len(owned) or len(grads) != len(owned):
        raise ValueError(
            f"differentiable_step: the optimizer holds {len(owned)} parameters, got {len(params)} params and "
            f"{len(grads)} grads (one each, in optimizer_parameters order)"
        )
    if state is None:
        state = [_tensor_state(optimizer.state.get(p, {})) for p in owned]
    elif len(state) != len(owned):
        raise ValueError(f"differentiable_step: state has {len(state)} entries for {len(owned)} parameters")
    for i, (p, g) in enumerate(zip(params, grads)):
        if g is not None and tuple(g.shape) != tuple(p.shape):
            raise ValueError(
                f"differentiable_step: grads[{i}] has shape {tuple(g.shape)}, params[{i}] {tuple(p.shape)}"
            )
    sgd = isinstance(optimizer, SGD)
    moments = ("momentum_buffer",) if sgd else ("exp_avg", "exp_avg_sq")
    new_params, new_state = list(params), list(state)
    start = 0
    for group in optimizer.param_groups:
        stepped = [i for i in range(start, start + len(group["params"])) if grads[i] is not None]
        start += len(group["params"])
        if not stepped:
            continue
        flat_state = _flat_state([state[i] for i in stepped], [params[i] for i in stepped], moments, stepped)
        p, g = _flat_params(params, state, stepped), pack([grads[i] for i in stepped])
        p_next, s_next = (_sgd_packed if sgd else _adam_packed)(p, g, group, flat_state)
        pieces = unpack(p_next, [params[i].shape for i in stepped])
        record = {"moments": {k: s_next[k] for k in moments if s_next.get(k) is not None}, "members": stepped,
                  "params": p_next, "pieces": pieces}
        offset = 0
        for i, piece in zip(stepped, pieces):
            new_params[i] = piece
            new_state[i] = {"step": s_next["step"][stepped.index(i)], "_flat": record, "_offset": offset}
            offset += piece.numel()
    return new_params, new_state


def _sgd_packed(p, g, group, flat):
    """``sgd_rule`` on a packed group: (new p, new flat state)."""
    p_next, b = sgd_rule(p, g, flat.get("momentum_buffer"), group)
    return p_next, {"step": flat["step"], "momentum_buffer": b}


def _adam_packed(p, g, group, flat):
    """``adam_rule`` on a packed group (its missing moments are zeros): (new p, new flat state)."""
    xp = backend.get_array_module(p.data)
    m, v = flat.get("exp_avg"), flat.get("exp_avg_sq")
    m = Tensor(xp.zeros_like(p.data)) if m is None else m
    v = Tensor(xp.zeros_like(p.data)) if v is None else v
    steps = [t + 1 for t in flat["step"]]
    t = steps[0] if len(set(steps)) == 1 else list(zip(steps, flat["sizes"]))
    p_next, m, v = adam_rule(p, g, m, v, t, group)
    return p_next, {"step": steps, "exp_avg": m, "exp_avg_sq": v}


def _flat_params(params, state, members):
    """The group's parameters ``members`` as one vector: the previous call's flat result when ``params`` are
    the very pieces it handed out (the usual chain of unrolled steps: no re-packing), else packed anew."""
    record = state[members[0]].get("_flat")
    if (record is not None and "pieces" in record and record["members"] == members
            and all(params[i] is piece for i, piece in zip(members, record["pieces"]))):
        return record["params"]
    return pack([params[i] for i in members])


def detach_state(state) -> list:
    """A ``differentiable_step`` state with the same numbers, cut from the graph (first-order unrolling)."""
    records, detached = {}, []
    for entry in state:
        entry = dict(entry)
        record = entry.get("_flat")
        if record is not None:
            if id(record) not in records:
                moments = {k: v.detach() for k, v in record["moments"].items()}
                records[id(record)] = {"moments": moments, "members": record["members"]}
            entry["_flat"] = records[id(record)]
        detached.append({k: (v.detach() if isinstance(v, Tensor) else v) for k, v in entry.items()})
    return detached


def _flat_state(states, params, moments, members) -> dict:
    """The per-parameter states of one group as one flat state: ``step`` a list, each moment one vector.

    States a previous call returned for the same parameters hold their flat moments already; others (the
    optimizer's own) are joined. A moment some parameters lack: zeros for Adam, None (first step) for SGD.
    """
    flat = {"step": [s.get("step", 0) for s in states], "sizes": [p.numel() for p in params]}
    record = states[0].get("_flat")
    same = record is not None and record["members"] == members and all(s.get("_flat") is record for s in states)
    for name in moments:
        if same:
            flat[name] = record["moments"].get(name)
            continue
        pieces = [_moment(s, name, p) for s, p in zip(states, params)]
        if all(piece is None for piece in pieces):
            flat[name] = None
            continue
        if any(piece is None for piece in pieces):
            if name == "momentum_buffer":  # SGD's first step differs (b = g), so a group cannot mix them
                raise ValueError("differentiable_step: some parameters of an SGD group have a momentum buffer and "
                                 "others not; give them all gradients in the same steps")
            xp = backend.get_array_module(params[0].data)
            pieces = [Tensor(xp.zeros_like(p.data)) if piece is None else piece for piece, p in zip(pieces, params)]
        flat[name] = pack(pieces)
    return flat


def _moment(state: dict, name: str, p):
    """One parameter's moment ``name`` (a Tensor) from an optimizer state or a previous call's, or None."""
    if "_flat" in state:
        flat = state["_flat"]["moments"].get(name)
        return None if flat is None else flat[state["_offset"]:state["_offset"] + p.numel()].reshape(p.shape)
    return state.get(name)


def _tensor_state(entries: dict) -> dict:
    """An optimizer's per-parameter state with arrays as (constant) Tensors and numbers as they are."""
    return {k: (Tensor(v) if backend.is_array(v) else v) for k, v in entries.items()}


__all__ += ["adam_rule", "detach_state", "differentiable_step", "optimizer_parameters", "sgd_rule"]
