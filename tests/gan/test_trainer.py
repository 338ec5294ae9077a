import json
import os

import numpy as np
import pytest

import npgan
from npgan.checkpoint import load_checkpoint
from npgan.gan import TrainConfig, Trainer, TrainingDiverged, load_generator, tricks

TINY = dict(dataset="fake", batch_size=8, ngf=4, ndf=4, nz=8, log_every=1, sample_every=2, checkpoint_every=2,
            metrics=False, num_samples=4)


def tiny(tmp_path, **overrides):
    settings = dict(TINY, out=str(tmp_path / "run"))
    settings.update(overrides)
    return TrainConfig(**settings)


@pytest.mark.parametrize("model", ["gan", "dcgan", "wgan", "wgan-gp", "cgan"])
def test_every_variant_trains_and_writes_its_outputs(tmp_path, model):
    extra = {"n_critic": 2} if model.startswith("wgan") else {}
    trainer = Trainer(tiny(tmp_path, model=model, steps=2, hidden=8, **extra), progress=False)
    if model == "wgan":
        trainer.variant = dataclasses_replace(trainer.variant, warmup_critic=False)  # skip the 100-step warm-up
    before = [p.numpy().copy() for p in trainer.G.parameters()]
    summary = trainer.train()
    assert summary["steps"] == 2
    for key in ("checkpoint", "gif", "losses", "final", "metrics_log"):
        assert os.path.getsize(summary[key]) > 0, key
    assert any(not np.array_equal(b, p.numpy()) for b, p in zip(before, trainer.G.parameters()))
    rows = [json.loads(line) for line in open(summary["metrics_log"])]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in rows)
    if model.startswith("wgan"):
        assert "wasserstein" in rows[0]
    else:
        assert 0 <= rows[0]["d_x"] <= 1


def dataclasses_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_parameters_stay_float32_through_training(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="wgan-gp", steps=1, n_critic=1), progress=False)
    trainer.train()
    for p in list(trainer.G.parameters()) + list(trainer.D.parameters()):
        assert p.dtype == np.float32
        assert p.grad is None or p.grad.dtype == np.float32


def test_wgan_clips_critic_weights(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="wgan", steps=1, n_critic=1, lr_d=1.0), progress=False)
    trainer.variant = dataclasses_replace(trainer.variant, warmup_critic=False)
    trainer.train()
    assert max(float(np.abs(p.numpy()).max()) for p in trainer.D.parameters()) <= 0.01 + 1e-9


def test_wgan_critic_schedule_follows_the_paper(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="wgan", steps=1), progress=False)
    schedule = []
    for step in (0, 24, 25, 26, 500, 501):
        trainer.step = step
        schedule.append(tricks.critic_iterations(trainer))
    assert schedule == [100, 100, 5, 5, 100, 5]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    straight = Trainer(tiny(tmp_path / "a", model="dcgan", steps=4), progress=False)
    straight.train()
    first = Trainer(tiny(tmp_path / "b", model="dcgan", steps=2), progress=False)
    first.train()
    resumed = Trainer.from_checkpoint(str(tmp_path / "b" / "run" / "checkpoint.npz"), progress=False, steps=4)
    assert resumed.step == 2
    resumed.train()
    for name, value in straight.G.state_dict().items():
        assert np.array_equal(value, resumed.G.state_dict()[name]), name
    for name, value in straight.D.state_dict().items():
        assert np.array_equal(value, resumed.D.state_dict()[name]), name
    rows = [json.loads(line)["step"] for line in open(tmp_path / "b" / "run" / "metrics.jsonl")]
    assert rows == [1, 2, 3, 4]


def test_resume_of_a_toy_run_is_exact_too(tmp_path):
    straight = Trainer(tiny(tmp_path / "a", model="gan", dataset="ring8", steps=4, hidden=8), progress=False)
    straight.train()
    first = Trainer(tiny(tmp_path / "b", model="gan", dataset="ring8", steps=2, hidden=8), progress=False)
    first.train()
    resumed = Trainer.from_checkpoint(str(tmp_path / "b" / "run" / "checkpoint.npz"), progress=False, steps=4)
    resumed.train()
    for name, value in straight.G.state_dict().items():
        assert np.array_equal(value, resumed.G.state_dict()[name]), name


def test_the_logged_time_counts_training_seconds_across_a_resume(tmp_path):
    first = Trainer(tiny(tmp_path, model="gan", dataset="ring8", steps=2, hidden=8), progress=False)
    first.train()
    before = first.history[-1]["time"]
    resumed = Trainer.from_checkpoint(str(tmp_path / "run" / "checkpoint.npz"), progress=False, steps=4)
    summary = resumed.train()
    times = [json.loads(line)["time"] for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert times[:2] == [r["time"] for r in first.history] and min(times[2:]) >= before
    assert summary["total_seconds"] == pytest.approx(before + summary["seconds"], abs=0.02)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="dcgan", steps=6), progress=False)
    trainer.train(steps=2)
    path = tmp_path / "run" / "checkpoint.npz"
    good = load_checkpoint(str(path))
    assert good["step"] == 2
    for p in trainer.D.parameters():  # poison the critic: every loss is NaN from here on
        p.data[...] = np.nan
    with pytest.raises(TrainingDiverged, match=r"became nan at step 3.*last good checkpoint is kept"):
        trainer.train()
    kept = load_checkpoint(str(path))
    assert kept["step"] == 2
    for name, value in good["generator"].items():
        assert np.array_equal(value, kept["generator"][name])


def test_large_gradient_norm_warns(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="dcgan", steps=1), progress=False)
    for p in trainer.D.parameters():
        p.data *= 300.0
    with pytest.warns(RuntimeWarning, match="gradient norm"):
        trainer.train()


def test_generator_loads_from_a_checkpoint_without_the_dataset(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="cgan", steps=2), progress=False)
    trainer.train()
    G, info = load_generator(str(tmp_path / "run" / "checkpoint.npz"))
    assert info["num_classes"] == 10 and info["sample_shape"] == (1, 28, 28) and info["step"] == 2
    z = npgan.randn(3, info["nz"])
    labels = npgan.tensor(np.array([0, 1, 2]))
    trainer.G.eval()
    with npgan.no_grad():
        assert np.array_equal(G(z, labels).numpy(), trainer.G(z, labels).numpy())


@pytest.mark.parametrize("field, value, message", [
    ("model", "vae", "model must be one of"),
    ("batch_size", 0, "batch_size must be an int >= 1, got 0"),
    ("batch_size", 8.0, "batch_size must be an int >= 1, got 8.0"),
    ("lr_d", -1.0, "lr_d must be a number > 0"),
    ("beta1", 1.0, r"beta1 must be a number in \[0, 1\)"),
    ("label_smoothing", 1.5, "label_smoothing"),
    ("noise", "cauchy", "noise must be one of gaussian, uniform, got 'cauchy'"),
    ("critic_norm", "default", "critic_norm must be one of batch, layer, instance, none, got 'default'"),
    ("lr_decay", 1, "lr_decay must be True or False"),
    ("device", "tpu", "device must be one of"),
    ("n_critic", 0, "n_critic must be an int >= 1"),
])
def test_bad_settings_are_clear_errors(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        Trainer(tiny(tmp_path, **{field: value}), progress=False)


def test_cgan_on_a_toy_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cgan needs a labelled image dataset"):
        Trainer(tiny(tmp_path, model="cgan", dataset="ring8"), progress=False)


def test_batch_larger_than_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="batch_size 5000 is larger than the dataset"):
        Trainer(tiny(tmp_path, model="dcgan", batch_size=5000), progress=False)


def test_packing_shows_d_several_samples_at_once(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="gan", dataset="ring8", steps=2, hidden=8, pack=4), progress=False)
    first = trainer.D.main[0]  # D's first Linear layer
    assert tuple(first.weight.shape) == (8, 2 * 4)
    trainer.train()
    scores = tricks.critic(trainer, npgan.randn(8, 2))
    assert scores.shape == (2,)  # 8 samples, judged 4 at a time


def test_r1_penalty_is_logged_and_enters_d_loss(tmp_path):
    a = Trainer(tiny(tmp_path / "a", model="gan", dataset="ring8", steps=1, hidden=8, r1_gamma=10.0),
                progress=False).train_step()
    b = Trainer(tiny(tmp_path / "b", model="gan", dataset="ring8", steps=1, hidden=8), progress=False).train_step()
    assert "r1" not in b and float(a["r1"].item()) > 0
    # same seed, same nets and batches: D's loss differs by exactly gamma / 2 * r1
    assert a["loss_d"].item() == pytest.approx(b["loss_d"].item() + 5.0 * a["r1"].item(), rel=1e-5)


def test_packing_with_gradient_penalty_and_images(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="wgan-gp", steps=1, n_critic=1, pack=2), progress=False)
    assert trainer.D.nc == 2
    trainer.train()
    with pytest.raises(ValueError, match=r"batch_size \(8\) must be a multiple of pack \(3\)"):
        Trainer(tiny(tmp_path, model="gan", pack=3), progress=False)


def test_lr_decay_is_linear_to_zero_and_resumes_exactly(tmp_path):
    trainer = Trainer(tiny(tmp_path / "a", model="gan", dataset="ring8", steps=4, hidden=8, lr_decay=True),
                      progress=False)
    lrs = []
    for _ in range(4):
        trainer.train_step()
        lrs.append(trainer.opt_g.param_groups[0]["lr"])
    assert lrs == pytest.approx([2e-4, 1.5e-4, 1e-4, 0.5e-4])
    trainer = Trainer(tiny(tmp_path / "c", model="gan", dataset="ring8", steps=4, hidden=8, lr_decay=True),
                      progress=False)
    trainer.train()
    first = Trainer(tiny(tmp_path / "b", model="gan", dataset="ring8", steps=4, hidden=8, lr_decay=True),
                    progress=False)
    first.train(steps=2)  # a run of 4 steps, interrupted after 2
    resumed = Trainer.from_checkpoint(str(tmp_path / "b" / "run" / "checkpoint.npz"), progress=False)
    resumed.train()
    for name, value in trainer.G.state_dict().items():
        assert np.array_equal(value, resumed.G.state_dict()[name]), name


@pytest.mark.parametrize("dataset", ["ring8", "fake"])
def test_sample_pictures_do_not_change_the_training_run(tmp_path, dataset):
    often = Trainer(tiny(tmp_path / "a", model="gan", dataset=dataset, steps=3, hidden=8, sample_every=1),
                    progress=False)
    often.train()
    rarely = Trainer(tiny(tmp_path / "b", model="gan", dataset=dataset, steps=3, hidden=8, sample_every=100),
                     progress=False)
    rarely.train()
    for name, value in often.G.state_dict().items():
        assert np.array_equal(value, rarely.G.state_dict()[name]), name


def test_default_run_lengths_follow_the_model_and_the_data(tmp_path):
    settings = dict(TINY, out=str(tmp_path))
    assert Trainer(TrainConfig(**dict(settings, model="dcgan")), progress=False).total_steps() == 1500
    assert Trainer(TrainConfig(**dict(settings, model="wgan")), progress=False).total_steps() == 500
    assert Trainer(TrainConfig(**dict(settings, model="gan", dataset="ring8")), progress=False).total_steps() == 10000
    by_epochs = Trainer(TrainConfig(**dict(settings, model="wgan-gp", epochs=2.0)), progress=False)
    assert by_epochs.total_steps() == 52  # ceil(2 epochs * 128 batches / 5 critic batches per generator step)


def test_digit_metrics_at_the_end_of_a_run_skip_image_sizes_the_classifier_cannot_read(tmp_path):
    trainer = Trainer(tiny(tmp_path, model="dcgan", dataset="mnist5k", image_size=64, steps=1, metrics=True),
                      progress=False)
    assert trainer.train()["metrics"] == {}
    trainer = Trainer(tiny(tmp_path / "b", model="dcgan", dataset="mnist5k", image_size=32, steps=1, metrics=True),
                      progress=False)
    assert trainer.train()["metrics"]["classes_covered"] >= 1


def test_pacgan_toy_nets_train_save_and_load(tmp_path):
    from npgan import nn

    config = tiny(tmp_path, model="gan", dataset="ring8", steps=2, hidden=8, toy_nets="pacgan", pack=2, nz=None)
    trainer = Trainer(config, progress=False)
    assert trainer.nz == 2
    assert sum(isinstance(m, nn.BatchNorm1d) for m in trainer.G.modules()) == 4
    maxouts = [m for m in trainer.D.modules() if isinstance(m, nn.Maxout)]
    assert [(m.in_features, m.out_features, m.pieces) for m in maxouts] == [(4, 4, 5), (4, 4, 5), (4, 4, 5)]
    trainer.train()
    G, info = load_generator(str(tmp_path / "run" / "checkpoint.npz"))
    assert info["config"].toy_nets == "pacgan"
    with npgan.no_grad():
        assert G.eval()(npgan.randn(5, 2)).shape == (5, 2)
    with pytest.raises(ValueError, match="toy_nets must be one of"):
        Trainer(tiny(tmp_path, model="gan", dataset="ring8", toy_nets="resnet"), progress=False)


@pytest.mark.parametrize("toy_nets", ["mlp", "pacgan"])
def test_toy_nets_work_in_units_of_the_toys_extent(tmp_path, toy_nets):
    trainer = Trainer(tiny(tmp_path, model="gan", dataset="grid25", steps=1, hidden=8, toy_nets=toy_nets),
                      progress=False)
    assert trainer.G.out_scale == 4.0 and trainer.D.in_scale == 4.0


def test_g_ema_samples_from_the_average_and_resumes_exactly(tmp_path):
    settings = dict(model="gan", dataset="ring8", hidden=8, g_ema=0.9)
    straight = Trainer(tiny(tmp_path / "a", steps=4, metrics=True, **settings), progress=False)
    summary = straight.train()
    assert summary["metrics"]["modes"] == 8 and summary["metrics_without_ema"]["modes"] == 8
    z = npgan.randn(5, straight.nz)
    with npgan.no_grad():
        averaged, raw = straight.g_ema.module(z).numpy(), straight.G.eval()(z).numpy()
    assert not np.allclose(averaged, raw)
    assert np.array_equal(straight.generate(noise=z).numpy(), averaged)
    assert np.array_equal(straight.generate(noise=z, averaged=False).numpy(), raw)
    # npgan sample draws from the average too (or from G itself on request)
    path = str(tmp_path / "a" / "run" / "checkpoint.npz")
    G, info = load_generator(path)
    assert info["averaged"]
    with npgan.no_grad():
        assert np.array_equal(G(z).numpy(), averaged)
        assert np.array_equal(load_generator(path, averaged=False)[0](z).numpy(), raw)
    first = Trainer(tiny(tmp_path / "b", steps=2, **settings), progress=False)
    first.train()
    resumed = Trainer.from_checkpoint(str(tmp_path / "b" / "run" / "checkpoint.npz"), progress=False, steps=4)
    resumed.train()
    for name, value in straight.g_ema.module.state_dict().items():
        assert np.array_equal(value, resumed.g_ema.module.state_dict()[name]), name


def test_g_ema_outside_zero_one_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"g_ema must be a number in \[0, 1\)"):
        Trainer(tiny(tmp_path, g_ema=1.0), progress=False)


def test_toy_sample_pictures_are_titled_with_the_mode_metrics_of_their_points(tmp_path, monkeypatch):
    from npgan.gan import metrics, sampling

    titles, save = [], sampling.save_toy_scatter

    def record(dataset, samples, path, title=None):
        titles.append((samples, title))
        return save(dataset, samples, path, title=title)

    monkeypatch.setattr(sampling, "save_toy_scatter", record)
    trainer = Trainer(tiny(tmp_path, model="gan", dataset="grid25", steps=2, hidden=8, sample_every=1), progress=False)
    trainer.train()
    samples, title = titles[-1]
    quality = metrics.toy_metrics("grid25", samples)
    assert len(samples) == 1000
    assert title == (f"gan on grid25, step 2\n{quality['modes_captured']}/25 modes, "
                     f"{quality['high_quality_pct']:.0f}% high quality")


def test_wgan_gp_takes_the_toy_settings_on_toys_unless_told_otherwise(tmp_path):
    image = Trainer(tiny(tmp_path, model="wgan-gp"), progress=False)
    assert image.config.gp_lambda == 10.0 and image.opt_d.param_groups[0]["betas"] == (0.0, 0.9)
    toy = Trainer(tiny(tmp_path, model="wgan-gp", dataset="ring8", hidden=8), progress=False)
    assert toy.config.gp_lambda == 0.1 and toy.opt_d.param_groups[0]["betas"] == (0.5, 0.9)
    told = Trainer(tiny(tmp_path, model="wgan-gp", dataset="ring8", hidden=8, gp_lambda=10.0, beta1=0.0),
                   progress=False)
    assert told.config.gp_lambda == 10.0 and told.opt_g.param_groups[0]["betas"] == (0.0, 0.9)


def activations(G):
    """G's hidden activations, whether written as layers or fused into their Linear (the Trainer fuses)."""
    names = {"ReLU": "ReLU", "LeakyReLU": "LeakyReLU", "LinearReLU": "ReLU", "LinearLeakyReLU": "LeakyReLU"}
    return {names[type(m).__name__] for m in G.modules() if type(m).__name__ in names}


def test_mlp_generators_take_the_activation_asked_for_and_wgan_gp_toys_default_to_relu(tmp_path):
    assert activations(Trainer(tiny(tmp_path, model="gan", dataset="ring8", hidden=8), progress=False).G) \
        == {"LeakyReLU"}
    assert activations(Trainer(tiny(tmp_path, model="wgan-gp", dataset="ring8", hidden=8), progress=False).G) \
        == {"ReLU"}  # Gulrajani et al.'s toy setting
    told = Trainer(tiny(tmp_path, model="wgan-gp", dataset="ring8", hidden=8, g_activation="leaky_relu"),
                   progress=False)
    assert activations(told.G) == {"LeakyReLU"}
    image = Trainer(tiny(tmp_path, model="gan", steps=2, hidden=8, g_activation="relu"), progress=False)
    assert activations(image.G) == {"ReLU"}
    image.train()  # the checkpoint rebuilds the same G
    G, _ = load_generator(str(tmp_path / "run" / "checkpoint.npz"))
    assert activations(G) == {"ReLU"}
    with pytest.raises(ValueError, match="g_activation must be one of"):
        TrainConfig(model="gan", g_activation="tanh").validate()


def test_evaluate_scores_g_and_its_average_on_the_same_noise_without_touching_the_training_stream(tmp_path,
                                                                                                      monkeypatch):
    from npgan.gan import metrics

    trainer = Trainer(tiny(tmp_path, model="gan", dataset="grid25", steps=2, hidden=8, g_ema=0.9), progress=False)
    trainer.train()
    scored = []
    monkeypatch.setattr(metrics, "toy_metrics", lambda dataset, points: scored.append(points) or {})
    state = npgan.backend.get_rng_state()
    trainer.evaluate()
    assert npgan.backend.get_rng_state() == state  # training's random stream is left as it was
    trainer.evaluate()
    trainer.evaluate(seed=1)
    assert len(scored[0]) == 2500
    assert np.array_equal(scored[0], scored[1]) and not np.allclose(scored[0], scored[2])
    # the same noise for G and its average: with equal weights they give the same points
    trainer.g_ema.module.load_state_dict(trainer.G.state_dict())
    trainer.evaluate(averaged=False)
    trainer.evaluate()
    assert np.array_equal(scored[3], scored[4])
