"""Unrolled GAN: G's loss against D after K differentiable optimizer steps (npgan/gan/unrolled.py).

Tiny float64 MLPs (G 2-3-2, D 2-3-1, Tanh so finite differences see no kinks) and fixed batches, so the
unrolled loss is a smooth deterministic function of G's weights that gradcheck can difference.
"""

import numpy as np
import pytest

import npgan
import npgan.nn as nn
from npgan import optim
from npgan.gan import losses
from npgan.gan.unrolled import unroll_discriminator

OPTIMIZERS = {
    "sgd": lambda params: optim.SGD(params, lr=0.5, momentum=0.5),
    "adam": lambda params: optim.Adam(params, lr=0.05, betas=(0.5, 0.999)),
}


def mlp(out):
    return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, out)).double()


def setup(optimizer, seed=0):
    """G, D, D's optimizer with warm moments (two real steps), real batches and noise for up to 3 steps."""
    npgan.manual_seed(seed)
    G, D = mlp(2), mlp(1)
    opt = OPTIMIZERS[optimizer](D.parameters())
    rng = np.random.default_rng(seed)
    reals = [npgan.tensor(rng.standard_normal((4, 2))) for _ in range(3)]
    zs = [npgan.tensor(rng.standard_normal((4, 2))) for _ in range(4)]  # zs[k]: unrolled step k; zs[3]: G's loss
    for k in range(2):
        with npgan.no_grad():
            fake = G(zs[k])
        loss = losses.discriminator_loss("non-saturating", D(reals[k]).reshape(-1), D(fake).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return G, D, opt, reals, zs


def unrolled_g_loss(G, D, opt, reals, zs, K, first_order=False):
    """A function of G's weights: G's non-saturating loss against D unrolled K steps."""
    names = [name for name, _ in G.named_parameters()]

    def loss(*g_weights):
        g_params = dict(zip(names, g_weights))
        step = iter(range(K))

        def d_loss(d_params):
            k = next(step)
            fake = nn.functional_call(G, g_params, zs[k])
            return losses.discriminator_loss("non-saturating", nn.functional_call(D, d_params, reals[k]).reshape(-1),
                                             nn.functional_call(D, d_params, fake).reshape(-1))

        unrolled = unroll_discriminator(D, opt, d_loss, K, first_order)
        fake = nn.functional_call(G, g_params, zs[3])
        return losses.generator_loss("non-saturating", nn.functional_call(D, unrolled, fake).reshape(-1))

    return loss


def g_weights(G):
    return [npgan.tensor(p.data.copy(), requires_grad=True) for p in G.parameters()]


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("K", [1, 2, 3])
def test_unrolled_generator_loss_gradient_matches_finite_differences(optimizer, K):
    G, D, opt, reals, zs = setup(optimizer)
    assert npgan.gradcheck(unrolled_g_loss(G, D, opt, reals, zs, K), g_weights(G), atol=1e-7, rtol=1e-5)


def test_zero_unrolled_steps_is_the_plain_generator_loss():
    G, D, opt, reals, zs = setup("adam")
    weights = g_weights(G)
    unrolled = unrolled_g_loss(G, D, opt, reals, zs, 0)(*weights)
    plain = losses.generator_loss("non-saturating", D(G(zs[3])).reshape(-1))
    assert float(unrolled) == float(plain)
    ours = npgan.grad(unrolled, weights)
    theirs = npgan.grad(plain, list(G.parameters()))
    for a, b in zip(ours, theirs):
        assert np.array_equal(a.data, b.data)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_first_order_unrolling_treats_the_unrolled_discriminator_as_a_constant(optimizer):
    G, D, opt, reals, zs = setup(optimizer)
    weights = g_weights(G)
    first = npgan.grad(unrolled_g_loss(G, D, opt, reals, zs, 2, first_order=True)(*weights), weights)
    second = npgan.grad(unrolled_g_loss(G, D, opt, reals, zs, 2)(*weights), weights)
    # the surrogate: G's plain loss against a copy of D holding the unrolled weights
    names = [name for name, _ in G.named_parameters()]
    step = iter(range(2))

    def d_loss(d_params):
        k = next(step)
        return losses.discriminator_loss("non-saturating", nn.functional_call(D, d_params, reals[k]).reshape(-1),
                                         nn.functional_call(D, d_params, G(zs[k])).reshape(-1))

    frozen = {name: t.detach() for name, t in unroll_discriminator(D, opt, d_loss, 2).items()}
    fake = nn.functional_call(G, dict(zip(names, weights)), zs[3])
    surrogate = npgan.grad(losses.generator_loss("non-saturating", nn.functional_call(D, frozen, fake).reshape(-1)),
                           weights)
    for a, b in zip(first, surrogate):
        assert np.allclose(a.data, b.data, rtol=1e-12, atol=1e-15)
    # and the second-order term is there in the full method
    assert max(float(abs(a.data - b.data).max()) for a, b in zip(first, second)) > 1e-4


def test_unrolling_leaves_d_its_optimizer_and_its_gradients_untouched():
    G, D, opt, reals, zs = setup("adam")
    weights = [p.data.copy() for p in D.parameters()]
    moments = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in opt.state[p].items()}
               for p in D.parameters()]
    for p in D.parameters():
        p.grad = None
    loss = unrolled_g_loss(G, D, opt, reals, zs, 3)(*G.parameters())
    loss.backward()
    for p, w, m in zip(D.parameters(), weights, moments):
        assert np.array_equal(p.data, w) and p.grad is None
        assert all(np.array_equal(v, m[k]) for k, v in opt.state[p].items())
    assert all(p.grad is not None for p in G.parameters())


def test_an_optimizer_of_other_parameters_is_refused():
    G, D, opt, reals, zs = setup("sgd")
    with pytest.raises(ValueError, match="not D's parameters"):
        unroll_discriminator(G, opt, lambda params: None, 1)


# -- against PyTorch ----------------------------------------------------------------------------------


def torch_unrolled_gradient(torch, G, D, opt, reals, zs, K, optimizer):
    """The same unrolled gradient written with torch.func.functional_call and autograd.grad(create_graph)."""
    F = torch.nn.functional
    t_G = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    t_D = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    t_G.load_state_dict({k: torch.tensor(v) for k, v in G.state_dict().items()})
    t_D.load_state_dict({k: torch.tensor(v) for k, v in D.state_dict().items()})
    group = opt.param_groups[0]
    names = [name for name, _ in D.named_parameters()]
    theta = [torch.tensor(p.data.copy(), requires_grad=True) for p in D.parameters()]
    state = [{k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in opt.state[p].items()}
             for p in D.parameters()]
    real = [torch.tensor(r.data) for r in reals]
    z = [torch.tensor(t.data) for t in zs]

    def score(params, x):
        return torch.func.functional_call(t_D, dict(zip(names, params)), (x,)).reshape(-1)

    for k in range(K):
        fake = t_G(z[k])
        s_real, s_fake = score(theta, real[k]), score(theta, fake)
        loss = (F.binary_cross_entropy_with_logits(s_real, torch.ones_like(s_real))
                + F.binary_cross_entropy_with_logits(s_fake, torch.zeros_like(s_fake)))
        grads = torch.autograd.grad(loss, theta, create_graph=True)
        new = []
        for i, (p, g) in enumerate(zip(theta, grads)):
            s = state[i]
            if optimizer == "sgd":  # momentum 0.5, no dampening
                buf = s["momentum_buffer"] * group["momentum"] + g
                s["momentum_buffer"] = buf
                new.append(p - group["lr"] * buf)
            else:
                beta1, beta2 = group["betas"]
                s["step"] += 1
                s["exp_avg"] = torch.lerp(s["exp_avg"], g, 1 - beta1)
                s["exp_avg_sq"] = s["exp_avg_sq"] * beta2 + (1 - beta2) * g * g
                denom = s["exp_avg_sq"].sqrt() / (1 - beta2 ** s["step"]) ** 0.5 + group["eps"]
                new.append(p - group["lr"] / (1 - beta1 ** s["step"]) * s["exp_avg"] / denom)
        theta = new
    s_fake = score(theta, t_G(z[3]))
    loss_g = F.binary_cross_entropy_with_logits(s_fake, torch.ones_like(s_fake))
    return [g.numpy() for g in torch.autograd.grad(loss_g, list(t_G.parameters()))]


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_unrolled_gradient_matches_torch_func_functional_call(optimizer):
    torch = pytest.importorskip("torch")
    G, D, opt, reals, zs = setup(optimizer)
    weights = g_weights(G)
    ours = npgan.grad(unrolled_g_loss(G, D, opt, reals, zs, 3)(*weights), weights)
    theirs = torch_unrolled_gradient(torch, G, D, opt, reals, zs, 3, optimizer)
    for a, b in zip(ours, theirs):
        assert np.allclose(a.data, b, rtol=1e-10, atol=1e-13)
