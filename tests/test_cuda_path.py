"""The CuPy path, run on the CuPy stand-in (``tests/fakecupy``; a CPU imitation, not a GPU): every model
trains, samples, interpolates and resumes with ``--device cuda``, matches the CPU, and a training step copies
between host and device only for its inputs (and the logged numbers), never inside the op graph."""

import dataclasses
import json
import subprocess
import sys

import fakecupy
import numpy as np
import pytest

from npgan.checkpoint import load_checkpoint
from npgan.cli import main
from npgan.gan import TrainConfig, Trainer
from npgan.gan import trainer as trainer_module
from npgan.gan.log import row_floats as _log_row_floats

TINY = ["--dataset", "fake", "--batch-size", "8", "--ngf", "4", "--ndf", "4", "--nz", "8", "--hidden", "8",
        "--log-every", "1", "--sample-every", "100", "--checkpoint-every", "2", "--no-metrics", "--quiet"]
CRITIC = {"wgan": ["--n-critic", "2"], "wgan-gp": ["--n-critic", "2"]}


@pytest.mark.parametrize("model", ["gan", "dcgan", "wgan", "wgan-gp", "cgan"])
def test_every_model_trains_samples_interpolates_and_resumes_on_the_device(model, tmp_path, fake_cupy, monkeypatch):
    no_warmup = dataclasses.replace(trainer_module.VARIANTS["wgan"], warmup_critic=False)  # 100 critic steps: slow
    monkeypatch.setitem(trainer_module.VARIANTS, "wgan", no_warmup)
    out = tmp_path / "run"
    flags = TINY + CRITIC.get(model, []) + ["--out", str(out)]
    assert main(["train", model, "--steps", "2", "--device", "cuda"] + flags) == 0
    assert main(["train", model, "--steps", "3", "--device", "cuda", "--resume"] + flags) == 0
    assert load_checkpoint(out / "checkpoint.npz")["step"] == 3
    assert main(["sample", str(out / "checkpoint.npz"), "--n", "4", "--out", str(tmp_path / "s.png"),
                 "--device", "cuda"]) == 0
    assert main(["interpolate", str(out / "checkpoint.npz"), "--rows", "2", "--steps", "3",
                 "--out", str(tmp_path / "walk.gif"), "--device", "cuda"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0 and (tmp_path / "walk.gif").stat().st_size > 0


def tiny_trainer(model, device, tmp_path, **overrides):
    settings = dict(model=model, dataset="fake", batch_size=8, ngf=4, ndf=4, nz=8, hidden=8, num_samples=4,
                    metrics=False, log_every=10**6, sample_every=10**6, checkpoint_every=10**6, steps=10**6,
                    device=device, out=str(tmp_path / f"{model}-{device}"))
    settings.update(overrides)
    trainer = Trainer(TrainConfig(**settings), progress=False)
    trainer.variant = dataclasses.replace(trainer.variant, warmup_critic=False)
    return trainer


@pytest.mark.parametrize("model", ["gan", "dcgan", "wgan-gp", "cgan"])
def test_three_steps_on_the_device_match_the_cpu(model, tmp_path, fake_cupy):
    results = {}
    for device in ("cpu", "cuda"):
        trainer = tiny_trainer(model, device, tmp_path, n_critic=2 if model.startswith("wgan") else None)
        rows = [_log_row_floats(trainer.train_step()) for _ in range(3)]
        results[device] = (rows, trainer.G.state_dict(), trainer.D.state_dict())
        if device == "cuda":
            assert all(fake_cupy.ndarray is type(p.data) for p in trainer.G.parameters())
    (cpu_rows, cpu_g, cpu_d), (gpu_rows, gpu_g, gpu_d) = results["cpu"], results["cuda"]
    for cpu_state, gpu_state in ((cpu_g, gpu_g), (cpu_d, gpu_d)):
        for name, value in cpu_state.items():
            # The same NumPy arithmetic underneath, but optim's CPU path fuses updates in blocks; float32.
            np.testing.assert_allclose(gpu_state[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    for cpu_row, gpu_row in zip(cpu_rows, gpu_rows):
        assert cpu_row.keys() == gpu_row.keys()
        np.testing.assert_allclose([gpu_row[k] for k in cpu_row], list(cpu_row.values()), rtol=1e-5, atol=1e-6)


# Host-to-device copies a step needs: per critic iteration one real batch (images, and the labels the loader
# yields with them), one z, the sampled labels of a conditional model and WGAN-GP's interpolation weights; for
# the generator step one z (and labels) unless the critic's fake batch is reused (n_critic 1). Nothing comes
# back to the host between logged steps, and no op copies its scalars in.
@pytest.mark.parametrize("model, n_critic, copies_in", [
    ("gan", None, 3), ("dcgan", None, 3), ("wgan-gp", 2, 2 * 4 + 1), ("cgan", None, 4)])
def test_a_training_step_copies_only_its_inputs_and_nothing_back(model, n_critic, copies_in, tmp_path, fake_cupy):
    trainer = tiny_trainer(model, "cuda", tmp_path, n_critic=n_critic)
    trainer.train_step()  # the first step may set up buffers
    updates = watch_optimizer_launches(trainer, fake_cupy)
    fake_cupy.COUNTS.reset()
    trainer.train_step()
    counts = fake_cupy.COUNTS.snapshot()
    assert counts["to_host"] == 0, counts
    assert counts["to_device"] <= copies_in, counts
    # The launch model of benchmarks/LAUNCHES.md: Adam is 12 in-place passes per parameter tensor, plus its
    # scratch buffer and the shaped view of it (the stand-in counts both), and every gradient it reads was written
    # on the device by the forward and backward passes.
    tensors = sum(n for n, _ in updates)
    optimizer = sum(launches for _, launches in updates)
    assert tensors > 0 and 12 * tensors <= optimizer <= 14 * tensors, updates
    assert counts["launches"] - optimizer >= tensors, counts


def watch_optimizer_launches(trainer, fake_cupy):
    """From now on, each optimizer step of ``trainer`` appends (parameter tensors updated, launches it made)."""
    updates = []
    for opt in (trainer.opt_d, trainer.opt_g):
        assert opt.__class__.__name__ == "Adam"  # the model below is Adam's
        def step(closure=None, _step=opt.step, _opt=opt):
            tensors = sum(p.grad is not None for g in _opt.param_groups for p in g["params"])
            before = fake_cupy.COUNTS.launches
            result = _step(closure)
            updates.append((tensors, fake_cupy.COUNTS.launches - before))
            return result
        opt.step = step
    return updates


def test_a_logged_step_adds_a_few_transfers_not_one_per_op_or_parameter(tmp_path, fake_cupy):
    trainer = tiny_trainer("dcgan", "cuda", tmp_path)
    trainer.train_step()
    row = trainer.train_step()
    fake_cupy.COUNTS.reset()
    floats = _log_row_floats(dict(step=trainer.step, **row))  # what train() does on a logged step
    trainer._check_finite(floats)
    trainer._watch(floats)
    assert fake_cupy.COUNTS.to_host <= 3, fake_cupy.COUNTS.snapshot()  # the row at once, a gradient norm per net
    assert fake_cupy.COUNTS.to_device == 0
    assert {"loss_d", "loss_g", "grad_norm_d", "grad_norm_g"} <= set(floats)


def test_a_cpu_run_resumes_on_the_device_and_ends_where_the_cpu_would(tmp_path, fake_cupy):
    out = tmp_path / "run"
    flags = TINY + ["--out", str(out)]
    assert main(["train", "dcgan", "--steps", "2"] + flags) == 0
    assert main(["train", "dcgan", "--steps", "3", "--device", "cuda", "--resume"] + flags) == 0
    straight = tiny_trainer("dcgan", "cpu", tmp_path, steps=3, num_samples=64)  # the CLI's default grid
    for _ in range(3):
        straight.train_step()
    state = load_checkpoint(out / "checkpoint.npz")
    assert state["config"]["device"] == "cuda"
    for name, value in straight.G.state_dict().items():
        np.testing.assert_allclose(state["generator"][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_bench_runs_one_step_per_configuration_on_the_stand_in(tmp_path):
    """``npgan bench --backend cupy --no-torch``, its workers importing the stand-in; the times mean nothing."""
    result = subprocess.run(
        [sys.executable, "-m", "npgan.cli", "bench", "--backend", "cupy", "--no-torch", "--configs", "gan-mlp",
         "--steps", "1", "--warmup", "0", "--rounds", "1", "--batch-size", "8", "--json", str(tmp_path / "b.jsonl")],
        capture_output=True, text=True, env=fakecupy.subprocess_env(), timeout=600)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert rows and all(row["backend"] == "cupy" for row in rows if row.get("library") == "npgan"), rows


def test_bench_on_both_backends_adds_one_cpu_against_gpu_row_per_phase(tmp_path):
    """``npgan bench --backend numpy,cupy --no-torch`` on the stand-in: the shape of the combined report.

    The "GPU" here is the CPU stand-in, so its times and its matmul peak mean nothing; what is checked is
    the report: its columns, one row per (configuration, phase), and that the speed-up and the shares of the
    peaks are computed from the numbers the per-device rows report.
    """
    out = tmp_path / "both.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "npgan.cli", "bench", "--backend", "numpy,cupy", "--no-torch", "--configs",
         "wgan-gp-32", "--steps", "1", "--warmup", "0", "--rounds", "1", "--batch-size", "2", "--threads", "1",
         "--json", str(out)],
        capture_output=True, text=True, env=fakecupy.subprocess_env(), timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    rows = [r for r in lines if "table" not in r]
    combined = [r for r in lines if r.get("table") == "cpu_vs_gpu"]
    assert [(r["phase"], r["backend"]) for r in rows] == [("critic", "numpy"), ("generator", "numpy"),
                                                          ("critic", "cupy"), ("generator", "cupy")]
    assert len(lines) == len(rows) + len(combined)
    assert [(c["config"], c["phase"]) for c in combined] == [("wgan-gp-32", "critic"), ("wgan-gp-32", "generator")]
    table = result.stdout.split("| config | phase |", 1)[1].splitlines()
    assert table[0] == (" npgan CPU ms | npgan GPU ms | GPU speed-up | CPU % of its peak | GPU % of its peak |")
    for c, cpu, gpu, line in zip(combined, rows[:2], rows[2:], table[2:]):
        assert (c["npgan_cpu_ms"], c["npgan_gpu_ms"]) == (cpu["ms_median"], gpu["ms_median"])
        assert c["gpu_speedup"] == pytest.approx(cpu["ms_median"] / gpu["ms_median"])
        assert c["cpu_peak_fraction"] == pytest.approx(cpu["gflop_per_s"] / cpu["matmul_peak_gflop_per_s"])
        assert c["gpu_peak_fraction"] == pytest.approx(gpu["gflop_per_s"] / gpu["matmul_peak_gflop_per_s"])
        assert cpu["matmul_peak_gflop_per_s"] == c["cpu_matmul_peak_gflop_per_s"]  # each device its own peak
        assert gpu["matmul_peak_gflop_per_s"] == c["gpu_matmul_peak_gflop_per_s"]
        assert line == (f"| wgan-gp-32 | {c['phase']} | {c['npgan_cpu_ms']:.2f} | {c['npgan_gpu_ms']:.2f} "
                        f"| {c['gpu_speedup']:.2f} | {100 * c['cpu_peak_fraction']:.1f}% "
                        f"| {100 * c['gpu_peak_fraction']:.1f}% |")
    assert len(table) == 2 + len(combined) or not table[2 + len(combined)].startswith("|")
