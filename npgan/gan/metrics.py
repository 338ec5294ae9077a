"""How good are the samples? Metrics for the 2D toys and for MNIST digits.

Toys (the VEEGAN / PacGAN protocol): a sample is *high quality* when it lies within 3 standard deviations of
its nearest mode; a mode is *captured* when at least 20 of 2,500 samples (0.8%) are high-quality samples
of it, as in VEEGAN. The reverse KL divergence compares the histogram
of samples over modes with the uniform distribution of the real data.

Digits: npgan trains a small classifier on MNIST-5k once (cached on disk) and uses it three ways:
- the Fréchet distance between Gaussians fitted to its penultimate features of real and generated digits
  (FID's recipe, with this classifier in place of Inception); we also report the real-vs-real value as the
  floor a perfect generator would reach with the same sample size;
- its mean confidence (mean max softmax probability) on the generated digits;
- class coverage: how many of the 10 classes it sees among them.
These are host-side numbers: everything here runs on NumPy arrays.
"""

from __future__ import annotations

import os

import numpy as np

import npgan
import npgan.functional as F
from npgan import nn, optim

# -- 2D toys -------------------------------------------------------------------------------------------------


def toy_metrics(dataset: str, samples) -> dict:
    """Modes captured, % high-quality samples and reverse KL for a toy with known modes."""
    from npgan.data import toy_modes  # noqa: PLC0415

    modes = toy_modes(dataset)
    if modes is None:
        return {}
    means, std = modes
    return mode_metrics(np.asarray(samples, dtype=np.float64), np.asarray(means, dtype=np.float64), std)


def mode_metrics(samples, means, std, min_share=20 / 2500) -> dict:
    distances = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=2)
    nearest = distances.argmin(axis=1)
    high_quality = distances[np.arange(len(samples)), nearest] <= 3.0 * std
    counts = np.bincount(nearest[high_quality], minlength=len(means))
    captured = int((counts >= max(1.0, min_share * len(samples))).sum())
    share = counts / max(1, counts.sum())
    uniform = 1.0 / len(means)
    nonzero = share > 0
    reverse_kl = float((share[nonzero] * np.log(share[nonzero] / uniform)).sum()) if counts.sum() else float("inf")
    return {
        "modes": len(means),
        "modes_captured": captured,
        "high_quality_pct": round(100.0 * float(high_quality.mean()), 2),
        "reverse_kl": round(reverse_kl, 4),
    }


# -- digits --------------------------------------------------------------------------------------------------

CLASSIFIER_VERSION = 1


class DigitClassifier(nn.Module):
    """A small MLP on 28x28 digits; ``features`` is its 128-d penultimate layer."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def _cache_path() -> str:
    from npgan.data import cache_dir  # noqa: PLC0415

    return os.path.join(cache_dir(), f"digit-classifier-v{CLASSIFIER_VERSION}.npz")


def train_classifier(epochs=8, seed=0, verbose=False) -> tuple[DigitClassifier, float]:
    """Train the digit classifier on 4,500 MNIST-5k digits; returns it and its accuracy on the other 500."""
    from npgan.data import load_dataset  # noqa: PLC0415

    data = load_dataset("mnist5k", image_size=28, seed=seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.images))
    train, held_out = order[:4500], order[4500:]
    npgan.manual_seed(seed)
    model = DigitClassifier()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        rng.shuffle(train)
        for start in range(0, len(train), 100):
            batch = train[start:start + 100]
            loss = F.cross_entropy(model(npgan.tensor(data.images[batch])), data.labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if verbose:
            print(f"classifier epoch {epoch + 1}: loss {float(loss):.3f}")
    model.eval()
    with npgan.no_grad():
        predicted = model(npgan.tensor(data.images[held_out])).numpy().argmax(axis=1)
    accuracy = float((predicted == data.labels[held_out]).mean())
    return model, accuracy


def load_classifier() -> tuple[DigitClassifier, float]:
    """The cached classifier, training (and caching) it on first use."""
    from npgan.checkpoint import load_checkpoint, save_checkpoint  # noqa: PLC0415

    path = _cache_path()
    model = DigitClassifier()
    if os.path.exists(path):
        state = load_checkpoint(path)
        model.load_state_dict(state["model"])
        model.eval()
        return model, float(state["accuracy"])
    model, accuracy = train_classifier()
    save_checkpoint(path, {"model": dict(model.state_dict()), "accuracy": accuracy})
    return model, accuracy


def _to_28(images):
    """Generated digits at 28x28: 32x32 ones are MNIST padded by 2 pixels, so crop the border."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 2:
        images = images.reshape(-1, 1, 28, 28)
    size = images.shape[-1]
    if size == 28:
        return images
    if size == 32:
        return images[..., 2:30, 2:30]
    raise ValueError(f"digit metrics take 28x28 or 32x32 images, got {images.shape[-2:]}")


def _features_and_probs(model, images, batch=500):
    feats, probs = [], []
    with npgan.no_grad():
        for start in range(0, len(images), batch):
            x = npgan.tensor(images[start:start + batch])
            f = model.features(x)
            feats.append(f.numpy().astype(np.float64))
            probs.append(F.softmax(model.head(f), axis=1).numpy())
    return np.concatenate(feats), np.concatenate(probs)


def frechet_distance(features_a, features_b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2), via symmetric eigendecompositions."""
    mu_a, mu_b = features_a.mean(axis=0), features_b.mean(axis=0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    values, vectors = np.linalg.eigh(cov_a)
    sqrt_a = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)


def image_metrics(samples, image_size=None, n_real=1000, seed=0) -> dict:
    """Fréchet distance to MNIST-5k (and its real-vs-real floor), confidence and class coverage."""
    from npgan.data import load_dataset  # noqa: PLC0415

    model, accuracy = load_classifier()
    fake = _to_28(samples)
    real = load_dataset("mnist5k", image_size=28, seed=seed).images
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(real))
    n = min(n_real, len(fake), len(real) // 2)
    real_a, real_b = real[order[:n]], real[order[n:2 * n]]
    feat_fake, probs_fake = _features_and_probs(model, fake[:n])
    feat_a, _ = _features_and_probs(model, real_a)
    feat_b, _ = _features_and_probs(model, real_b)
    classes = np.bincount(probs_fake.argmax(axis=1), minlength=10)
    return {
        "frechet_distance": round(frechet_distance(feat_a, feat_fake), 3),
        "frechet_distance_real_floor": round(frechet_distance(feat_a, feat_b), 3),
        "classifier_confidence": round(float(probs_fake.max(axis=1).mean()), 4),
        "classes_covered": int((classes > 0).sum()),
        "class_histogram": classes.tolist(),
        "classifier_accuracy": round(accuracy, 4),
        "samples": int(n),
    }
