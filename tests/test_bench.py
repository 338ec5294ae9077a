"""The benchmark suite (npgan/bench/): model shapes as in benchmarks/CONFIGS.md, FLOP counts, a short run's JSON."""

import json

import numpy as np
import pytest

import npgan
from npgan import bench, nn
from npgan.ops import conv


def describe(model):
    """The layers of ``model.main`` as benchmarks/CONFIGS.md writes them."""
    names = []
    for m in model.main:
        if isinstance(m, nn.ConvTranspose2d):
            names.append(f"ConvT({m.in_channels},{m.out_channels},{m.kernel_size[0]},{m.stride[0]},{m.padding[0]})")
            assert m.bias is None
        elif isinstance(m, nn.Conv2d):
            names.append(f"Conv({m.in_channels},{m.out_channels},{m.kernel_size[0]},{m.stride[0]},{m.padding[0]})")
            assert m.bias is None
        elif isinstance(m, nn.Linear):
            names.append(f"Linear({m.in_features},{m.out_features})")
        elif isinstance(m, nn.BatchNorm2d):
            names.append("BN")
        elif isinstance(m, nn.LeakyReLU):
            names.append(f"LReLU({m.negative_slope})")
        else:
            names.append(type(m).__name__)
    return " ".join(names)


DCGAN32_G = ("ConvT(100,256,4,1,0) BN ReLU ConvT(256,128,4,2,1) BN ReLU ConvT(128,64,4,2,1) BN ReLU "
             "ConvT(64,1,4,2,1) Tanh")
DCGAN32_D = ("Conv(1,64,4,2,1) LReLU(0.2) Conv(64,128,4,2,1) BN LReLU(0.2) Conv(128,256,4,2,1) BN LReLU(0.2) "
             "Conv(256,1,4,1,0)")


TOY_G = "Linear(16,256) ReLU Linear(256,256) ReLU Linear(256,256) ReLU Linear(256,2)"
TOY_D = "Linear(2,256) LReLU(0.2) Linear(256,256) LReLU(0.2) Linear(256,256) LReLU(0.2) Linear(256,1)"


@pytest.mark.parametrize("config, g, d", [
    ("gan-mlp",
     "Linear(100,256) LReLU(0.2) Linear(256,512) LReLU(0.2) Linear(512,1024) LReLU(0.2) Linear(1024,784) Tanh",
     "Linear(784,512) LReLU(0.2) Linear(512,256) LReLU(0.2) Linear(256,1)"),
    ("dcgan-32", DCGAN32_G, DCGAN32_D),
    ("wgan-32", DCGAN32_G, DCGAN32_D),
    ("wgan-gp-32", DCGAN32_G, DCGAN32_D.replace(" BN", "")),
    ("dcgan-64",
     "ConvT(100,512,4,1,0) BN ReLU ConvT(512,256,4,2,1) BN ReLU ConvT(256,128,4,2,1) BN ReLU "
     "ConvT(128,64,4,2,1) BN ReLU ConvT(64,3,4,2,1) Tanh",
     "Conv(3,64,4,2,1) LReLU(0.2) Conv(64,128,4,2,1) BN LReLU(0.2) Conv(128,256,4,2,1) BN LReLU(0.2) "
     "Conv(256,512,4,2,1) BN LReLU(0.2) Conv(512,1,4,1,0)"),
    ("toy-mlp", TOY_G, TOY_D),
    ("toy-wgan-gp", TOY_G, TOY_D),
])
def test_benchmark_models_have_the_layers_of_benchmarks_md(config, g, d):
    G, D, nz = bench.build_models(config)
    assert (describe(G), describe(D), nz) == (g, d, 16 if config in bench.TOY_CONFIGS else 100)


def test_flop_counts_of_one_layer_of_each_kind_match_hand_computed_values():
    G, D, _ = bench.build_models("dcgan-32")
    conv_layer = bench.layer_table(D, (64, 1, 32, 32))[1]  # Conv(64,128,4,2,1) on 16x16 -> 8x8
    assert conv_layer["out_shape"] == (64, 128, 8, 8)
    assert conv_layer["macs"] == 64 * 128 * 8 * 8 * (64 * 4 * 4)  # per output value, C*KH*KW multiply-adds
    convt_layer = bench.layer_table(G, (64, 100, 1, 1))[1]  # ConvT(256,128,4,2,1) on 4x4 -> 8x8
    assert convt_layer["out_shape"] == (64, 128, 8, 8)
    assert convt_layer["macs"] == 64 * 256 * 4 * 4 * (128 * 4 * 4)  # per input value, O*KH*KW
    G, D, _ = bench.build_models("gan-mlp")
    linear_layer = bench.layer_table(D, (64, 1, 28, 28))[0]  # Linear(784, 512) on the flattened image
    assert (linear_layer["in_shape"], linear_layer["out_shape"]) == ((64, 784), (64, 512))
    assert linear_layer["macs"] == 64 * 784 * 512


def test_step_flops_reproduce_the_benchmarks_md_totals():
    # dcgan-32: 26.2 GFLOP when D's weight gradients are computed in the G step (pytorch/examples);
    # the Trainer freezes D there, which skips one weight-gradient pass of D (2.18 GFLOP).
    with_d_grads = bench.step_flops("dcgan-32", "step", d_weight_grads_in_g_step=True)
    frozen = bench.step_flops("dcgan-32", "step")
    assert with_d_grads / 1e9 == pytest.approx(26.2, abs=0.05)
    assert (with_d_grads - frozen) / 1e9 == pytest.approx(2.18, abs=0.01)
    # wgan-gp-32 critic: 28.3 GFLOP is PyTorch's count (it also backpropagates zeros through x_hat's
    # forward graph); npgan's second backward never reaches that graph: two passes of D fewer.
    torch_critic = bench.step_flops("wgan-gp-32", "critic", library="torch")
    npgan_critic = bench.step_flops("wgan-gp-32", "critic", library="npgan")
    assert torch_critic / 1e9 == pytest.approx(28.3, abs=0.05)
    assert (torch_critic - npgan_critic) / 1e9 == pytest.approx(2 * 2.181, abs=0.01)


def test_step_flops_scale_with_the_batch_size():
    assert bench.step_flops("gan-mlp", "step", batch_size=8) * 8 == pytest.approx(
        bench.step_flops("gan-mlp", "step", batch_size=64))


def test_short_benchmark_run_reports_every_field(tmp_path, capsys):
    has_torch = True
    try:
        import torch  # noqa: F401
    except ImportError:
        has_torch = False
    out = tmp_path / "bench.jsonl"
    report = tmp_path / "report.md"
    code = bench.main(["--configs", "gan-mlp,wgan-gp-32", "--steps", "2", "--warmup", "1", "--batch-size", "4",
                       "--threads", "1", "--rounds", "2", "--json", str(out), "--markdown", str(report), "--profile"])
    assert code == 0
    assert "| wgan-gp-32 critic | npgan-numpy | 1 |" in report.read_text()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    libraries = ["torch", "npgan"] if has_torch else ["npgan"]
    expected = [(c, p, lib) for c, p in (("gan-mlp", "step"), ("wgan-gp-32", "critic"), ("wgan-gp-32", "generator"))
                for lib in libraries]
    assert [(r["config"], r["phase"], r["library"]) for r in rows] == expected
    for r in rows:
        assert set(bench.FIELDS) <= set(r)
        assert r["threads"] == 1 and r["batch_size"] == 4 and r["steps"] == 2
        assert 0 < r["ms_min"] <= r["ms_median"] <= r["ms_max"]
        assert r["images_per_s"] == pytest.approx(4 / (r["ms_median"] / 1e3))
        assert r["gflop_per_step"] == pytest.approx(bench.step_flops(r["config"], r["phase"], 4, r["library"]) / 1e9)
        assert r["gflop_per_s"] == pytest.approx(r["gflop_per_step"] / (r["ms_median"] / 1e3))
        assert r["peak_fraction"] == pytest.approx(r["gflop_per_s"] / r["matmul_peak_gflop_per_s"])
        assert r["matmul_peak_gflop_per_s"] > 0 and r["peak_mem_mb"] >= 0 and r["mem_method"]
        assert r["versions"]["numpy"] and r["machine"] and r["date"]
        if r["library"] == "npgan":
            assert (r["ratio_vs_torch"] is not None) == has_torch
            assert set(r["profile"]) == set(bench.PROFILE_CATEGORIES) | {"total"}
            assert sum(r["profile"][c] for c in bench.PROFILE_CATEGORIES) == pytest.approx(r["profile"]["total"],
                                                                                          abs=0.1)
        else:
            assert r["ratio_vs_torch"] is None and r["profile"] is None
    if has_torch:
        npgan_row, torch_row = rows[1], rows[0]
        assert npgan_row["ratio_vs_torch"] == pytest.approx(npgan_row["ms_median"] / torch_row["ms_median"])
    printed = capsys.readouterr().out
    assert "| gan-mlp | npgan-numpy | 1 |" in printed and "| wgan-gp-32 critic |" in printed
    assert "| config | im2col | gemm | col2im |" in printed  # the --profile table
    assert "CPU against GPU" not in printed and "cpu_vs_gpu" not in out.read_text()  # one backend: as before


def test_unknown_configuration_is_an_error(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--configs", "dcgan-33"])
    assert "dcgan-33" in capsys.readouterr().err


def test_profiler_counts_each_second_once_and_restores_the_ops():
    from npgan.ops import linear

    original = (conv.im2col, conv.gemm, linear.gemm, npgan.functional.leaky_relu)
    profiler = bench.OpProfiler()
    step = bench.npgan_steps("dcgan-32", 2, "cpu", timers=profiler)["step"]
    profiler.install()
    try:
        step()
    finally:
        profiler.uninstall()
    assert (conv.im2col, conv.gemm, linear.gemm, npgan.functional.leaky_relu) == original
    assert all(v >= 0 for v in profiler.totals.values())
    assert profiler.totals["gemm"] > 0 and profiler.totals["im2col"] > 0 and profiler.totals["col2im"] > 0
    assert profiler.totals["batchnorm"] > 0 and profiler.totals["optimizer"] > 0
    per_step = profiler.per_step_ms(total_seconds=10.0, steps=1)
    assert sum(per_step.values()) == pytest.approx(1e4, abs=0.1)  # "other" is the rest of the step


@pytest.mark.parametrize("config, phase", [("gan-mlp", "step"), ("dcgan-32", "step"), ("wgan-gp-32", "critic"),
                                           ("wgan-32", "generator"), ("toy-mlp", "step"),
                                           ("toy-wgan-gp", "critic")])
def test_flop_count_equals_the_gemm_work_the_engine_does(config, phase, monkeypatch):
    from npgan.ops import core, linear

    done = []
    gemm, matmul_forward = conv.gemm, core.MatMul.forward

    def counting_gemm(a, b, out=None):
        done.append(2 * a.shape[0] * a.shape[1] * b.shape[1])
        return gemm(a, b, out)

    def counting_matmul(self, a, b):
        y = matmul_forward(self, a, b)
        done.append(2 * y.size * a.shape[-1])
        return y

    monkeypatch.setattr(conv, "gemm", counting_gemm)
    monkeypatch.setattr(linear, "gemm", counting_gemm)
    monkeypatch.setattr(core.MatMul, "forward", counting_matmul)
    step = bench.npgan_steps(config, 4, "cpu")[phase]
    step()  # Adam's moments and the like are created in the first step
    done.clear()
    step()
    assert sum(done) == bench.step_flops(config, phase, batch_size=4)


def test_markdown_report_replaces_only_the_reference_run_block(tmp_path):
    path = tmp_path / "REFERENCE.md"
    path.write_text(f"# Title\n\n{bench.REPORT_START}\nold table\n{bench.REPORT_END}\n\n## Speed log\nkept\n")
    bench.update_report(str(path), "new table")
    assert path.read_text() == f"# Title\n\n{bench.REPORT_START}\nnew table\n{bench.REPORT_END}\n\n## Speed log\nkept\n"
    fresh = tmp_path / "new.md"
    bench.update_report(str(fresh), "table")
    assert fresh.read_text() == f"{bench.REPORT_START}\ntable\n{bench.REPORT_END}\n"


def test_cupy_backend_without_a_gpu_says_what_is_missing():
    from npgan import backend

    if backend.cupy_available():
        pytest.skip("this machine has CuPy and a GPU")
    with pytest.raises(SystemExit, match="CuPy"):
        bench.main(["--backend", "cupy", "--configs", "gan-mlp", "--steps", "1"])


@pytest.mark.parametrize("value, wrong", [("numpy,tpu", "'tpu'"), ("numpy,numpy", "'numpy,numpy'"), (",", "','")])
def test_a_bad_backend_list_is_refused_naming_the_flag(value, wrong, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--backend", value])
    err = capsys.readouterr().err
    assert "--backend" in err and wrong in err


def test_backend_list_is_parsed_in_order():
    assert bench.parse_args(["--backend", "cupy, numpy"]).backends == ["cupy", "numpy"]
    assert bench.parse_args([]).backends == ["numpy"]


def test_numpy_and_cupy_without_a_gpu_fail_before_anything_runs(monkeypatch, capsys):
    from npgan import backend
    from npgan.bench import suite

    if backend.cupy_available():
        pytest.skip("this machine has CuPy and a GPU")

    def must_not_run(*args, **kwargs):
        raise AssertionError("a worker started before the missing GPU was reported")

    monkeypatch.setattr(suite, "_spawn", must_not_run)
    monkeypatch.setattr(suite, "measure_phase", must_not_run)
    with pytest.raises(SystemExit, match="--backend cupy needs CuPy"):
        bench.main(["--backend", "numpy,cupy", "--configs", "gan-mlp", "--steps", "1"])
    assert "{" not in capsys.readouterr().out  # no row of the CPU half was printed


def _row(config, phase, library, device, ms, gflop=1.0, peak=100.0):
    backend = {"cpu": "numpy", "cuda": "cupy"}[device] if library == "npgan" else device
    return dict(config=config, phase=phase, library=library, backend=backend, device=device, threads=2,
                batch_size=64, ms_median=ms, gflop_per_s=gflop / (ms / 1e3), matmul_peak_gflop_per_s=peak,
                peak_fraction=gflop / (ms / 1e3) / peak, date="today")


def test_cpu_against_gpu_pairs_each_phase_and_leaves_missing_pytorch_cells_empty():
    rows = [_row("wgan-32", "critic", "torch", "cpu", 40.0), _row("wgan-32", "critic", "npgan", "cpu", 50.0),
            _row("wgan-32", "generator", "npgan", "cpu", 30.0),
            _row("wgan-32", "critic", "npgan", "cuda", 5.0, peak=10000.0),
            _row("wgan-32", "generator", "npgan", "cuda", 6.0, peak=10000.0)]  # PyTorch saw no CUDA device
    combined = bench.cpu_gpu_rows(rows)
    assert [(c["config"], c["phase"]) for c in combined] == [("wgan-32", "critic"), ("wgan-32", "generator")]
    critic = combined[0]
    assert critic["gpu_speedup"] == pytest.approx(10.0)
    assert critic["cpu_peak_fraction"] == pytest.approx(20.0 / 100.0)  # 1 GFLOP in 50 ms, CPU peak 100
    assert critic["gpu_peak_fraction"] == pytest.approx(200.0 / 10000.0)  # 1 GFLOP in 5 ms, GPU peak 10000
    assert (critic["torch_cpu_ms"], critic["torch_gpu_ms"]) == (40.0, None)
    lines = bench.cpu_gpu_table(combined).splitlines()
    assert lines[0] == ("| config | phase | npgan CPU ms | npgan GPU ms | GPU speed-up | CPU % of its peak "
                        "| GPU % of its peak | PyTorch CPU ms | PyTorch GPU ms |")
    assert lines[2] == "| wgan-32 | critic | 50.00 | 5.00 | 10.00 | 20.0% | 2.0% | 40.00 | |"
    assert lines[3] == "| wgan-32 | generator | 30.00 | 6.00 | 5.00 | 33.3% | 1.7% | | |"
    without_torch = bench.cpu_gpu_table(bench.cpu_gpu_rows(rows[1:]))
    assert "PyTorch" not in without_torch
    assert bench.cpu_gpu_rows(rows[:3]) == []  # the CPU alone: nothing to compare


def test_toy_configurations_run_at_batch_256_by_default(tmp_path):
    out = tmp_path / "toys.jsonl"
    code = bench.main(["--configs", "toy-mlp,toy-wgan-gp", "--steps", "1", "--warmup", "0", "--rounds", "1",
                       "--threads", "1", "--no-torch", "--json", str(out)])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["config"], r["phase"], r["batch_size"]) for r in rows] == [("toy-mlp", "step", 256),
                                                                          ("toy-wgan-gp", "critic", 256)]
    assert rows[0]["gflop_per_step"] == pytest.approx(bench.step_flops("toy-mlp", "step", 256) / 1e9)


@pytest.mark.parametrize("config", ["gan-mlp", "toy-mlp", "dcgan-32"])
def test_pytorch_reference_models_compute_what_npgan_models_compute(config):
    torch = pytest.importorskip("torch")
    npgan.manual_seed(0)
    G, D, nz = bench.build_models(config)
    tG, tD, _ = bench.torch_models(config, "cpu")
    for net, tnet in ((G, tG), (D, tD)):  # the same weights: copy npgan's (build_models is seeded afresh)
        tnet.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in net.state_dict().items()}, strict=True)
    G.eval(), D.eval(), tG.eval(), tD.eval()
    z = npgan.randn(3, nz) if config != "dcgan-32" else npgan.randn(3, nz, 1, 1)
    with npgan.no_grad(), torch.no_grad():
        x = G(z)
        tx = tG(torch.from_numpy(z.numpy()))
        np.testing.assert_allclose(tx.numpy(), x.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(tD(tx).numpy(), D(x).numpy(), rtol=1e-4, atol=1e-5)


def test_toys_are_timed_over_200_steps_by_default_and_the_rest_over_20(tmp_path, monkeypatch):
    seen = {}

    def fake_measure(config, phase, order, args, device, threads, batch, steps):  # no worker processes
        seen[config] = steps
        return {"npgan": dict(times=[0.01] * steps, peak_mem_mb=1.0, mem_method="-", blas=[], profile=None)}

    monkeypatch.setattr(bench.suite, "measure_phase", fake_measure)
    monkeypatch.setattr(bench.suite, "_spawn", lambda spec, threads: {"matmul_peak": 100.0})
    out = tmp_path / "rows.jsonl"
    assert bench.main(["--configs", "toy-mlp,gan-mlp", "--no-torch", "--threads", "1", "--json", str(out)]) == 0
    assert seen == {"toy-mlp": 200, "gan-mlp": 20}
    assert [json.loads(line)["steps"] for line in out.read_text().splitlines()] == [200, 20]
    assert bench.main(["--configs", "toy-mlp", "--steps", "7", "--no-torch", "--threads", "1"]) == 0
    assert seen["toy-mlp"] == 7
