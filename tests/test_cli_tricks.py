"""The ganhacks flags of ``npgan train``: help lines, refusals naming the flag, and checkpoints that
``npgan sample`` rebuilds."""

import numpy as np
import pytest

import npgan
from npgan.cli import build_parser, main
from npgan.gan import tricks
from npgan.gan.trainer import Trainer, load_generator

TINY = ["--dataset", "fake", "--batch-size", "8", "--ngf", "4", "--ndf", "4", "--nz", "8", "--log-every", "1",
        "--sample-every", "2", "--checkpoint-every", "2", "--no-metrics", "--quiet"]
TOY = ["--dataset", "ring8", "--hidden", "8", "--batch-size", "8", "--no-metrics", "--quiet"]
FLAGS = ("--critic-norm", "--g-norm", "--soft-labels", "--flip-labels", "--g-layer-noise", "--g-upsample",
         "--d-downsample", "--cond", "--clip-grad-norm", "--g-dropout-at-sampling")


def test_every_trick_flag_has_a_help_line():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {flag: action.help for action in train._actions for flag in action.option_strings}
    for flag in FLAGS:
        assert helps.get(flag), flag
    assert "instance" in helps["--critic-norm"]


@pytest.mark.parametrize("flag, value", [
    ("--g-norm", "layer"), ("--soft-labels", "0.7"), ("--soft-labels", "1.2,0.7"), ("--soft-labels", "a,b"),
    ("--soft-labels", "-0.1,1"), ("--flip-labels", "0.5"), ("--flip-labels", "-0.1"), ("--g-layer-noise", "-1"),
    ("--g-upsample", "bilinear"), ("--d-downsample", "maxpool"), ("--cond", "film"), ("--clip-grad-norm", "-1"),
    ("--critic-norm", "group"),
])
def test_bad_trick_values_exit_2_naming_the_flag(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "dcgan", flag, value])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


@pytest.mark.parametrize("model, args, flag", [
    ("gan", TOY + ["--g-upsample", "pixelshuffle"], "--g-upsample"),
    ("gan", TOY + ["--d-downsample", "avgpool"], "--d-downsample"),
    ("gan", TOY + ["--critic-norm", "instance"], "--critic-norm"),
    ("dcgan", TINY + ["--cond", "channel"], "--cond"),
    ("wgan-gp", TINY + ["--soft-labels", "0.7,1.2"], "--soft-labels"),
    ("wgan", TINY + ["--flip-labels", "0.1"], "--flip-labels"),
    ("gan", TOY + ["--g-dropout-at-sampling"], "--g-dropout-at-sampling"),
])
def test_tricks_without_meaning_for_the_nets_or_loss_are_refused_naming_the_flag(tmp_path, model, args, flag,
                                                                                 capsys):
    assert main(["train", model, "--steps", "1", "--out", str(tmp_path)] + args) == 2
    assert flag in capsys.readouterr().err


def test_label_and_noise_tricks_reach_the_nets_the_labels_and_the_gradients_of_a_toy_run(tmp_path):
    args = ["--soft-labels", "0.7,1.2", "--flip-labels", "0.05", "--g-layer-noise", "0.1", "--clip-grad-norm", "5",
            "--g-dropout", "0.2", "--g-dropout-at-sampling", "--g-norm", "virtual", "--g-ema", "0.9"]
    assert main(["train", "gan", "--steps", "2", "--out", str(tmp_path / "run")] + TOY + args) == 0
    t = Trainer.from_checkpoint(str(tmp_path / "run" / "checkpoint.npz"), progress=False)
    layers = {type(m).__name__: m for m in t.G.modules()}
    assert layers["Dropout"].p == pytest.approx(0.2) and t.config.g_layer_noise == pytest.approx(0.1)
    assert "GaussianNoise" in layers  # its std decays from 0.1 to 0 over the run (test_trainer_tricks: the schedule)
    assert "VirtualBatchNorm" in layers and t.g_ema is not None and t.g_ema.decay == pytest.approx(0.9)
    # The labels: reals uniform in [0.7, 1.2] except about 5% flipped to 0; fakes 0 except about 5% real labels.
    npgan.manual_seed(0)
    real, fake = (np.asarray(labels.data) for labels in tricks.d_targets(t, 20000))
    for flipped in (real == 0, fake != 0):
        assert flipped.mean() == pytest.approx(0.05, abs=0.006)  # 3.9 binomial standard deviations
    assert ((real[real != 0] >= 0.7) & (real[real != 0] <= 1.2)).all() and real[real != 0].std() > 0.1
    assert ((fake[fake != 0] >= 0.7) & (fake[fake != 0] <= 1.2)).all()
    # The gradient of a whole net is clipped to norm 5.
    for p in t.D.parameters():
        p.grad = npgan.ones(*p.shape)
    tricks.clip_gradients(t, t.D, t.opt_d)
    norm = np.sqrt(sum(float((np.asarray(p.grad.data, np.float64) ** 2).sum()) for p in t.D.parameters()))
    assert norm == pytest.approx(5.0, rel=1e-5)


def test_sample_rebuilds_a_pixel_shuffle_virtual_batch_norm_generator(tmp_path):
    out = tmp_path / "run"
    args = ["--g-upsample", "pixelshuffle", "--g-norm", "virtual", "--d-downsample", "avgpool",
            "--critic-norm", "instance"]
    assert main(["train", "dcgan", "--steps", "2", "--out", str(out)] + TINY + args) == 0
    for name in ("a", "b"):
        assert main(["sample", str(out / "checkpoint.npz"), "--n", "5", "--out", str(tmp_path / f"{name}.npy")]) == 0
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (5, 1, 28, 28) and np.array_equal(a, b)


@pytest.mark.parametrize("keep", [False, True])
def test_sample_keeps_dropout_only_when_trained_with_dropout_at_sampling(tmp_path, keep):
    out = tmp_path / "run"
    args = ["--g-dropout", "0.5"] + (["--g-dropout-at-sampling"] if keep else [])
    assert main(["train", "gan", "--steps", "1", "--out", str(out)] + TOY + args) == 0
    for name in ("a", "b"):
        path = str(tmp_path / f"{name}.npy")
        main(["sample", str(out / "checkpoint.npz"), "--n", "50", "--seed", "1", "--out", path])
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))  # --seed fixes the masks too
    G, info = load_generator(str(out / "checkpoint.npz"))
    z = npgan.randn(50, info["nz"])
    with npgan.no_grad():
        assert np.array_equal(G(z).numpy(), G(z).numpy()) != keep  # two draws of one z differ only with dropout
