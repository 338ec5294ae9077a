"""Every example runs end to end in its --dry-run mode (a few tiny steps), as CI does."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_"))


def test_there_are_examples_for_every_model():
    assert {"gan_ring8.py", "gan_mnist.py", "dcgan_mnist.py", "wgan_mnist.py", "wgan_gp_toys.py",
            "cgan_mnist.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_dry_run(script, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), "--dry-run", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(tmp_path / "out"), "the example wrote nothing"
