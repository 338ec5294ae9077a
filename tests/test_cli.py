import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from npgan.cli import main, slerp

TINY = ["--dataset", "fake", "--batch-size", "8", "--ngf", "4", "--ndf", "4", "--nz", "8", "--log-every", "1",
        "--sample-every", "2", "--checkpoint-every", "2", "--no-metrics", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "dcgan"
    assert main(["train", "dcgan", "--steps", "2", "--out", str(out)] + TINY) == 0
    return out


@pytest.fixture(scope="module")
def trained_cgan(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "cgan"
    assert main(["train", "cgan", "--steps", "2", "--out", str(out)] + TINY) == 0
    return out


def test_train_writes_samples_gif_plot_checkpoint_and_says_where(trained, capsys):
    for name in ("samples.png", "progress.gif", "losses.png", "checkpoint.npz", "metrics.jsonl"):
        assert (trained / name).stat().st_size > 0
    assert len(os.listdir(trained / "samples")) == 1


def test_train_prints_the_output_paths(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "gan", "--steps", "1", "--hidden", "8", "--out", str(out)] + TINY)
    printed = capsys.readouterr().out
    assert str(out / "samples.png") in printed and str(out / "checkpoint.npz") in printed


def test_resume_continues_from_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "dcgan", "--steps", "2", "--out", str(out)] + TINY)
    assert main(["train", "dcgan", "--steps", "3", "--resume", "--out", str(out)] + TINY) == 0
    printed = capsys.readouterr().out
    assert "resuming dcgan from step 2" in printed and "s since step 0)" in printed
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main(["train", "dcgan", "--resume", "--out", str(tmp_path / "none")] + TINY)


@pytest.mark.parametrize("flag, value", [
    ("--batch-size", "0"), ("--steps", "-3"), ("--epochs", "0"), ("--lr-d", "abc"), ("--lr-g", "0"),
    ("--beta1", "1.0"), ("--beta2", "-0.1"), ("--device", "tpu"), ("--dataset", "cifar99"), ("--image-size", "48"),
    ("--channels", "2"), ("--label-smoothing", "2"), ("--instance-noise", "-0.1"), ("--g-dropout", "1.5"),
    ("--noise", "cauchy"), ("--pack", "0"), ("--r1-gamma", "-1"), ("--n-critic", "0"), ("--gp-lambda", "-1"),
    ("--clip", "0"), ("--g-activation", "tanh"),
    ("--nz", "0"), ("--hidden", "x"), ("--ngf", "-4"), ("--critic-norm", "group"), ("--loss", "lsgan"),
    ("--seed", "-1"), ("--log-every", "0"), ("--lr-d", "nan"),
])
def test_bad_flag_values_exit_2_naming_the_flag(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "dcgan", flag, value])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_sample_png_grid(trained, tmp_path):
    out = tmp_path / "grid.png"
    assert main(["sample", str(trained / "checkpoint.npz"), "--n", "9", "--out", str(out)]) == 0
    width, height = Image.open(out).size
    assert width == height == 3 * 28 + 4 * 2  # 3x3 grid of 28-pixel digits with 2-pixel padding


def test_sample_npy_has_the_model_shape_and_range(trained, tmp_path):
    out = tmp_path / "samples.npy"
    main(["sample", str(trained / "checkpoint.npz"), "--n", "5", "--out", str(out), "--seed", "3"])
    samples = np.load(out)
    assert samples.shape == (5, 1, 28, 28) and samples.dtype == np.float32
    assert samples.min() >= -1 and samples.max() <= 1
    again = tmp_path / "again.npy"
    main(["sample", str(trained / "checkpoint.npz"), "--n", "5", "--out", str(again), "--seed", "3"])
    assert np.array_equal(samples, np.load(again))  # the seed fixes the samples


def test_sample_directory_writes_one_png_each(trained, tmp_path):
    out = tmp_path / "pngs"
    main(["sample", str(trained / "checkpoint.npz"), "--n", "4", "--out", str(out)])
    assert len([f for f in os.listdir(out) if f.endswith(".png")]) == 4


def test_sample_label_for_a_conditional_model(trained_cgan, tmp_path):
    out = tmp_path / "sevens.npy"
    assert main(["sample", str(trained_cgan / "checkpoint.npz"), "--n", "4", "--out", str(out), "--label", "7"]) == 0
    assert np.load(out).shape == (4, 1, 28, 28)
    with pytest.raises(SystemExit, match=r"--label must be in \[0, 10\)"):
        main(["sample", str(trained_cgan / "checkpoint.npz"), "--out", str(out), "--label", "12"])


def test_sample_label_on_an_unconditional_model_is_refused(trained, tmp_path):
    with pytest.raises(SystemExit, match="needs a conditional model"):
        main(["sample", str(trained / "checkpoint.npz"), "--out", str(tmp_path / "x.png"), "--label", "1"])


def test_sample_missing_checkpoint_or_bad_extension(trained, tmp_path):
    with pytest.raises(SystemExit, match="no checkpoint at"):
        main(["sample", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="must end in .png or .npy"):
        main(["sample", str(trained / "checkpoint.npz"), "--out", str(tmp_path / "x.jpg")])


def test_interpolate_png_and_gif(trained, tmp_path):
    png, gif = tmp_path / "walk.png", tmp_path / "walk.gif"
    assert main(["interpolate", str(trained / "checkpoint.npz"), "--rows", "2", "--steps", "5", "--out", str(png)]) == 0
    assert Image.open(png).size == (5 * 28 + 6 * 2, 2 * 28 + 3 * 2)
    assert main(["interpolate", str(trained / "checkpoint.npz"), "--rows", "4", "--steps", "3", "--out", str(gif)]) == 0
    assert Image.open(gif).n_frames >= 2


def test_slerp_keeps_endpoints_and_norm_between_equal_norm_vectors():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    assert np.allclose(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b)
    assert np.allclose(np.linalg.norm(slerp(a, b, 0.5)), 1.0)  # a straight line would give 0.707


def test_toy_checkpoint_samples_to_npy_and_scatter(tmp_path):
    out = tmp_path / "toy"
    main(["train", "gan", "--steps", "1", "--out", str(out), "--hidden", "8"]
         + TINY[:1] + ["ring8"] + TINY[2:])
    main(["sample", str(out / "checkpoint.npz"), "--n", "7", "--out", str(tmp_path / "p.npy")])
    assert np.load(tmp_path / "p.npy").shape == (7, 2)
    main(["sample", str(out / "checkpoint.npz"), "--n", "7", "--out", str(tmp_path / "p.png")])
    assert (tmp_path / "p.png").stat().st_size > 0


def test_the_console_script_runs_info():
    result = subprocess.run([sys.executable, "-m", "npgan.cli", "info"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("npgan ")


@pytest.mark.parametrize("coretype", [None, "Haswell"])
def test_info_names_a_pinned_openblas_kernel(coretype):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    result = subprocess.run([sys.executable, "-m", "npgan.cli", "info"], capture_output=True, text=True, check=True,
                            env=env)
    assert ("OPENBLAS_CORETYPE=Haswell pins OpenBLAS's kernel" in result.stdout) == bool(coretype)
    assert "memory: " in result.stdout


def test_bench_subcommand_passes_its_flags_to_the_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--configs" in capsys.readouterr().out


def test_g_ema_run_samples_from_the_average_unless_no_ema(tmp_path, capsys):
    out = tmp_path / "ema"
    main(["train", "gan", "--steps", "3", "--out", str(out), "--hidden", "8", "--g-ema", "0.9"]
         + TINY[:1] + ["ring8"] + TINY[2:])
    checkpoint = str(out / "checkpoint.npz")
    main(["sample", checkpoint, "--n", "5", "--out", str(tmp_path / "avg.npy")])
    assert "(G's moving average)" in capsys.readouterr().out
    main(["sample", checkpoint, "--n", "5", "--out", str(tmp_path / "raw.npy"), "--no-ema"])
    assert "moving average" not in capsys.readouterr().out
    averaged, raw = np.load(tmp_path / "avg.npy"), np.load(tmp_path / "raw.npy")
    assert averaged.shape == raw.shape == (5, 2) and not np.allclose(averaged, raw)
    with pytest.raises(SystemExit, match="2"):
        main(["train", "gan", "--g-ema", "1.5"])
