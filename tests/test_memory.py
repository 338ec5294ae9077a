"""npgan's malloc policy (npgan/runtime/memory.py): a step's temporary arrays reuse freed memory instead of fresh
pages from the kernel; NPGAN_MALLOC=system leaves malloc alone; bad values are named."""

import os
import subprocess
import sys

import pytest

from npgan.runtime import memory

# Eight 256 KB arrays made, written and freed, fifty times over, as a toy step's temporaries are; the page
# faults of the last forty rounds per round. Printed by a fresh interpreter, so the policy is the one the
# runtime sets when it is switched on ("enable"), or the C library's ("import": npgan imported, nothing more).
ROUNDS = """
import resource, sys, numpy as np, npgan
if sys.argv[1] == "enable":
    import npgan.runtime; npgan.runtime.enable()
def one_round():
    arrays = [np.ones(65536, np.float32) for _ in range(8)]
    del arrays
for _ in range(10):
    one_round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    one_round()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 40)
"""

glibc_only = pytest.mark.skipif(memory._glibc() is None, reason="the malloc policy tunes glibc's malloc only")


def faults_per_round(choice, mode="enable"):
    """Page faults per round in a fresh interpreter, with NPGAN_MALLOC=``choice`` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if k != "NPGAN_MALLOC"}
    if choice is not None:
        env["NPGAN_MALLOC"] = choice
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


@glibc_only
def test_freed_step_arrays_are_reused_without_page_faults():
    tuned, system = faults_per_round("tuned"), faults_per_round("system")
    # Each round touches 2 MB = 512 pages: the system policy gives them back and faults them in again.
    assert system > 100, system
    assert tuned < 5, tuned


@glibc_only
def test_describe_says_what_was_done():
    memory.setup("tuned")  # what every npgan command and Trainer.train() do (npgan.runtime.enable)
    assert "glibc malloc keeps freed memory" in memory.describe() and "NPGAN_MALLOC=system" in memory.describe()


def test_a_bad_choice_names_the_variable_and_the_choices():
    with pytest.raises(ValueError, match="tuned, system"):
        memory.setup("fast")
    env = dict(os.environ, NPGAN_MALLOC="fast")
    code = "import npgan.runtime; npgan.runtime.enable()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "NPGAN_MALLOC='fast': expected one of tuned, system" in out.stderr


def test_system_choice_is_reported():
    env = dict(os.environ, NPGAN_MALLOC="system")
    code = "from npgan.runtime import memory; memory.setup(); print(memory.describe())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "malloc as the C library set it (NPGAN_MALLOC=system)"
