import math

import numpy as np
import pytest

import npgan
from npgan import nn
from npgan.gan import losses


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


REAL = np.array([2.0, -1.0, 0.5])
FAKE = np.array([-3.0, 0.25, 1.0])


def test_gan_losses_match_their_formulas():
    real, fake = npgan.tensor(REAL), npgan.tensor(FAKE)
    d = losses.discriminator_loss("minimax", real, fake).item()
    expected = np.mean(-np.log(_sigmoid(REAL))) + np.mean(-np.log(1 - _sigmoid(FAKE)))
    assert d == pytest.approx(expected, rel=1e-6)
    assert losses.generator_loss("minimax", fake).item() == pytest.approx(np.mean(np.log(1 - _sigmoid(FAKE))),
                                                                          rel=1e-6)
    assert losses.generator_loss("non-saturating", fake).item() == pytest.approx(
        np.mean(-np.log(_sigmoid(FAKE))), rel=1e-6)


def test_one_sided_label_smoothing_changes_only_the_real_target():
    real, fake = npgan.tensor(REAL), npgan.tensor(FAKE)
    d = losses.discriminator_loss("non-saturating", real, fake, real_label=0.9).item()
    s = _sigmoid(REAL)
    expected = np.mean(-(0.9 * np.log(s) + 0.1 * np.log(1 - s))) + np.mean(-np.log(1 - _sigmoid(FAKE)))
    assert d == pytest.approx(expected, rel=1e-6)


def test_wasserstein_and_hinge_losses():
    real, fake = npgan.tensor(REAL), npgan.tensor(FAKE)
    assert losses.discriminator_loss("wasserstein", real, fake).item() == pytest.approx(FAKE.mean() - REAL.mean())
    assert losses.generator_loss("wasserstein", fake).item() == pytest.approx(-FAKE.mean())
    hinge = np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE))
    assert losses.discriminator_loss("hinge", real, fake).item() == pytest.approx(hinge)


def test_unknown_loss_is_a_clear_error():
    with pytest.raises(ValueError, match="loss must be one of"):
        losses.generator_loss("least-squares", npgan.tensor(FAKE))


class LinearCritic(nn.Module):
    """f(x) = w . x: its input gradient is w everywhere, so the penalty is (|w| - 1)^2 exactly."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(npgan.tensor(w))

    def forward(self, x):
        return (x.reshape(x.shape[0], -1) * self.w).sum(axis=1)


def test_gradient_penalty_of_a_linear_critic_is_exact():
    w = np.array([3.0, 4.0, 0.0, 0.0])  # |w| = 5
    critic = LinearCritic(w)
    real, fake = npgan.randn(6, 1, 2, 2, dtype="float64"), npgan.randn(6, 1, 2, 2, dtype="float64")
    gp = losses.gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((5.0 - 1.0) ** 2, rel=1e-9)
    gp.backward()  # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    assert np.allclose(critic.w.grad.numpy(), 2 * 4.0 * w / 5.0, rtol=1e-9)


def test_r1_penalty_of_a_linear_critic_is_its_squared_slope_and_differentiates_again():
    w = np.array([3.0, 4.0, 0.0, 0.0])
    critic = LinearCritic(w)
    r1 = losses.r1_penalty(critic, npgan.randn(6, 1, 2, 2, dtype="float64"))
    assert r1.item() == pytest.approx(25.0, rel=1e-12)
    r1.backward()  # d/dw |w|^2 = 2 w
    assert np.allclose(critic.w.grad.numpy(), 2 * w, rtol=1e-12)


def test_r1_penalty_second_derivative_through_a_maxout_critic_matches_finite_differences():
    rng = np.random.default_rng(2)
    head, real = npgan.tensor(rng.standard_normal((4, 1))), npgan.tensor(rng.standard_normal((5, 2)))

    def penalty(weight):
        def critic(x):  # maxout (4 units, 3 pieces) -> linear: PacGAN's toy discriminator in miniature
            return ((x @ weight.T).reshape(5, 4, 3).max(axis=-1) @ head).reshape(-1)

        return losses.r1_penalty(critic, real)

    weight = npgan.tensor(rng.standard_normal((12, 2)), requires_grad=True)
    assert npgan.gradcheck(penalty, [weight], atol=1e-6, rtol=1e-4)


def test_gradient_penalty_second_derivative_through_a_conv_critic_matches_finite_differences():
    import npgan.functional as F

    rng = np.random.default_rng(1)
    head = npgan.tensor(rng.standard_normal((8, 1)))
    real, fake = npgan.randn(3, 1, 4, 4, dtype="float64"), npgan.randn(3, 1, 4, 4, dtype="float64")

    def penalty(weight):
        def critic(x):  # conv -> leaky relu -> linear: the WGAN-GP critic in miniature
            h = F.leaky_relu(F.conv2d(x, weight, stride=2, padding=1), 0.2)
            return (h.reshape(x.shape[0], -1) @ head).reshape(-1)

        state = npgan.get_rng_state()
        value = losses.gradient_penalty(critic, real, fake)
        npgan.set_rng_state(state)  # the same interpolation points at every evaluation
        return value

    weight = npgan.tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    assert npgan.gradcheck(penalty, [weight], atol=1e-6, rtol=1e-4)


def test_interpolation_uses_one_epsilon_per_sample_between_real_and_fake():
    real, fake = npgan.ones(500, 1, 2, 2), npgan.zeros(500, 1, 2, 2)
    x_hat = losses.interpolate(real, fake).numpy()
    per_sample = x_hat.reshape(500, -1)
    assert np.all(per_sample == per_sample[:, :1])  # the same epsilon across a sample's pixels
    assert per_sample.min() >= 0 and per_sample.max() <= 1
    assert math.isclose(per_sample.mean(), 0.5, abs_tol=0.06)  # uniform epsilons
