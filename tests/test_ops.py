"""Every core op's gradient, first and second order, against central differences (npgan/ops/).

Each op runs through ``npgan.gradcheck`` in float64 on small random inputs, on the ``--backend``
device, with broadcasting where the op broadcasts. Inputs are drawn from a domain where the op is
smooth: ``log`` sees positive numbers, ``abs``/``relu`` stay away from 0, ``clip`` away from its bounds,
``max``/``min`` get continuous random values (no ties). Forward values are checked against NumPy here
and against PyTorch in test_torch_ops.py.

Tolerance: atol 1e-8, rtol 1e-6, tighter than gradcheck's defaults (PyTorch's 1e-5 / 1e-3). Central
differences with eps 1e-6 in float64 err by ~eps^2 (truncation) plus ~1e-16 / eps (rounding), about
1e-10 for these O(1) functions; every case still passes at ten times tighter tolerances.

A case may pass its own options to the checker: the casts to float32 take eps = 2^-10 on inputs that are
multiples of 2^-8 (the "float32" domain), so x +- eps is exact in float32 and the check stays exact.
Every ``Function`` of npgan must appear in these tables (tests/test_op_coverage.py reads them).
"""

from collections import namedtuple
from functools import partial

import numpy as np
import pytest

import npgan
import npgan.functional as F
from npgan.runtime.distributed import Communicator, SyncBatchNormFunction

TOL = {"atol": 1e-8, "rtol": 1e-6}
Arg = namedtuple("Arg", "shape domain grad", defaults=("normal", True))


def _away_from_bounds(rng, shape):
    """Uniform in [-1.5, 1.5], nudged at least 0.1 away from the clip bounds -0.5 and 0.5."""
    x = rng.uniform(-1.5, 1.5, shape)
    return np.where(np.abs(np.abs(x) - 0.5) < 0.1, x * 1.5, x)


DOMAINS = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "positive": lambda rng, shape: rng.uniform(0.5, 2.0, shape),
    "nonzero": lambda rng, shape: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 1.5, shape),
    "unit": lambda rng, shape: rng.uniform(0.1, 0.9, shape),
    "clip": _away_from_bounds,
    "float32": lambda rng, shape: rng.integers(-512, 513, shape) / 256.0,  # exact in float32, as is x +- 2^-10
}


def make_inputs(args, device, seed=0):
    rng = np.random.default_rng(seed)
    return [
        npgan.tensor(np.asarray(DOMAINS[a.domain](rng, a.shape), dtype=np.float64), requires_grad=a.grad,
                     device=device)
        for a in args
    ]


def case(name, fn, *args, **check):
    """One gradient check: ``fn`` on inputs drawn as ``args`` describe; ``check``: options for the checker."""
    return pytest.param(fn, args, check, id=name)


def sync_batch_norm_of_one_rank(x, weight, bias):
    """Synchronised batch norm in a world of one process: the global batch is the local one."""
    return SyncBatchNormFunction(Communicator(), 1e-5)(x, weight, bias)


def cross_entropy_with_labels(logits, reduction):
    labels = npgan.tensor([0, 3, 1]).to(logits.device)
    return F.cross_entropy(logits, labels, reduction=reduction)


A = Arg
REDUCTIONS = ("mean", "sum", "none")
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (2, 3)), ((2, 1), ())]

CASES = [
    *[case(f"{name}-{sa}-{sb}", fn, A(sa), A(sb, dom))
      for name, fn, dom in [("add", F.add, "normal"), ("sub", F.sub, "normal"), ("mul", F.mul, "normal"),
                            ("div", F.div, "positive"), ("add-operator", lambda a, b: a + b, "normal"),
                            ("sub-operator", lambda a, b: a - b, "normal"),
                            ("mul-operator", lambda a, b: a * b, "normal"),
                            ("div-operator", lambda a, b: a / b, "nonzero")]
      for sa, sb in BINARY_SHAPES],
    case("add-python-scalar", lambda x: 2.5 + x, A((3,))),
    case("rsub-python-scalar", lambda x: 1.0 - x, A((3,))),
    case("mul-python-scalar", lambda x: x * -3.0, A((3,))),
    case("div-by-python-scalar", lambda x: x / 4.0, A((3,))),
    case("rdiv-python-scalar", lambda x: 2.0 / x, A((3,), "nonzero")),
    case("pow-2", lambda x: x ** 2, A((2, 3))),
    case("pow-3", lambda x: x ** 3, A((2, 3))),
    case("pow-0.5", lambda x: x ** 0.5, A((2, 3), "positive")),
    case("pow-minus-1.5", lambda x: x ** -1.5, A((2, 3), "positive")),
    case("pow-minus-1", lambda x: F.pow(x, -1), A((2, 3), "nonzero")),
    case("pow-tensor-exponent", F.pow, A((2, 3), "positive"), A((2, 3))),
    case("pow-tensor-exponent-broadcast", F.pow, A((2, 3), "positive"), A((3,))),
    case("rpow-python-base", lambda x: 2.0 ** x, A((2, 3))),
    case("matmul-2d", F.matmul, A((3, 4)), A((4, 2))),
    case("matmul-batched", F.matmul, A((2, 3, 4)), A((2, 4, 5))),
    case("matmul-broadcast-batch", F.matmul, A((2, 1, 3, 4)), A((3, 4, 2))),
    case("matmul-batched-by-2d", lambda a, b: a @ b, A((2, 3, 4)), A((4, 2))),
    case("matmul-1d-by-2d", F.matmul, A((4,)), A((4, 3))),
    case("matmul-2d-by-1d", F.matmul, A((3, 4)), A((4,))),
    case("matmul-1d-by-1d", F.matmul, A((4,)), A((4,))),
    case("matmul-1d-by-batched", F.matmul, A((3,)), A((2, 3, 2))),
    case("neg", F.neg, A((2, 3))),
    case("exp", F.exp, A((2, 3))),
    case("log", F.log, A((2, 3), "positive")),
    case("sqrt", F.sqrt, A((2, 3), "positive")),
    case("abs", F.abs, A((2, 3), "nonzero")),
    case("clip", lambda x: F.clip(x, -0.5, 0.5), A((3, 4), "clip")),
    case("clamp-min-only", lambda x: F.clamp(x, min=-0.5), A((3, 4), "clip")),
    case("clamp-max-only", lambda x: x.clamp(max=0.5), A((3, 4), "clip")),
    *[case(f"{name}-axis{axis}-keepdims{keep}", partial(op, axis=axis, keepdims=keep), A((2, 3, 4)))
      for name, op in [("sum", F.sum), ("mean", F.mean), ("max", F.max), ("min", F.min), ("var", F.var),
                       ("std", F.std)]
      for axis in [None, 0, -1, (0, 2)]
      for keep in [False, True]],
    case("var-population", lambda x: F.var(x, axis=1, correction=0), A((3, 4))),
    case("sum-dim-keepdim-torch-names", lambda x: x.sum(dim=1, keepdim=True), A((3, 4))),
    case("reshape", lambda x: x.reshape(4, 6), A((2, 3, 4))),
    case("reshape-minus-one", lambda x: F.reshape(x, (-1, 2)), A((2, 3, 4))),
    case("view", lambda x: x.view(6, 4), A((2, 3, 4))),
    case("flatten", F.flatten, A((2, 3, 4))),
    case("flatten-from-1", lambda x: F.flatten(x, 1), A((2, 3, 4))),
    case("transpose-2d", lambda x: x.T, A((3, 4))),
    case("transpose-swap-two-dims", lambda x: x.transpose(0, 2), A((2, 3, 4))),
    case("transpose-permutation", lambda x: F.transpose(x, (2, 0, 1)), A((2, 3, 4))),
    case("permute", lambda x: x.permute(1, 2, 0), A((2, 3, 4))),
    case("squeeze", lambda x: x.squeeze(), A((2, 1, 3, 1))),
    case("squeeze-axis", lambda x: F.squeeze(x, 1), A((2, 1, 3))),
    case("unsqueeze", lambda x: x.unsqueeze(1), A((2, 3))),
    case("unsqueeze-last", lambda x: F.unsqueeze(x, -1), A((2, 3))),
    case("getitem-slice", lambda x: x[1:, ::2], A((3, 4))),
    case("getitem-int", lambda x: x[1], A((3, 4))),
    case("getitem-negative-int-and-slice", lambda x: x[-1, 1:3], A((3, 4))),
    case("getitem-negative-steps", lambda x: x[::-1, ::-2], A((3, 4))),
    case("getitem-ellipsis-newaxis", lambda x: x[..., None, 0], A((2, 3, 4))),
    case("getitem-int-array", lambda x: x[[2, 0]], A((3, 4))),
    case("getitem-repeated-indices", lambda x: x[[0, 2, 0, 0]], A((3, 4))),
    case("getitem-repeated-index-pairs", lambda x: x[[0, 1, 0], [2, 2, 2]], A((3, 4))),
    case("getitem-slice-and-repeated-indices", lambda x: x[:, [1, 1, 3]], A((3, 4))),
    case("concatenate-axis0", lambda a, b: F.concatenate([a, b]), A((2, 3)), A((1, 3))),
    case("concatenate-axis1", lambda a, b, c: F.concatenate([a, b, c], axis=1), A((2, 1)), A((2, 3)), A((2, 2))),
    case("cat-negative-axis", lambda a, b: npgan.cat([a, b], axis=-1), A((2, 2, 1)), A((2, 2, 2))),
    case("concatenate-with-a-constant", lambda a, b: F.concatenate([a, b]), A((2, 3)), A((2, 3), grad=False)),
    case("stack-axis0", lambda a, b: F.stack([a, b]), A((2, 3)), A((2, 3))),
    case("pack", lambda a, b, c: F.pack([a, b, c]), A((2, 3)), A((4,)), A(())),
    case("pack-with-a-constant", lambda a, b: F.pack([a, b]), A((2, 2)), A((3,), grad=False)),
    case("unpack", lambda x: F.pack([p * (i + 1.0) for i, p in enumerate(F.unpack(x, [(2, 2), (3,), ()]))]), A((8,))),
    case("unpack-some-pieces-unused", lambda x: F.unpack(x, [(2,), (3, 1), (2,)])[1], A((7,))),
    case("stack-axis-last", lambda a, b: npgan.stack([a, b], axis=-1), A((2, 3)), A((2, 3))),
    case("pad", lambda x: F.pad(x, ((1, 2), (0, 1))), A((2, 3))),
    case("pad-int-with-value", lambda x: F.pad(x, 1, value=0.5), A((2, 3))),
    case("where", lambda c, a, b: F.where(c.data > 0, a, b), A((3, 4), grad=False), A((3, 1)), A((4,))),
    case("where-scalar-branch", lambda c, a: npgan.where(c.data > 0, a, 0.0), A((3, 4), grad=False), A((3, 4))),
    case("maximum", F.maximum, A((3, 4)), A((3, 4))),
    case("maximum-broadcast", F.maximum, A((3, 1)), A((4,))),
    case("minimum", F.minimum, A((3, 4)), A((3, 4))),
    case("minimum-broadcast", F.minimum, A((2, 3)), A(())),
    case("relu", F.relu, A((3, 4), "nonzero")),
    case("leaky_relu", F.leaky_relu, A((3, 4), "nonzero")),
    case("leaky_relu-0.2", lambda x: F.leaky_relu(x, 0.2), A((3, 4), "nonzero")),
    case("tanh", F.tanh, A((3, 4))),
    case("sigmoid", F.sigmoid, A((3, 4))),
    case("softplus", F.softplus, A((3, 4))),
    case("log_sigmoid", F.log_sigmoid, A((3, 4))),
    *[case(f"binary_cross_entropy_with_logits-{r}", partial(F.binary_cross_entropy_with_logits, reduction=r),
           A((3, 4)), A((3, 4), "unit")) for r in REDUCTIONS],
    case("binary_cross_entropy_with_logits-broadcast-target",
         F.binary_cross_entropy_with_logits, A((3, 4)), A((4,), "unit")),
    *[case(f"binary_cross_entropy-{r}", partial(F.binary_cross_entropy, reduction=r),
           A((3, 4), "unit"), A((3, 4), "unit")) for r in REDUCTIONS],
    *[case(f"mse_loss-{r}", partial(F.mse_loss, reduction=r), A((3, 4)), A((3, 4))) for r in REDUCTIONS],
    case("log_softmax", F.log_softmax, A((3, 4))),
    case("log_softmax-axis0", lambda x: F.log_softmax(x, axis=0), A((3, 4))),
    case("softmax", F.softmax, A((3, 4))),
    case("softmax-axis0", lambda x: F.softmax(x, 0), A((3, 4))),
    *[case(f"cross_entropy-{r}", partial(cross_entropy_with_labels, reduction=r), A((3, 4))) for r in REDUCTIONS],
    case("cast-to-float32", lambda x: F.cast(x, "float32"), A((2, 3), "float32"), eps=2.0 ** -10),
    case("cast-to-float32-and-back", lambda x: F.cast(F.cast(x, "float32") * 2.0, "float64"), A((2, 3), "float32"),
         eps=2.0 ** -10),
    case("cast-to-its-own-dtype", lambda x: F.cast(x, "float64") * x, A((2, 3))),
    case("double", lambda x: F.cast(x, "float32").double(), A((2, 3), "float32"), eps=2.0 ** -10),
    case("to_device-cpu", lambda x: F.to_device(x, "cpu") * 2.0, A((2, 3))),
    case("to_device-cpu-and-back", lambda x: F.to_device(F.to_device(x, "cpu") * x.cpu(), x.device), A((2, 3))),
    case("copy", lambda x: F.copy(x) * x, A((2, 3))),
    case("clone", lambda x: x.clone(), A((2, 3))),
    case("linear", F.linear, A((3, 4)), A((2, 4)), A((2,))),
    case("linear-no-bias", F.linear, A((3, 4)), A((2, 4))),
    case("linear_leaky_relu", lambda x, w, b: F.linear_leaky_relu(x, w, b, 0.2), A((3, 4)), A((2, 4)), A((2,))),
    case("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), A((2, 3, 5, 5)), A((4, 3, 3, 3)),
         A((4,))),
    case("conv2d-no-bias-stride1", F.conv2d, A((1, 2, 4, 3)), A((3, 2, 2, 2))),
    case("conv_transpose2d", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
         A((2, 3, 3, 3)), A((3, 2, 4, 4)), A((2,))),
    case("conv2d_grad_weight", lambda x, gy: F.conv2d_grad_weight(x, gy, (3, 3), stride=2, padding=1),
         A((2, 3, 5, 5)), A((2, 4, 3, 3))),
    case("batch_norm-training", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
         A((4, 3)), A((3,)), A((3,))),
    case("batch_norm-training-images", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
         A((2, 3, 2, 2)), A((3,)), A((3,))),
    case("sync_batch_norm-one-rank", sync_batch_norm_of_one_rank, A((2, 3, 2, 2)), A((3,)), A((3,))),
]


@pytest.mark.parametrize("fn, args, check", CASES)
def test_gradient_matches_finite_differences(fn, args, check, device):
    inputs = make_inputs(args, device)
    assert npgan.gradcheck(fn, inputs, **{**TOL, **check})


# Second derivatives: the ops a WGAN-GP gradient penalty differentiates twice.
GRADGRAD_CASES = [
    case("add-broadcast", F.add, A((2, 1)), A((3,))),
    case("sub-broadcast", F.sub, A((2, 3)), A((3,))),
    case("mul-broadcast", F.mul, A((2, 3)), A((3,))),
    case("div", F.div, A((2, 3)), A((2, 3), "positive")),
    case("pow-2", lambda x: x ** 2, A((2, 3))),
    case("pow-3", lambda x: x ** 3, A((2, 3))),
    case("pow-0.5", lambda x: x ** 0.5, A((2, 3), "positive")),
    case("pow-tensor-exponent", F.pow, A((2, 2), "positive"), A((2, 2))),
    case("sqrt", F.sqrt, A((2, 3), "positive")),
    case("matmul", F.matmul, A((2, 3)), A((3, 2))),
    case("matmul-batched-by-2d", F.matmul, A((2, 2, 3)), A((3, 2))),
    case("sum", lambda x: (x * x).sum(axis=1), A((2, 3))),
    case("mean", lambda x: (x * x).mean(axis=0, keepdims=True), A((2, 3))),
    case("leaky_relu", lambda x: F.leaky_relu(x, 0.2) * x, A((2, 3), "nonzero")),
    case("relu", lambda x: F.relu(x) * x, A((2, 3), "nonzero")),
    case("tanh", F.tanh, A((2, 3))),
    case("sigmoid", F.sigmoid, A((2, 3))),
    case("softplus", F.softplus, A((2, 3))),
    case("reshape", lambda x: (x * x).reshape(3, 2), A((2, 3))),
    case("transpose", lambda x: (x * x).T, A((2, 3))),
    case("getitem", lambda x: (x * x)[[0, 1, 0], ::-1], A((2, 3))),
    case("concatenate", lambda a, b: F.concatenate([a * a, b], axis=1), A((2, 1)), A((2, 2))),
    case("pack", lambda a, b: F.pack([a * a, b]), A((2, 2)), A((3,))),
    case("unpack", lambda x: F.pack([p * p for p in F.unpack(x, [(2, 2), (3,)])]), A((7,))),
    case("pad", lambda x: F.pad(x * x, ((1, 0), (0, 2))), A((2, 2))),
    case("var", lambda x: F.var(x, axis=1), A((2, 3))),
    case("exp", F.exp, A((2, 3))),
    case("log", F.log, A((2, 3), "positive")),
    case("max", lambda x: F.max(x * x, axis=1), A((2, 3))),
    case("maxout-like", lambda x: F.max((x * x).reshape(2, 2, 2), axis=-1), A((2, 4))),
    case("linear", lambda x, w, b: F.linear(x * x, w, b), A((2, 3)), A((2, 3)), A((2,))),
    case("linear_leaky_relu", lambda x, w, b: F.linear_leaky_relu(x, w, b, 0.2) ** 2, A((2, 3)), A((2, 3)), A((2,))),
    case("conv2d", lambda x, w: F.conv2d(x * x, w, stride=2, padding=1), A((1, 2, 3, 3)), A((2, 2, 3, 3))),
    case("conv_transpose2d", lambda x, w: F.conv_transpose2d(x * x, w, stride=2, padding=1),
         A((1, 2, 2, 2)), A((2, 1, 3, 3))),
    case("batch_norm-training", lambda x: F.batch_norm(x, None, None, training=True), A((3, 2))),
    case("cast", lambda x: F.cast(x * x, "float64"), A((2, 3))),
    case("to_device", lambda x: F.to_device(F.to_device(x * x, "cpu") * x.cpu(), x.device), A((2, 3))),
    case("copy", lambda x: F.copy(x * x) * x, A((2, 3))),
]


@pytest.mark.parametrize("fn, args, check", GRADGRAD_CASES)
def test_second_derivative_matches_finite_differences(fn, args, check, device):
    inputs = make_inputs(args, device)
    assert npgan.gradgradcheck(fn, inputs, **{**TOL, **check})


# -- forward values against NumPy ----------------------------------------------------------------------

FORWARD = [
    ("add", lambda a, b: a + b, np.add),
    ("sub", lambda a, b: a - b, np.subtract),
    ("mul", lambda a, b: a * b, np.multiply),
    ("div", lambda a, b: a / b, np.divide),
    ("pow", F.pow, lambda a, b: np.abs(a) ** b),
    ("maximum", F.maximum, np.maximum),
    ("minimum", F.minimum, np.minimum),
    ("exp", lambda a, b: F.exp(a), lambda a, b: np.exp(a)),
    ("log", lambda a, b: F.log(F.abs(a)), lambda a, b: np.log(np.abs(a))),
    ("sqrt", lambda a, b: F.sqrt(F.abs(a)), lambda a, b: np.sqrt(np.abs(a))),
    ("clip", lambda a, b: F.clip(a, -0.5, 0.5), lambda a, b: np.clip(a, -0.5, 0.5)),
    ("relu", lambda a, b: F.relu(a), lambda a, b: np.maximum(a, 0.0)),
    ("leaky_relu", lambda a, b: F.leaky_relu(a, 0.2), lambda a, b: np.where(a > 0, a, 0.2 * a)),
    ("tanh", lambda a, b: F.tanh(a), lambda a, b: np.tanh(a)),
    ("sigmoid", lambda a, b: F.sigmoid(a), lambda a, b: 1.0 / (1.0 + np.exp(-a))),
    ("softplus", lambda a, b: F.softplus(a), lambda a, b: np.log1p(np.exp(a))),
    ("log_sigmoid", lambda a, b: F.log_sigmoid(a), lambda a, b: -np.log1p(np.exp(-a))),
    ("softmax", lambda a, b: F.softmax(a), lambda a, b: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    ("log_softmax", lambda a, b: F.log_softmax(a, 0), lambda a, b: a - np.log(np.exp(a).sum(0, keepdims=True))),
    ("var", lambda a, b: F.var(a, 1), lambda a, b: np.var(a, 1, ddof=1)),
    ("std", lambda a, b: F.std(a), lambda a, b: np.std(a, ddof=1)),
    ("max", lambda a, b: F.max(a, 0), lambda a, b: np.max(a, 0)),
    ("min", lambda a, b: a.min(axis=(0, 1)), lambda a, b: np.min(a)),
    ("mse_loss", F.mse_loss, lambda a, b: np.mean((a - b) ** 2)),
    ("bce_with_logits", lambda a, b: F.binary_cross_entropy_with_logits(a, F.sigmoid(b), "none"),
     lambda a, b: -(1 / (1 + np.exp(-b)) * np.log(1 / (1 + np.exp(-a)))
                    + (1 - 1 / (1 + np.exp(-b))) * np.log(1 - 1 / (1 + np.exp(-a))))),
    ("bce", lambda a, b: F.binary_cross_entropy(F.sigmoid(a), F.sigmoid(b), "sum"),
     lambda a, b: -np.sum(1 / (1 + np.exp(-b)) * np.log(1 / (1 + np.exp(-a)))
                          + (1 - 1 / (1 + np.exp(-b))) * np.log(1 - 1 / (1 + np.exp(-a))))),
]


@pytest.mark.parametrize("op, reference", [pytest.param(op, ref, id=name) for name, op, ref in FORWARD])
def test_forward_values_match_numpy(op, reference, device):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((3, 4)), rng.uniform(0.5, 2.0, (3, 4))
    if op is F.pow:
        a = np.abs(a)
    got = op(npgan.tensor(a, device=device), npgan.tensor(b, device=device))
    np.testing.assert_allclose(got.numpy(), reference(a, b), rtol=1e-12, atol=1e-14)  # float64: a few ulps


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_labels():
    logits = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    labels = np.array([2, 0])
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(log_probs[0, 2] + log_probs[1, 0]) / 2
    np.testing.assert_allclose(F.cross_entropy(npgan.tensor(logits), labels).item(), expected, rtol=1e-14)


def test_matmul_shapes_follow_numpy_for_1d_operands():
    a, m, b = npgan.randn(4), npgan.randn(4, 3), npgan.randn(2, 4, 3)
    assert (a @ a).shape == ()
    assert (a @ m).shape == (3,)
    assert (m.T @ a).shape == (3,)
    assert (a @ b).shape == (2, 3)
    np.testing.assert_allclose((a @ a).item(), float(a.numpy() @ a.numpy()), rtol=1e-6)


def test_gemm_of_broadcast_operands_and_of_outer_products_matches_numpy():
    # The gradient of a sum is a broadcast array (stride 0), which NumPy cannot give to BLAS; a 1-unit layer's
    # gradients are outer products (inner dimension 1). Both take their own path in ops.core.gemm.
    from npgan.ops.core import gemm

    rng = np.random.default_rng(0)
    ones = np.broadcast_to(np.ones((1, 1), dtype=np.float32), (5, 1))  # strides (0, 0), as sum's gradient
    w, x = rng.standard_normal((1, 3), dtype=np.float32), rng.standard_normal((5, 3), dtype=np.float32)
    for a, b in [(ones, w), (ones.T, x), (x.T, ones), (w.T, ones.T), (np.broadcast_to(w, (4, 3)), x.T)]:
        got = gemm(a, b)
        np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-6, atol=1e-6)
        assert got.dtype == np.float32 and got.shape == (a.shape[0], b.shape[1])


def test_gradients_of_a_one_unit_layer_summed_are_exact():
    # (x @ w).sum(): d/dx = 1 w^T per row and d/dw = x^T 1, computed from sum's broadcast gradient.
    x = npgan.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    w = npgan.tensor([[2.0], [-1.0]], requires_grad=True)
    (x @ w).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[2.0, -1.0]] * 3)
    np.testing.assert_array_equal(w.grad.numpy(), [[6.0], [9.0]])


def test_transpose_with_two_dims_swaps_them_as_in_pytorch():
    x = npgan.randn(2, 3)
    assert x.transpose(0, 1).shape == (3, 2)
    assert F.transpose(x, 1, 0).shape == (3, 2)
    y = npgan.randn(2, 3, 4)
    assert y.transpose(0, 2).shape == (4, 3, 2)
    assert F.transpose(y, (1, 2, 0)).shape == (3, 4, 2)
    np.testing.assert_array_equal(x.transpose(0, 1).numpy(), x.numpy().T)


def test_getitem_with_repeated_indices_adds_up_the_gradient():
    x = npgan.tensor(np.arange(4.0), requires_grad=True)
    (x[[0, 0, 2, 0]] * npgan.tensor(np.array([1.0, 10.0, 100.0, 1000.0]))).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1011.0, 0.0, 100.0, 0.0])


def test_max_gradient_goes_to_the_largest_element_only():
    x = npgan.tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_cross_entropy_with_logits_is_exact_for_logits_of_plus_minus_1000(dtype):
    logits = npgan.tensor([1000.0, -1000.0, 1000.0, -1000.0], dtype=dtype, requires_grad=True)
    target = npgan.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    np.testing.assert_array_equal(losses.numpy(), [0.0, 0.0, 1000.0, 1000.0])
    loss = F.binary_cross_entropy_with_logits(logits, target)
    loss.backward()
    assert loss.dtype == dtype and np.isfinite(loss.item())
    # d loss / d logit = (sigmoid(logit) - target) / N
    np.testing.assert_array_equal(logits.grad.numpy(), [0.0, 0.0, 0.25, -0.25])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_cross_entropy_is_finite_for_probabilities_of_exactly_0_and_1(dtype):
    probs = npgan.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype, requires_grad=True)
    target = npgan.tensor([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    losses = F.binary_cross_entropy(probs, target, reduction="none")
    losses.sum().backward()
    values = losses.numpy()
    assert np.isfinite(values).all() and np.isfinite(probs.grad.numpy()).all()
    assert values[0] > 15.0 and values[1] > 15.0  # confidently wrong: -log(1e-7) = 16.1
    assert values[2] < 1e-6 and values[3] < 1e-6  # confidently right


def test_log_softmax_is_finite_for_large_logits():
    x = npgan.tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    y = F.log_softmax(x)
    np.testing.assert_allclose(y.numpy(), [[0.0, -1000.0, -2000.0]])
    y[0, 0].backward()
    assert np.isfinite(x.grad.numpy()).all()


# -- bad input -----------------------------------------------------------------------------------------


def test_matmul_of_misaligned_shapes_raises_value_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        npgan.randn(3, 4) @ npgan.randn(5, 6)


def test_add_of_shapes_that_do_not_broadcast_raises_value_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5,\)"):
        npgan.randn(3, 4) + npgan.randn(5)


@pytest.mark.parametrize("target", [(5, 3), (7, -1), (-1, -1)])
def test_reshape_to_an_incompatible_shape_raises_value_error_naming_both_shapes(target):
    with pytest.raises(ValueError, match=r"(?=.*\(3, 4\))(?=.*\(" + str(target[0]) + ")"):
        npgan.randn(3, 4).reshape(target)


def test_unpack_of_the_wrong_size_raises_value_error_naming_the_shapes_and_the_size():
    with pytest.raises(ValueError, match=r"7 numbers.*\(2, 2\), \(3,\).*\(8,\)"):
        F.unpack(npgan.zeros(8), [(2, 2), (3,)])
    with pytest.raises(ValueError, match="1-D"):
        F.unpack(npgan.zeros(2, 4), [(8,)])


def test_pack_and_unpack_are_inverse_and_unpack_gives_views():
    a, b = npgan.randn(2, 3), npgan.randn(4)
    flat = F.pack([a, b])
    np.testing.assert_array_equal(flat.numpy(), np.concatenate([a.numpy().ravel(), b.numpy()]))
    pieces = F.unpack(flat, [(2, 3), (4,)])
    np.testing.assert_array_equal(pieces[0].numpy(), a.numpy())
    assert np.shares_memory(pieces[1].data, flat.data)


def test_reduction_over_a_missing_axis_raises_value_error():
    with pytest.raises(ValueError, match="axis 2"):
        npgan.randn(3, 4).sum(axis=2)


def test_loss_with_an_unknown_reduction_raises_value_error_listing_the_choices():
    with pytest.raises(ValueError, match="'mean', 'sum', 'none'"):
        F.mse_loss(npgan.randn(3), npgan.randn(3), reduction="average")


def test_cross_entropy_with_mismatched_labels_raises_value_error_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2,\)"):
        F.cross_entropy(npgan.randn(3, 4), np.array([0, 1]))


def test_concatenate_of_shapes_that_differ_outside_the_axis_raises_value_error():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        F.concatenate([npgan.randn(2, 3), npgan.randn(2, 4)], axis=0)


def test_cat_stack_and_softmax_take_pytorchs_dim_keyword_too():
    a, b = npgan.randn(2, 3), npgan.randn(2, 3)
    np.testing.assert_array_equal(F.cat([a, b], dim=1).numpy(), np.concatenate([a.numpy(), b.numpy()], axis=1))
    np.testing.assert_array_equal(F.stack([a, b], dim=-1).numpy(), np.stack([a.numpy(), b.numpy()], axis=-1))
    np.testing.assert_array_equal(F.softmax(a, dim=0).numpy(), F.softmax(a, axis=0).numpy())
    np.testing.assert_array_equal(F.log_softmax(a, dim=0).numpy(), F.log_softmax(a, 0).numpy())


@pytest.mark.parametrize("call, message", [
    (lambda a: F.cat([a, a], axis=2), "concatenate: axis 2 is out of range for a tensor with 2 dimensions"),
    (lambda a: F.cat([a, a], dim=-3), "concatenate: axis -3 is out of range"),
    (lambda a: F.cat([a.sum(), a.sum()]), "concatenate: 0-dimensional tensors"),
    (lambda a: F.stack([a, a], dim=3), r"stack: axis must be an int in \[-3, 2\] for tensors of 2 dimensions, got 3"),
    (lambda a: F.softmax(a, dim=2), "softmax: axis 2 is out of range"),
])
def test_an_axis_out_of_range_is_an_error_naming_the_op_not_a_silent_wrap(call, message):
    with pytest.raises(ValueError, match=message):
        call(npgan.randn(2, 3))


def test_cat_stack_and_softmax_want_one_int_axis():
    a = npgan.randn(2, 3)
    with pytest.raises(TypeError, match=r"concatenate: axis must be an int, got \(0, 1\)"):
        F.cat([a, a], axis=(0, 1))
    with pytest.raises(TypeError, match="softmax: axis must be an int, got None"):
        F.softmax(a, axis=None)
    with pytest.raises(TypeError, match="stack: axis must be an int, got True"):
        F.stack([a, a], axis=True)
    with pytest.raises(ValueError, match="stack: need at least one tensor"):
        F.stack([])


def test_clip_with_min_above_max_raises_value_error():
    with pytest.raises(ValueError, match="min"):
        F.clip(npgan.randn(3), 1.0, -1.0)


# -- the fused linear + activation (npgan.ops.linear.LinearLeakyReLU) -------------------------------------------


def _fused_inputs(bias, seed=3):
    rng = np.random.default_rng(seed)
    x = npgan.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    W = npgan.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    b = npgan.tensor(rng.standard_normal(5), requires_grad=True) if bias else None
    return x, W, b


@pytest.mark.parametrize("slope", [0.0, 0.2])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_leaky_relu_first_and_second_derivatives_match_finite_differences(slope, bias):
    x, W, b = _fused_inputs(bias)
    inputs = (x, W, b) if bias else (x, W)

    def fused(*args):  # times x-dependent weights, so the second derivative is not zero
        y = F.linear_leaky_relu(args[0], args[1], args[2] if bias else None, slope)
        return y * y

    assert npgan.gradcheck(fused, inputs, **TOL)
    assert npgan.gradgradcheck(fused, inputs, **TOL)


@pytest.mark.parametrize("slope", [0.0, 0.2])
def test_linear_leaky_relu_equals_linear_then_leaky_relu_to_the_bit_in_values_and_two_derivatives(slope):
    x, W, b = _fused_inputs(True, seed=5)
    x, W, b = (t.to(dtype="float32").detach().requires_grad_(True) for t in (x, W, b))
    results = []
    for fn in (lambda: F.linear_leaky_relu(x, W, b, slope), lambda: F.leaky_relu(F.linear(x, W, b), slope),
               lambda: F.leaky_relu(x @ W.T + b, slope)):  # the last: plain MatMul, Transpose, Add, no LinearGrad
        y = fn()
        grads = npgan.grad((y * y).sum(), [x, W, b], create_graph=True)
        penalty = sum((g * g).sum() for g in grads)  # a gradient penalty: differentiated again
        second = npgan.grad(penalty, [x, W, b])
        results.append([y.numpy()] + [g.numpy() for g in grads + second])
    for fused, linear, composed in zip(*results):
        np.testing.assert_array_equal(fused, composed)
        np.testing.assert_array_equal(linear, composed)


# -- a linear layer's gradients as one op (npgan.ops.linear.LinearGrad) -----------------------------------------


def _linear_grad_case(activation, wanted, device="cpu", seed=7):
    """f(gy, x, W) = a fixed random weighting of LinearGrad's outputs, and its inputs (float64)."""
    from npgan.ops.activation import LeakyReLUGrad
    from npgan.ops.linear import LinearGrad

    rng = np.random.default_rng(seed)
    gy, x, W = (npgan.tensor(rng.standard_normal(shape)).to(device).requires_grad_(True)
                for shape in ((4, 5), (4, 3), (5, 3)))
    positive = npgan.tensor(rng.standard_normal((4, 5))).to(device).data > 0
    weights = [npgan.tensor(rng.standard_normal(shape)).to(device) for shape in ((4, 3), (5, 3), (5,))]
    weights = [w for w, want in zip(weights, wanted) if want]

    def f(gy, x, W):
        mask = None if activation is None else LeakyReLUGrad(positive, activation)
        inputs = (gy,) + ((W,) if wanted[0] else ()) + ((x,) if wanted[1] else ())  # gx reads W, gW reads x
        outputs = LinearGrad(wanted, mask)(*inputs)
        return sum((out * w).sum() for out, w in zip(outputs, weights))

    return f, (gy, x, W)


ACTIVATIONS = [None, 0.0, 0.2]  # Linear's (no mask), ReLU's and LeakyReLU(0.2)'s
WANTED = [(True, True, True), (True, False, False), (False, True, True), (False, False, True), (True, True, False)]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("wanted", WANTED)
def test_linear_grad_first_and_second_derivatives_match_finite_differences(activation, wanted, device):
    f, inputs = _linear_grad_case(activation, wanted, device)
    assert npgan.gradcheck(f, inputs, **TOL)  # its backward on raw arrays
    assert npgan.gradgradcheck(f, inputs, **TOL)  # its backward in Tensor ops, differentiated again


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("wanted", WANTED)
def test_linear_grad_backward_on_raw_arrays_equals_its_tensor_op_backward(activation, wanted, device):
    f, inputs = _linear_grad_case(activation, wanted, device)
    raw = npgan.grad(f(*inputs), list(inputs), allow_unused=True)  # no graph recorded: the raw-array path
    tensor_ops = npgan.grad(f(*inputs), list(inputs), create_graph=True, allow_unused=True)
    for a, b in zip(raw, tensor_ops):
        assert (a is None) == (b is None)  # x is not an input when gW is not wanted, W when gx is not
        if a is not None:
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def test_a_linear_layers_gradient_is_one_recorded_op_under_create_graph():
    from npgan.ops.linear import LinearGrad

    x = npgan.randn(4, 3, requires_grad=True)
    W, b = npgan.randn(5, 3, requires_grad=True), npgan.randn(5, requires_grad=True)
    gx, gW, gb = npgan.grad(F.linear_leaky_relu(x, W, b, 0.2).sum(), [x, W, b], create_graph=True)
    assert gx.creator is gW.creator is gb.creator and isinstance(gx.creator, LinearGrad)
    (gx,) = npgan.grad(F.linear_leaky_relu(x, W, b, 0.2).sum(), [x], create_graph=True)
    assert gx.creator.inputs[1] is W and len(gx.creator.inputs) == 2  # gy and W: x's own graph is not held
