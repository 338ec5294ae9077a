"""Optimizers and gradient clipping (npgan/optim.py).

Reference steps are written out with plain NumPy formulas in float64 on a 3-element parameter whose
gradient is set by hand. npgan updates in float32, so each step differs from the float64 reference by a
few float32 ulps of the values involved (|p| <= 2): rtol 1e-6 / atol 1e-7 over 3 steps.
"""

import math

import numpy as np
import pytest

import npgan
import npgan.nn as nn
from npgan import optim

TOL = {"rtol": 1e-6, "atol": 1e-7}
P0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array([0.1, -0.3, 2.0]), np.array([-0.2, 0.4, 1.5]), np.array([0.05, 0.0, -1.0])]


def param(values=P0, device="cpu"):
    return nn.Parameter(npgan.tensor(np.asarray(values, dtype=np.float32), device=device))


def run(opt_class, grads=GRADS, **kwargs):
    """Apply ``opt_class`` to a parameter with the given gradients; the parameter after each step."""
    p = param()
    opt = opt_class([p], **kwargs)
    trajectory = []
    for g in grads:
        p.grad = npgan.tensor(g.astype(np.float32))
        opt.step()
        trajectory.append(p.numpy().copy())
    return trajectory


# -- reference steps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.5),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.1, momentum=0.5, weight_decay=0.01),
])
def test_sgd_matches_the_written_out_update(kwargs):
    lr, mu = kwargs["lr"], kwargs.get("momentum", 0.0)
    dampening, wd, nesterov = kwargs.get("dampening", 0.0), kwargs.get("weight_decay", 0.0), kwargs.get("nesterov")
    p, buf, expected = P0.copy(), None, []
    for g in GRADS:
        d = g + wd * p
        if mu:
            buf = d.copy() if buf is None else mu * buf + (1 - dampening) * d
            d = d + mu * buf if nesterov else buf
        p = p - lr * d
        expected.append(p)
    np.testing.assert_allclose(run(optim.SGD, **kwargs), expected, **TOL)


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.01),
    dict(lr=0.0002, betas=(0.5, 0.999)),
    dict(lr=0.001, betas=(0.0, 0.9), eps=1e-3),
    dict(lr=0.01, weight_decay=0.1),
])
def test_adam_matches_the_written_out_update_with_bias_correction(kwargs):
    lr, (b1, b2) = kwargs["lr"], kwargs.get("betas", (0.9, 0.999))
    eps, wd = kwargs.get("eps", 1e-8), kwargs.get("weight_decay", 0.0)
    p, m, v, expected = P0.copy(), np.zeros(3), np.zeros(3), []
    for t, g in enumerate(GRADS, start=1):
        g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        step_size = lr / (1 - b1**t)
        denom = np.sqrt(v) / math.sqrt(1 - b2**t) + eps
        p = p - step_size * m / denom
        expected.append(p)
    np.testing.assert_allclose(run(optim.Adam, **kwargs), expected, **TOL)


@pytest.mark.parametrize("layout", ["contiguous", "transposed parameter", "broadcast gradient",
                                    "Fortran-ordered moments"])
def test_adam_in_blocks_gives_the_same_bits_as_over_whole_arrays(layout, monkeypatch):
    # On NumPy the update runs over blocks of optim.BLOCK_ELEMENTS (cache-sized); elementwise float32 work does
    # not depend on how the array is cut, so the result must be bit-identical to one block, for every layout.
    rng = np.random.default_rng(0)
    start = rng.standard_normal((23, 9)).astype(np.float32)
    grads = [rng.standard_normal((23, 9)).astype(np.float32) for _ in range(3)]
    if layout == "broadcast gradient":
        grads = [np.broadcast_to(g[:1], g.shape) for g in grads]  # stride 0, as the gradient of a sum

    def trajectory(block):
        monkeypatch.setattr(optim, "BLOCK_ELEMENTS", block)
        p = param(start)
        if layout == "transposed parameter":
            p.data = np.ascontiguousarray(start.T).T  # a Fortran-ordered parameter: no flat view exists
        opt = optim.Adam([p], lr=0.01, betas=(0.5, 0.999))
        for g in grads:
            p.grad = npgan.Tensor(g)
            opt.step()
            if layout == "Fortran-ordered moments":  # as a checkpoint may restore them: no flat view exists
                for key in ("exp_avg", "exp_avg_sq"):
                    opt.state[p][key] = np.asfortranarray(opt.state[p][key])
        return p.numpy().copy(), opt.state[p]["exp_avg"].copy(), opt.state[p]["exp_avg_sq"].copy()

    for blocked, whole in zip(trajectory(10), trajectory(10**9)):
        np.testing.assert_array_equal(blocked, whole)
    assert not np.array_equal(trajectory(10)[0], start)


def test_adam_first_step_moves_every_coordinate_by_about_lr():
    # With bias correction, step 1 is lr * g / (|g| + eps'): the sign of g times lr, whatever its size.
    (p1,) = run(optim.Adam, grads=GRADS[:1], lr=0.01)
    np.testing.assert_allclose(P0 - p1, 0.01 * np.sign(GRADS[0]), rtol=1e-4)


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.01),
    dict(lr=5e-5),
    dict(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.8),
    dict(lr=0.01, centered=True),
    dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1),
])
def test_rmsprop_matches_the_written_out_update(kwargs):
    lr, alpha, eps = kwargs["lr"], kwargs.get("alpha", 0.99), kwargs.get("eps", 1e-8)
    mu, wd, centered = kwargs.get("momentum", 0.0), kwargs.get("weight_decay", 0.0), kwargs.get("centered")
    p, s, a, buf, expected = P0.copy(), np.zeros(3), np.zeros(3), np.zeros(3), []
    for g in GRADS:
        g = g + wd * p
        s = alpha * s + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            denom = np.sqrt(s - a * a) + eps
        else:
            denom = np.sqrt(s) + eps
        if mu:
            buf = mu * buf + g / denom
            p = p - lr * buf
        else:
            p = p - lr * g / denom
        expected.append(p)
    np.testing.assert_allclose(run(optim.RMSprop, **kwargs), expected, **TOL)


# -- in place, dtype, devices --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.Adam(ps, weight_decay=0.01),
    lambda ps: optim.RMSprop(ps, momentum=0.9, centered=True, weight_decay=0.01),
])
def test_step_updates_the_same_float32_arrays_in_place_on_the_device(make, device, xp):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.LeakyReLU(0.2), nn.Linear(4, 1)).to(device)
    opt = make(model.parameters())
    arrays = [p.data for p in model.parameters()]
    before = [p.numpy().copy() for p in model.parameters()]
    for _ in range(2):
        opt.zero_grad()
        model(npgan.randn(8, 3, device=device)).mean().backward()
        opt.step()
    for p, array, old in zip(model.parameters(), arrays, before):
        assert p.data is array and isinstance(p.data, xp.ndarray)
        assert p.dtype == np.float32
        assert not np.array_equal(p.numpy(), old)
    for state in opt.state.values():
        for value in state.values():
            if hasattr(value, "dtype"):
                assert value.dtype == np.float32 and isinstance(value, xp.ndarray)


def test_parameters_without_a_gradient_are_left_alone():
    a, b = param(), param()
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = npgan.tensor(np.ones(3, dtype=np.float32))
    opt.step()
    np.testing.assert_array_equal(b.numpy(), P0.astype(np.float32))
    assert not np.array_equal(a.numpy(), P0.astype(np.float32))
    assert b not in opt.state


def test_gradients_are_read_not_written():
    p = param()
    g = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    p.grad = npgan.Tensor(g)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
    opt.step()
    opt.step()
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0])


def test_zero_grad_sets_gradients_to_none():
    p = param()
    p.grad = npgan.ones(3)
    optim.SGD([p], lr=0.1).zero_grad()
    assert p.grad is None


def test_step_returns_the_closure_loss():
    p = param()

    def closure():
        p.grad = npgan.ones(3)
        return 1.5

    assert optim.SGD([p], lr=0.1).step(closure) == 1.5
    np.testing.assert_allclose(p.numpy(), P0 - 0.1, **TOL)


# -- param groups --------------------------------------------------------------------------------------


def test_param_groups_take_their_own_hyperparameters_and_the_defaults_for_the_rest():
    a, b = param(), param()
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert all(g["momentum"] == 0.5 for g in opt.param_groups)
    a.grad = b.grad = npgan.ones(3)
    opt.step()
    np.testing.assert_allclose(a.numpy(), P0 - 0.1, **TOL)
    np.testing.assert_allclose(b.numpy(), P0 - 1.0, **TOL)


def test_changing_lr_in_a_param_group_takes_effect_on_the_next_step():
    p = param()
    opt = optim.SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = 0.5
    p.grad = npgan.ones(3)
    opt.step()
    np.testing.assert_allclose(p.numpy(), P0 - 0.5, **TOL)


# -- hyperparameter validation -------------------------------------------------------------------------


@pytest.mark.parametrize("make, words", [
    (lambda p: optim.SGD(p, lr=-0.1), ["lr", "-0.1"]),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), ["momentum", "-0.5"]),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), ["weight_decay", "-1"]),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), ["Nesterov", "momentum"]),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ["Nesterov", "dampening"]),
    (lambda p: optim.Adam(p, lr=-1e-3), ["lr", "-0.001"]),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), ["beta", "index 0", "1.0"]),
    (lambda p: optim.Adam(p, betas=(0.5, -0.1)), ["beta", "index 1", "-0.1"]),
    (lambda p: optim.Adam(p, betas=0.9), ["betas", "0.9"]),
    (lambda p: optim.Adam(p, eps=-1e-8), ["eps", "-1e-08"]),
    (lambda p: optim.Adam(p, weight_decay=-0.1), ["weight_decay", "-0.1"]),
    (lambda p: optim.RMSprop(p, lr=-0.01), ["lr", "-0.01"]),
    (lambda p: optim.RMSprop(p, alpha=-0.9), ["alpha", "-0.9"]),
    (lambda p: optim.RMSprop(p, momentum=-1), ["momentum", "-1"]),
    (lambda p: optim.RMSprop(p, eps=float("nan")), ["eps", "nan"]),
    (lambda p: optim.Adam([], lr=0.1), ["empty"]),
    (lambda p: optim.SGD([{"params": []}], lr=0.1), ["empty"]),
    (lambda p: optim.SGD(p + p, lr=0.1), ["more than once"]),
])
def test_invalid_hyperparameters_raise_value_error_naming_argument_and_value(make, words):
    with pytest.raises(ValueError) as info:
        make([param()])
    for word in words:
        assert word in str(info.value)


def test_a_single_tensor_instead_of_a_list_is_a_type_error():
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(param(), lr=0.1)


# -- state_dict ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, betas=(0.5, 0.999)),
    lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
])
def test_state_dict_round_trip_continues_identically(make):
    def grads(step):
        return [np.float32(0.3 * step + 1.0) * np.array([0.5, -1.0, 2.0], dtype=np.float32), np.ones(2, np.float32)]

    a = [param(), param([0.1, 0.2])]
    opt_a = make(a)
    for step in range(3):
        for p, g in zip(a, grads(step)):
            p.grad = npgan.tensor(g)
        opt_a.step()
    state = opt_a.state_dict()

    b = [param(p.numpy()) for p in a]
    opt_b = make(b)
    # What an .npz checkpoint gives back: numbers as 0-d arrays, tuples as lists.
    state["state"] = {k: {n: np.asarray(v) for n, v in s.items()} for k, s in state["state"].items()}
    opt_b.load_state_dict(state)
    for step in range(3, 6):
        for pa, pb, g in zip(a, b, grads(step)):
            pa.grad, pb.grad = npgan.tensor(g), npgan.tensor(g)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())


def test_state_dict_holds_numpy_arrays_and_plain_numbers_only():
    p = param()
    opt = optim.Adam([p], lr=0.01, betas=(0.5, 0.9))
    p.grad = npgan.ones(3)
    opt.step()
    state = opt.state_dict()
    assert state["param_groups"] == [{"lr": 0.01, "betas": [0.5, 0.9], "eps": 1e-8, "weight_decay": 0.0,
                                      "params": [0]}]
    entry = state["state"][0]
    assert entry["step"] == 1 and type(entry["step"]) is int
    assert isinstance(entry["exp_avg"], np.ndarray) and entry["exp_avg"].dtype == np.float32
    entry["exp_avg"][...] = 99.0  # a copy: the optimizer's moments are untouched
    assert not np.any(opt.state[p]["exp_avg"] == 99.0)


def test_load_state_dict_puts_moments_on_the_parameters_device(device, xp):
    p = param()
    opt = optim.Adam([p])
    p.grad = npgan.ones(3)
    opt.step()
    q = param(device=device)
    opt_q = optim.Adam([q])
    opt_q.load_state_dict(opt.state_dict())
    assert isinstance(opt_q.state[q]["exp_avg"], xp.ndarray)
    assert opt_q.state[q]["exp_avg"].dtype == np.float32


def test_load_state_dict_rejects_a_different_parameter_layout():
    p = param()
    opt = optim.Adam([p])
    p.grad = npgan.ones(3)
    opt.step()
    state = opt.state_dict()
    with pytest.raises(ValueError, match="has 1 parameters.*has 2"):
        optim.Adam([param(), param()]).load_state_dict(state)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.Adam([{"params": [param()]}, {"params": [param()]}]).load_state_dict(state)
    with pytest.raises(ValueError, match=r"shape \(3,\).*\(2,\)"):
        optim.Adam([param([1.0, 2.0])]).load_state_dict(state)


# -- clip_grad_norm_ -----------------------------------------------------------------------------------


def test_clip_grad_norm_scales_gradients_to_max_norm_and_returns_the_norm_before():
    a, b = param(), param([0.0, 0.0])
    a.grad = npgan.tensor([3.0, 0.0, 0.0])
    b.grad = npgan.tensor([0.0, 4.0])
    total = optim.clip_grad_norm_([a, b], max_norm=1.0)
    assert type(total) is float and total == pytest.approx(5.0, rel=1e-7)
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(a.grad.numpy(), [3.0 * scale, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), [0, 4.0 * scale], rtol=1e-6)
    assert a.grad.dtype == np.float32


def test_clip_grad_norm_leaves_small_gradients_unchanged():
    p = param()
    p.grad = npgan.tensor([0.1, 0.2, 0.2])
    assert optim.clip_grad_norm_(p, max_norm=1.0) == pytest.approx(0.3, rel=1e-6)
    np.testing.assert_array_equal(p.grad.numpy(), np.array([0.1, 0.2, 0.2], dtype=np.float32))


def test_clip_grad_norm_with_other_norms():
    p = param()
    p.grad = npgan.tensor([1.0, -3.0, 2.0])
    assert optim.clip_grad_norm_([p], 10.0, norm_type=float("inf")) == pytest.approx(3.0)
    assert optim.clip_grad_norm_([p], 10.0, norm_type=1) == pytest.approx(6.0)


def test_clip_grad_norm_of_no_gradients_is_zero_and_non_finite_norms_can_raise():
    assert optim.clip_grad_norm_([param()], 1.0) == 0.0
    p = param()
    p.grad = npgan.tensor([float("nan"), 1.0, 0.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        optim.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)


# -- exponential moving average of weights ------------------------------------------------------------------


def test_ema_follows_the_written_out_average_with_its_warm_up():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = optim.EMA(model, decay=0.9)
    start = model[0].weight.numpy().astype(np.float64)
    expected = start.copy()
    for n in range(20):
        model[0].weight.data += np.float32(0.1)
        model(npgan.randn(4, 3))  # BatchNorm's running statistics move (train mode)
        d = min(0.9, (1 + n) / (10 + n))
        expected += (1 - d) * (model[0].weight.numpy() - expected)
        ema.update()
    np.testing.assert_allclose(ema.module[0].weight.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert ema.updates == 20 and ema.current_decay() == pytest.approx(21 / 30)  # still warming up
    assert not np.allclose(ema.module[0].weight.numpy(), model[0].weight.numpy())  # it lags behind
    # buffers are copied, not averaged
    np.testing.assert_array_equal(ema.module[1].running_mean.numpy(), model[1].running_mean.numpy())


def test_ema_copy_never_trains_and_stays_float32_on_the_device(device, xp):
    model = nn.Linear(3, 2).to(device)
    ema = optim.EMA(model, decay=0.99)
    assert ema.module is not model and not ema.module.training
    assert all(not p.requires_grad for p in ema.module.parameters())
    model.weight.data += 1.0
    ema.update()
    assert isinstance(ema.module.weight.data, xp.ndarray) and ema.module.weight.dtype == np.float32
    assert model.weight.requires_grad  # the trained module is untouched


def test_ema_state_dict_round_trip_continues_identically():
    model = nn.Linear(3, 2)
    ema = optim.EMA(model, decay=0.99)
    for _ in range(3):
        model.weight.data += 0.5
        ema.update()
    state = ema.state_dict()
    other = optim.EMA(model, decay=0.99)
    other.load_state_dict(state)
    model.weight.data += 0.5
    ema.update()
    other.update()
    np.testing.assert_array_equal(ema.module.weight.numpy(), other.module.weight.numpy())


@pytest.mark.parametrize("decay", [1.0, -0.1, "0.9", True])
def test_ema_rejects_a_decay_outside_zero_one(decay):
    with pytest.raises(ValueError, match=r"invalid EMA decay.*\[0, 1\)"):
        optim.EMA(nn.Linear(2, 2), decay=decay)
