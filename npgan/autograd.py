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
    """Whether ops record a graph now (False inside ``no_grad()`` and inside a backward without ``create_graph``).

    >>> with npgan.no_grad(): npgan.is_grad_enabled()
    False
    """
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
    (``with set_grad_enabled(mode):``) the previous mode comes back at the end of the block.

    >>> with npgan.set_grad_enabled(False): npgan.is_grad_enabled()
    False
    """

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
    """``with npgan.no_grad():`` (or ``@npgan.no_grad()``, ``@npgan.no_grad``): ops record no graph.

    >>> with npgan.no_grad(): (npgan.ones(2, requires_grad=True) * 2.0).requires_grad
    False
    """

    def __new__(cls, func=None):
        self = super().__new__(cls)
        if func is None:
            return self
        self.__init__()
        return self(func)  # used bare, as ``@npgan.no_grad``: decorate func right away

    def __init__(self, func=None):
        super().__init__(False)


class enable_grad(_GradMode):
    """``with npgan.enable_grad():`` records a graph inside its block even within ``no_grad()``.

    >>> with npgan.no_grad(), npgan.enable_grad(): npgan.is_grad_enabled()
    True
    """

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
    """An array with an optional gradient. ``.data`` is the raw NumPy or CuPy array, any shape.

    ``.grad`` holds d(output)/d(self) after ``output.backward()`` (same shape), ``.creator`` the Function that
    made it (None for a leaf). Make one with ``npgan.tensor``, ``npgan.randn`` and friends.

    >>> x = npgan.tensor([1.0, 2.0], requires_grad=True); (x * x).sum().backward(); x.grad
    tensor([2., 4.], dtype=float32)
    """

    __array_ufunc__ = None  # make ``ndarray * Tensor`` defer to Tensor.__rmul__
    __array_priority__ = 1000

    def __init__(self, data, requires_grad: bool = False):
        if not backend.is_array(data):
            data = _as_array(data)
        self.data = data
        self.grad: Tensor | None = None
        self.creator: Function | None = None
        self.output_index = 0
        self.name: str | None = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- attributes ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The shape, a tuple of ints (NumPy's and PyTorch's ``shape``); ``size()`` returns it too.

        >>> npgan.zeros(2, 3).shape
        (2, 3)
        """
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions: ``npgan.zeros(2, 3).ndim == 2``."""
        return self.data.ndim

    @property
    def dtype(self):
        """The NumPy dtype of the data (float32 unless asked otherwise): ``npgan.zeros(2).dtype == numpy.float32``."""
        return self.data.dtype

    @property
    def device(self) -> str:
        """``'cpu'`` for a NumPy array, ``'cuda'`` for a CuPy one: ``npgan.zeros(2).device == 'cpu'``."""
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for a tensor no recorded op created (data, parameters); backward() fills the ``.grad`` of leaves.

        >>> npgan.ones(2, requires_grad=True).is_leaf, (npgan.ones(2, requires_grad=True) * 2.0).is_leaf
        (True, False)
        """
        return self.creator is None

    def __len__(self) -> int:
        return len(self.data)

    def size(self, dim: int | None = None):
        """The shape, as PyTorch's ``Tensor.size()``; ``size(dim)`` is the length of one dimension.

        NumPy's ``array.size`` means the number of elements instead: for that, use ``numel()``.

        >>> npgan.zeros(2, 3).size(), npgan.zeros(2, 3).size(-1)
        ((2, 3), 3)
        """
        if dim is None:
            return self.shape
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"size(dim): dim must be an int, got {type(dim).__name__}")
        if not -self.ndim <= dim < self.ndim:
            raise IndexError(f"size(dim): dim {dim} is out of range for a tensor of {self.ndim} dimensions "
                             f"(shape {self.shape}); expected -{self.ndim} <= dim < {self.ndim}")
        return self.shape[dim]

    def numel(self) -> int:
        """The number of elements (NumPy's ``array.size``): ``npgan.zeros(2, 3).numel() == 6``."""
        return int(self.data.size)

    def dim(self) -> int:
        """The number of dimensions (PyTorch's name for ``ndim``): ``npgan.zeros(2, 3).dim() == 2``."""
        return self.data.ndim

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Mark (or unmark) this tensor as wanting a gradient, in place; floating-point tensors only. Returns self.

        >>> npgan.zeros(3).requires_grad_().requires_grad
        True
        """
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
        """The single element as a Python number (forces a GPU sync): ``npgan.tensor([2.5]).item() == 2.5``."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        """The data as nested Python lists: ``npgan.tensor([1.0, 2.0]).tolist() == [1.0, 2.0]``."""
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
        """This tensor on the CPU (itself when it is there already): ``t.cpu().device == 'cpu'``."""
        return self.to("cpu")

    def cuda(self) -> Tensor:
        """This tensor on the GPU (needs CuPy and a GPU; a clear error says what to install otherwise)."""
        return self.to("cuda")

    def float(self) -> Tensor:
        """This tensor as float32, differentiable: ``npgan.zeros(2, dtype="float64").float().dtype`` is float32."""
        return self.to(dtype="float32")

    def double(self) -> Tensor:
        """This tensor as float64 (for gradient checks), differentiable: ``npgan.zeros(2).double().dtype``."""
        return self.to(dtype="float64")

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def clone(self) -> Tensor:
        """A copy with memory of its own that stays in the graph (gradients flow back): ``y = x.clone()``."""
        from npgan import functional as F  # noqa: PLC0415

        return F.copy(self)

    def zero_(self) -> Tensor:
        """Set every element to 0 in place (not recorded in the graph); returns self: ``t.zero_()``."""
        self.data[...] = 0
        return self

    # -- graph walk ------------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires a gradient.

        The rule: ``leaf.grad = g`` the first time, ``leaf.grad = leaf.grad + g`` after (so gradients of several
        backward calls add up, as in PyTorch); ``npgan.reference.backward`` is this rule in textbook form. The
        code below is an optimisation of it: it adds in place and hands a fresh gradient array to ``.grad``
        without a copy whenever no one else can see that memory.

        >>> x = npgan.tensor([3.0], requires_grad=True); (x * x).backward(); x.grad
        tensor([6.], dtype=float32)
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the computation "
                "had requires_grad=True (or it ran under no_grad())"
            )
        from npgan.functional import copy  # noqa: PLC0415

        grads = run_backward([self], [grad], retain_graph or create_graph, create_graph, inputs=None)
        # The rule is just ``leaf.grad = g if leaf.grad is None else leaf.grad + g``; what follows avoids copies.
        # Each .grad gets memory of its own, safe to update in place (optimizers, gradient clipping): a
        # gradient may be shared by several leaves (add passes gy to both operands), be a read-only
        # broadcast view, or be the caller's ``grad``. A gradient no one else can see (a backward's fresh
        # result, in a graph that is now freed) is kept as it is: copying every one costs a visible share of a step.
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
    """A new leaf tensor from ``data``; Python floats become float32, arrays keep their dtype.

    >>> npgan.tensor([[1.0, 2.0]], requires_grad=True).shape, npgan.tensor([1, 2]).dtype
    ((1, 2), dtype('int64'))
    """
    array = _as_array(data, dtype, device)
    if isinstance(data, Tensor) or (backend.is_array(data) and array is data):
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


def as_tensor(obj, like: Tensor | None = None) -> Tensor:
    """``obj`` as a Tensor; Python scalars take the dtype and device of ``like`` (no float64 promotion).

    >>> npgan.as_tensor(2.0, like=npgan.zeros(1, dtype="float64")).dtype
    dtype('float64')
    """
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, numbers.Number) and like is not None:
        xp = backend.get_array_module(like.data)
        dtype = like.dtype if backend.is_floating(like.dtype) or isinstance(obj, numbers.Integral) else None
        # full(), not asarray(): on CuPy a fill kernel takes the number as an argument, where asarray would
        # copy it from the host (a transfer, and a sync) for every scalar in every op.
        return Tensor(xp.full((), obj, dtype=dtype or backend.DEFAULT_DTYPE))
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

    The one exception to "backward is written with Tensor ops": fused ops on the hot path of every step
    may compute their gradient on raw arrays when no graph of the gradient is being recorded
    (``is_grad_enabled()`` is False inside backward unless ``create_graph=True``), and must then give the
    same formulas in Tensor ops when it is. Each such op has a plain composed version in
    ``npgan/reference.py``, and ``tests/test_reference.py`` proves the three equal, second derivatives
    included. The ops with two backwards:

    - ``BatchNorm`` (``ops/norm.py``), training-mode batch norm: ``reference.batch_norm_train``;
    - ``LinearGrad`` (``ops/linear.py``), the gradients of ``Linear`` and ``LinearLeakyReLU`` as one op:
      ``reference.linear`` and ``reference.linear_leaky_relu``.

    >>> class Square(Function):
    ...     def forward(self, x): return x * x
    ...     def backward(self, gy): return 2.0 * self.inputs[0] * gy   # d/dx x^2 = 2x
    >>> Square()(npgan.tensor([3.0], requires_grad=True))
    tensor([9.], dtype=float32, grad_fn=Square)
    """

    inputs: tuple = ()
    needs_input_grad: tuple = ()

    def __call__(self, *inputs):
        # The path every op takes, a few hundred times per training step (a few thousand for an unrolled
        # GAN's): kept to plain loops and attribute work.
        for x in inputs:
            if not isinstance(x, Tensor):
                like = _first_tensor(inputs)
                tensors = tuple(as_tensor(x, like=like) for x in inputs)
                break
        else:
            tensors = inputs
        if len(tensors) > 1 and backend.any_cupy_loaded():
            _check_same_device(tensors, type(self).__name__)
        outputs = self.forward(*[t.data for t in tensors])
        single = not isinstance(outputs, tuple)
        results = (_wrap(outputs),) if single else tuple([_wrap(y) for y in outputs])
        if _grad_enabled:
            for t in tensors:
                if t.requires_grad:  # record the call only when some input carries a gradient
                    self.inputs = tensors
                    self.needs_input_grad = tuple([t.requires_grad for t in tensors])
                    self._outputs = [weakref.ref(r) for r in results]
                    self._output_meta = [(r.data.shape, r.data.dtype) for r in results]
                    for index, r in enumerate(results):
                        r.creator, r.output_index = self, index
                        r.requires_grad = r.data.dtype.kind == "f"  # floating outputs carry gradients
                    break
        return results[0] if single else results

    def output(self, index: int = 0) -> Tensor:
        """The ``index``-th output Tensor of this call (held weakly; an error if it was freed before backward)."""
        out = self._outputs[index]()
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: its output was freed before backward")
        return out

    def forward(self, *arrays):
        """The op on raw arrays: ``forward(*arrays) -> array`` (or a tuple of arrays). Subclasses define it."""
        raise NotImplementedError

    def backward(self, *grad_outputs):
        """Gradients of the inputs from those of the outputs, with Tensor ops: one Tensor (or None) per input."""
        raise NotImplementedError(f"{type(self).__name__} is not differentiable")

    def _release(self) -> None:
        """Drop the inputs and saved arrays once backward has used them (``retain_graph=False``)."""
        self.__dict__.clear()
        self._released = True


def _wrap(array) -> Tensor:
    """A new Tensor around an op's output array, without ``Tensor.__init__``'s checks of user data."""
    t = Tensor.__new__(Tensor)
    t.data, t.grad, t.creator, t.output_index, t.name, t.requires_grad = array, None, None, 0, None, False
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


_FREED = ("trying to backward through the graph a second time (or after its buffers were freed); "
          "pass retain_graph=True to the first backward() or grad() call to keep them")


def _topological_order(roots, freed_message=_FREED):
    """Functions reachable from ``roots`` with every function after the creators of its inputs.

    An iterative depth-first post-order: no recursion, so a 50,000-op chain is fine. (Chainer and DeZero
    instead number each node with a "generation", one more than its inputs', and pop functions from a heap
    by it; a post-order of the reachable functions gives a valid order without storing any number.)
    Reaching a function whose buffers ``backward()`` freed raises RuntimeError(``freed_message``).
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
            raise RuntimeError(freed_message)
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


def _output_grads(fn, grads, keep):
    """The gradients of ``fn``'s outputs, taken out of ``grads`` (left there if in ``keep``): a tuple with a
    zero array for an output nothing downstream used, or None when no output has a gradient at all."""
    meta = fn._output_meta
    if len(meta) == 1:  # nearly every op
        k = (id(fn), 0)
        g = grads.get(k) if k in keep else grads.pop(k, None)
        return None if g is None else (g,)
    keys = [(id(fn), i) for i in range(len(meta))]
    if all(k not in grads for k in keys):
        return None
    gys = []
    for k, (shape, dtype) in zip(keys, meta):
        g = grads.get(k) if k in keep else grads.pop(k, None)
        if g is None:  # an output nothing downstream used: its gradient is zero
            xp = backend.get_array_module(*(x.data for x in fn.inputs))
            g = Tensor(xp.zeros(shape, dtype=dtype))
        gys.append(g)
    return tuple(gys)


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
        previous = grads.get(k)
        grads[k] = g if previous is None else previous + g

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
        wanted = {}  # id(fn) -> for each input, whether it leads to a target; False if none does
        for fn in order:  # creators of inputs come first
            leads = [key_of(x) in targets or (x.creator is not None and bool(wanted.get(id(x.creator))))
                     for x in fn.inputs]
            wanted[id(fn)] = leads if True in leads else False

    # Gradients of non-leaf inputs are returned, so they stay in ``grads`` once used.
    keep = {key_of(t) for t in inputs if t.creator is not None} if inputs is not None else set()
    with set_grad_enabled(create_graph):
        for fn in reversed(order):
            if wanted is not None and not wanted[id(fn)]:
                continue
            gys = _output_grads(fn, grads, keep)
            if gys is None:  # no output of fn reached the roots' gradients
                continue
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

    >>> x = npgan.tensor([3.0], requires_grad=True); npgan.grad((x ** 3).sum(), x)   # 3 x^2
    (tensor([27.], dtype=float32),)
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
    """A tensor of zeros of ``shape`` (ints or one tuple), float32 unless ``dtype`` says otherwise.

    >>> npgan.zeros(2, 3).shape, npgan.zeros((2, 3), dtype="float64").dtype
    ((2, 3), dtype('float64'))
    """
    return _filled(0, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ones of ``shape`` (ints or one tuple), float32 unless ``dtype`` says otherwise.

    >>> npgan.ones(2)
    tensor([1., 1.], dtype=float32)
    """
    return _filled(1, shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device=None, requires_grad=False) -> Tensor:
    """A tensor of ``shape`` (a tuple) filled with ``fill_value``.

    >>> npgan.full((2,), 0.9)
    tensor([0.9, 0.9], dtype=float32)
    """
    return _filled(fill_value, shape, dtype, device, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples from npgan's host generator (``npgan.manual_seed``).

    >>> npgan.manual_seed(0); npgan.randn(64, 100).shape     # a batch of DCGAN noise
    (64, 100)
    """
    data = backend.random_normal(_shape(shape), backend.host_dtype(dtype or backend.DEFAULT_DTYPE),
                                 device or "cpu")
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) from npgan's host generator.

    >>> float(npgan.rand(1000).max()) < 1.0
    True
    """
    data = backend.random_uniform(_shape(shape), 0.0, 1.0,
                                  backend.host_dtype(dtype or backend.DEFAULT_DTYPE), device or "cpu")
    return Tensor(data, requires_grad=requires_grad)


def _like(fn, t: Tensor, dtype, device, requires_grad):
    return fn(*t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Zeros with the shape, dtype and device of ``t`` (unless given): ``npgan.zeros_like(x)``."""
    return _like(zeros, t, dtype, device, requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Ones with the shape, dtype and device of ``t`` (unless given): ``npgan.ones_like(x)``."""
    return _like(ones, t, dtype, device, requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Standard normal samples with the shape, dtype and device of ``t``: ``npgan.randn_like(x)``."""
    return _like(randn, t, dtype, device, requires_grad)


def rand_like(t, dtype=None, device=None, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) with the shape, dtype and device of ``t``: ``npgan.rand_like(x)``."""
    return _like(rand, t, dtype, device, requires_grad)
