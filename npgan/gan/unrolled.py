"""Unrolled GAN (Metz, Poole, Pfau & Sohl-Dickstein 2016): G plays against D's K next moves.

With D's weights theta_D and its optimizer's rule theta -> step(theta, grad), unrolling takes K steps

    theta^0 = theta_D,    theta^{k+1} = step(theta^k, d f(theta_G, theta^k) / d theta^k)

where f is D's loss on a fresh real batch and fresh fakes of G, and trains G on L_G(theta_G, theta^K): its
loss against the D it would face after K more updates. Every step is a Tensor expression
(``optim.differentiable_step``, gradients by ``npgan.grad(..., create_graph=True)``), so G's gradient

    dL_G/dtheta_G = dL_G/dtheta_G |_(theta^K fixed) + dL_G/dtheta^K * dtheta^K/dtheta_G

includes the second term: how D's answer to G moves when G moves (second derivatives of f). That term is
what stops G from over-fitting to one fixed D (mode hopping). ``first_order=True`` drops it (theta^K is
treated as a constant): the cheaper surrogate the paper contrasts, kept so the two can be compared.
"""

from __future__ import annotations

import functools

import npgan
from npgan import nn, optim
from npgan.autograd import Tensor
from npgan.gan import losses
from npgan.gan.tricks import critic, instance_noise


def unroll_discriminator(D, opt_d, d_loss, steps: int, first_order: bool = False) -> dict:
    """D's parameters after ``steps`` differentiable steps of ``opt_d``: a dict name -> Tensor.

    ``d_loss(params)`` returns D's loss with D's parameters replaced by ``params`` (a dict name -> Tensor;
    use ``nn.functional_call``); it is called once per step, so it may draw a fresh batch each time.
    The steps use ``opt_d``'s hyperparameters and its current moments; neither ``opt_d`` nor D changes.

    The unrolled weights start as new leaves holding D's arrays, so a backward pass through them never
    writes D's ``.grad``. With ``first_order`` each step's result is cut from the graph, and the returned
    weights carry no gradient to what produced them (the surrogate-gradient variant). ``steps = 0``
    returns D's current weights, so the unrolled loss is then the plain one.
    """
    names = {id(p): name for name, p in D.named_parameters()}
    owned = optim.optimizer_parameters(opt_d)
    strangers = [i for i, p in enumerate(owned) if id(p) not in names]
    if strangers:
        raise ValueError(f"unroll_discriminator: parameters {strangers} of the optimizer are not D's parameters")
    current = [Tensor(p.data, requires_grad=True) for p in owned]
    state = None
    for _ in range(steps):
        loss = d_loss({names[id(p)]: t for p, t in zip(owned, current)})
        grads = npgan.grad(loss, current, create_graph=not first_order, allow_unused=True)
        current, state = optim.differentiable_step(opt_d, current, grads, state)
        if first_order:
            current = [t.detach().requires_grad_(True) for t in current]
            state = optim.detach_state(state)
    if first_order:
        current = [t.detach() for t in current]
    return {names[id(p)]: t for p, t in zip(owned, current)}


def unrolled_critic(t, fake, labels):
    """D's scores of G's ``fake`` batch with D's weights after ``unroll`` more differentiable steps (trainer ``t``).

    D's real update is the ordinary optimizer step of the critic loop (``npgan.gan.step``); G's loss is then
    taken against D unrolled K steps further from those weights (with D's optimizer's own hyperparameters and
    moments, on K fresh real batches and fresh fakes), and G's gradient flows through the K steps, second
    derivatives included (the paper's full method: the second-order term is what makes unrolling work against
    mode collapse). ``unroll_first_order`` cuts the unrolled weights from G's graph instead: the cheaper
    surrogate, to compare against. The unrolled steps use D's adversarial loss (with label smoothing and
    instance noise), not its penalties. Batches and noise come from the trainer's own generators, so a run
    still resumes exactly.
    """
    c = t.config
    params = unroll_discriminator(t.D, t.opt_d, functools.partial(_unrolled_d_loss, t), c.unroll,
                                  c.unroll_first_order)
    return critic(t, instance_noise(t, fake), labels, params)


def _unrolled_d_loss(t, params):
    """D's loss on a fresh real batch and fresh fakes, with D's weights ``params`` (one unrolled step)."""
    c = t.config
    real, labels = t.real_batch()
    z = t.sample_noise(real.shape[0])
    with npgan.set_grad_enabled(not c.unroll_first_order):  # first order: no path from these fakes to G
        fake = nn.functional_call(t.G, {}, z, labels)  # G's BatchNorm statistics stay as they are
    d_real = critic(t, instance_noise(t, real), labels, params)
    d_fake = critic(t, instance_noise(t, fake), labels, params)
    return losses.discriminator_loss(c.loss, d_real, d_fake, real_label=1.0 - c.label_smoothing)
