"""Forward values and gradients of every core op against PyTorch, where PyTorch is installed.

Finite differences cannot catch a forward pass that is wrong in a self-consistent way (its gradient
then matches its own wrong values); PyTorch is an independent reference. Inputs are float64 with a
fixed seed, in the same smooth domains as test_ops.py.

Tolerance: rtol 1e-10. Both libraries compute the same formulas in float64 (unit roundoff 1.1e-16),
only in a different order or form (e.g. our sigmoid is 0.5 + 0.5 tanh(x/2)), so they agree to ~1e-15
relative; 1e-10 leaves room for a few hundred roundings. atol 1e-12 covers elements that are zero up
to cancellation (a gradient summed from terms of size ~1), where a relative error means nothing.
"""

from functools import partial

import numpy as np
import pytest

import npgan
import npgan.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {"rtol": 1e-10, "atol": 1e-12}

DOMAINS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "positive": lambda rng, shape: rng.uniform(0.5, 2.0, shape),
    "nonzero": lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 1.5, shape),
    "unit": lambda rng, shape: rng.uniform(0.1, 0.9, shape),
}


def spec(arg):
    """A shape, or (shape, domain), or (shape, domain, requires_grad) -> (shape, domain, requires_grad)."""
    if all(isinstance(s, int) for s in arg):
        return arg, "normal", True
    shape, domain, *grad = arg
    return shape, domain, grad[0] if grad else True


def case(name, ours, theirs, *args):
    return pytest.param(ours, theirs or ours, [spec(a) for a in args], id=name)


def same(name, fn, *args):
    """An op spelled the same way for npgan and torch tensors."""
    return case(name, fn, None, *args)


def dims(axis, ndim):
    return tuple(range(ndim)) if axis is None else axis


def torch_reduction(op, axis, keepdims):
    def reduce(x):
        return op(x, dim=dims(axis, x.ndim), keepdim=keepdims)
    return reduce


def torch_cross_entropy(logits, reduction):
    return TF.cross_entropy(logits, torch.tensor([0, 3, 1]), reduction=reduction)


def ours_cross_entropy(logits, reduction):
    return F.cross_entropy(logits, np.array([0, 3, 1]), reduction=reduction)


S34, S234 = (3, 4), (2, 3, 4)
POS, NONZERO, UNIT = "positive", "nonzero", "unit"
REDUCTIONS = ("mean", "sum", "none")
BINARY_SHAPES = [(S34, S34), ((3, 1), (1, 4)), (S234, (4,)), ((), (2, 3))]

CASES = [
    *[same(f"add-{a}-{b}", lambda x, y: x + y, a, b) for a, b in BINARY_SHAPES],
    *[same(f"sub-{a}-{b}", lambda x, y: x - y, a, b) for a, b in BINARY_SHAPES],
    *[same(f"mul-{a}-{b}", lambda x, y: x * y, a, b) for a, b in BINARY_SHAPES],
    *[same(f"div-{a}-{b}", lambda x, y: x / y, a, (b, NONZERO)) for a, b in BINARY_SHAPES],
    same("scalar-arithmetic", lambda x: (2.0 - x) * 3.0 / 4.0 + 1.0, S34),
    same("rdiv-scalar", lambda x: 2.0 / x, (S34, NONZERO)),
    same("pow-2", lambda x: x ** 2, S34),
    same("pow-3", lambda x: x ** 3, S34),
    same("pow-0.5", lambda x: x ** 0.5, (S34, POS)),
    same("pow-minus-1.5", lambda x: x ** -1.5, (S34, POS)),
    same("pow-tensor-exponent", lambda x, y: x ** y, (S34, POS), (4,)),
    same("rpow-scalar-base", lambda x: 2.0 ** x, S34),
    same("matmul-2d", lambda a, b: a @ b, (3, 4), (4, 2)),
    same("matmul-batched", lambda a, b: a @ b, (2, 3, 4), (2, 4, 5)),
    same("matmul-broadcast-batch", lambda a, b: a @ b, (2, 1, 3, 4), (3, 4, 2)),
    same("matmul-1d-2d", lambda a, b: a @ b, (4,), (4, 3)),
    same("matmul-2d-1d", lambda a, b: a @ b, (3, 4), (4,)),
    same("matmul-1d-1d", lambda a, b: a @ b, (4,), (4,)),
    same("neg", lambda x: -x, S34),
    case("exp", F.exp, torch.exp, S34),
    case("log", F.log, torch.log, (S34, POS)),
    case("sqrt", F.sqrt, torch.sqrt, (S34, POS)),
    case("abs", F.abs, torch.abs, (S34, NONZERO)),
    case("clip", partial(F.clip, min=-0.5, max=0.5), partial(torch.clamp, min=-0.5, max=0.5), S34),
    *[case(f"{name}-axis{axis}-keepdims{keep}", partial(ours, axis=axis, keepdims=keep),
           torch_reduction(theirs, axis, keep), S234)
      for name, ours, theirs in [("sum", F.sum, torch.sum), ("mean", F.mean, torch.mean), ("max", F.max, torch.amax),
                                 ("min", F.min, torch.amin), ("var", F.var, torch.var), ("std", F.std, torch.std)]
      for axis in [None, 0, -1, (0, 2)]
      for keep in [False, True]],
    same("reshape", lambda x: x.reshape(4, 6), S234),
    same("view", lambda x: x.view(6, 4), S234),
    case("flatten", F.flatten, torch.flatten, S234),
    case("flatten-from-1", partial(F.flatten, start_dim=1), partial(torch.flatten, start_dim=1), S234),
    same("transpose-2d", lambda x: x.T, S34),
    same("transpose-0-1-on-2d", lambda x: x.transpose(0, 1), S34),
    same("transpose-swap", lambda x: x.transpose(0, 2), S234),
    same("permute", lambda x: x.permute(1, 2, 0), S234),
    same("squeeze", lambda x: x.squeeze(), (2, 1, 3, 1)),
    same("unsqueeze", lambda x: x.unsqueeze(1), (2, 3)),
    same("getitem-slices", lambda x: x[1:, ::2], S34),
    same("getitem-ints", lambda x: x[-1, 1:3], S34),
    case("getitem-negative-steps", lambda x: x[::-1, ::-2], lambda x: x.flip(0).flip(1)[:, ::2], S34),
    same("getitem-newaxis", lambda x: x[..., None, 0], S234),
    same("getitem-repeated-indices", lambda x: x[[0, 2, 0, 0]], S34),
    same("getitem-repeated-index-pairs", lambda x: x[[0, 1, 0], [2, 2, 2]], S34),
    case("concatenate", lambda a, b: F.concatenate([a, b], axis=1), lambda a, b: torch.cat([a, b], dim=1),
         (2, 1), (2, 3)),
    case("stack", lambda a, b: F.stack([a, b], axis=1), lambda a, b: torch.stack([a, b], dim=1), S34, S34),
    case("pad", lambda x: F.pad(x, ((1, 2), (0, 1)), value=0.5), lambda x: TF.pad(x, (0, 1, 1, 2), value=0.5),
         (2, 3)),
    case("where", lambda c, a, b: F.where(c.data > 0, a, b), lambda c, a, b: torch.where(c > 0, a, b),
         (S34, "normal", False), (3, 1), (4,)),
    case("maximum", F.maximum, torch.maximum, (3, 1), (4,)),
    case("minimum", F.minimum, torch.minimum, S34, S34),
    case("relu", F.relu, torch.relu, (S34, NONZERO)),
    case("leaky_relu", partial(F.leaky_relu, negative_slope=0.2), partial(TF.leaky_relu, negative_slope=0.2),
         (S34, NONZERO)),
    case("leaky_relu-default-slope", F.leaky_relu, TF.leaky_relu, (S34, NONZERO)),
    case("tanh", F.tanh, torch.tanh, S34),
    case("sigmoid", F.sigmoid, torch.sigmoid, S34),
    case("softplus", F.softplus, TF.softplus, S34),
    case("log_sigmoid", F.log_sigmoid, TF.logsigmoid, S34),
    *[case(f"binary_cross_entropy_with_logits-{r}", partial(F.binary_cross_entropy_with_logits, reduction=r),
           partial(TF.binary_cross_entropy_with_logits, reduction=r), S34, (S34, UNIT)) for r in REDUCTIONS],
    *[case(f"binary_cross_entropy-{r}", partial(F.binary_cross_entropy, reduction=r),
           partial(TF.binary_cross_entropy, reduction=r), (S34, UNIT), (S34, UNIT)) for r in REDUCTIONS],
    *[case(f"mse_loss-{r}", partial(F.mse_loss, reduction=r), partial(TF.mse_loss, reduction=r), S34, S34)
      for r in REDUCTIONS],
    case("log_softmax", F.log_softmax, partial(TF.log_softmax, dim=-1), S34),
    case("log_softmax-axis0", partial(F.log_softmax, axis=0), partial(TF.log_softmax, dim=0), S34),
    case("softmax", F.softmax, partial(TF.softmax, dim=-1), S34),
    *[case(f"cross_entropy-{r}", partial(ours_cross_entropy, reduction=r), partial(torch_cross_entropy, reduction=r),
           S34) for r in REDUCTIONS],
]


@pytest.mark.parametrize("ours, theirs, specs", CASES)
def test_forward_and_gradients_match_pytorch(ours, theirs, specs):
    rng = np.random.default_rng(0)
    arrays = [DOMAINS[domain](rng, shape) for shape, domain, _ in specs]
    wanted = [i for i, (_, _, grad) in enumerate(specs) if grad]

    xs = [npgan.tensor(a, requires_grad=g) for a, (_, _, g) in zip(arrays, specs)]
    y = ours(*xs)
    ts = [torch.tensor(a, requires_grad=g) for a, (_, _, g) in zip(arrays, specs)]
    yt = theirs(*ts)

    assert y.dtype == np.float64
    assert y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **TOL)

    weights = rng.standard_normal(y.shape)  # d(sum(w * y))/dx checks every output's gradient at once
    grads = npgan.grad(y, [xs[i] for i in wanted], grad_outputs=npgan.tensor(weights))
    expected = torch.autograd.grad(yt, [ts[i] for i in wanted], grad_outputs=torch.tensor(weights))
    for i, g, gt in zip(wanted, grads, expected):
        assert g.shape == xs[i].shape, f"gradient of input {i}"
        np.testing.assert_allclose(g.numpy(), gt.numpy(), **TOL, err_msg=f"gradient of input {i}")
