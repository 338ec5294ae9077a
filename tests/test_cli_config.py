"""`npgan train`'s parser is generated from TrainConfig's fields: the same flags, choices and defaults as the
hand-written parser it replaced, a refusal naming the flag for every bad value, and the toy defaults stated once
in the config (``Variant.toy``), with a typed flag always winning."""

import argparse
import dataclasses

import pytest

from npgan.cli import build_parser, main
from npgan.gan import config as gan_config
from npgan.gan.config import VARIANTS, TrainConfig

# Every `npgan train` flag as it was before the parser was generated: (flag, choices, default for
# `npgan train dcgan` on mnist5k; None where the model or data decides). CLI-only switches default to False.
EXPECTED = [
    ("--dataset", ("mnist5k", "mnist", "fashion-mnist", "folder", "fake", "ring8", "grid25", "swissroll"), "mnist5k"),
    ("--dataroot", None, None), ("--image-size", (28, 32, 64), None), ("--channels", (1, 3), None),
    ("--batch-size", None, 64), ("--nz", None, 100), ("--ngf", None, 64), ("--ndf", None, 64), ("--hidden", None, None),
    ("--toy-nets", ("mlp", "pacgan"), "mlp"), ("--g-activation", ("leaky_relu", "relu"), "leaky_relu"),
    ("--critic-norm", ("batch", "layer", "instance", "none"), "batch"),
    ("--g-norm", ("batch", "virtual", "none"), "batch"),
    ("--g-upsample", ("convtranspose", "pixelshuffle", "nearest"), "convtranspose"),
    ("--d-downsample", ("strided", "avgpool"), "strided"), ("--cond", ("embed", "channel"), "embed"),
    ("--steps", None, 1500), ("--epochs", None, None), ("--lr-g", None, 2e-4), ("--lr-d", None, 2e-4),
    ("--beta1", None, 0.5), ("--beta2", None, 0.999), ("--n-critic", None, 1), ("--clip", None, None),
    ("--gp-lambda", None, 0.0), ("--loss", ("minimax", "non-saturating", "wasserstein", "hinge"), "non-saturating"),
    ("--label-smoothing", None, 0.0), ("--instance-noise", None, 0.0), ("--noise", ("gaussian", "uniform"), "gaussian"),
    ("--g-dropout", None, 0.0), ("--lr-decay", None, False), ("--pack", None, 1), ("--r1-gamma", None, 0.0),
    ("--g-ema", None, 0.0), ("--unroll", None, 0), ("--unroll-first-order", None, False),
    ("--soft-labels", None, None), ("--flip-labels", None, 0.0), ("--g-layer-noise", None, 0.0),
    ("--clip-grad-norm", None, 0.0), ("--g-dropout-at-sampling", None, False), ("--device", ("cpu", "cuda"), "cpu"),
    ("--seed", None, 0), ("--out", None, None), ("--resume", None, False), ("--overwrite", None, False),
    ("--log-every", None, 10), ("--sample-every", None, 100), ("--checkpoint-every", None, 500),
    ("--no-metrics", None, False), ("--quiet", None, False), ("--sync-bn", None, False),
]
SWITCHES = {"--no-metrics": ("metrics", True)}  # a switch that turns a setting off


def train_actions():
    train = build_parser().train_parser
    return {flag: action for action in train._actions for flag in action.option_strings if flag not in ("-h", "--help")}


def test_the_generated_parser_has_every_flag_of_before_with_its_choices_and_defaults():
    actions = train_actions()
    # the same flags in the same order, and one more: --no-lr-decay, to switch off wgan-gp's toy default
    assert [flag for flag in actions if flag != "--no-lr-decay"] == [flag for flag, _, _ in EXPECTED]
    assert actions["--no-lr-decay"] is actions["--lr-decay"]
    resolved = TrainConfig(model="dcgan").resolved()
    for flag, choices, default in EXPECTED:
        action = actions[flag]
        assert (tuple(action.choices) if action.choices else None) == choices, flag
        if action.dest in {f.name for f in dataclasses.fields(TrainConfig)}:
            assert action.default is argparse.SUPPRESS, flag  # unset: TrainConfig's default applies
            name, expected = SWITCHES.get(flag, (action.dest, default))
            if flag != "--out":  # the CLI's own: runs/MODEL-DATASET
                assert getattr(resolved, name) == expected, flag
        else:
            assert action.default is False, flag
    model = build_parser().train_parser._actions[1]
    assert model.dest == "model" and tuple(model.choices) == ("gan", "dcgan", "wgan", "wgan-gp", "cgan")


def bad_value(field):
    """A value the field refuses, from its metadata."""
    meta = field.metadata
    if meta["choices"]:
        return "nonsense" if isinstance(meta["choices"][0], str) else "7"
    return {gan_config.POSITIVE_INT: "0", gan_config.NON_NEGATIVE_INT: "-1", gan_config.POSITIVE: "0",
            gan_config.NON_NEGATIVE: "-1", gan_config.FRACTION: "1", gan_config.FLIP_PROBABILITY: "0.5",
            gan_config.LABEL_RANGE: "1,0"}[meta["kind"]]


VALUED = [f for f in dataclasses.fields(TrainConfig)
          if f.metadata["flag"] is not False and not f.metadata["action"] and not f.metadata["positional"]
          and (f.metadata["choices"] or f.metadata["kind"])]


def test_every_flag_that_takes_a_checked_value_is_covered():
    free = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["flag"] is not False
            and not f.metadata["action"] and not f.metadata["positional"]} - {f.name for f in VALUED}
    assert free == {"dataroot", "out"}  # any path


@pytest.mark.parametrize("field", VALUED, ids=lambda f: f.name)
def test_every_bad_value_exits_2_naming_the_flag_and_what_it_expects(field, capsys):
    from npgan.cli import _flag

    flag = _flag(field.name)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "dcgan", flag, bad_value(field)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and ("expected" in err or "invalid choice" in err), err


@pytest.mark.parametrize("field", VALUED, ids=lambda f: f.name)
def test_the_same_bad_value_given_in_python_is_refused_naming_the_setting(field):
    value = bad_value(field)
    kind = field.metadata["kind"]
    value = value if field.metadata["choices"] and isinstance(field.metadata["choices"][0], str) else (
        int(value) if field.metadata["choices"] or kind in (gan_config.POSITIVE_INT, gan_config.NON_NEGATIVE_INT)
        else (1.0, 0.0) if kind is gan_config.LABEL_RANGE else float(value))
    with pytest.raises(ValueError, match=f"^{field.name} must be"):
        TrainConfig(**{field.name: value}).validate()


# -- toy defaults ------------------------------------------------------------------------------------------

def typed(argv):
    """The TrainConfig `npgan train ARGV` would train with."""
    from npgan.cli import _config_from_args

    return _config_from_args(build_parser().parse_args(["train", *argv]), "out").resolved()


def test_wgan_gp_on_a_toy_takes_the_readme_recipe_by_default():
    c = typed(["wgan-gp", "--dataset", "ring8"])
    assert (c.batch_size, c.hidden, c.lr_decay, c.g_ema, c.steps) == (256, 128, True, 0.999, 16000)
    assert (c.gp_lambda, c.beta1, c.beta2, c.g_activation, c.lr_g, c.lr_d) == (0.1, 0.5, 0.9, "relu", 1e-3, 1e-3)
    assert typed(["wgan-gp", "--dataset", "grid25"]).steps == VARIANTS["wgan-gp"].toy["steps"]


def test_the_original_gan_keeps_its_plain_settings_on_the_toys():
    c = typed(["gan", "--dataset", "ring8"])
    assert (c.batch_size, c.hidden, c.lr_decay, c.g_ema, c.steps) == (64, 128, False, 0.0, 10000)


def test_wgan_gp_on_images_keeps_the_papers_settings():
    c = typed(["wgan-gp"])
    assert (c.batch_size, c.lr_decay, c.g_ema, c.steps, c.gp_lambda, c.beta1) == (64, False, 0.0, 1000, 10.0, 0.0)


def test_a_typed_flag_wins_over_a_toy_default_even_at_the_plain_default():
    c = typed(["wgan-gp", "--dataset", "ring8", "--batch-size", "64", "--hidden", "128", "--g-ema", "0",
               "--steps", "7", "--gp-lambda", "10"])
    assert (c.batch_size, c.hidden, c.g_ema, c.steps, c.gp_lambda, c.lr_decay) == (64, 128, 0.0, 7, 10.0, True)
    assert typed(["wgan-gp", "--dataset", "ring8", "--epochs", "2"]).steps is None  # epochs set the length
    assert typed(["wgan-gp", "--dataset", "ring8", "--lr-g", "1e-4"]).lr_g == 1e-4


def test_no_lr_decay_switches_off_a_toy_default_and_lr_decay_switches_it_on():
    assert typed(["wgan-gp", "--dataset", "ring8", "--no-lr-decay"]).lr_decay is False
    assert typed(["gan", "--dataset", "ring8", "--lr-decay"]).lr_decay is True


def test_the_help_states_the_toy_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("(default: 64; wgan-gp on the 2-D toys: 256)", "wgan-gp on the 2-D toys: 16000",
                  "generator learning rate (wgan-gp on the 2-D toys: 0.001)",
                  "decay both learning rates linearly to 0 (wgan-gp on the 2-D toys: on)",
                  "0: off; wgan-gp on the 2-D toys: 0.999"):
        assert words in text, words
