"""npgan's optimizers follow torch.optim's trajectories (runs only where PyTorch is installed).

Two problems, 20 steps each, in float32 in both libraries:
- a quadratic 0.5 * sum(w * (p - c)^2), each library differentiating its own parameters;
- a small MLP whose gradients npgan computes and hands to both optimizers, so the trajectories differ
  only by the optimizers.
Tolerance: both libraries round every update to float32 (relative error ~6e-8 per operation). Over 20
steps of a few operations each, the parameters (of size ~1) agree to a few hundred ulps, so rtol 2e-5 and
atol 2e-6; a wrong rule (e.g. eps inside the square root, or a missing bias correction) is off by >1e-3.
"""

import numpy as np
import pytest

import npgan
import npgan.nn as nn
from npgan import optim

torch = pytest.importorskip("torch")

TOL = {"rtol": 2e-5, "atol": 2e-6}
STEPS = 20

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.01, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    ("Adam", dict(lr=1e-3, betas=(0.0, 0.9))),
    ("Adam", dict(lr=0.01, eps=1e-3, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=5e-5)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.5, weight_decay=0.1, eps=1e-6)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CONFIGS]


def make_pair(name, kwargs, np_params, torch_params):
    return getattr(optim, name)(np_params, **kwargs), getattr(torch.optim, name)(torch_params, **kwargs)


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_quadratic_trajectory_matches_torch(name, kwargs):
    rng = np.random.default_rng(0)
    start = rng.standard_normal((4, 3)).astype(np.float32)
    weights = rng.uniform(0.5, 2.0, (4, 3)).astype(np.float32)
    centre = rng.standard_normal((4, 3)).astype(np.float32)
    p = nn.Parameter(npgan.tensor(start))
    q = torch.tensor(start, requires_grad=True)
    opt_p, opt_q = make_pair(name, kwargs, [p], [q])
    w_np, c_np = npgan.tensor(weights), npgan.tensor(centre)
    w_t, c_t = torch.from_numpy(weights), torch.from_numpy(centre)
    for step in range(STEPS):
        opt_p.zero_grad()
        opt_q.zero_grad()
        (0.5 * (w_np * (p - c_np) ** 2).sum()).backward()
        (0.5 * (w_t * (q - c_t) ** 2).sum()).backward()
        opt_p.step()
        opt_q.step()
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), err_msg=f"step {step + 1}", **TOL)
    assert p.dtype == np.float32
    assert not np.allclose(p.numpy(), start, rtol=0, atol=1e-6)  # it moved


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_mlp_trajectory_with_shared_gradients_matches_torch(name, kwargs):
    npgan.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))
    twins = [torch.tensor(p.numpy(), requires_grad=True) for p in model.parameters()]
    # Two param groups, the second with its own learning rate, as in PyTorch.
    params = list(model.parameters())
    groups_np = [{"params": params[:2]}, {"params": params[2:], "lr": kwargs["lr"] * 0.5}]
    groups_t = [{"params": twins[:2]}, {"params": twins[2:], "lr": kwargs["lr"] * 0.5}]
    opt_np, opt_t = make_pair(name, kwargs, groups_np, groups_t)
    rng = np.random.default_rng(1)
    for step in range(STEPS):
        x = npgan.tensor(rng.standard_normal((6, 5)).astype(np.float32))
        y = npgan.tensor(rng.standard_normal((6, 1)).astype(np.float32))
        opt_np.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        for p, t in zip(model.parameters(), twins):
            t.grad = torch.from_numpy(p.grad.numpy().copy())
        opt_np.step()
        opt_t.step()
        for p, t in zip(model.parameters(), twins):
            np.testing.assert_allclose(p.numpy(), t.detach().numpy(), err_msg=f"step {step + 1}", **TOL)


def test_clip_grad_norm_matches_torch():
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (5,), (2, 2, 2)]]
    for norm_type in (2.0, 1.0, float("inf")):
        ps = [nn.Parameter(npgan.zeros(*g.shape)) for g in grads]
        ts = [torch.zeros(g.shape, requires_grad=True) for g in grads]
        for p, t, g in zip(ps, ts, grads):
            p.grad, t.grad = npgan.tensor(g), torch.from_numpy(g.copy())
        total = optim.clip_grad_norm_(ps, 0.5, norm_type)
        expected = torch.nn.utils.clip_grad_norm_(ts, 0.5, norm_type)
        assert total == pytest.approx(float(expected), rel=1e-6)
        for p, t in zip(ps, ts):
            np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)
