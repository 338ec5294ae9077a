"""Tensor, Function and the graph walk: ``backward()``, ``grad()``, ``no_grad()``.

Define-by-run: calling a ``Function`` on tensors runs its ``forward`` on the raw arrays and, when a
gradient is wanted, records the function as the ``creator`` of its outputs. ``backward`` of every
function is written with Tensor ops, so running it while recording (``create_graph=True``) builds a
graph of the gradient itself: that is how second derivatives (WGAN-GP's penalty) come for free.
"""

from __future__ import annotations

import contextlib
import numbers
import weakref

from npgan import backend

# -- gradient mode -------------------------------------------------------------------------------------

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Context manager (and decorator) that turns graph recording on or off inside its block."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._saved = []

    def __enter__(self):
        global _grad_enabled
        self._saved.append(_grad_enabled)
        _grad_enabled = self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._saved.pop()
        return False


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(False)`` switches recording off at once (as in PyTorch); as a context manager
    (``with set_grad_enabled(mode):``) the previous mode comes back at the end of the block."""

    def __init__(self, mode: bool):
        global _grad_enabled
        super().__init__(mode)
        self._previous = _grad_enabled
        _grad_enabled = self.mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False


class no_grad(_GradMode):
    """``with npgan.no_grad():`` (or ``@npgan.no_grad()``, ``@npgan.no_grad``): ops record no graph."""

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        self.__init__()
        return self(func)  # used bare, as ``@npgan.no_grad``: decorate func right away

    def __init__(self, func=None):
        super().__init__(False)


class enable_grad(_GradMode):
    def __init__(self):
        super().__init__(True)


# -- Tensor --------------------------------------------------------------------------------------------

_ACCEPTED = "a Tensor, a NumPy/CuPy array, a Python number or a (nested) list of numbers"


def _as_array(data, dtype=None, device=None):
    """Turn user data into an array of npgan's default dtypes on ``device``."""
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_array(data):
        array = data
    elif isinstance(data, (numbers.Number, list, tuple)) or hasattr(data, "__array__"):
        if isinstance(data, (list, tuple)) and _has_non_number(data):
            raise TypeError(f"npgan.tensor() accepts {_ACCEPTED}; got a sequence holding other objects")
        array = backend.numpy.asarray(data)
        if array.dtype.kind == "f" and not hasattr(data, "dtype"):
            array = array.astype(backend.DEFAULT_DTYPE)  # Python floats -> float32, as in PyTorch
        if array.dtype.kind not in "biuf":
            raise TypeError(f"npgan.tensor() accepts {_ACCEPTED}; got an array of dtype {array.dtype}")
    else:
        raise TypeError(f"npgan.tensor() accepts {_ACCEPTED}; got {type(data).__name__}")
    if dtype is not None:
        array = array.astype(backend.host_dtype(dtype), copy=False)
    if device is not None:
        array = backend.to_device(array, device)
    return array


def _has_non_number(seq) -> bool:
    stack = [seq]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif not isinstance(item, numbers.Number) and not backend.is_array(item):
            return True
    return False


class Tensor:
    """An array with an optional gradient. ``.data`` is the raw NumPy or CuPy array."""

    __array_ufunc__ = None  # make ``ndarray * Tensor`` defer to Tensor.__rmul__
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False):
        if not backend.is_array(data):
            data = _as_array(data)
        self.data = data
        self.grad: Tensor | None = None
        self.creator: Function | None = None
        self.output_index = 0
        self.generation = 0
        self.name: str | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- attributes ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def device(self) -> str:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    def __len__(self) -> int:
        return len(self.data)

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not backend.is_floating(self.dtype):
            raise TypeError(f"only floating-point tensors can require gradients, not {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    def __repr__(self) -> str:
        body = repr(backend.asnumpy(self.data)).replace("array(", "tensor(", 1)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn={type(self.creator).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return body[:-1] + "".join(", " + e for e in extras) + ")" if extras else body

    # -- conversion ------------------------------------------------------------------------------------
    def numpy(self):
        """A NumPy array of the data (copied from the GPU when needed)."""
        return backend.asnumpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous")
        return bool(self.item())

    def to(self, device=None, dtype=None) -> Tensor:
        """This tensor on ``device`` and/or as ``dtype``; differentiable (gradients flow back)."""
        from npgan import functional as F  # noqa: PLC0415

        out = self
        if dtype is not None and backend.host_dtype(dtype) != self.dtype:
            out = F.cast(out, dtype)
        if device is not None and backend.check_device(device) != out.device:
            out = F.to_device(out, device)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(dtype="float32")

    def double(self) -> Tensor:
        return self.to(dtype="float64")

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def clone(self) -> Tensor:
        from npgan import functional as F  # noqa: PLC0415

        return F.copy(self)

    def zero_(self) -> Tensor:
        self.data[...] = 0
        return self

    # -- graph walk ------------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires a gradient."""
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the computation "
                "had requires_grad=True (or it ran under no_grad())"
            )
        from npgan.functional import copy  # noqa: PLC0415

        grads = run_backward([self], [grad], retain_graph or create_graph, create_graph, inputs=None)
        # Each .grad gets memory of its own, safe to update in place (optimizers, gradient clipping): a
        # gradient may be shared by several leaves (add passes gy to both operands), be a read-only
        # broadcast view, or be the caller's ``grad``. A gradient no one else can see (a backward's fresh
        # result, in a graph that is now freed) is kept as it is; copying every one cost 10% of a gan-mlp step.
        given = grad.data if isinstance(grad, Tensor) else grad  # run_backward converted it; this is the caller's
        claimed = set() if given is None or retain_graph else {id(_memory_root(given))}
        for leaf, g in grads:
            if leaf.grad is None:
                if create_graph:
                    leaf.grad = copy(g)
                elif retain_graph:
                    leaf.grad = Tensor(g.data.copy())  # a kept graph may still hold its arrays
                else:
                    leaf.grad = Tensor(_exclusive(g.data, claimed))
            elif create_graph:
                leaf.grad = leaf.grad + g
            elif _can_add_in_place(leaf.grad, g.data):
                leaf.grad.data += g.data  # as PyTorch's first-order accumulation: no new array, no fresh pages
            else:
                leaf.grad = Tensor(leaf.grad.data + g.data)


def _can_add_in_place(grad: Tensor, g) -> bool:
    """Whether ``grad += g`` keeps the result of ``grad + g``: ``grad`` is a plain, writable array (not an
    output of a recorded graph) of the same shape and dtype as the sum."""
    a = grad.data
    return (grad.is_leaf and not grad.requires_grad and getattr(a.flags, "writeable", True)
            and a.shape == g.shape and a.dtype == g.dtype)


def _memory_root(array):
    """The array that owns ``array``'s memory (``array`` itself unless it is a view)."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return array


def _exclusive(array, claimed: set):
    """``array`` itself if it is writable and alone on its memory and no earlier call claimed that memory,
    else a copy. ``claimed`` collects the ids of the memory handed out."""
    root = _memory_root(array)
    alone = getattr(root, "nbytes", -1) == array.nbytes  # not a slice of more, nor a broadcast of less
    if id(root) in claimed or not alone or not getattr(array.flags, "writeable", True):
        return array.copy()
    claimed.add(id(root))
    return array


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """A new leaf tensor from ``data``; Python floats become float32, arrays keep their dtype."""
    array = _as_array(data, dtype, device)
    if isinstance(data, Tensor) or (backend.is_array(data) and array is data):
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(obj, like: Tensor | None = None) -> Tensor:
    """``obj`` as a Tensor; Python scalars take the dtype and device of ``like`` (no float64 promotion)."""
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, numbers.Number) and like is not None:
        xp = backend.get_array_module(like.data)
        dtype = like.dtype if backend.is_floating(like.dtype) or isinstance(obj, numbers.Integral) else None
        return Tensor(xp.asarray(obj, dtype=dtype or backend.DEFAULT_DTYPE))
    if backend.is_array(obj) or isinstance(obj, (numbers.Number, list, tuple)):
        array = _as_array(obj)
        if like is not None and backend.device_of(array) != like.device:
            raise RuntimeError(
                f"expected all tensors on the same device, got {like.device} and {backend.device_of(array)}"
            )
        return Tensor(array)
    raise TypeError(f"expected {_ACCEPTED}, got {type(obj).__name__}")


# -- Function ------------------------------------------------------------------------------------------


class Function:
    """One differentiable op. Subclasses define ``forward(*arrays)`` and ``backward(*grad_outputs)``.

    ``forward`` receives raw arrays and returns an array (or a tuple of arrays). ``backward`` receives
    one Tensor per output and returns one Tensor (or None) per input, computed with Tensor ops so that
    it can be differentiated again. Inside ``backward``, ``self.inputs`` are the input Tensors,
    ``self.output(i)`` the i-th output Tensor and ``self.needs_input_grad[i]`` says whether the i-th
    input's gradient is wanted at all (skip work when it is not). The gradients returned are new arrays
    or views of the grad_outputs: ``Tensor.backward`` hands a fresh gradient array to the leaf's ``.grad``
    without copying it, so an array the Function keeps for another use must not be returned as is.
    """

    inputs: tuple = ()
    needs_input_grad: tuple = ()

    def __call__(self, *inputs):
        # The path every op takes, a few hundred times per training step: kept to plain attribute work.
        if all(isinstance(x, Tensor) for x in inputs):
            tensors = inputs
        else:
            like = _first_tensor(inputs)
            tensors = tuple(as_tensor(x, like=like) for x in inputs)
        if len(tensors) > 1 and backend.any_cupy_loaded():
            _check_same_device(tensors, type(self).__name__)
        outputs = self.forward(*[t.data for t in tensors])
        single = not isinstance(outputs, tuple)
        outputs = (outputs,) if single else outputs
        results = [_wrap(y) for y in outputs]
        needs = tuple(t.requires_grad for t in tensors)
        if _grad_enabled and True in needs:
            self.inputs = tensors
            self.needs_input_grad = needs
            self.generation = generation = max(t.generation for t in tensors)
            self._outputs = [weakref.ref(r) for r in results]
            self._output_meta = [(y.shape, y.dtype) for y in outputs]
            for index, r in enumerate(results):
                r.creator, r.output_index, r.generation = self, index, generation + 1
                r.requires_grad = r.data.dtype.kind == "f"  # floating outputs carry gradients
        return results[0] if single else tuple(results)

    def output(self, index: int = 0) -> Tensor:
        out = self._outputs[index]()
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: its output was freed before backward")
        return out

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")

    def _release(self) -> None:
        """Drop the inputs and saved arrays once backward has used them (``retain_graph=False``)."""
        self.__dict__.clear()
        self._released = True


def _wrap(array) -> Tensor:
    """A new Tensor around an op's output array, without ``Tensor.__init__``'s checks of user data."""
    t = Tensor.__new__(Tensor)
    t.data, t.grad, t.creator, t.output_index, t.generation, t.name, t.requires_grad = (
        array, None, None, 0, 0, None, False)
    return t


def _first_tensor(items):
    for x in items:
        if isinstance(x, Tensor):
            return x
    return None


def _check_same_device(tensors, op_name):
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise RuntimeError(
            f"{op_name}: expected all tensors on the same device, got a mix of {sorted(devices)}; "
            "move them with .to(device) first"
        )


# -- the graph walk ------------------------------------------------------------------------------------


def _topological_order(roots):
    """Functions reachable from ``roots`` with every function after the creators of its inputs.

    An iterative depth-first post-order: no recursion, so a 50,000-op chain is fine.
    """
    order, visited = [], set()
    stack = [(f, False) for f in reversed(roots)]
    while stack:
        fn, done = stack.pop()
        if done:
            order.append(fn)
            continue
        if id(fn) in visited:
            continue
        if getattr(fn, "_released", False):
            raise RuntimeError(
                "trying to backward through the graph a second time (or after its buffers were freed); "
                "pass retain_graph=True to the first backward() or grad() call to keep them"
            )
        visited.add(id(fn))
        stack.append((fn, True))
        for x in fn.inputs:
            if x.creator is not None and id(x.creator) not in visited:
                stack.append((x.creator, False))
    return order


def _initial_grad(output: Tensor, grad) -> Tensor:
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(
                f"grad can be implicitly created only for scalar outputs; this output has shape "
                f"{output.shape}: pass grad (or grad_outputs) of that shape"
            )
        xp = backend.get_array_module(output.data)
        return Tensor(xp.ones(output.shape, dtype=output.dtype))
    grad = as_tensor(grad, like=output)
    if grad.shape != output.shape:
        raise ValueError(f"grad has shape {grad.shape} but the output has shape {output.shape}")
    return grad


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs):
    """Propagate gradients from ``outputs`` to the leaves (or to ``inputs`` when given).

    Returns a list of ``(tensor, gradient)``: every leaf that requires grad when ``inputs`` is None,
    else each of ``inputs`` (gradient None when it is not reached).
    """
    from npgan.functional import sum_to  # noqa: PLC0415

    grads: dict = {}  # key -> accumulated gradient Tensor; key = (id(creator), index) or id(leaf)
    leaves: dict = {}  # id(leaf) -> leaf, in the order first reached

    def key_of(t: Tensor):
        return (id(t.creator), t.output_index) if t.creator is not None else id(t)

    def accumulate(t: Tensor, g: Tensor):
        k = key_of(t)
        if t.creator is None:
            leaves.setdefault(k, t)
        grads[k] = g if k not in grads else grads[k] + g

    roots = []
    for out, g in zip(outputs, grad_outputs):
        if not out.requires_grad:
            continue
        with set_grad_enabled(create_graph):
            accumulate(out, _initial_grad(out, g))
        if out.creator is not None:
            roots.append(out.creator)
    order = _topological_order(roots)

    # With explicit ``inputs``, only functions that lead to one of them need to run.
    wanted = None
    if inputs is not None:
        targets = {key_of(t) for t in inputs}
        leads = {}
        for fn in order:  # creators of inputs come first
            leads[id(fn)] = [
                key_of(x) in targets or (x.creator is not None and leads.get(id(x.creator), False))
                for x in fn.inputs
            ]
            leads[id(fn)] = leads[id(fn)] if any(leads[id(fn)]) else False
        wanted = leads

    # Gradients of non-leaf inputs are returned, so they stay in ``grads`` once used.
    keep = {key_of(t) for t in inputs if t.creator is not None} if inputs is not None else set()
    with set_grad_enabled(create_graph):
        for fn in reversed(order):
            if wanted is not None and not wanted[id(fn)]:
                continue
            keys = [(id(fn), i) for i in range(len(fn._output_meta))]
            if all(k not in grads for k in keys):
                continue
            gys = []
            for k, (shape, dtype) in zip(keys, fn._output_meta):
                g = grads.get(k) if k in keep else grads.pop(k, None)
                if g is None:  # an output nothing downstream used: its gradient is zero
                    xp = backend.get_array_module(*(x.data for x in fn.inputs))
                    g = Tensor(xp.zeros(shape, dtype=dtype))
                gys.append(g)
            saved_needs = needs = fn.needs_input_grad
            if wanted is not None:  # backward skips (and we drop) gradients that lead to no input
                needs = tuple(a and b for a, b in zip(saved_needs, wanted[id(fn)]))
                fn.needs_input_grad = needs
            gxs = fn.backward(*gys)
            fn.needs_input_grad = saved_needs
            gxs = gxs if isinstance(gxs, tuple) else (gxs,)
            if len(gxs) != len(fn.inputs):
                raise RuntimeError(
                    f"{type(fn).__name__}.backward returned {len(gxs)} gradients for {len(fn.inputs)} inputs"
                )
            for x, gx, need in zip(fn.inputs, gxs, needs):
                if gx is None or not need or not x.requires_grad:
                    continue
                if gx.shape != x.shape:
                    gx = sum_to(gx, x.shape)  # undo broadcasting
                accumulate(x, gx)

    if not retain_graph:
        # Freed only now: a function's backward may read its output, which a consumer keeps alive.
        for fn in order:
            fn._release()
    if inputs is None:
        return [(leaf, grads[k]) for k, leaf in leaves.items()]
    return [(t, grads.get(key_of(t))) for t in inputs]


def grad(outputs, inputs, grad_outputs=None, create_graph: bool = False, retain_graph=None,
         allow_unused: bool = False):
    """d(outputs)/d(inputs) as a tuple of Tensors, without touching any ``.grad``.

    ``create_graph=True`` records the gradient computation so it can be differentiated again (the
    gradient penalty of WGAN-GP). ``retain_graph`` defaults to ``create_graph``.
    """
    single_output = isinstance(outputs, Tensor)
    outputs = [outputs] if single_output else list(outputs)
    inputs_list = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for t in outputs + inputs_list:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad() takes Tensors as outputs and inputs, got {type(t).__name__}")
    for i, t in enumerate(inputs_list):
        if not t.requires_grad:
            raise RuntimeError(f"grad(): input {i} (shape {t.shape}) does not require grad")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor) or backend.is_array(grad_outputs):
        grad_outputs = [grad_outputs]
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad(): {len(outputs)} outputs but {len(grad_outputs)} grad_outputs")
    if retain_graph is None:
        retain_graph = create_graph
    results = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=inputs_list)
    grads = []
    for i, (t, g) in enumerate(results):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad(): input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph:
            g = Tensor(g.data)
        grads.append(g)
    return tuple(grads)


# -- creation ------------------------------------------------------------------------------------------


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if not isinstance(s, numbers.Integral) or s < 0:
            raise ValueError(f"a shape holds non-negative ints, got {shape}")
    return tuple(int(s) for s in shape)


def _filled(fill, shape, dtype, device, requires_grad):
    xp = backend.array_module_for(device or "cpu")
    data = xp.full(_shape(shape), fill, dtype=backend.host_dtype(dtype or backend.DEFAULT_DTYPE))
    return Tensor(data, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(0, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(1, shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _filled(fill_value, shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from npgan's host generator (``npgan.manual_seed``)."""
    data = backend.random_normal(_shape(shape), backend.host_dtype(dtype or backend.DEFAULT_DTYPE),
                                 device or "cpu")
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from npgan's host generator."""
    data = backend.random_uniform(_shape(shape), 0.0, 1.0,
                                  backend.host_dtype(dtype or backend.DEFAULT_DTYPE), device or "cpu")
    return Tensor(data, requires_grad=requires_grad)


def _like(fn, t: Tensor, dtype, device, requires_grad):
    return fn(*t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(ones, t, dtype, device, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(randn, t, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    return _like(rand, t, dtype, device, requires_grad)
