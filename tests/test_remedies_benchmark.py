"""benchmarks/remedies.py in a few steps: rows, the written table, resuming, and every remedy a valid config."""

import dataclasses
import json
import shutil

import pytest
from benchmark_scripts import load_benchmark

from npgan.gan import TrainConfig, Trainer


def tiny(tmp_path, *extra):
    return ["--suite", "toys", "--datasets", "ring8", "--batch-size", "16", "--jobs", "1", "--out",
            str(tmp_path / "runs"), "--doc", str(tmp_path / "docs" / "REMEDIES.md"), *extra]


@pytest.mark.parametrize("suite", ["toys", "images"])
def test_every_remedy_is_the_baseline_plus_valid_settings(suite):
    remedies = load_benchmark("remedies")
    table, datasets = remedies.SUITES[suite]
    assert next(iter(table)) == "baseline" and table["baseline"][1] == {}
    for name in table:
        job = {"suite": suite, "remedy": name, "dataset": datasets[0], "seed": 0, "steps": 10, "out": "x"}
        config = TrainConfig(**remedies.job_config(job))
        config.validate()  # every setting exists and is allowed
        baseline = remedies.TOY_BASELINE if suite == "toys" else remedies.IMAGE_BASELINE
        for key, value in baseline.items():
            if key not in table[name][1]:
                assert getattr(config, key) == value, (name, key)
        for key, value in table[name][1].items():
            assert getattr(config, key) == value, (name, key)
        plain = TrainConfig(**remedies.job_config(dict(job, remedy="baseline")))
        changed = {f.name for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(plain, f.name)}
        changed.discard("out")  # the run directory is named after the remedy
        assert bool(changed) == (name != "baseline"), (name, changed)  # every other row changes something


def test_remedies_trains_each_row_writes_the_table_and_copies_one_picture_per_row(tmp_path, capsys):
    rows = load_benchmark("remedies").main(tiny(tmp_path, "--remedies", "baseline", "pacgan", "--seeds", "0", "1",
                                     "--steps", "3"))
    assert sorted((r["remedy"], r["seed"]) for r in rows) == [("baseline", 0), ("baseline", 1), ("pacgan", 0),
                                                               ("pacgan", 1)]
    for row in rows:
        assert row["modes"] == 8 and 0 <= row["modes_captured"] <= 8 and row["steps"] == 3
    results = [json.loads(line) for line in open(tmp_path / "runs" / "results.jsonl")]
    assert len(results) == 4
    doc = (tmp_path / "docs" / "REMEDIES.md").read_text()
    assert "### ring8, 3 generator steps, 2 seeds per row" in doc
    assert "| baseline | the original GAN" in doc and "| pacgan | D judges 4 samples" in doc
    assert (tmp_path / "docs" / "images" / "remedies" / "pacgan-ring8-seed0.png").exists()
    assert "](images/remedies/baseline-ring8-seed0.png)" in doc
    assert "python benchmarks/remedies.py" in doc
    out = capsys.readouterr().out
    assert "| baseline |" in out
    assert "# 1 of 4 runs done (" in out and "# 4 of 4 runs done (" in out  # progress as each run finishes


def test_the_tables_cells_are_the_mean_and_sample_std_over_seeds(tmp_path):
    remedies = load_benchmark("remedies")
    measured = {  # seed: (modes captured, high-quality %, reverse KL, seconds)
        ("baseline", 0): (6, 50.0, 0.1, 10.0), ("baseline", 1): (7, 60.0, 0.2, 12.0),
        ("baseline", 2): (8, 85.0, 0.6, 20.0), ("pacgan", 0): (8, 90.0, 0.05, 30.0)}
    rows = [dict(suite="toys", remedy=remedy, dataset="ring8", steps=3, seed=seed, modes=8, modes_captured=modes,
                 high_quality_pct=high, reverse_kl=kl, seconds=seconds, picture=None)
            for (remedy, seed), (modes, high, kl, seconds) in measured.items()]
    doc = remedies.markdown(remedies.summarise(rows), str(tmp_path / "images"), str(tmp_path))
    # By hand: baseline's modes 6, 7, 8: mean 7, squared deviations 1 + 0 + 1 over n - 1 = 2 seeds: std 1.
    # High quality 50, 60, 85: mean 65, (225 + 25 + 400) / 2 = 325, std 18.03 (the population's would be 14.7).
    # Reverse KL 0.1, 0.2, 0.6: mean 0.3, (0.04 + 0.01 + 0.09) / 2 = 0.07, std 0.2646. Seconds 10, 12, 20: mean 14,
    # (16 + 4 + 36) / 2 = 28, std 5.29. pacgan has one seed: its means alone, no spread.
    assert "| baseline | the original GAN, non-saturating loss | 7.0/8 ± 1.0 | 65.0% ± 18.0 | 0.300 ± 0.265 " \
           "| 14 ± 5 | - |" in doc.splitlines()
    assert "| pacgan | D judges 4 samples at once (Lin et al. 2018) | 8.0/8 | 90.0% | 0.050 | 30 | - |" \
           in doc.splitlines()
    assert "### ring8, 3 generator steps, 1 or 3 seeds per row" in doc


def test_remedies_skips_finished_runs_and_resumes_unfinished_ones(tmp_path, capsys):
    remedies = load_benchmark("remedies")
    remedies.main(tiny(tmp_path, "--remedies", "baseline", "--seeds", "0", "--steps", "2"))
    capsys.readouterr()
    remedies.main(tiny(tmp_path, "--remedies", "baseline", "--seeds", "0", "--steps", "2"))
    assert "1 runs in the table, 1 already done, 0 to run" in capsys.readouterr().out
    # A longer budget: the run continues from its 2-step checkpoint instead of starting again.
    [row] = remedies.main(tiny(tmp_path, "--remedies", "baseline", "--seeds", "0", "--steps", "4"))
    assert "resuming baseline-ring8-seed0 from step 2" in capsys.readouterr().out
    log = [json.loads(line) for line in open(tmp_path / "runs" / "baseline-ring8-seed0" / "metrics.jsonl")]
    assert row["steps"] == 4 and [r["step"] for r in log] == [1, 2, 3, 4]
    # The doc's table keeps a header and text written around it.
    doc = tmp_path / "docs" / "REMEDIES.md"
    doc.write_text("# Title\n\nintro\n\n" + doc.read_text().split("# Remedies, measured\n\n")[1] + "outro\n")
    remedies.main(tiny(tmp_path, "--remedies", "baseline", "--seeds", "0", "--steps", "4"))
    text = doc.read_text()
    assert text.startswith("# Title\n\nintro\n") and text.endswith("outro\n") and text.count("<!-- table -->") == 1


def test_remedies_refuses_a_run_directory_holding_another_run(tmp_path):
    remedies = load_benchmark("remedies")
    job = {"suite": "toys", "remedy": "baseline", "dataset": "ring8", "seed": 0, "steps": 2,
           "out": str(tmp_path / "runs"), "batch_size": 16}
    other = dict(remedies.job_config(job), pack=4)  # pacgan's settings in the baseline's directory
    Trainer(TrainConfig(**other), progress=False).train()
    with pytest.raises(SystemExit, match="holds another run .*pack"):
        remedies.run_one(job)


def test_remedies_refuses_unknown_remedy_names(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_benchmark("remedies").main(tiny(tmp_path, "--remedies", "no such remedy"))
    assert "unknown remedies ['no such remedy']" in capsys.readouterr().err


def test_remedies_report_writes_the_finished_runs_without_training(tmp_path, capsys):
    remedies = load_benchmark("remedies")
    remedies.main(tiny(tmp_path, "--remedies", "baseline", "--seeds", "0", "--steps", "2"))
    capsys.readouterr()
    rows = remedies.main(tiny(tmp_path, "--remedies", "baseline", "pacgan", "--seeds", "0", "--steps", "2",
                              "--report"))
    assert [r["remedy"] for r in rows] == ["baseline"]  # pacgan has not run, and was not trained now
    assert not (tmp_path / "runs" / "pacgan-ring8-seed0").exists()
    assert "| baseline |" in (tmp_path / "docs" / "REMEDIES.md").read_text()


def test_remedies_keeps_a_rows_picture_and_results_after_its_run_directory_is_gone(tmp_path):
    remedies = load_benchmark("remedies")
    results = tmp_path / "kept" / "results.jsonl"
    results.parent.mkdir()
    remedies.main(tiny(tmp_path, "--remedies", "baseline", "--seeds", "0", "--steps", "2", "--results", str(results)))
    assert not (tmp_path / "runs" / "results.jsonl").exists() and len(results.read_text().splitlines()) == 1
    shutil.rmtree(tmp_path / "runs")  # a new machine: the runs are gone, the results file and pictures kept
    [row] = remedies.main(tiny(tmp_path, "--remedies", "baseline", "--seeds", "0", "--steps", "2", "--results",
                               str(results), "--report"))
    assert row["remedy"] == "baseline"
    assert "](images/remedies/baseline-ring8-seed0.png)" in (tmp_path / "docs" / "REMEDIES.md").read_text()
