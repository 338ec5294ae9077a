"""Samples from a trainer's G: pictures of the fixed noise, the quality metrics at the end of a run, and the
generator of a checkpoint (``load_generator``, what ``npgan sample`` reads).

Sampling never changes the training run: G is put in eval mode and back, and the dropout masks of sampling
(``g_dropout_sample``) come from a random stream of their own, swapped in for npgan's and out again.
"""

from __future__ import annotations

import math
import os
import shutil

import npgan
from npgan import backend, nn
from npgan.checkpoint import load_checkpoint
from npgan.data import TOY_DATASETS, toy_modes
from npgan.gan.nets import build_nets
from npgan.gan.resume import stored_config


def sampling_mode(G, keep_dropout=False):
    """G in eval mode (BatchNorm on its running statistics), its Dropout layers still on if ``keep_dropout``."""
    G.eval()
    if keep_dropout:
        for m in G.modules():
            if isinstance(m, nn.Dropout):
                m.train()
    return G


def generate(t, n=None, noise=None, labels=None, averaged=True):
    """Samples from trainer ``t``'s G in eval mode, without a graph (``Trainer.generate``)."""
    if noise is None:
        noise = t.sample_noise(n)
    if t.num_classes and labels is None:
        labels = t.sample_labels(noise.shape[0])
    G = t.g_ema.module if t.g_ema is not None and averaged else t.G
    was_training = G.training
    sampling_mode(G, t.config.g_dropout_sample)
    # Dropout masks at sampling come from a stream of their own (seed + 2), swapped in for npgan's
    # generator and out again, so pictures and metrics do not change the training run.
    training_rng = backend.get_rng_state() if t.config.g_dropout_sample else None
    if training_rng is not None:
        if t.sampling_rng_state is None:
            t.sampling_rng_state = backend.numpy.random.default_rng(t.config.seed + 2).bit_generator.state
        backend.set_rng_state(t.sampling_rng_state)
    with npgan.no_grad():
        out = G(noise, labels)
    if training_rng is not None:
        t.sampling_rng_state = backend.get_rng_state()
        backend.set_rng_state(training_rng)
    G.train(was_training)
    return out


def save_samples(t) -> str:
    """Draw the fixed noise's samples as ``samples/step_NNNNNN.png`` (and ``samples.png``); returns the path."""
    from npgan import viz  # noqa: PLC0415 (matplotlib is only needed once training runs)

    samples = backend.asnumpy(generate(t, noise=t.fixed_noise, labels=t.fixed_labels).data)
    path = os.path.join(t.paths()["samples"], f"step_{t.step:06d}.png")
    if t.is_toy:
        from npgan.gan.metrics import toy_metrics  # noqa: PLC0415

        title = f"{t.config.model} on {t.config.dataset}, step {t.step}"
        quality = toy_metrics(t.config.dataset, samples)  # of the fixed noise's points: no random draws
        if quality:
            title += f"\n{quality['modes_captured']}/{quality['modes']} modes, " \
                     f"{quality['high_quality_pct']:.0f}% high quality"  # second line: fits the picture
        save_toy_scatter(t.config.dataset, samples, path, title=title)
    else:
        nrow = t.num_classes or int(math.ceil(math.sqrt(len(samples))))  # conditional: one column per class
        viz.save_grid(samples, path, nrow=nrow)
    t.sample_paths.append(path)
    shutil.copyfile(path, t.paths()["final"])  # samples.png: always the latest grid
    return path


def evaluate(t, averaged=True, seed=0) -> dict:
    """Sample-quality metrics (``npgan.gan.metrics``) of 2,500 toy points or 1,000 digits from G.

    The noise (and labels) come from their own generator seeded with ``seed``: the same points for G and
    for its average, and training's random stream is left as it was.
    """
    from npgan.gan import metrics  # noqa: PLC0415

    rng = backend.numpy.random.default_rng(seed)

    def samples(n):
        noise = t.sample_noise(n, rng)
        fake = generate(t, noise=noise, labels=t.sample_labels(n, rng), averaged=averaged)
        return backend.asnumpy(fake.data)

    if t.is_toy:
        return metrics.toy_metrics(t.config.dataset, samples(2500))
    # The digit classifier reads 28x28 digits (32x32 ones are cropped); other images get no metrics.
    if t.dataset.name in ("mnist5k", "mnist") and t.sample_shape in ((1, 28, 28), (1, 32, 32)):
        return metrics.image_metrics(samples(1000), image_size=t.sample_shape[-1])
    return {}


def save_toy_scatter(dataset: str, samples, path: str, title=None) -> str:
    """Generated 2-D points over 1,000 real ones, modes circled, on fixed axes (steady GIF frames)."""
    from npgan import viz  # noqa: PLC0415

    real = TOY_DATASETS[dataset](1000, backend.numpy.random.default_rng(0))
    bound = float(abs(real).max()) * 1.25
    return viz.scatter_2d(real, samples, path, modes=toy_modes(dataset), title=title, limits=(-bound, bound))


def load_generator(path: str, device: str = "cpu", averaged: bool = True):
    """The generator of a training checkpoint, in eval mode, and the checkpoint's facts about it.

    Returns ``(G, info)`` with info holding ``nz``, ``num_classes``, ``sample_shape``, ``is_toy``, ``config``,
    ``step`` and ``averaged``; no dataset is needed. A run trained with ``g_ema`` gives its weight average
    (as its pictures and metrics did) unless ``averaged`` is False.
    """
    state = load_checkpoint(path)
    config = stored_config(path, state)
    config.device = device
    shape = tuple(state["sample_shape"])
    G, _, nz = build_nets(config, shape, int(state["num_classes"]), bool(state["is_toy"]))
    averaged = averaged and "generator_ema" in state
    G.load_state_dict(state["generator_ema"]["module"] if averaged else state["generator"])
    sampling_mode(G, config.g_dropout_sample)
    info = {"nz": nz, "num_classes": int(state["num_classes"]), "sample_shape": shape,
            "is_toy": bool(state["is_toy"]), "config": config, "step": int(state["step"]), "averaged": averaged}
    return G, info
