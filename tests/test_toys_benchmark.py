"""benchmarks/toys.py, in a few steps: every recipe runs, rows carry the metrics, --jobs runs in processes."""

import json
import os
import subprocess
import sys

import pytest
from benchmark_scripts import ROOT, load_benchmark


def test_toys_benchmark_trains_every_recipe_and_reports_the_mode_metrics(tmp_path, capsys):
    toys = load_benchmark("toys")
    rows = toys.main(["--steps", "3", "--datasets", "ring8", "--batch-size", "16", "--out", str(tmp_path)])
    assert [r["recipe"] for r in rows] == list(toys.RECIPES)
    for row in rows:
        assert row["dataset"] == "ring8" and row["steps"] == 3 and row["modes"] == 8
        assert 0 <= row["modes_captured"] <= 8 and 0.0 <= row["high_quality_pct"] <= 100.0
        assert row["without_ema"]["modes"] == 8  # G's weight average and G itself are both scored
        assert os.path.exists(row["picture"])
    table = capsys.readouterr().out
    assert "| model | dataset | steps | seed | modes captured |" in table and "/8 |" in table


def test_toys_benchmark_runs_one_row_per_seed_then_their_mean(tmp_path, capsys):
    rows = load_benchmark("toys").main(["--steps", "2", "--datasets", "ring8", "--recipes", "gan + tricks",
                                        "--seed", "0", "1", "--batch-size", "16", "--out", str(tmp_path)])
    assert [r["seed"] for r in rows] == [0, 1]
    assert rows[0]["picture"] != rows[1]["picture"]
    out = capsys.readouterr().out
    summary = [json.loads(line)["over_seeds"] for line in out.splitlines() if line.startswith('{"over_seeds"')]
    assert len(summary) == 1 and summary[0]["seeds"] == [0, 1]
    mean = (rows[0]["high_quality_pct"] + rows[1]["high_quality_pct"]) / 2
    assert summary[0]["high_quality_pct"] == pytest.approx(mean)
    assert "| gan + tricks | ring8 | 2 | mean ± std of 2 |" in out


def test_over_seeds_gives_the_mean_and_sample_std_per_recipe_and_toy():
    def row(recipe, seed, captured, pct, kl):
        return {"recipe": recipe, "dataset": "grid25", "steps": 10, "seed": seed, "modes": 25,
                "modes_captured": captured, "high_quality_pct": pct, "reverse_kl": kl}

    rows = [row("gan + tricks", 0, 25, 89.0, 0.01), row("gan + tricks", 1, 23, 93.0, 0.03),
            row("gan + tricks", 2, 24, 91.0, 0.02), row("wgan-gp", 0, 25, 90.0, 0.0)]
    [summary] = load_benchmark("toys").over_seeds(rows)  # a single seed gives no summary
    assert summary["recipe"] == "gan + tricks" and summary["seeds"] == [0, 1, 2] and summary["modes"] == 25
    assert summary["modes_captured"] == pytest.approx(24.0) and summary["modes_captured_std"] == pytest.approx(1.0)
    assert summary["high_quality_pct"] == pytest.approx(91.0) and summary["high_quality_pct_std"] == pytest.approx(2.0)
    assert summary["reverse_kl"] == pytest.approx(0.02) and summary["reverse_kl_std"] == pytest.approx(0.01)


def test_toys_benchmark_runs_jobs_in_parallel_processes_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "toys.py"), "--steps", "2",
                           "--batch-size", "16", "--jobs", "2", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert sorted((r["recipe"], r["dataset"]) for r in rows) == sorted(
        (recipe, dataset) for recipe in load_benchmark("toys").RECIPES for dataset in ("ring8", "grid25"))
    assert done.stdout.count("/25 |") == 2 and done.stdout.count("/8 |") == 2


def test_toys_benchmark_resumes_each_run_from_its_checkpoint(tmp_path):
    toys = load_benchmark("toys")
    common = ["--datasets", "ring8", "--recipes", "gan + tricks", "--batch-size", "16", "--out", str(tmp_path)]
    [first] = toys.main(["--steps", "2"] + common)
    [row] = toys.main(["--steps", "4", "--resume"] + common)
    assert row["steps"] == 4 and row["modes"] == 8
    log = [json.loads(line) for line in open(tmp_path / "gan-tricks-ring8-seed0" / "metrics.jsonl")]
    assert [r["step"] for r in log] == [2, 4]  # a fresh run would have started its log again
    assert log[1]["time"] >= log[0]["time"] and row["seconds"] >= first["seconds"]
    [again] = toys.main(["--steps", "4", "--resume"] + common)  # a finished run is only scored again
    assert len(open(tmp_path / "gan-tricks-ring8-seed0" / "metrics.jsonl").readlines()) == 2
    assert {k: again[k] for k in ("modes_captured", "high_quality_pct", "reverse_kl")} == {
        k: row[k] for k in ("modes_captured", "high_quality_pct", "reverse_kl")}


def test_toys_benchmark_will_not_resume_from_another_runs_checkpoint(tmp_path):
    toys = load_benchmark("toys")
    common = ["--steps", "2", "--datasets", "ring8", "--recipes", "gan + tricks", "--batch-size", "16",
              "--out", str(tmp_path)]
    toys.main(common)
    (tmp_path / "gan-tricks-ring8-seed1").mkdir()
    os.replace(tmp_path / "gan-tricks-ring8-seed0" / "checkpoint.npz",
               tmp_path / "gan-tricks-ring8-seed1" / "checkpoint.npz")
    with pytest.raises(SystemExit, match="holds another run"):
        toys.main(common + ["--seed", "1", "--resume"])


def test_toys_benchmark_refuses_zero_jobs(capsys):
    with pytest.raises(SystemExit):
        load_benchmark("toys").main(["--jobs", "0"])
    assert "--jobs must be >= 1" in capsys.readouterr().err
