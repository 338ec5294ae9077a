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


# -- in the trainer and the CLI -----------------------------------------------------------------------

TOY = dict(model="gan", dataset="ring8", batch_size=8, hidden=8, nz=4, log_every=1, sample_every=1000,
           checkpoint_every=2, metrics=False, num_samples=4)


def toy_config(path, **overrides):
    from npgan.gan import TrainConfig  # noqa: PLC0415

    return TrainConfig(**{**TOY, "out": str(path / "run"), **overrides})


@pytest.mark.parametrize("first_order", [False, True])
def test_unrolled_training_resumes_bit_for_bit(tmp_path, first_order):
    from npgan.gan import Trainer  # noqa: PLC0415

    # train_step and save directly: the same state as train() writes, without its pictures (fast)
    straight = Trainer(toy_config(tmp_path / "a", unroll=2, unroll_first_order=first_order), progress=False)
    for _ in range(4):
        straight.train_step()
    first = Trainer(toy_config(tmp_path / "b", unroll=2, unroll_first_order=first_order), progress=False)
    for _ in range(2):
        first.train_step()
    first.save(str(tmp_path / "checkpoint.npz"))
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), progress=False)
    assert resumed.step == 2
    assert resumed.config.unroll == 2 and resumed.config.unroll_first_order == first_order
    for _ in range(2):
        resumed.train_step()
    for net in ("G", "D"):
        for name, value in getattr(straight, net).state_dict().items():
            assert np.array_equal(value, getattr(resumed, net).state_dict()[name]), f"{net} {name}"


def test_unrolling_changes_g_but_not_d_and_its_two_variants_differ(tmp_path):
    from npgan.gan import Trainer  # noqa: PLC0415

    runs = {}
    for name, settings in {"plain": {}, "first": dict(unroll=2, unroll_first_order=True),
                           "second": dict(unroll=2)}.items():
        trainer = Trainer(toy_config(tmp_path / name, steps=1), progress=False)
        trainer.config.unroll = settings.get("unroll", 0)
        trainer.config.unroll_first_order = settings.get("unroll_first_order", False)
        trainer.train_step()
        runs[name] = trainer
    d_plain = runs["plain"].D.state_dict()
    for name in ("first", "second"):  # D's real step comes before the unrolling: the same in all three
        assert all(np.array_equal(v, runs[name].D.state_dict()[k]) for k, v in d_plain.items())
    g = {name: runs[name].G.state_dict() for name in runs}
    assert not all(np.array_equal(v, g["first"][k]) for k, v in g["plain"].items())
    assert not all(np.array_equal(v, g["second"][k]) for k, v in g["first"].items())


@pytest.mark.parametrize("model", ["dcgan", "cgan"])
def test_dcgan_and_cgan_unroll_through_convolutions_and_batchnorm_leaving_its_statistics_alone(tmp_path, model):
    from npgan.gan import Trainer  # noqa: PLC0415

    config = toy_config(tmp_path, model=model, dataset="fake", ngf=4, ndf=4, nz=8, steps=1, unroll=1)
    trainer = Trainer(config, progress=False)
    plain = Trainer(toy_config(tmp_path / "plain", model=model, dataset="fake", ngf=4, ndf=4, nz=8, steps=1),
                    progress=False)
    trainer.train_step()
    plain.train_step()

    def counts(net):
        return {name: int(b.data) for name, b in net.named_buffers() if name.endswith("num_batches_tracked")}

    # G ran once in both (the unrolled steps' fakes come through functional_call); D twice in the critic
    # step, and in the plain G step once more, while the unrolled D of the G step is not D.
    assert set(counts(trainer.G).values()) == set(counts(plain.G).values()) == {1}
    assert set(counts(trainer.D).values()) == {2} and set(counts(plain.D).values()) == {3}
    assert all(p.dtype == np.float32 for p in trainer.G.parameters())


@pytest.mark.parametrize("settings, message", [
    (dict(model="wgan", unroll=2), r"unroll \(--unroll\) is for the models gan, dcgan, cgan, not wgan"),
    (dict(unroll=-1), "unroll must be an int >= 0"),
    (dict(unroll_first_order=True), r"needs unroll >= 1"),
])
def test_bad_unroll_settings_are_clear_errors(tmp_path, settings, message):
    from npgan.gan import Trainer  # noqa: PLC0415

    with pytest.raises(ValueError, match=message):
        Trainer(toy_config(tmp_path, **settings), progress=False)


@pytest.mark.parametrize("argv, message", [
    (["wgan", "--unroll", "2"], "--unroll is for the models gan, dcgan, cgan, not wgan"),
    (["wgan-gp", "--unroll", "1"], "--unroll is for the models gan, dcgan, cgan, not wgan-gp"),
    (["gan", "--unroll-first-order"], "--unroll-first-order needs --unroll K"),
    (["gan", "--unroll", "-1"], "--unroll"),
])
def test_cli_refuses_unroll_where_it_does_not_apply(argv, message, capsys):
    from npgan.cli import main  # noqa: PLC0415

    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv, "--dataset", "ring8"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_trains_an_unrolled_gan(tmp_path, capsys):
    from npgan.cli import main  # noqa: PLC0415

    out = tmp_path / "run"
    assert main(["train", "gan", "--dataset", "ring8", "--unroll", "2", "--steps", "2", "--hidden", "8",
                 "--batch-size", "8", "--out", str(out), "--quiet", "--no-metrics"]) == 0
    assert "trained gan for 2 steps" in capsys.readouterr().out
    from npgan.checkpoint import load_checkpoint  # noqa: PLC0415

    assert load_checkpoint(str(out / "checkpoint.npz"))["config"]["unroll"] == 2
