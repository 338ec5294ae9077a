"""The tricks of a GAN step, each a small function of the trainer ``t`` that ``npgan.gan.step`` calls.

Scoring with D (``critic``, PacGAN packing inside), the critic schedule (n_critic, WGAN's warm-up), learning-rate
decay, instance noise and G's layer noise, soft, smoothed and flipped labels, gradient-norm clipping and WGAN's
weight clipping. Each returns its input unchanged (or does nothing) when its setting is off.
"""

from __future__ import annotations

import npgan
from npgan import backend, nn, optim
from npgan.gan.nets import pack_samples


def critic(t, x, labels=None, params=None):
    """D's scores of samples x, packed when ``pack`` > 1; with ``params`` (name -> Tensor), D's weights replaced."""
    x = pack_samples(x, t.config.pack)
    if params is None:
        return t.D(x, labels)
    return nn.functional_call(t.D, params, x, labels)


def critic_iterations(t) -> int:
    """D's steps before this G step: n_critic; WGAN: 100 for the first 25 G steps and every 500th."""
    if t.variant.warmup_critic and (t.step < 25 or t.step % 500 == 0):
        return 100
    return t.config.n_critic


def linear_decay(t) -> float:
    """1 - step / total, floored at 0: the schedule of the decaying learning rates and noises."""
    return max(0.0, 1.0 - t.step / max(1, t.total_steps()))


def set_learning_rates(t):
    """With ``lr_decay`` (TTUR keeps its ratio): lr = lr_0 * (1 - step / total), for both optimizers."""
    if not t.config.lr_decay:
        return
    scale = linear_decay(t)
    for opt in (t.opt_g, t.opt_d):
        for group in opt.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = group["initial_lr"] * scale


def set_layer_noise(t):
    """G's layer noise (``g_layer_noise``): std = std_0 * (1 - step / total), like the instance noise."""
    std = t.config.g_layer_noise * linear_decay(t)
    for m in t.G.modules():
        if isinstance(m, nn.GaussianNoise):
            m.std = std


def instance_noise(t, x):
    """x plus Gaussian noise of std ``instance_noise`` * (1 - step / total), drawn for the global batch."""
    std = t.config.instance_noise * linear_decay(t)
    if std <= 0.0:
        return x
    return x + npgan.randn(*x.shape, dtype=x.dtype, device=x.device) * std


def d_targets(t, n):
    """D's targets for n real and n fake scores: floats, or arrays with soft and flipped labels.

    ``label_smoothing`` s: real label 1 - s. ``soft_labels`` (low, high): each real label ~ U[low, high]
    (ganhacks: 0.7 to 1.2); ``flip_labels`` p: each real score's target becomes the fake label (0) and each
    fake score's a real label, with probability p, independently. Drawn from npgan's generator, so runs repeat
    and resume exactly; under MPI every rank draws the global batch's labels and keeps its shard
    (``distributed.batch_shard``).
    """
    c = t.config
    if c.soft_labels is None and not c.flip_labels:
        return 1.0 - c.label_smoothing, 0.0
    rng = backend.host_rng()

    def real_labels():
        if c.soft_labels is None:
            return backend.numpy.full(n, 1.0 - c.label_smoothing)
        return rng.uniform(c.soft_labels[0], c.soft_labels[1], n)

    real, fake = real_labels(), backend.numpy.zeros(n)
    if c.flip_labels:
        real = backend.numpy.where(rng.random(n) < c.flip_labels, 0.0, real)
        fake = backend.numpy.where(rng.random(n) < c.flip_labels, real_labels(), fake)
    dtype = backend.DEFAULT_DTYPE
    real, fake = real.astype(dtype), fake.astype(dtype)
    return npgan.tensor(real, device=t.device), npgan.tensor(fake, device=t.device)


def penalty_points(t, real):
    """WGAN-GP's interpolation weights eps, one per sample (under MPI, this rank's rows of the global batch's:
    ``distributed.batch_shard``)."""
    return npgan.rand(real.shape[0], *(1,) * (real.ndim - 1), dtype=real.dtype, device=real.device)


def clip_gradients(t, module, optimizer):
    """``clip_grad_norm``: clip the network's whole gradient, after averaging it over MPI ranks, so that N ranks
    clip the same global gradient one process would."""
    if t.config.clip_grad_norm:
        if hasattr(optimizer, "allreduce_grads"):  # under MPI (npgan.runtime.distributed.DistributedOptimizer)
            optimizer.allreduce_grads()
        optim.clip_grad_norm_(module.parameters(), t.config.clip_grad_norm)


def clip_weights(t):
    """WGAN: every critic weight into [-clip, clip] after its step."""
    if t.config.clip:
        for p in t.D.parameters():
            xp = backend.get_array_module(p.data)
            xp.clip(p.data, -t.config.clip, t.config.clip, out=p.data)
