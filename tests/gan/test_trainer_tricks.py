"""The ganhacks flags in the training loop: soft and flipped labels, layer noise, gradient clipping, dropout
at sampling, G's normalisation and the DCGAN layer choices, each saved in and rebuilt from checkpoints."""

import numpy as np
import pytest

import npgan
from npgan import nn
from npgan.checkpoint import load_checkpoint
from npgan.gan import TrainConfig, Trainer, load_generator, tricks

TINY = dict(dataset="fake", batch_size=8, ngf=4, ndf=4, nz=8, log_every=1, sample_every=100, checkpoint_every=100,
            metrics=False, num_samples=4)
TOY = dict(model="gan", dataset="ring8", hidden=8, batch_size=8, log_every=1, sample_every=100,
           checkpoint_every=100, metrics=False)


def trainer(tmp_path, base=TINY, **overrides):
    settings = dict(base, out=str(tmp_path / "run"), **overrides)
    return Trainer(TrainConfig(**settings), progress=False)


def test_soft_labels_are_drawn_per_sample_within_their_range(tmp_path):
    t = trainer(tmp_path, TOY, soft_labels=(0.7, 1.2))
    real, fake = (a.numpy() for a in tricks.d_targets(t, 20000))
    assert real.dtype == np.float32 and real.min() >= 0.7 and real.max() <= 1.2
    assert real.min() < 0.71 and real.max() > 1.19 and abs(real.mean() - 0.95) < 0.01  # uniform over the range
    assert (fake == 0).all()
    again, _ = tricks.d_targets(t, 20000)
    assert not np.array_equal(again.numpy(), real)  # new draws every step


def test_soft_labels_of_zero_width_are_one_sided_label_smoothing(tmp_path):
    smoothed = trainer(tmp_path / "a", TOY, label_smoothing=0.1).train_step()
    soft = trainer(tmp_path / "b", TOY, soft_labels=(0.9, 0.9)).train_step()
    assert soft["loss_d"].item() == pytest.approx(smoothed["loss_d"].item(), rel=1e-6)


@pytest.mark.parametrize("soft", [None, (0.8, 1.1)])
def test_flip_labels_swaps_the_asked_fraction_of_real_and_fake_labels(tmp_path, soft):
    t = trainer(tmp_path, TOY, flip_labels=0.2, soft_labels=soft)
    real, fake = (a.numpy() for a in tricks.d_targets(t, 40000))
    assert abs((real == 0).mean() - 0.2) < 0.01  # real samples labelled fake
    assert abs((fake != 0).mean() - 0.2) < 0.01  # fake samples labelled real ...
    flipped = fake[fake != 0]
    low, high = soft or (1.0, 1.0)
    assert flipped.min() >= low and flipped.max() <= high  # ... with a real label, soft when asked
    kept = real[real != 0]
    assert kept.min() >= low and kept.max() <= high


def test_flipped_labels_change_what_d_learns_from(tmp_path):
    plain = trainer(tmp_path / "a", TOY).train_step()
    flipped = trainer(tmp_path / "b", TOY, flip_labels=0.4).train_step()
    assert flipped["loss_d"].item() != pytest.approx(plain["loss_d"].item(), rel=1e-3)


@pytest.mark.parametrize("base, extra, blocks", [(TOY, {}, 3), (TINY, {"model": "dcgan"}, 3)])
def test_layer_noise_sits_in_every_hidden_layer_of_g_and_decays_linearly_to_zero(tmp_path, base, extra, blocks):
    t = trainer(tmp_path, base, g_layer_noise=0.4, steps=4, **extra)
    noises = [m for m in t.G.modules() if isinstance(m, nn.GaussianNoise)]
    assert len(noises) == blocks
    stds = []
    for _ in range(4):
        t.train_step()
        stds.append(noises[0].std)
    assert stds == pytest.approx([0.4, 0.3, 0.2, 0.1])
    assert all(m.std == stds[-1] for m in noises)
    plain = trainer(tmp_path / "plain", base, steps=4, **extra)
    assert not any(isinstance(m, nn.GaussianNoise) for m in plain.G.modules())


def test_gradient_norm_clipping_bounds_both_nets_steps(tmp_path):
    t = trainer(tmp_path, TOY, clip_grad_norm=1e-3)
    t.train_step()
    assert t._grad_norm(t.D) <= 1e-3 * (1 + 1e-4) and t._grad_norm(t.G) <= 1e-3 * (1 + 1e-4)
    unclipped = trainer(tmp_path / "b", TOY)
    unclipped.train_step()
    assert unclipped._grad_norm(unclipped.D) > 1e-2 and unclipped._grad_norm(unclipped.G) > 1e-2


@pytest.mark.parametrize("keep", [False, True])
def test_dropout_at_sampling_makes_two_draws_of_the_same_noise_differ_only_when_asked(tmp_path, keep):
    t = trainer(tmp_path, TOY, g_dropout=0.5, g_dropout_sample=keep, steps=2)
    t.train_step()
    t.save(str(tmp_path / "checkpoint.npz"))
    z = t.fixed_noise
    first, second = t.generate(noise=z).numpy(), t.generate(noise=z).numpy()
    assert np.array_equal(first, second) != keep
    assert t.G.training  # generate() leaves G as it found it
    G, info = load_generator(str(tmp_path / "checkpoint.npz"))
    assert info["config"].g_dropout_sample is keep
    with npgan.no_grad():
        assert np.array_equal(G(z).numpy(), G(z).numpy()) != keep


def test_dropout_at_sampling_does_not_change_the_training_run(tmp_path):
    a = trainer(tmp_path / "a", TOY, g_dropout=0.5, g_dropout_sample=True)  # each Trainer seeds npgan's stream
    a.train_step()
    expected = a.train_step()["loss_d"].item()
    b = trainer(tmp_path / "b", TOY, g_dropout=0.5, g_dropout_sample=True)
    b.train_step()
    b.generate(noise=b.fixed_noise)
    assert b.train_step()["loss_d"].item() == expected


def test_dropout_at_sampling_continues_its_stream_after_a_resume(tmp_path):
    a = trainer(tmp_path / "a", TOY, g_dropout=0.5, g_dropout_sample=True)
    a.train_step()
    a.generate(noise=a.fixed_noise)  # advances the sampling stream past its seed
    path = str(tmp_path / "a.npz")
    a.save(path)
    expected = a.generate(noise=a.fixed_noise).numpy()
    b = trainer(tmp_path / "b", TOY, g_dropout=0.5, g_dropout_sample=True)
    b.load_state_dict(load_checkpoint(path))
    assert np.array_equal(b.generate(noise=b.fixed_noise).numpy(), expected)  # the same masks as the saved run


@pytest.mark.parametrize("overrides", [
    dict(model="dcgan", g_norm="virtual", g_upsample="pixelshuffle", d_downsample="avgpool", critic_norm="instance"),
    dict(model="wgan-gp", n_critic=1, g_upsample="nearest", d_downsample="avgpool", critic_norm="instance",
         g_norm="none"),
    dict(model="cgan", cond="channel", g_norm="virtual", g_upsample="nearest"),
    dict(model="dcgan", soft_labels=(0.7, 1.2), flip_labels=0.1, g_layer_noise=0.1, clip_grad_norm=1.0,
         g_dropout=0.2, g_dropout_sample=True),
])
def test_image_tricks_train_save_and_rebuild_the_same_generator_from_the_checkpoint(tmp_path, overrides):
    t = trainer(tmp_path, steps=2, **overrides)
    summary = t.train()
    assert summary["steps"] == 2
    for p in list(t.G.parameters()) + list(t.D.parameters()):
        assert p.dtype == np.float32
    path = str(tmp_path / "run" / "checkpoint.npz")
    config = load_checkpoint(path)["config"]
    for key, value in overrides.items():
        assert (tuple(config[key]) if isinstance(value, tuple) else config[key]) == value, key
    G, info = load_generator(path)
    assert info["config"].soft_labels == overrides.get("soft_labels")  # the pair comes back as a tuple
    assert [type(m) for m in G.modules()] == [type(m) for m in t.G.modules()]
    if overrides.get("g_dropout_sample"):
        return  # two draws differ by design
    z = npgan.randn(3, info["nz"])
    labels = npgan.tensor([0, 1, 2]) if info["num_classes"] else None
    t.G.eval()
    with npgan.no_grad():
        ours = G(z, labels) if labels is not None else G(z)
        theirs = t.G(z, labels) if labels is not None else t.G(z)
    assert np.array_equal(ours.numpy(), theirs.numpy())


def test_soft_labels_given_as_a_list_become_a_pair():
    # dataclasses.asdict + JSON (a config written by a script, or an older checkpoint format) gives a list
    assert TrainConfig(soft_labels=[0.7, 1.2]).soft_labels == (0.7, 1.2)


def test_virtual_batch_norm_runs_on_the_toys_and_resumes_exactly(tmp_path):
    straight = trainer(tmp_path / "a", TOY, g_norm="virtual", steps=4)
    for _ in range(4):
        straight.train_step()
    first_half = trainer(tmp_path / "b", TOY, g_norm="virtual", steps=4)
    for _ in range(2):
        first_half.train_step()
    first_half.save(str(tmp_path / "checkpoint.npz"))
    resumed = Trainer.from_checkpoint(str(tmp_path / "checkpoint.npz"), progress=False)
    for _ in range(2):
        resumed.train_step()
    assert np.array_equal(resumed.G.reference_noise.numpy(), straight.G.reference_noise.numpy())
    for p, q in zip(straight.G.parameters(), resumed.G.parameters()):
        assert np.array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("field, value, message", [
    ("g_norm", "group", "g_norm must be one of batch, virtual, none, got 'group'"),
    ("g_norm", "default", "g_norm must be one of batch, virtual, none, got 'default'"),
    ("soft_labels", (1.2, 0.7), r"soft_labels must be a pair \(low, high\) with 0 <= low <= high"),
    ("soft_labels", (0.7,), "soft_labels must be a pair"),
    ("flip_labels", 0.5, r"flip_labels must be a probability in \[0, 0.5\)"),
    ("g_layer_noise", -0.1, "g_layer_noise must be a number >= 0"),
    ("g_upsample", "bilinear", "g_upsample must be one of"),
    ("d_downsample", "maxpool", "d_downsample must be one of"),
    ("cond", "film", "cond must be one of embed, channel"),
    ("clip_grad_norm", -1.0, "clip_grad_norm must be a number >= 0"),
    ("g_dropout_sample", True, r"g_dropout_sample \(--g-dropout-at-sampling\) .* needs g_dropout > 0"),
])
def test_bad_trick_settings_are_errors_naming_the_field(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        trainer(tmp_path, **{field: value})


@pytest.mark.parametrize("overrides, message", [
    (dict(TOY, g_upsample="pixelshuffle"), r"g_upsample='pixelshuffle' \(--g-upsample\) needs the DCGAN nets"),
    (dict(TOY, d_downsample="avgpool"), r"d_downsample='avgpool' \(--d-downsample\) needs the DCGAN nets"),
    (dict(TOY, critic_norm="instance"), r"critic_norm='instance' \(--critic-norm\) needs the DCGAN nets"),
    (dict(TINY, model="gan", g_upsample="nearest"), "needs the DCGAN nets"),
    (dict(TINY, model="dcgan", cond="channel"), r"cond='channel' \(--cond\) needs a conditional model"),
    (dict(TINY, model="wgan", soft_labels=(0.7, 1.2)), r"soft_labels \(--soft-labels\) needs labels"),
    (dict(TINY, model="wgan-gp", flip_labels=0.1), r"flip_labels \(--flip-labels\) needs labels"),
    (dict(TOY, soft_labels=(0.7, 1.2), label_smoothing=0.1), "soft_labels .* replaces label_smoothing"),
])
def test_tricks_are_refused_where_the_nets_or_the_loss_give_them_no_meaning(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        Trainer(TrainConfig(**dict(overrides, out=str(tmp_path))), progress=False)


@pytest.mark.parametrize("base, g_norm, kind, count", [
    (TINY, None, nn.BatchNorm2d, 3), (TINY, "none", nn.BatchNorm2d, 0), (TINY, "virtual", nn.VirtualBatchNorm, 3),
    (TOY, None, nn.BatchNorm1d, 0), (TOY, "batch", nn.BatchNorm1d, 3), (TOY, "virtual", nn.VirtualBatchNorm, 3),
])
def test_g_norm_puts_the_asked_normalisation_in_g(tmp_path, base, g_norm, kind, count):
    t = trainer(tmp_path, base, **({"model": "dcgan"} if base is TINY else {}), g_norm=g_norm)
    assert sum(isinstance(m, kind) for m in t.G.modules()) == count
    if g_norm in ("none", "virtual"):
        assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in t.G.modules())
