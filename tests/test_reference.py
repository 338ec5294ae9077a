"""The textbook versions in npgan/reference.py equal the fast ones on random inputs.

Where the two sum in a different order, everything runs in float64, where they differ only by a few ulps
of rounding: tolerances 1e-10 relative. Where they do the same arithmetic in the same order (linear, the
differentiable optimizer steps) they are compared to the bit in float32, on NumPy and the CuPy stand-in.
"""

import numpy as np
import pytest

import npgan
import npgan.functional as F
from npgan import nn, optim, reference
from npgan.ops import conv

TOL = {"rtol": 1e-10, "atol": 1e-12}


def random(rng, *shape):
    return rng.standard_normal(shape)


# -- backward: gradient accumulation ------------------------------------------------------------------


def _leaves(rng):
    shapes = {"a": (3, 4), "b": (4,), "c": (3, 1)}
    return {k: npgan.tensor(random(rng, *s), requires_grad=True) for k, s in shapes.items()}


def _reuse_and_broadcast(t):
    """A graph where every leaf is used more than once and b, c are broadcast: accumulation matters."""
    a, b, c = t["a"], t["b"], t["c"]
    h = (a * b + c).tanh()
    return ((h * a).sum() + (h * c).mean() + (b * b).sum()) * (a.sum(axis=1) * c.reshape(3)).sum()


def test_reference_backward_equals_tensor_backward_with_reused_and_broadcast_leaves():
    rng = np.random.default_rng(0)
    fast, plain = _leaves(rng), {}
    plain = {k: npgan.tensor(v.data, requires_grad=True) for k, v in fast.items()}
    _reuse_and_broadcast(fast).backward()
    reference.backward(_reuse_and_broadcast(plain))
    for k in fast:
        assert plain[k].grad.shape == fast[k].grad.shape
        np.testing.assert_allclose(plain[k].grad.data, fast[k].grad.data, **TOL)


def test_reference_backward_accumulates_over_calls_like_tensor_backward():
    rng = np.random.default_rng(1)
    fast = _leaves(rng)
    plain = {k: npgan.tensor(v.data, requires_grad=True) for k, v in fast.items()}
    for _ in range(3):  # each call adds into .grad; in-place adds in the fast path must not leak between leaves
        _reuse_and_broadcast(fast).backward()
        reference.backward(_reuse_and_broadcast(plain))
    for k in fast:
        np.testing.assert_allclose(plain[k].grad.data, fast[k].grad.data, **TOL)
    single = {k: npgan.tensor(v.data, requires_grad=True) for k, v in fast.items()}
    reference.backward(_reuse_and_broadcast(single))
    np.testing.assert_allclose(fast["a"].grad.data, 3 * single["a"].grad.data, **TOL)


def test_reference_backward_equals_tensor_backward_through_a_small_conv_net():
    npgan.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, 2, 1), nn.BatchNorm2d(3), nn.LeakyReLU(0.2), nn.Flatten(),
                        nn.Linear(3 * 3 * 3, 1)).double()
    x = npgan.randn(4, 2, 6, 6, dtype="float64")
    net(x).sum().backward()
    fast = [p.grad.data.copy() for p in net.parameters()]
    net.zero_grad()
    reference.backward(net(x).sum())
    for p, expected in zip(net.parameters(), fast):
        np.testing.assert_allclose(p.grad.data, expected, **TOL)


def test_reference_backward_needs_a_single_number():
    x = npgan.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="one number"):
        reference.backward(x * 2.0)


# -- linear ---------------------------------------------------------------------------------------------


def _float32(rng, *shape, device="cpu"):
    return npgan.tensor(random(rng, *shape).astype(np.float32), device=device, requires_grad=True)


def _values_and_two_derivatives(y, inputs):
    """y, its gradients (of sum y^2) and the gradients of their squared norm (a gradient penalty)."""
    grads = npgan.grad((y * y).sum(), inputs, create_graph=True)
    second = npgan.grad(sum((g * g).sum() for g in grads), inputs)
    return [y] + list(grads) + list(second)


@pytest.mark.parametrize("slope", [None, 0.0, 0.2])  # None: the plain layer; 0: ReLU; 0.2: LeakyReLU
@pytest.mark.parametrize("bias", [True, False])
def test_reference_linear_equals_the_linear_ops_to_the_bit_in_values_and_first_and_second_derivatives(
        slope, bias, device):
    rng = np.random.default_rng(11)
    x, W = _float32(rng, 6, 4, device=device), _float32(rng, 5, 4, device=device)
    b = _float32(rng, 5, device=device) if bias else None
    inputs = [x, W] + ([b] if bias else [])
    if slope is None:
        fast, plain = F.linear(x, W, b), reference.linear(x, W, b)
        assert type(fast.creator).__name__ == "Linear"
    else:
        fast, plain = F.linear_leaky_relu(x, W, b, slope), reference.linear_leaky_relu(x, W, b, slope)
        assert type(fast.creator).__name__ == "LinearLeakyReLU"
    assert type(plain.creator).__name__ == ("LeakyReLU" if slope is not None else "Add" if bias else "MatMul")
    for f, p in zip(_values_and_two_derivatives(fast, inputs), _values_and_two_derivatives(plain, inputs)):
        assert f.dtype == p.dtype == np.float32
        np.testing.assert_array_equal(f.numpy(), p.numpy())


def test_the_linear_ops_raw_array_backward_equals_the_reference_in_float64():
    rng = np.random.default_rng(12)
    x, W, b = (npgan.tensor(random(rng, *s), requires_grad=True) for s in ((6, 4), (5, 4), (5,)))
    gy = npgan.tensor(random(rng, 6, 5))
    fast = npgan.grad(F.linear_leaky_relu(x, W, b, 0.2), [x, W, b], gy)  # no graph recorded: raw arrays
    plain = npgan.grad(reference.linear_leaky_relu(x, W, b, 0.2), [x, W, b], gy)
    for f, p in zip(fast, plain):
        np.testing.assert_allclose(f.data, p.data, **TOL)


# -- im2col / col2im ------------------------------------------------------------------------------------

# (N, C, H, W, KH, KW, SH, SW, PH, PW): DCGAN's 4x4 stride 2, odd sizes, asymmetric kernels and strides.
CONV_CASES = [
    (2, 3, 8, 8, 4, 4, 2, 2, 1, 1),
    (3, 2, 7, 5, 3, 3, 1, 1, 1, 1),
    (2, 1, 9, 6, 3, 2, 2, 3, 0, 1),
    (1, 2, 4, 4, 4, 4, 1, 1, 0, 0),
    (2, 2, 5, 5, 1, 1, 2, 2, 0, 0),
]


def _out(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


@pytest.mark.parametrize("case", CONV_CASES)
def test_reference_im2col_equals_the_fast_batch_last_im2col(case):
    N, C, H, W, KH, KW, SH, SW, PH, PW = case
    x = random(np.random.default_rng(2), N, C, H, W)
    OH, OW = _out(H, KH, SH, PH), _out(W, KW, SW, PW)
    fast = conv.im2col(conv.pad_input(x, PH, PW), KH, KW, SH, SW, OW, (0, OH))
    np.testing.assert_array_equal(reference.im2col(x, KH, KW, SH, SW, PH, PW), fast)


@pytest.mark.parametrize("case", CONV_CASES)
def test_reference_col2im_equals_the_fast_phase_by_phase_col2im(case):
    N, C, H, W, KH, KW, SH, SW, PH, PW = case
    OH, OW = _out(H, KH, SH, PH), _out(W, KW, SW, PW)
    col = random(np.random.default_rng(3), C * KH * KW, OH * OW * N)
    out = np.empty((C, H, W, N))
    fast = conv.batch_first(conv.col2im(col, out, KH, KW, SH, SW, PH, PW, OH, OW))
    np.testing.assert_allclose(reference.col2im(col, (N, C, H, W), KH, KW, SH, SW, PH, PW), fast, **TOL)


@pytest.mark.parametrize("case", CONV_CASES)
def test_col2im_is_the_adjoint_of_im2col(case):
    N, C, H, W, KH, KW, SH, SW, PH, PW = case
    rng = np.random.default_rng(4)
    x = random(rng, N, C, H, W)
    col = random(rng, C * KH * KW, _out(H, KH, SH, PH) * _out(W, KW, SW, PW) * N)
    lhs = np.sum(reference.im2col(x, KH, KW, SH, SW, PH, PW) * col)
    rhs = np.sum(x * reference.col2im(col, x.shape, KH, KW, SH, SW, PH, PW))
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_is_one_matrix_product_of_the_weight_and_im2col(case):
    N, C, H, W, KH, KW, SH, SW, PH, PW = case
    rng = np.random.default_rng(5)
    x, weight = random(rng, N, C, H, W), random(rng, 4, C, KH, KW)
    OH, OW = _out(H, KH, SH, PH), _out(W, KW, SW, PW)
    y = weight.reshape(4, -1) @ reference.im2col(x, KH, KW, SH, SW, PH, PW)  # (O, OH*OW*N)
    expected = y.reshape(4, OH, OW, N).transpose(3, 0, 1, 2)
    got = F.conv2d(npgan.tensor(x), npgan.tensor(weight), stride=(SH, SW), padding=(PH, PW))
    np.testing.assert_allclose(got.data, expected, **TOL)


# -- Adam -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_reference_adam_step_equals_optim_adam_over_several_steps(weight_decay):
    rng = np.random.default_rng(6)
    # one small parameter and one larger than optim's cache block (2**15 elements), so both paths run
    shapes = [(5, 7), (40, 1000)]
    params = [npgan.tensor(random(rng, *s), requires_grad=True) for s in shapes]
    hyper = dict(lr=2e-3, betas=(0.5, 0.999), eps=1e-8, weight_decay=weight_decay)
    adam = optim.Adam(params, **hyper)
    plain = [(p.data.copy(), np.zeros(p.shape), np.zeros(p.shape)) for p in params]
    for step in range(1, 6):
        grads = [random(rng, *s) * 10.0**step for s in shapes]  # gradients of very different scales
        for p, g in zip(params, grads):
            p.grad = npgan.tensor(g)
        adam.step()
        plain = [reference.adam_step(value, g, m, v, step, **hyper) for (value, m, v), g in zip(plain, grads)]
    for p, (value, m, v) in zip(params, plain):
        np.testing.assert_allclose(p.data, value, **TOL)
        np.testing.assert_allclose(adam.state[p]["exp_avg"], m, **TOL)
        np.testing.assert_allclose(adam.state[p]["exp_avg_sq"], v, **TOL)


def test_adam_moves_each_parameter_about_lr_per_step_whatever_the_gradient_scale():
    param, grad = np.zeros(3), np.array([1e-6, 1.0, 1e6])
    new, _, _ = reference.adam_step(param, grad, np.zeros(3), np.zeros(3), step=1, lr=0.01)
    np.testing.assert_allclose(new, [-0.01, -0.01, -0.01], rtol=1e-2)


# -- differentiable optimizer steps ---------------------------------------------------------------------


def _unrolled(device, make_optimizer, steps, one_at_a_time):
    """G's gradient through ``steps`` differentiable steps of D's optimizer, and each step's new parameters.

    D's first parameter gets no gradient in the first step, so its group's parameters then have taken
    different numbers of steps; one group has its own learning rate."""
    rng = np.random.default_rng(13)
    G = _float32(rng, 3, 2, device=device)  # G(z) = z @ G^T
    D = [_float32(rng, *s, device=device) for s in ((5, 3), (5,), (1, 5), (1,))]
    z = npgan.tensor(random(rng, 8, 2).astype(np.float32), device=device)
    opt = make_optimizer([{"params": D[:2]}, {"params": D[2:], "lr": 0.03}])
    for p in D:  # one real step first, so the optimizer has moments to start from
        p.grad = npgan.tensor(random(rng, *p.shape).astype(np.float32), device=device)
    opt.step()

    def score(params, x):
        return F.linear(F.leaky_relu(F.linear(x, params[0], params[1]), 0.2), params[2], params[3])

    current, state, history = [npgan.tensor(p.data, requires_grad=True) for p in D], None, []
    for step in range(steps):
        loss = (score(current, F.linear(z, G)) ** 2).mean()
        grads = list(npgan.grad(loss, current, create_graph=True))
        if step == 0:
            grads[0] = None
        current, state = one_at_a_time(opt, current, grads, state) if one_at_a_time else \
            optim.differentiable_step(opt, current, grads, state)
        history.append(current)
    g_grad = npgan.grad((score(current, F.linear(z, G)) - 1.0).abs().mean(), [G])[0]
    return history, g_grad


def _adam_one_at_a_time(opt, params, grads, state):
    """reference.differentiable_adam_step per group, from the optimizer's state the first time."""
    if state is None:
        owned = optim.optimizer_parameters(opt)
        state = [(npgan.tensor(opt.state[p]["exp_avg"]), npgan.tensor(opt.state[p]["exp_avg_sq"]),
                  opt.state[p]["step"]) for p in owned]
    new, new_state, start = list(params), list(state), 0
    for group in opt.param_groups:
        members = range(start, start + len(group["params"]))
        start += len(group["params"])
        ms, vs, ts = zip(*[state[i] for i in members])
        steps = [t + 1 if grads[i] is not None else t for t, i in zip(ts, members)]
        p, m, v = reference.differentiable_adam_step([params[i] for i in members], [grads[i] for i in members],
                                                     ms, vs, steps, group["lr"], group["betas"], group["eps"],
                                                     group["weight_decay"])
        for j, i in enumerate(members):
            new[i], new_state[i] = p[j], (m[j], v[j], steps[j])
    return new, new_state


def _sgd_one_at_a_time(opt, params, grads, state):
    """reference.differentiable_sgd_step per group, from the optimizer's momentum buffers the first time."""
    if state is None:
        owned = optim.optimizer_parameters(opt)
        state = [npgan.tensor(opt.state[p]["momentum_buffer"]) if "momentum_buffer" in opt.state.get(p, {})
                 else None for p in owned]
    new, new_state, start = list(params), list(state), 0
    for group in opt.param_groups:
        members = list(range(start, start + len(group["params"])))
        start += len(group["params"])
        hyper = {k: group[k] for k in ("momentum", "dampening", "nesterov", "weight_decay")}
        p, b = reference.differentiable_sgd_step([params[i] for i in members], [grads[i] for i in members],
                                                 [state[i] for i in members], group["lr"], **hyper)
        for j, i in enumerate(members):
            new[i], new_state[i] = p[j], b[j]
    return new, new_state


ADAMS = {
    "adam": lambda params: optim.Adam(params, lr=0.01, betas=(0.5, 0.999)),
    "adam-decay": lambda params: optim.Adam(params, lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1),
    "adam-beta1-0.3": lambda params: optim.Adam(params, lr=0.01, betas=(0.3, 0.999)),
}
SGDS = {
    "sgd": lambda params: optim.SGD(params, lr=0.1),
    "sgd-momentum": lambda params: optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd-nesterov": lambda params: optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("name", list(ADAMS) + list(SGDS))
def test_reference_differentiable_steps_equal_the_packed_ones_to_the_bit_with_the_gradients_through_them(
        name, device):
    make = ADAMS.get(name) or SGDS[name]
    one_at_a_time = _adam_one_at_a_time if name in ADAMS else _sgd_one_at_a_time
    packed, packed_grad = _unrolled(device, make, 3, None)
    plain, plain_grad = _unrolled(device, make, 3, one_at_a_time)
    for step, (new_packed, new_plain) in enumerate(zip(packed, plain)):
        for i, (a, b) in enumerate(zip(new_packed, new_plain)):
            assert a.dtype == b.dtype == np.float32
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=f"step {step}, parameter {i}")
    assert not np.array_equal(packed[-1][0].numpy(), packed[0][0].numpy())  # the steps moved D
    assert np.abs(packed_grad.numpy()).max() > 0
    # G's gradient through the 3 steps adds the contributions of many paths through the graph, in an order
    # that follows the graph's shape (one packed vector or one node per parameter): equal up to the
    # rounding of a different summation order, a few float32 ulps
    # (measured up to 2e-6 relative on an element 100 times smaller than the largest)
    scale = np.abs(plain_grad.numpy()).max()
    np.testing.assert_allclose(packed_grad.numpy(), plain_grad.numpy(), rtol=1e-6, atol=1e-6 * scale)


# -- batch norm -----------------------------------------------------------------------------------------


def _bn_inputs(shape, seed):
    rng = np.random.default_rng(seed)
    C = shape[1]
    x = npgan.tensor(random(rng, *shape), requires_grad=True)
    weight = npgan.tensor(1.0 + 0.5 * random(rng, C), requires_grad=True)
    bias = npgan.tensor(random(rng, C), requires_grad=True)
    return x, weight, bias


def _fused(x, weight, bias):
    return F.batch_norm(x, None, None, weight, bias, training=True)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 5)])
def test_reference_batch_norm_equals_the_fused_op_and_its_array_backward(shape):
    x, weight, bias = _bn_inputs(shape, 7)
    gy = npgan.tensor(random(np.random.default_rng(8), *shape))
    np.testing.assert_allclose(_fused(x, weight, bias).data, reference.batch_norm_train(x, weight, bias).data, **TOL)
    fast = npgan.grad(_fused(x, weight, bias), (x, weight, bias), gy)  # no graph recorded: the array backward
    plain = npgan.grad(reference.batch_norm_train(x, weight, bias), (x, weight, bias), gy)
    for f, p in zip(fast, plain):
        np.testing.assert_allclose(f.data, p.data, **TOL)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 5)])
def test_reference_batch_norm_equals_the_fused_ops_differentiable_backward_and_second_derivative(shape):
    x, weight, bias = _bn_inputs(shape, 9)
    gy = npgan.tensor(random(np.random.default_rng(10), *shape))
    results = []
    for bn in (_fused, reference.batch_norm_train):
        grads = npgan.grad(bn(x, weight, bias), (x, weight, bias), gy, create_graph=True)
        penalty = sum((g * g).sum() for g in grads)  # a gradient-penalty-like function of the gradients
        results.append(grads + npgan.grad(penalty, (x, weight)))
    for f, p in zip(*results):
        np.testing.assert_allclose(f.data, p.data, **TOL)
