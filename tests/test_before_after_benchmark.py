"""benchmarks/before_after.py: two versions of npgan timed in alternating rounds."""

import json

import pytest
from benchmark_scripts import ROOT, load_benchmark


def test_two_trees_are_timed_in_alternating_rounds_and_compared(tmp_path, capsys):
    before_after = load_benchmark("before_after")
    out = tmp_path / "rows.jsonl"
    code = before_after.main(["--before", ROOT, "--after", ROOT, "--configs", "toy-mlp", "--rounds", "2",
                              "--steps", "2", "--warmup", "0", "--json", str(out)])
    assert code == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (row["config"], row["phase"]) == ("toy-mlp", "step")
    assert len(row["before_rounds"]) == len(row["after_rounds"]) == 2
    assert row["ratio"] == pytest.approx(row["after_ms"] / row["before_ms"])
    assert "| toy-mlp | step |" in capsys.readouterr().out


def test_rounds_below_one_are_refused(capsys):
    with pytest.raises(SystemExit):
        load_benchmark("before_after").main(["--before", ROOT, "--rounds", "0"])
    assert "--rounds must be >= 1, got 0" in capsys.readouterr().err
