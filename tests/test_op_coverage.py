"""Every op npgan defines is in the gradient checks: every ``Function`` subclass appears in the graph of a
first-order case, and every op a gradient penalty differentiates twice in the graph of a second-order case.

Coverage is read from the case tables themselves (test_ops.py, test_ops_pool_norm.py): each case is run once
and the op classes of the graph it builds are recorded, so a case that stops using an op stops counting for it.
A second-order case (gradgradcheck) also checks the first derivatives of the ops in its gradient's graph
(``LeakyReLUGrad``, ``Conv2dGradWeight``, ...), so those count as first-order coverage.

The ops used under a gradient penalty are recorded too, not listed: the ops between the input and the score of
the critics a penalty is taken of (DCGAN's critic with each norm a penalty allows, each downsampling and label
conditioning; the toy MLP critic, plain, maxout and conditional). Only ops that depend on the input count: a
label embedding's backward is never differentiated by the penalty.
"""

import importlib
import pkgutil

import numpy as np
import pytest
import test_ops
import test_ops_pool_norm

import npgan
from npgan.autograd import Function
from npgan.gan.losses import gradient_penalty
from npgan.gan.models import DCGANDiscriminator, MLPDiscriminator

# Modules that need an optional dependency to import: {module: the dependency}. None today: even
# npgan.runtime.distributed imports mpi4py only when a communicator of several processes is made.
OPTIONAL = {}

# Ops without a derivative to check: {op class: the one-line reason}. None today.
EXEMPT = {}


def import_every_module():
    """Import every module of npgan; a module whose optional dependency is missing is skipped, anything else fails."""
    skipped = []
    for info in pkgutil.walk_packages(npgan.__path__, "npgan."):
        if info.name.endswith(".__main__"):  # a program: importing it runs it
            continue
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as error:
            if OPTIONAL.get(info.name) != (error.name or "").split(".")[0]:
                raise ImportError(f"{info.name} failed to import ({error}); if its dependency is optional, "
                                  f"add it to OPTIONAL in {__name__}") from error
            skipped.append(info.name)
    return skipped


def npgan_ops():
    import_every_module()
    found, stack = set(), list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.add(cls)
            stack.extend(cls.__subclasses__())
    return {cls for cls in found if cls.__module__.split(".")[0] == "npgan"}


def graph_ops(outputs, depends_on=None):
    """Op classes in the graph of ``outputs``; with ``depends_on`` (Tensors), only ops that depend on one of them."""
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    sources = {id(t) for t in depends_on or ()}
    functions, order, stack = {}, [], [t.creator for t in outputs if t.creator is not None]
    while stack:  # depth-first, then functions ordered so each comes after the creators of its inputs
        fn = stack.pop()
        if id(fn) in functions:
            continue
        functions[id(fn)] = fn
        order.append(fn)
        stack.extend(x.creator for x in fn.inputs if x.creator is not None)
    depends = {}

    def reaches(fn):
        if id(fn) not in depends:
            depends[id(fn)] = False  # no cycles in a graph; this only guards repeated visits
            depends[id(fn)] = any(id(x) in sources or (x.creator is not None and reaches(x.creator))
                                  for x in fn.inputs)
        return depends[id(fn)]

    return {type(fn) for fn in order if depends_on is None or reaches(fn)}


def first_and_second_order_tables():
    """(fn, inputs) of every first-order case and of every second-order case, inputs on the CPU."""
    first = [(p.values[0], test_ops.make_inputs(p.values[1], "cpu")) for p in test_ops.CASES]
    first += [(p.values[0], [test_ops_pool_norm.leaf(p.values[1])]) for p in test_ops_pool_norm.FIRST_ORDER]
    second = [(p.values[0], test_ops.make_inputs(p.values[1], "cpu")) for p in test_ops.GRADGRAD_CASES]
    second += [(p.values[0], [test_ops_pool_norm.leaf(p.values[1])]) for p in test_ops_pool_norm.SECOND_ORDER]
    return first, second


def checked_ops():
    """(ops whose first derivatives the cases check, ops whose second derivatives they check)."""
    first_tables, second_tables = first_and_second_order_tables()
    first, second = set(), set()
    for fn, inputs in first_tables:
        first |= graph_ops(fn(*inputs))
    for fn, inputs in second_tables:
        outputs = fn(*inputs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        second |= graph_ops(outputs)
        wanted = [x for x in inputs if x.requires_grad]
        # as gradgradcheck: the output weights require grad, so ops linear in them (AvgPool2dGrad) are recorded
        weights = [npgan.tensor(np.ones(o.shape), dtype=o.dtype, requires_grad=True) for o in outputs]
        grads = npgan.grad(list(outputs), wanted, grad_outputs=weights, create_graph=True, allow_unused=True)
        first |= second | graph_ops([g for g in grads if g is not None])
    return first, second


def critics():
    yield "mlp", MLPDiscriminator((2,), (8, 8)), (4, 2), None
    yield "mlp-maxout", MLPDiscriminator((2,), (8, 8), maxout=3), (4, 2), None
    yield "mlp-conditional", MLPDiscriminator((2,), (8,), num_classes=3), (4, 2), [0, 2, 1, 0]
    for norm in (None, "layer", "instance"):
        for downsample in ("strided", "avgpool"):
            yield (f"dcgan-{norm}-{downsample}", DCGANDiscriminator(4, 1, 28, norm=norm, downsample=downsample),
                   (2, 1, 28, 28), None)
    for cond in ("embed", "channel"):
        yield (f"dcgan-conditional-{cond}", DCGANDiscriminator(4, 1, 28, 3, norm=None, cond=cond),
               (2, 1, 28, 28), [2, 0])


def ops_under_a_gradient_penalty():
    """Op classes between a critic's input and its score, for every critic a gradient penalty is taken of."""
    ops = set()
    for _, critic, shape, labels in critics():
        x = npgan.randn(*shape, requires_grad=True)
        score = critic(x) if labels is None else critic(x, npgan.tensor(labels))
        ops |= graph_ops(score, depends_on=[x])
    return ops


def names(classes):
    return sorted(f"{cls.__module__}.{cls.__qualname__}" for cls in classes)


def test_every_npgan_module_imports_or_names_the_optional_dependency_it_lacks():
    skipped = import_every_module()
    assert set(skipped) <= set(OPTIONAL)


def test_the_op_finder_sees_ops_of_every_ops_module():
    found = {cls.__name__ for cls in npgan_ops()}
    assert {"Add", "Conv2d", "BatchNorm", "LeakyReLUGrad", "AvgPool2d", "Linear", "Cast", "ToDevice", "Copy"} <= found


def test_the_graph_walk_records_the_ops_a_function_builds():
    x = npgan.randn(3, requires_grad=True)
    assert {cls.__name__ for cls in graph_ops((x * x).sum())} == {"Mul", "Sum"}
    y = npgan.randn(3)
    assert {cls.__name__ for cls in graph_ops((x + y.exp()).sum(), depends_on=[x])} == {"Add", "Sum"}


def test_every_op_is_in_a_first_order_gradient_check():
    first, _ = checked_ops()
    missing = npgan_ops() - first - set(EXEMPT)
    assert not missing, f"ops in no first-order gradient-check case (tests/test_ops.py CASES): {names(missing)}"


def test_every_op_under_a_gradient_penalty_is_in_a_second_order_gradient_check():
    _, second = checked_ops()
    penalty = ops_under_a_gradient_penalty()
    missing = penalty - second - set(EXEMPT)
    assert not missing, (f"ops a gradient penalty differentiates twice that are in no second-order case "
                         f"(tests/test_ops.py GRADGRAD_CASES): {names(missing)}")


@pytest.mark.parametrize("name, critic, shape, labels", [pytest.param(*c, id=c[0]) for c in critics()])
def test_each_critic_has_a_penalty_graph_to_record(name, critic, shape, labels):
    x = npgan.randn(*shape, requires_grad=True)
    score = critic(x) if labels is None else critic(x, npgan.tensor(labels))
    assert graph_ops(score, depends_on=[x])
    penalty = gradient_penalty(critic, x.detach(), x.detach() * 0.5, None if labels is None else npgan.tensor(labels))
    assert np.isfinite(penalty.item())
