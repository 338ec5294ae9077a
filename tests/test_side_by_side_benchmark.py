"""benchmarks/side_by_side.py: its environment, commands and report, and one end-to-end run of tiny trainings."""

import json
import os
import subprocess
import sys

import pytest
from benchmark_scripts import ROOT, load_benchmark

SCRIPT = os.path.join(ROOT, "benchmarks", "side_by_side.py")



def test_runs_get_no_thread_variables_but_this_checkout_first_on_the_path(monkeypatch):
    sbs = load_benchmark("side_by_side")
    for name in sbs.THREAD_VARIABLES:
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    env = sbs.run_environment(["NPGAN_NUM_THREADS=2"])
    assert env["NPGAN_NUM_THREADS"] == "2"
    assert not {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"} & set(env)
    assert env["PYTHONPATH"].split(os.pathsep) == [sbs.ROOT, "/elsewhere"]
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        sbs.run_environment(["NPGAN_NUM_THREADS"])


def test_the_toy_command_is_the_one_users_type_and_the_report_gives_every_ratio():
    sbs = load_benchmark("side_by_side")
    command = sbs.train_command("gan", 1500, "/tmp/out", dataset="ring8")
    assert command[3:] == ["train", "gan", "--steps", "1500", "--out", "/tmp/out", "--quiet", "--overwrite",
                           "--dataset", "ring8"]
    result = {"times": {"toy alone": [10.0, 12.0], "two toys": [22.0, 24.0], "dcgan alone": [30.0],
                        "dcgan beside a toy": [45.0], "two dcgans": [57.0]},
              "medians": {"toy alone": 11.0, "two toys": 23.0, "dcgan alone": 30.0, "dcgan beside a toy": 45.0,
                          "two dcgans": 57.0},
              "ratios": {"two toys": 23.0 / 11.0, "dcgan beside a toy": 1.5, "two dcgans": 1.9}}
    meta = {"date": "d", "machine": "m", "load_before": "1", "load_after": "2", "env": "", "toy_steps": 1500,
            "dcgan_steps": 60}
    text = sbs.markdown(result, meta)
    assert "| two toy runs (1500 steps) | 11.0 (10.0, 12.0) | 23.0 (22.0, 24.0) | 2.09 | 2.2 |" in text
    assert "| 30.0 (30.0) | 45.0 (45.0) | 1.50 | 2.5 |" in text
    assert "| two DCGAN runs (60 steps) | 30.0 (30.0) | 57.0 (57.0) | 1.90 |" in text


def test_a_non_positive_count_is_an_error_naming_the_flag(capsys):
    sbs = load_benchmark("side_by_side")
    with pytest.raises(SystemExit):
        sbs.parse_args(["--rounds", "0"])
    assert "--rounds must be a positive integer" in capsys.readouterr().err


def test_two_rounds_of_tiny_runs_end_to_end_write_the_json_line(tmp_path):
    """Each round trains again into the same directories: a second round must not be refused as an overwrite."""
    out = tmp_path / "sbs.jsonl"
    result = subprocess.run([sys.executable, SCRIPT, "--rounds", "2", "--toy-steps", "3", "--dcgan-steps", "1",
                             "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    row = json.loads(out.read_text())
    assert set(row["ratios"]) == {"two toys", "dcgan beside a toy", "two dcgans"}
    assert all(len(times) == 2 for times in row["times"].values()), row
