"""benchmarks/quality_vs_torch.py's bookkeeping: one row per library and seed, then each library's mean ± std.

The training itself is the Trainer's (tested elsewhere) and takes minutes, so these tests give the script
stand-in trainers and metrics and check what it reports.
"""

import math

import numpy as np
import pytest
from benchmark_scripts import load_benchmark


def row(library, seed, frechet, confidence, classes=10):
    return {"library": library, "seed": seed, "frechet_distance": frechet, "frechet_distance_real_floor": 2.5,
            "classifier_confidence": confidence, "classes_covered": classes}


def test_over_seeds_gives_each_library_its_mean_and_sample_std():
    rows = [row("npgan", 0, 6.0, 0.8), row("PyTorch", 0, 9.0, 0.7), row("npgan", 1, 8.0, 0.6, classes=9),
            row("PyTorch", 1, 9.0, 0.7), row("npgan", 2, 10.0, 0.7)]
    npgan_summary, torch_summary = load_benchmark("quality_vs_torch").over_seeds(rows)
    assert npgan_summary["library"] == "npgan" and npgan_summary["seeds"] == [0, 1, 2]
    assert npgan_summary["frechet_distance"] == pytest.approx(8.0)
    assert npgan_summary["frechet_distance_std"] == pytest.approx(2.0)  # sample std of 6, 8, 10
    assert npgan_summary["classifier_confidence"] == pytest.approx(0.7)
    assert npgan_summary["classifier_confidence_std"] == pytest.approx(0.1)
    assert npgan_summary["classes_covered"] == pytest.approx(29 / 3)
    assert torch_summary["frechet_distance"] == 9.0 and torch_summary["frechet_distance_std"] == 0.0


def test_a_single_seed_has_no_mean_row():
    assert load_benchmark("quality_vs_torch").over_seeds([row("npgan", 0, 6.0, 0.8), row("PyTorch", 0, 9.0, 0.7)]) == []


def test_main_runs_both_libraries_once_per_seed_and_prints_the_means(monkeypatch, capsys):
    script = load_benchmark("quality_vs_torch")
    calls = []

    def fake_samples(library, seed):
        calls.append((library, seed))
        return np.full((4, 1, 28, 28), float(seed), np.float32), 1.0

    monkeypatch.setattr(script, "npgan_dcgan", lambda steps, batch, ngf, ndf, nz, seed: fake_samples("npgan", seed))
    monkeypatch.setattr(script, "torch_dcgan",
                        lambda steps, batch, ngf, ndf, nz, seed, threads: fake_samples("PyTorch", seed))
    monkeypatch.setattr(script, "image_metrics", lambda samples: {  # the seed shows through the samples
        "frechet_distance": 5.0 + float(samples.mean()), "frechet_distance_real_floor": 2.5,
        "classifier_confidence": 0.9, "classes_covered": 10})
    rows, summaries = script.main(["--steps", "2", "--seed", "0", "2"])
    assert calls == [("npgan", 0), ("PyTorch", 0), ("npgan", 2), ("PyTorch", 2)]
    assert [(r["library"], r["seed"], r["frechet_distance"]) for r in rows] == [
        ("npgan", 0, 5.0), ("PyTorch", 0, 5.0), ("npgan", 2, 7.0), ("PyTorch", 2, 7.0)]
    assert [s["library"] for s in summaries] == ["npgan", "PyTorch"]
    assert summaries[0]["frechet_distance_std"] == pytest.approx(math.sqrt(2.0))
    out = capsys.readouterr().out
    assert "| npgan, mean ± std | 0, 2 | 6.00 ± 1.41 | 2.50 |" in out


def test_without_pytorch_npgan_runs_every_seed_and_says_so_once(monkeypatch, capsys):
    script = load_benchmark("quality_vs_torch")

    def no_torch(*args):
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(script, "npgan_dcgan", lambda *args: (np.zeros((4, 1, 28, 28), np.float32), 1.0))
    monkeypatch.setattr(script, "torch_dcgan", no_torch)
    monkeypatch.setattr(script, "image_metrics", lambda samples: {
        "frechet_distance": 6.0, "frechet_distance_real_floor": 2.5, "classifier_confidence": 0.9,
        "classes_covered": 10})
    rows, summaries = script.main(["--steps", "2", "--seed", "0", "1", "2"])
    assert [(r["library"], r["seed"]) for r in rows] == [("npgan", 0), ("npgan", 1), ("npgan", 2)]
    assert [s["library"] for s in summaries] == ["npgan"]
    assert capsys.readouterr().out.count("PyTorch is not installed") == 1
