"""GAN losses, written as in the papers. ``real`` and ``fake`` are the discriminator's raw scores.

With D(x) = sigmoid(score):
- minimax (Goodfellow 2014):      L_D = -log D(x) - log(1 - D(G(z)))      L_G = log(1 - D(G(z)))
- non-saturating (same paper):    L_D as above                            L_G = -log D(G(z))
- Wasserstein (Arjovsky 2017):    L_D = E[f(G(z))] - E[f(x)]              L_G = -E[f(G(z))]
- hinge (Lim & Ye 2017):          L_D = E[relu(1 - f(x))] + E[relu(1 + f(G(z)))]   L_G = -E[f(G(z))]
- gradient penalty (Gulrajani 2017): lambda * E[(||grad_x f(x_hat)||_2 - 1)^2], x_hat between x and G(z)
- R1 penalty (Mescheder 2018):    gamma / 2 * E[||grad_x f(x)||_2^2] on real samples only
"""

from __future__ import annotations

import npgan
import npgan.functional as F

LOSSES = ("minimax", "non-saturating", "wasserstein", "hinge")


def discriminator_loss(kind, real, fake, real_label=1.0, fake_label=0.0):
    """D's loss on scores of a real and a fake batch. ``real_label`` < 1 is one-sided label smoothing.

    Either label may also be a Tensor of one target per score (soft and flipped labels). ``real`` and ``fake``
    are D's raw scores (N,); ``kind`` is one of ``LOSSES``.

    >>> discriminator_loss("non-saturating", npgan.zeros(4), npgan.zeros(4))  # 2 log 2: D cannot tell
    tensor(1.3862944, dtype=float32)
    """
    if kind in ("minimax", "non-saturating"):
        # -log D(x) - log(1 - D(G(z))) as binary cross-entropy on the logits
        real_target = real_label if isinstance(real_label, npgan.Tensor) else \
            npgan.full(real.shape, real_label, dtype=real.dtype, device=real.device)
        fake_target = fake_label if isinstance(fake_label, npgan.Tensor) else \
            npgan.full(fake.shape, fake_label, dtype=fake.dtype, device=fake.device)
        return (F.binary_cross_entropy_with_logits(real, real_target)
                + F.binary_cross_entropy_with_logits(fake, fake_target))
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def generator_loss(kind, fake):
    """G's loss on D's scores of a fake batch.

    >>> generator_loss("non-saturating", npgan.zeros(4))     # -log sigmoid(0) = log 2
    tensor(0.6931472, dtype=float32)
    """
    if kind == "minimax":
        return -F.softplus(fake).mean()  # log(1 - sigmoid(s)) = -softplus(s): saturates when D wins
    if kind == "non-saturating":
        return F.softplus(-fake).mean()  # -log sigmoid(s) = softplus(-s)
    if kind in ("wasserstein", "hinge"):
        return -fake.mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def interpolate(real, fake, eps=None):
    """x_hat = eps * x + (1 - eps) * G(z), one eps ~ U[0, 1] per sample, a new leaf requiring grad.

    ``eps`` (N, 1, ...) may be given (data-parallel training draws the global batch's and keeps its shard).
    """
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = npgan.rand(*shape, dtype=real.dtype, device=real.device) if eps is None else eps
    x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
    return x_hat.detach().requires_grad_(True)


def gradient_penalty(critic, real, fake, labels=None, target_norm=1.0, eps=None):
    """E[(||grad_x critic(x_hat)||_2 - 1)^2] at random points x_hat between real and fake samples.

    The gradient is taken with ``create_graph=True`` so the penalty itself can be differentiated with
    respect to the critic's weights: a second derivative through every layer of the critic.

    >>> critic = nn.Linear(2, 1); gradient_penalty(critic, npgan.randn(8, 2), npgan.randn(8, 2)).shape
    ()
    """
    squared = _squared_input_gradient_norms(critic, interpolate(real, fake, eps), labels)
    norm = (squared + 1e-12).sqrt()  # the 1e-12 keeps d sqrt finite at 0
    return ((norm - target_norm) ** 2).mean()


def r1_penalty(critic, real, labels=None):
    """E[||grad_x critic(x)||_2^2] on real samples (Mescheder et al. 2018; the trainer scales it by gamma / 2).

    It flattens D around the real data, so G's samples settle on it instead of circling it. Like the
    gradient penalty, it is differentiated again with respect to D's weights (``create_graph=True``).

    >>> r1_penalty(nn.Linear(2, 1), npgan.randn(8, 2)).shape
    ()
    """
    return _squared_input_gradient_norms(critic, real.detach().requires_grad_(True), labels).mean()


def _squared_input_gradient_norms(critic, x, labels=None):
    """||grad_x critic(x)||^2 per sample, as a graph (``create_graph=True``) for the weights' gradient.

    ``x`` is a leaf that requires grad; the critic may pack samples first.
    """
    scores = critic(x) if labels is None else critic(x, labels)
    (grad_x,) = npgan.grad(scores.sum(), x, create_graph=True)
    flat = grad_x.reshape(grad_x.shape[0], -1)
    return (flat * flat).sum(axis=1)
