"""benchmarks/remedies.py in a few steps: rows, the written table, resuming, and every remedy a valid config."""

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
