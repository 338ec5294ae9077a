"""In CI a skipped cross-check fails the run; elsewhere it skips, and every run names what it skipped and why."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_without_torch(tmp_path, ci):
    """pytest on one PyTorch cross-check module and one that needs nothing, where ``import torch`` fails."""
    hidden = tmp_path / "hide" / "torch"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("No module named \'torch\' (hidden by the test)")\n')
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "hide"), str(ROOT)])
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_torch_optim.py",
                           "tests/test_source_scan.py"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_missing_cross_check_dependency_only_skips_outside_ci(tmp_path):
    result = run_without_torch(tmp_path, ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped 1: could not import 'torch'" in result.stdout


def test_a_missing_cross_check_dependency_fails_ci(tmp_path):
    result = run_without_torch(tmp_path, ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "CI: 1 cross-check tests skipped for a missing dependency" in result.stdout
