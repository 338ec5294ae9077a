import numpy as np
import pytest

from npgan.data import grid25, load_dataset, ring8
from npgan.gan import metrics


def test_perfect_ring8_samples_capture_every_mode():
    result = metrics.toy_metrics("ring8", ring8(2500, np.random.default_rng(0)))
    assert result["modes_captured"] == 8
    assert result["high_quality_pct"] > 97.5  # a 3-std disc holds 1 - exp(-4.5) = 98.9% of a 2-D Gaussian
    assert result["reverse_kl"] < 0.01


def test_collapsed_samples_capture_one_mode_and_have_high_reverse_kl():
    one_mode = np.random.default_rng(0).normal([1.0, 0.0], 0.01, size=(2500, 2))
    result = metrics.toy_metrics("ring8", one_mode)
    assert result["modes_captured"] == 1
    assert result["reverse_kl"] == pytest.approx(np.log(8), abs=1e-4)  # reported to 4 decimals


def test_samples_between_modes_are_not_high_quality():
    between = np.zeros((2500, 2))  # the ring's centre is 1 away from every mode, 100 std
    result = metrics.toy_metrics("ring8", between)
    assert result["high_quality_pct"] == 0.0 and result["modes_captured"] == 0


def test_grid25_perfect_samples():
    result = metrics.toy_metrics("grid25", grid25(2500, np.random.default_rng(1)))
    assert result["modes_captured"] == 25 and result["high_quality_pct"] > 97.5


def test_frechet_distance_of_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3))
    b = rng.standard_normal((20000, 3)) * 2.0 + np.array([1.0, 0.0, 0.0])
    # |mu|^2 + tr(I + 4I - 2 * 2I) = 1 + 3
    assert metrics.frechet_distance(a, b) == pytest.approx(4.0, abs=0.15)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def classifier_metrics_inputs():
    real = load_dataset("mnist5k", image_size=28, seed=5).images[:600]
    noise = np.random.default_rng(0).uniform(-1, 1, size=(600, 1, 28, 28)).astype(np.float32)
    return real, noise


def test_digit_classifier_is_accurate_on_held_out_digits():
    _, accuracy = metrics.load_classifier()
    assert accuracy > 0.85


def test_image_metrics_tell_real_digits_from_noise(classifier_metrics_inputs):
    real, noise = classifier_metrics_inputs
    on_real = metrics.image_metrics(real, n_real=600)
    on_noise = metrics.image_metrics(noise, n_real=600)
    assert on_real["classes_covered"] == 10
    assert on_real["frechet_distance"] < 3 * on_real["frechet_distance_real_floor"] + 1.0
    assert on_noise["frechet_distance"] > 20 * on_real["frechet_distance"]
    assert on_real["classifier_confidence"] > on_noise["classifier_confidence"]


def test_image_metrics_accept_32x32_padded_digits(classifier_metrics_inputs):
    real, _ = classifier_metrics_inputs
    padded = np.pad(real, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    assert metrics.image_metrics(padded, n_real=300)["classes_covered"] == 10
    with pytest.raises(ValueError, match="28x28 or 32x32"):
        metrics.image_metrics(np.zeros((4, 1, 64, 64), dtype=np.float32))
