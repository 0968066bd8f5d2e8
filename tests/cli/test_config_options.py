"""equivox.cli.config_options: the command-line options generated from TrainConfig's fields (one option per field,
its help, choices and default in ``--help``), and the config a command line gives: defaults < YAML ``--config`` <
options (``KEY=VALUE`` mappings merged over the YAML's); what ``--help`` calls the default is what runs."""
from __future__ import annotations

import argparse

import pytest

from equivox import cli
from equivox.cli import config_options as config_options_module
from equivox.config import ConfigError, config_options


@pytest.mark.parametrize("command", ["train", "canonicalize", "demo"])
def test_every_field_has_exactly_one_option(command):
    """The options are generated from the fields: one option per field (an on/off field: ``--x`` and the hidden
    ``--no-x`` of the same option), none repeated; the commands leave out only what they say they leave out."""
    parser = dict((" ".join(w), p) for w, p in cli.all_parsers(cli.build_parser()))[command]
    by_field = {}
    for action in parser._actions:
        if getattr(action, "config_field", None):
            by_field.setdefault(action.config_field, []).append(action)
    assert all(len(v) == 1 for v in by_field.values()), {k: v for k, v in by_field.items() if len(v) > 1}
    expected = {o.name for o in config_options()}
    if command == "canonicalize":
        expected -= {o.name for o in config_options() if o.section == "network"} | {"resume"}
    if command == "demo":
        expected -= set(cli.demo.SKIPPED)
    assert set(by_field) == expected
    for name, (action,) in by_field.items():
        o = next(o for o in config_options() if o.name == name)
        assert action.option_strings[0] == o.flag and action.dest == name
        forms = getattr(action, "flag_forms", None)
        assert (forms == (o.flag, "--no-" + o.flag[2:])) == (o.kind == "flag"), name


def test_train_help_shows_every_fields_help_choices_and_default(capsys, help_blocks):
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    blocks = help_blocks(text)
    for o in config_options():
        block = " ".join(blocks[o.flag].split())
        assert " ".join(o.help.split())[:40] in block, o.name
        assert "(default: " in block, o.name
        if o.metavar:
            assert o.metavar in block, o.name
    assert "(default: 5)" in blocks["--epochs"] and "(default: 2,4)" in blocks["--channels"]
    assert "(default: from the dataset)" in " ".join(blocks["--num-classes"].split())
    assert blocks["--canonical-sample"].startswith("--canonical-sample, --no-canonical-sample")


def test_flags_from_the_command_line_override_the_nested_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("trainer:\n  epochs: 3\n  lr: 0.01\nnetwork:\n  model: {head: linear}\n")
    args = cli.build_parser().parse_args(["train", "--config", str(f), "--epochs", "1", "--model-arg", "norm=null",
                                          "--no-plots", "--extra", "model_summary=false"])
    cfg = cli.train_config_from_args(args)
    assert (cfg.epochs, cfg.lr, cfg.plots) == (1, 0.01, False)
    assert cfg.model == {"head": "linear", "norm": None} and cfg.extra == {"model_summary": False}
    assert isinstance(args, argparse.Namespace)


def test_help_defaults_are_the_real_ones():
    """The defaults ``--help`` shows are TrainConfig's field defaults (read from its metadata, without importing
    torch: instant help) and the demo's presets' settings."""
    from equivox import demo
    from equivox.training import TrainConfig

    assert cli.config_defaults() == {k: (tuple(v) if isinstance(v, list) else v)
                                     for k, v in TrainConfig().to_dict().items()}
    assert cli.demo_settings() == {k for p in demo.DEMO_PRESETS for k in p.uses}
    args = cli.build_parser().parse_args(["train"])
    assert cli.train_config_from_args(args) == TrainConfig()  # what --help calls the default is what runs


def test_parse_pairs_reads_values_as_yaml_and_names_the_flag():
    assert config_options_module.parse_model_args(["head=oriented", "class_swaps=[[1, 2]]", "norm=null"]) == {
        "head": "oriented", "class_swaps": [[1, 2]], "norm": None}
    assert config_options_module.parse_pairs(["model_summary=false"], "--extra") == {"model_summary": False}
    assert config_options_module.parse_pairs(None) == {}
    with pytest.raises(ConfigError, match="--extra expects key=value"):
        config_options_module.parse_pairs(["model_summary"], "--extra")
    with pytest.raises(ConfigError, match="--model-arg 'head=\\[1': the value is not valid YAML"):
        config_options_module.parse_model_args(["head=[1"])


def test_given_settings_are_only_the_options_on_the_command_line():
    args = cli.build_parser().parse_args(["train", "--epochs", "2", "--model-arg", "head=linear", "--no-plots"])
    assert config_options_module.given_settings(args) == {"epochs": 2, "model": ["head=linear"], "plots": False}
    assert config_options_module.option_default_text(next(o for o in config_options() if o.name == "epochs")) == "5"
