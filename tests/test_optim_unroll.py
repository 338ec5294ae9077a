"""optim.differentiable_step: one SGD or Adam step as Tensor ops, equal to the optimizer's real step
(npgan/optim.py).

The comparisons run in float64, where the two computations differ only by rounding (~1e-16 relative per
operation; Adam's real step moves the bias correction out of the denominator): rtol 1e-12.
"""

import numpy as np
import pytest

import npgan
import npgan.nn as nn
from npgan import optim

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.999))),  # beta1 0.5: PyTorch's lerp takes its other branch
    ("Adam", dict(lr=0.02, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
]
TOL = {"rtol": 1e-12, "atol": 1e-14}


def model():
    npgan.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()


def gradients(net, seed):
    x = npgan.tensor(np.random.default_rng(seed).standard_normal((5, 3)))
    loss = (net(x) ** 2).mean()
    return npgan.grad(loss, list(net.parameters()))


def set_grads(net, grads):
    for p, g in zip(net.parameters(), grads):
        p.grad = npgan.Tensor(g.data.copy())


@pytest.mark.parametrize("name, hyper", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_differentiable_steps_equal_the_optimizers_real_steps_from_its_current_state(name, hyper):
    net = model()
    opt = getattr(optim, name)(net.parameters(), **hyper)
    for seed in range(3):  # warm moments, so the state read is not zeros
        set_grads(net, gradients(net, seed))
        opt.step()
    before = [p.data.copy() for p in net.parameters()]
    moments = {id(p): {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in opt.state[p].items()}
               for p in net.parameters()}
    first = gradients(net, 10)
    # two differentiable steps (the second from the first's state), then the same two real steps
    new, state = optim.differentiable_step(opt, list(net.parameters()), first, None)
    for p, b in zip(net.parameters(), before):  # nothing mutated
        assert np.array_equal(p.data, b)
        assert all(np.array_equal(v, moments[id(p)][k]) for k, v in opt.state[p].items())
    clone = model()
    clone.load_state_dict({k: v for k, v in zip(dict(net.named_parameters()), (t.data for t in new))}, strict=False)
    second = npgan.grad((clone(npgan.tensor(np.ones((2, 3)))) ** 2).mean(), list(clone.parameters()))
    new2, _ = optim.differentiable_step(opt, new, second, state)
    set_grads(net, first)
    opt.step()
    set_grads(net, second)
    opt.step()
    for p, q in zip(net.parameters(), new2):
        assert np.allclose(q.data, p.data, **TOL)


def test_missing_state_is_zeros_at_step_zero():
    net = model()
    opt = optim.Adam(net.parameters(), lr=0.01)
    grads = gradients(net, 0)
    new, state = optim.differentiable_step(opt, list(net.parameters()), grads)
    assert not opt.state or all(not s for s in opt.state.values())  # still fresh
    set_grads(net, grads)
    opt.step()
    for p, q in zip(net.parameters(), new):
        assert np.allclose(q.data, p.data, **TOL)
    assert all(s["step"] == 1 for s in state)


def test_parameters_with_different_step_counts_get_their_own_bias_corrections():
    net = model()
    opt = optim.Adam(net.parameters(), lr=0.01, betas=(0.5, 0.9))
    params = list(net.parameters())
    for seed, given in ((0, [0]), (1, [0, 1]), (2, [0, 1, 2, 3])):  # steps end at 3, 2, 1, 1
        grads = gradients(net, seed)
        for i, (p, g) in enumerate(zip(params, grads)):
            p.grad = npgan.Tensor(g.data.copy()) if i in given else None
        opt.step()
    grads = gradients(net, 5)
    new, state = optim.differentiable_step(opt, params, grads)
    set_grads(net, grads)
    opt.step()
    for p, q in zip(params, new):
        assert np.allclose(q.data, p.data, **TOL)
    assert [s["step"] for s in state] == [4, 3, 2, 2]
    fresh = optim.Adam(params, lr=0.01)  # one parameter with moments, the others without: zeros
    fresh.state[params[0]] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in opt.state[params[0]].items()}
    new, _ = optim.differentiable_step(fresh, params, grads)
    set_grads(net, grads)
    fresh.step()
    for p, q in zip(params, new):
        assert np.allclose(q.data, p.data, **TOL)


def test_a_parameter_without_gradient_is_left_as_it_is():
    net = model()
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    params = list(net.parameters())
    grads = list(gradients(net, 0))
    grads[1] = None
    new, state = optim.differentiable_step(opt, params, grads)
    assert new[1] is params[1] and state[1] == {}
    assert not np.array_equal(new[0].data, params[0].data)


def test_the_step_is_differentiable_through_parameters_and_gradients():
    net = model()
    opt = optim.Adam(net.parameters(), lr=0.05, betas=(0.5, 0.9))
    for seed in range(2):
        set_grads(net, gradients(net, seed))
        opt.step()
    start = [npgan.tensor(p.data.copy(), requires_grad=True) for p in net.parameters()]
    grads = [npgan.tensor(np.random.default_rng(i).standard_normal(p.shape), requires_grad=True)
             for i, p in enumerate(net.parameters())]

    def stepped(*tensors):
        new, _ = optim.differentiable_step(opt, tensors[:4], tensors[4:])
        return npgan.cat([t.reshape(-1) for t in new])

    assert npgan.gradcheck(stepped, start + grads)


def test_float32_parameters_stay_float32():
    npgan.manual_seed(0)
    net = nn.Linear(3, 2)
    for opt in (optim.SGD(net.parameters(), lr=0.1, momentum=0.9), optim.Adam(net.parameters())):
        x = npgan.randn(4, 3)
        grads = npgan.grad(net(x).sum(), list(net.parameters()))
        new, state = optim.differentiable_step(opt, list(net.parameters()), grads)
        assert all(t.dtype == np.float32 for t in new)


def test_bad_arguments_are_clear_errors():
    net = model()
    params = list(net.parameters())
    with pytest.raises(TypeError, match="supports SGD and Adam optimizers, got RMSprop"):
        optim.differentiable_step(optim.RMSprop(params), params, [None] * 4)
    opt = optim.SGD(params, lr=0.1)
    with pytest.raises(ValueError, match="holds 4 parameters, got 3 params"):
        optim.differentiable_step(opt, params[:3], [None] * 3)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(4,\), params\[0\] \(4, 3\)"):
        optim.differentiable_step(opt, params, [npgan.zeros(4, dtype="float64")] + [None] * 3)


def test_the_steps_equal_torch_optim_steps():
    torch = pytest.importorskip("torch")
    for name, hyper in CONFIGS:
        net = model()
        t_params = [torch.tensor(p.data.copy(), requires_grad=True) for p in net.parameters()]
        opt = getattr(optim, name)(net.parameters(), **hyper)
        t_opt = getattr(torch.optim, name)(t_params, **hyper)
        for seed in range(3):
            grads = gradients(net, seed)
            set_grads(net, grads)
            opt.step()
            for t, g in zip(t_params, grads):
                t.grad = torch.tensor(g.data.copy())
            t_opt.step()
        grads = gradients(net, 7)
        new, _ = optim.differentiable_step(opt, list(net.parameters()), grads)
        for t, g in zip(t_params, grads):
            t.grad = torch.tensor(g.data.copy())
        t_opt.step()
        for q, t in zip(new, t_params):
            assert np.allclose(q.data, t.detach().numpy(), **TOL), name


def test_a_detached_state_holds_the_same_moments_without_a_graph():
    net = model()
    opt = optim.Adam(net.parameters(), lr=0.01)
    params = [npgan.tensor(p.data.copy(), requires_grad=True) for p in net.parameters()]
    x = npgan.tensor(np.ones((2, 3)))
    names = [name for name, _ in net.named_parameters()]
    loss = (nn.functional_call(net, dict(zip(names, params)), x) ** 2).mean()
    grads = npgan.grad(loss, params, create_graph=True)
    new, state = optim.differentiable_step(opt, params, grads)
    detached = optim.detach_state(state)
    again, _ = optim.differentiable_step(opt, [t.detach() for t in new], [g.detach() for g in grads], detached)
    with_graph, _ = optim.differentiable_step(opt, new, grads, state)
    for a, b in zip(again, with_graph):
        assert np.array_equal(a.data, b.data)
        assert not a.requires_grad and b.requires_grad
