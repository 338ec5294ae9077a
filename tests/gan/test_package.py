"""The GAN package stays readable: one step on one page, no file too long to read in one sitting, and the
names callers import from ``npgan.gan.trainer`` still there after the split."""

import os

import pytest

import npgan.gan

GAN = os.path.dirname(npgan.gan.__file__)


def line_count(name):
    with open(os.path.join(GAN, name)) as f:
        return sum(1 for _ in f)


def test_the_step_fits_on_one_page_and_no_file_of_the_package_is_over_450_lines():
    assert line_count("step.py") < 200
    for name in os.listdir(GAN):
        if name.endswith(".py"):
            assert line_count(name) <= 450, name


@pytest.mark.parametrize("name", [
    "Trainer", "TrainConfig", "VARIANTS", "MODELS", "RESUMABLE_SETTINGS", "ResumeMismatch", "CheckpointWriteError",
    "TrainingDiverged", "TrainingInterrupted", "load_generator", "sampling_mode", "save_toy_scatter", "build_nets",
])
def test_names_imported_from_the_trainer_module_before_the_split_still_are(name):
    from npgan.gan import trainer

    value = getattr(trainer, name)  # AttributeError when the name is gone
    if hasattr(npgan.gan, name):
        assert value is getattr(npgan.gan, name)  # one object, whichever module it is imported from
