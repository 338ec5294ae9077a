"""Parameter, Module and Sequential: the containers that hold a model's weights.

Assigning a ``Parameter`` or a ``Module`` to an attribute registers it, in insertion order (PyTorch's
``nn.Module`` and DeZero's ``Layer``). Buffers (``register_buffer``) hold state that is not trained, such
as BatchNorm's running statistics. ``state_dict()`` names everything the way PyTorch does (``0.weight``,
``1.running_mean``), so weights copy between the two.

Every module also knows its path in the model (``main.3``): it is recorded when the module is assigned to
a parent and updated when that parent is itself assigned, so a layer can name itself in an error message.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from npgan import backend
from npgan.autograd import Tensor, _as_array

__all__ = ["IncompatibleKeys", "Module", "Parameter", "Sequential", "StateDictError"]


class Parameter(Tensor):
    """A Tensor that is a weight of a Module: it requires grad and is registered on assignment.

    >>> nn.Parameter(npgan.zeros(3)).requires_grad
    True
    """

    def __init__(self, data, requires_grad: bool = True):
        array = data.data if isinstance(data, Tensor) else _as_array(data)  # shares a Tensor's array
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(KeyError, ValueError):
    """``load_state_dict`` found missing, unexpected or mis-shaped entries (catch as KeyError or ValueError)."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


def _add_indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return lines[0] + "".join("\n" + " " * spaces + line for line in lines[1:])


class Module:
    """Base class of every layer and model: subclasses set attributes in ``__init__`` and define ``forward``.

    >>> class Critic(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden, self.out = nn.Linear(2, 8), nn.Linear(8, 1)   # registered by assignment
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).relu())
    >>> [name for name, p in Critic().named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_name", None)  # path in the enclosing model, e.g. "main.3"
        object.__setattr__(self, "training", True)

    # -- registration ----------------------------------------------------------------------------------
    def _check_initialized(self, name: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign '{name}' before Module.__init__() is called: "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            if isinstance(value, (Parameter, Module)):
                self._check_initialized(name)
            object.__setattr__(self, name, value)
            return
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            if name not in params:  # a replaced parameter keeps its place in the order, as in PyTorch
                self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            if name not in modules:  # a replaced module keeps its place in the order, as in PyTorch
                self._forget(name)
            modules[name] = value
            value._set_path(self._child_path(name))
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} to parameter '{name}' of {type(self).__name__}: "
                    "use a Parameter (or None)"
                )
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} to submodule '{name}': use a Module (or None)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor) and not backend.is_array(value):
                raise TypeError(f"buffer '{name}' holds a Tensor, an array or None, got {type(value).__name__}")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str) -> None:
        for store in (self.__dict__, self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        self._non_persistent.discard(name)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: look in the registries.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (a Parameter, or None for "no such weight") under ``name``; assigning
        ``self.name = Parameter(...)`` does the same.
        """
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter('{name}'): expected a Parameter or None, got {type(param).__name__}")
        self._check_initialized(name)
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, value, persistent: bool = True) -> None:
        """Register state that is saved in ``state_dict`` but not trained (a Tensor, an array or None)."""
        self._check_initialized(name)
        if value is not None and not isinstance(value, Tensor) and not backend.is_array(value):
            raise TypeError(
                f"register_buffer('{name}'): expected a Tensor, an array or None, got {type(value).__name__}"
            )
        if "." in name or not name:
            raise ValueError(f"register_buffer: buffer name must be non-empty and hold no '.', got {name!r}")
        self._forget(name)
        self._buffers[name] = value
        if not persistent:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a child module under ``name`` (as assigning ``self.name = module`` does); None leaves a slot."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module('{name}'): expected a Module, got {type(module).__name__}")
        self._check_initialized(name)
        if name not in self._modules:  # a replaced module keeps its place in the order
            self._forget(name)
        self._modules[name] = module
        if module is not None:
            module._set_path(self._child_path(name))

    # -- the path of a module in its model -------------------------------------------------------------
    def _child_path(self, name: str) -> str:
        return f"{self._name}.{name}" if self._name else name

    def _set_path(self, path: str | None) -> None:
        object.__setattr__(self, "_name", path)
        for name, child in self._modules.items():
            if child is not None:
                child._set_path(self._child_path(name))

    def _describe(self) -> str:
        """``layer 'main.3' (Conv2d(64, 128, ...))``: how a layer names itself in error messages."""
        return f"layer '{self._name or type(self).__name__}' ({self._one_line_repr()})"

    def _one_line_repr(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # -- iteration -------------------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", memo=None):
        """``(name, module)`` for this module and every descendant, each once, depth first."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, memo)

    def modules(self):
        """This module and every descendant, each once, depth first: ``len(list(model.modules()))``."""
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """``(name, module)`` for each direct child, in the order they were assigned."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        """The direct children, in the order they were assigned: ``list(model.children())``."""
        for _, child in self.named_children():
            yield child

    def _named_members(self, store: str, recurse: bool):
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, value in getattr(module, store).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recurse: bool = True):
        """``(dotted name, Parameter)`` for every weight, each once, in PyTorch's order.

        >>> [name for name, p in nn.Sequential(nn.Linear(2, 3)).named_parameters()]
        ['0.weight', '0.bias']
        """
        yield from self._named_members("_parameters", recurse)

    def parameters(self, recurse: bool = True):
        """Every weight (Parameter), each once, in PyTorch's order: ``optim.Adam(model.parameters())``."""
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse: bool = True):
        """``(dotted name, buffer)`` for the state that is saved but not trained (BatchNorm's running statistics)."""
        yield from self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True):
        """The state that is saved but not trained (BatchNorm's running statistics), each once."""
        for _, b in self.named_buffers(recurse):
            yield b

    # -- modes and bulk changes ------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (``mode=True``) or evaluation mode for this module and all descendants; returns self.
        BatchNorm uses batch statistics and Dropout drops only in training mode.
        """
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (``train(False)``) for this module and all descendants; returns self: ``G.eval()``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch gradients of every parameter on or off (e.g. freeze D during G's step); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None, or to zeros with ``set_to_none=False``)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:  # a fresh array: gradient arrays may be shared between tensors or be read-only views
                p.grad = Tensor(backend.get_array_module(p.data).zeros_like(p.grad.data))

    def apply(self, fn) -> Module:
        """Call ``fn(module)`` on every descendant, then on this module (e.g. a custom weight init)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def _map_arrays(self, fn) -> None:
        """Replace every parameter's and buffer's array (and gradient) by ``fn(array)``, in place."""
        for p in self.parameters():
            p.data = fn(p.data)
            if p.grad is not None:
                p.grad = Tensor(fn(p.grad.data))
        for m in self.modules():
            for name, b in m._buffers.items():
                if isinstance(b, Tensor):
                    b.data = fn(b.data)
                elif b is not None:
                    m._buffers[name] = fn(b)

    def to(self, device=None, dtype=None) -> Module:
        """Move (or cast) parameters and buffers in place; returns ``self``.

        ``dtype`` only changes floating-point arrays (a BatchNorm's integer batch counter stays an int).
        """
        if device is not None:
            device = backend.check_device(device)
            self._map_arrays(lambda a: backend.to_device(a, device))
        if dtype is not None:
            dtype = backend.host_dtype(dtype)
            self._map_arrays(lambda a: a.astype(dtype, copy=False) if backend.is_floating(a.dtype) else a)
        return self

    def cpu(self) -> Module:
        """Move parameters and buffers to the CPU; returns self: ``model.cpu()``."""
        return self.to("cpu")

    def cuda(self) -> Module:
        """Move parameters and buffers to the GPU (needs CuPy); returns self: ``model.cuda()``."""
        return self.to("cuda")

    def double(self) -> Module:
        """Cast floating parameters and buffers to float64 (for gradient checks)."""
        return self.to(dtype="float64")

    def float(self) -> Module:
        """Cast floating parameters and buffers to float32; returns self: ``model.float()``."""
        return self.to(dtype="float32")

    # -- state -----------------------------------------------------------------------------------------
    def _state_entries(self):
        """``(name, owner, kind, key)`` for every saved entry, in PyTorch's order."""
        for prefix, module in self.named_modules():
            dot = prefix + "." if prefix else ""
            for key, p in module._parameters.items():
                if p is not None:
                    yield dot + key, module, "_parameters", key
            for key, b in module._buffers.items():
                if b is not None and key not in module._non_persistent:
                    yield dot + key, module, "_buffers", key

    def state_dict(self) -> OrderedDict:
        """An ordered dict ``name -> NumPy array`` (copies) of every parameter and persistent buffer."""
        state = OrderedDict()
        for name, module, kind, key in self._state_entries():
            value = getattr(module, kind)[key]
            array = value.data if isinstance(value, Tensor) else value
            state[name] = array.get() if backend.is_cupy_array(array) else array.copy()
        return state

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy ``state_dict``'s arrays into this module's parameters and buffers, keeping dtype and device.

        Mis-shaped entries are always an error; with ``strict`` so are missing and unexpected names.
        All problems are listed in one ``StateDictError`` (a KeyError and a ValueError).
        """
        if not hasattr(state_dict, "items"):
            raise TypeError(f"load_state_dict expects a mapping name -> array, got {type(state_dict).__name__}")
        entries = {name: (module, kind, key) for name, module, kind, key in self._state_entries()}
        missing = [name for name in entries if name not in state_dict]
        unexpected = [name for name in state_dict if name not in entries]
        values, mismatched = {}, []
        for name, (module, kind, key) in entries.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = value.data if isinstance(value, Tensor) else value
            value = value if backend.is_array(value) else backend.asnumpy(value)
            target = getattr(module, kind)[key]
            target = target.data if isinstance(target, Tensor) else target
            if tuple(value.shape) != tuple(target.shape):
                mismatched.append(f"{name}: expected shape {tuple(target.shape)}, got {tuple(value.shape)}")
            values[name] = value
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise StateDictError(f"error loading state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, value in values.items():
            module, kind, key = entries[name]
            target = getattr(module, kind)[key]
            array = target.data if isinstance(target, Tensor) else target
            xp = backend.get_array_module(array)
            array[...] = xp.asarray(value).astype(array.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # -- calling and printing --------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        """The computation of this module; subclasses define it and callers use ``module(x)``."""
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        """The text between the parentheses of this module's repr (its constructor arguments)."""
        return ""

    def __repr__(self) -> str:
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, child in self._modules.items():
            lines.append(f"({name}): " + _add_indent(repr(child), 2))
        head = type(self).__name__ + "("
        if not self._modules:
            return head + self.extra_repr() + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


class Sequential(Module):
    """Modules called one after another: ``Sequential(Linear(2, 8), ReLU(), Linear(8, 1))``.

    Children are named ``"0"``, ``"1"``, ... (or by an ``OrderedDict``'s keys); indexable, sliceable,
    iterable, ``len()`` and ``append()`` as in PyTorch.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self._add(name, module)
        else:
            for module in modules:
                self.append(module)

    def _add(self, name, module) -> None:
        if isinstance(module, type) and issubclass(module, Module):
            raise TypeError(f"Sequential holds Module instances, got the class {module.__name__} at position "
                            f"{len(self)} (missing parentheses: {module.__name__}(...)?)")
        if not isinstance(module, Module):
            raise TypeError(f"Sequential holds Modules, got {type(module).__name__} at position {len(self)}")
        self.add_module(str(name), module)

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (named by its position); returns self: ``net.append(nn.Tanh())``."""
        self._add(str(len(self)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            part = Sequential()
            part._modules.update(items[index])  # the layers keep their paths in this model
            return part
        if not isinstance(index, int):
            raise TypeError(f"Sequential indices must be ints or slices, got {type(index).__name__}")
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of length {len(items)}")
        return items[index][1]

    def forward(self, x):
        """x through every module in order; the output shape is the last module's."""
        for module in self._modules.values():
            x = module(x)
        return x
