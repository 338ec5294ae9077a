"""One generator step of the GAN family, as pytorch/examples' dcgan writes it: D's step, then G's.

    repeat n_critic times:  x ~ data, z ~ noise, D <- D - lr * grad L_D(D(x), D(G(z)))  [+ penalty, clipping]
    z ~ noise,              G <- G - lr * grad L_G(D(G(z)))

When D takes one step the fake batch of D's step is reused for G's step, as pytorch/examples' DCGAN does.
With ``unroll`` = K, G's loss is taken against D unrolled K differentiable steps further, and G's gradient
flows through those steps (unrolled GAN, Metz et al. 2016; ``npgan.gan.unrolled``, docs/UNROLLED.md).
The tricks are small functions of ``npgan.gan.tricks``; each does nothing when its setting is off.

Every function takes the trainer ``t``: its config ``t.config`` (every default filled in), nets ``t.G`` and
``t.D``, optimizers ``t.opt_g`` and ``t.opt_d``, and its draws of data and noise (``t.real_batch()``,
``t.sample_noise(n)``), which come from the run's own generators so that a run repeats and resumes exactly.
"""

from __future__ import annotations

import functools

import npgan
import npgan.functional as F
from npgan.gan import losses
from npgan.gan.tricks import (
    clip_gradients,
    clip_weights,
    critic,
    critic_iterations,
    d_targets,
    instance_noise,
    penalty_points,
    set_layer_noise,
    set_learning_rates,
)
from npgan.gan.unrolled import unrolled_critic


def train_step(t) -> dict:
    """D's steps, then G's step; returns the step's losses and scores as (device) Tensors."""
    set_learning_rates(t)
    set_layer_noise(t)
    row, fake = {}, None
    iterations = critic_iterations(t)
    for _ in range(iterations):
        real, labels = t.real_batch()
        z = t.sample_noise(real.shape[0])
        if iterations == 1:  # G's step reuses this batch: keep its graph to G
            fake = t.G(z, labels)
            fake_for_d = fake.detach()
        else:
            with npgan.no_grad():
                fake_for_d = t.G(z, labels)
        row.update(d_step(t, real, fake_for_d, labels))
    row.update(g_step(t, fake, labels))
    t.step += 1
    return row


def d_step(t, real, fake, labels) -> dict:
    """One step of D: score a real batch and a (detached) fake one, take D's loss and its penalties, step."""
    c, row = t.config, {}
    d_real = critic(t, instance_noise(t, real), labels)
    d_fake = critic(t, instance_noise(t, fake), labels)
    real_label, fake_label = d_targets(t, d_real.shape[0])
    loss_d = losses.discriminator_loss(c.loss, d_real, d_fake, real_label=real_label, fake_label=fake_label)
    if c.gp_lambda:  # WGAN-GP
        penalty = losses.gradient_penalty(functools.partial(critic, t), real, fake, labels,
                                          eps=penalty_points(t, real))
        loss_d = loss_d + penalty * c.gp_lambda
        row["gp"] = penalty
    if c.r1_gamma:  # R1: D's gradient at real samples
        penalty = losses.r1_penalty(functools.partial(critic, t), real, labels)
        loss_d = loss_d + penalty * (c.r1_gamma / 2)
        row["r1"] = penalty
    t.opt_d.zero_grad()
    loss_d.backward()
    clip_gradients(t, t.D, t.opt_d)
    t.opt_d.step()
    clip_weights(t)
    row["loss_d"] = loss_d
    return {**row, **d_scores(c.loss, d_real, d_fake)}


def g_step(t, fake, labels) -> dict:
    """One step of G: a fresh fake batch (unless D's step left one), scored by D, G's loss, step."""
    c = t.config
    if fake is None:
        labels = t.sample_labels(c.batch_size // t.comm.size)  # this rank's share of the batch
        z = t.sample_noise(c.batch_size // t.comm.size)
        fake = t.G(z, labels)
    d_fake = unrolled_critic(t, fake, labels) if c.unroll else frozen_critic(t, fake, labels)
    loss_g = losses.generator_loss(c.loss, d_fake)
    t.opt_g.zero_grad()
    backward_g(t, loss_g)
    clip_gradients(t, t.G, t.opt_g)
    t.opt_g.step()
    if t.g_ema is not None:
        t.g_ema.update()
    row = {"loss_g": loss_g}
    if c.loss not in ("wasserstein", "hinge"):
        row["d_g_z2"] = F.sigmoid(d_fake).mean()
    return row


def frozen_critic(t, fake, labels):
    """D's scores of G's samples for G's step: D's weights get no gradient here, so their weight-gradient GEMMs
    are skipped."""
    t.D.requires_grad_(False)
    scores = critic(t, instance_noise(t, fake), labels)
    t.D.requires_grad_(True)
    return scores


def backward_g(t, loss_g):
    """G's gradients of its loss; unrolled, only G's: the unrolled steps' own weight gradients are not wanted."""
    if not t.config.unroll:
        loss_g.backward()
        return
    params = list(t.G.parameters())
    for p, g in zip(params, npgan.grad(loss_g, params, allow_unused=True)):
        p.grad = g


def d_scores(loss, d_real, d_fake) -> dict:
    """What the log shows of D's scores: the Wasserstein estimate, or D's mean belief in real and fake."""
    if loss in ("wasserstein", "hinge"):
        return {"wasserstein": d_real.mean() - d_fake.mean()}
    return {"d_x": F.sigmoid(d_real).mean(), "d_g_z1": F.sigmoid(d_fake).mean()}
