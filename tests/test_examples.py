"""Every example runs end to end in its --dry-run mode (a few tiny steps), as CI does; so does the README's."""

import ast
import math
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
EXAMPLES = os.path.join(ROOT, "examples")
SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_"))


def test_there_are_examples_for_every_model():
    assert {"gan_ring8.py", "gan_mnist.py", "dcgan_mnist.py", "wgan_mnist.py", "wgan_gp_toys.py",
            "cgan_mnist.py"} <= set(SCRIPTS)


HAND_WRITTEN = ("gan_ring8.py", "dcgan_mnist.py", "wgan_mnist.py", "wgan_gp_toys.py")


@pytest.mark.parametrize("script", HAND_WRITTEN)
def test_tutorial_examples_write_the_training_loop_by_hand(script):
    """These examples teach the loop: D's step, then G's, in the script itself, with no Trainer underneath."""
    with open(os.path.join(EXAMPLES, script), encoding="utf-8") as f:
        source = f.read()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported |= {node.module} | {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert not imported & {"Trainer", "TrainConfig", "_common", "npgan.gan.trainer"}, imported
    for line in ("opt_d.zero_grad()", "opt_d.step()", "opt_g.zero_grad()", "opt_g.step()", ".backward()"):
        assert line in source, f"{script} has no {line}"
    assert source.index("opt_d.step()") < source.index("opt_g.step()"), "D's step comes before G's"


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_dry_run(script, tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), "--dry-run", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.listdir(tmp_path / "out"), "the example wrote nothing"


def _readme():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def test_the_readme_python_example_trains(monkeypatch, tmp_path):
    """The README's hand-written GAN step runs as printed (for 3 steps instead of 3,000)."""
    monkeypatch.chdir(tmp_path)
    code = re.findall(r"```python\n(.*?)```", _readme(), re.S)[0]
    assert "range(3000)" in code
    namespace = {}
    exec(compile(code.replace("range(3000)", "range(3)"), "README.md", "exec"), namespace)
    assert namespace["step"] == 2
    assert math.isfinite(namespace["loss_d"].item()) and math.isfinite(namespace["loss_g"].item())


def test_the_readme_is_a_product_page():
    """At most 150 lines, the quick start's two commands (CI runs the second), no dates or clock times."""
    text = _readme()
    assert len(text.splitlines()) <= 150
    assert 'pip install -e ".[data]" && npgan train dcgan' in text
    assert 'pip install -e ".[test]" && pytest' in text
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), "a date in the README: it belongs in docs/RESULTS.md"
    assert not re.search(r"\b\d\d:\d\d\b", text), "a clock time in the README: it belongs in docs/RESULTS.md"
