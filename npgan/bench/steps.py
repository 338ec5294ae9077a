"""One training step of each configuration, in npgan and in PyTorch, as ``Trainer.train_step`` runs it."""

from __future__ import annotations

from npgan.bench.models import GP_CONFIGS, PHASES, build_models, image_shape, torch_models

_OPTIMIZERS = {  # (optimizer, keyword arguments) per configuration, from benchmarks/CONFIGS.md
    "gan-mlp": ("adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    "dcgan-32": ("adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    "dcgan-64": ("adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    "wgan-gp-32": ("adam", dict(lr=1e-4, betas=(0.0, 0.9))),
    "wgan-32": ("rmsprop", dict(lr=5e-5)),
    "toy-mlp": ("adam", dict(lr=2e-4, betas=(0.5, 0.999))),
    "toy-wgan-gp": ("adam", dict(lr=1e-4, betas=(0.0, 0.9))),
}
GP_LAMBDA, CLIP = 10.0, 0.01


def npgan_steps(config: str, batch_size: int, device: str, timers=None) -> dict:
    """``{phase: step function}`` for npgan; ``timers`` (if given) is called with each ``optimizer.step``."""
    import npgan  # noqa: PLC0415
    from npgan import backend, nn, optim  # noqa: PLC0415
    from npgan.gan import losses  # noqa: PLC0415

    npgan.manual_seed(0)
    G, D, nz = build_models(config, device)
    nn.fuse(G)  # Linear + (Leaky)ReLU as one op, as the Trainer runs them
    nn.fuse(D)
    kind, kwargs = _OPTIMIZERS[config]
    make = optim.Adam if kind == "adam" else optim.RMSprop
    opt_g, opt_d = make(G.parameters(), **kwargs), make(D.parameters(), **kwargs)
    real = npgan.rand(batch_size, *image_shape(config), device=device) * 2.0 - 1.0
    z_shape = (batch_size, nz)

    def opt_step(opt):
        if timers is None:
            opt.step()
        else:
            timers(opt.step)

    def gan_step():
        fake = G(npgan.randn(*z_shape, device=device))
        loss_d = losses.discriminator_loss("non-saturating", D(real), D(fake.detach()))
        opt_d.zero_grad()
        loss_d.backward()
        opt_step(opt_d)
        D.requires_grad_(False)
        loss_g = losses.generator_loss("non-saturating", D(fake))
        D.requires_grad_(True)
        opt_g.zero_grad()
        loss_g.backward()
        opt_step(opt_g)

    def critic_step():
        with npgan.no_grad():
            fake = G(npgan.randn(*z_shape, device=device))
        loss_d = losses.discriminator_loss("wasserstein", D(real), D(fake))
        if config in GP_CONFIGS:
            loss_d = loss_d + losses.gradient_penalty(D, real, fake) * GP_LAMBDA
        opt_d.zero_grad()
        loss_d.backward()
        opt_step(opt_d)
        if config == "wgan-32":
            for p in D.parameters():
                backend.get_array_module(p.data).clip(p.data, -CLIP, CLIP, out=p.data)

    def generator_step():
        fake = G(npgan.randn(*z_shape, device=device))
        D.requires_grad_(False)
        loss_g = losses.generator_loss("wasserstein", D(fake))
        D.requires_grad_(True)
        opt_g.zero_grad()
        loss_g.backward()
        opt_step(opt_g)

    steps = {"step": gan_step, "critic": critic_step, "generator": generator_step}
    return {phase: steps[phase] for phase in PHASES[config]}


def torch_steps(config: str, batch_size: int, device: str) -> dict:
    """The same steps as ``npgan_steps`` in PyTorch."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as tF  # noqa: PLC0415

    torch.manual_seed(0)
    G, D, nz = torch_models(config, device)
    kind, kwargs = _OPTIMIZERS[config]
    make = torch.optim.Adam if kind == "adam" else torch.optim.RMSprop
    opt_g, opt_d = make(G.parameters(), **kwargs), make(D.parameters(), **kwargs)
    real = torch.rand(batch_size, *image_shape(config), device=device) * 2.0 - 1.0

    def z():
        return torch.randn(batch_size, nz, device=device)

    def freeze(net, frozen):
        for p in net.parameters():
            p.requires_grad_(not frozen)

    def gan_step():
        fake = G(z())
        d_real, d_fake = D(real), D(fake.detach())
        loss_d = (tF.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + tF.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        freeze(D, True)
        loss_g = tF.softplus(-D(fake)).mean()  # non-saturating: -log sigmoid(D(G(z)))
        freeze(D, False)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    def gradient_penalty(fake):
        eps = torch.rand((batch_size,) + (1,) * (real.ndim - 1), device=device)
        x_hat = (eps * real + (1.0 - eps) * fake).requires_grad_(True)
        (grad_x,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
        norm = (grad_x.reshape(batch_size, -1).pow(2).sum(1) + 1e-12).sqrt()
        return (norm - 1.0).pow(2).mean()

    def critic_step():
        with torch.no_grad():
            fake = G(z())
        loss_d = D(fake).mean() - D(real).mean()
        if config in GP_CONFIGS:
            loss_d = loss_d + gradient_penalty(fake) * GP_LAMBDA
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        if config == "wgan-32":
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-CLIP, CLIP)

    def generator_step():
        fake = G(z())
        freeze(D, True)
        loss_g = -D(fake).mean()
        freeze(D, False)
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    steps = {"step": gan_step, "critic": critic_step, "generator": generator_step}
    return {phase: steps[phase] for phase in PHASES[config]}
