"""One config, the CLI generated from it: every TrainConfig field has exactly one command-line option and one YAML
key (its name), its help text and default are shown in ``--help``, and a flat YAML file (today's and the
pre-refactor form) and the nested one (sections) load the same config."""
from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from equivox import cli
from equivox.config import (SECTIONS, CanonicalizerConfig, ConfigError, DataConfig, NetworkConfig, TrainConfig,
                            TrainerConfig, UserError, config_options, load_yaml_config)

#: a complete settings file as written before the config had sections (every key of the flat TrainConfig)
PRE_REFACTOR_YAML = """\
task: segment
dataset: chest_ct
image_dir: null
label_dir: null
num_classes: null
class_names: null
input_size: 16
resize: pool
max_train: 10
max_val: 4
patch_size: 16
patches_per_epoch: 8
val_crop: 32
spacing: [1.5, 1.5, 3.0]
intensity: ct
downsample: 2
augment: grid
strict: true
arch: equivariant
group: octa
channels: [2, 4, 8]
strides: [2, 2]
kernel_size: 3
convs_per_level: 1
hidden_features: [16]
model: {norm: instance}
canonicalize: octa
canonical_mode: frame
prior_weight: 0.5
canonical_sample: false
canonical_margin: 0.25
canonical_temperature: 2.0
canonical_pose: true
canonicalizer_channels: [2, 2]
canonicalizer_input_size: 8
epochs: 3
until_plateau: true
max_epochs: 9
max_steps: 100
batch_size: 4
lr: 0.01
weight_decay: 0.001
seed: 7
num_workers: 2
devices: 1
num_nodes: 1
strategy: auto
accelerator: cpu
precision: 32-true
out_dir: outputs/old
resume: null
overwrite: true
progress: false
plots: false
deterministic: true
extra: {model_summary: false}
"""


def _help_blocks(text: str) -> dict:
    """``{each option string of an entry: its whole help text}`` of a ``--help`` output."""
    blocks, keys = {}, []
    for line in text.splitlines():
        m = re.match(r"^  (-[^ ].*?)(  +|$)", line)
        if m:
            keys = [k.split(" ")[0] for k in m.group(1).split(", ")]
            for k in keys:
                blocks[k] = line.strip()
        elif keys and line.startswith("   "):
            for k in keys:
                blocks[k] += " " + line.strip()
        else:
            keys = []
    return blocks


def test_every_field_is_in_exactly_one_section_and_has_help():
    names = [o.name for o in config_options()]
    assert len(names) == len(set(names)) == len(TrainConfig.field_names())
    assert set(SECTIONS) == {"data", "network", "canonicalizer", "trainer"}
    for o in config_options():
        assert o.help and "\n" not in o.help and not o.help.endswith("."), o.name  # one line for --help
        assert TrainConfig.section_of(o.name) == o.section
        assert o.name in {f.name for f in dataclasses.fields(SECTIONS[o.section])}
    assert not set(names) & set(SECTIONS)  # a section name is never a field name (YAML stays unambiguous)


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


def test_option_names_are_the_field_names():
    """YAML key = Python name = option: ``epochs`` / ``--epochs``; the declared exceptions are few."""
    exceptions = {o.name: o.flag for o in config_options() if o.flag != "--" + o.name.replace("_", "-")}
    assert exceptions == {"out_dir": "--out", "model": "--model-arg"}


def test_train_help_shows_every_fields_help_choices_and_default(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    blocks = _help_blocks(text)
    for o in config_options():
        block = " ".join(blocks[o.flag].split())
        assert " ".join(o.help.split())[:40] in block, o.name
        assert "(default: " in block, o.name
        if o.metavar:
            assert o.metavar in block, o.name
    assert "(default: 5)" in blocks["--epochs"] and "(default: 2,4)" in blocks["--channels"]
    assert "(default: from the dataset)" in " ".join(blocks["--num-classes"].split())
    assert blocks["--canonical-sample"].startswith("--canonical-sample, --no-canonical-sample")


def test_canonicalize_help_says_where_its_defaults_come_from(capsys):
    assert cli.main(["canonicalize", "--help"]) == 0
    blocks = {k: " ".join(v.split()) for k, v in _help_blocks(capsys.readouterr().out).items()}
    assert "(default: 10)" in blocks["--epochs"] and "(default: outputs/canonicalize)" in blocks["--out"]
    assert "(default: the checkpoint's, else octa)" in blocks["--canonicalize"]
    assert "(default: the checkpoint's, else 24)" in blocks["--patch-size"]
    assert "(default: off, such a folder is refused)" in blocks["--overwrite"]  # never the checkpoint's
    for absent in ("--arch", "--group", "--channels", "--strides", "--model-arg", "--resume", "--kernel-size"):
        assert absent not in blocks


def test_flat_and_nested_yaml_load_the_same_config(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text(PRE_REFACTOR_YAML)
    cfg = TrainConfig.from_dict(load_yaml_config(flat))
    nested = tmp_path / "nested.yaml"
    import yaml

    nested.write_text(yaml.safe_dump(cfg.to_nested_dict()))
    assert TrainConfig.from_dict(load_yaml_config(nested)) == cfg
    assert TrainConfig.from_dict(cfg.to_nested_dict()) == cfg  # from_dict takes sections too
    assert (cfg.epochs, cfg.trainer.epochs, cfg.channels, cfg.model, cfg.spacing) == (
        3, 3, (2, 4, 8), {"norm": "instance"}, (1.5, 1.5, 3.0))
    # every key of the pre-refactor file reached the config, with its value
    for key, value in yaml.safe_load(PRE_REFACTOR_YAML).items():
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    # mixed: flat keys beside sections, and inside a train: section
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("task: segment\ntrainer:\n  epochs: 3\nnetwork:\n  channels: [2, 2]\n  strides: [2]\n")
    wrapped = tmp_path / "wrapped.yaml"
    wrapped.write_text("train:\n  data: {task: segment}\n  trainer: {epochs: 3}\n  channels: [2, 2]\n"
                       "  strides: [2]\nevaluate:\n  rotations: grid\n")
    want = TrainConfig(task="segment", epochs=3, channels=(2, 2), strides=(2,))
    assert TrainConfig.from_dict(load_yaml_config(mixed)) == want == TrainConfig.from_dict(load_yaml_config(wrapped))


@pytest.mark.parametrize("text, message", [
    ("trainer:\n  group: octa\n", "group belongs in the network: section"),
    ("trainer:\n  epoch: 3\n", "unknown config key 'epoch' in the trainer: section; did you mean 'epochs'?"),
    ("epochs: 3\ntrainer:\n  epochs: 4\n", "epochs is given twice"),
    ("trainer: [1, 2]\n", "the trainer: section must be a mapping"),
    ("epoch: 3\n", "unknown config keys ['epoch']"),
    ("trainer:\n  epochs: 0\n", "epochs must be a positive integer, got 0"),
])
def test_yaml_mistakes_name_the_key_and_the_file(text, message, tmp_path, capsys):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig.from_dict(load_yaml_config(f))
    assert cli.main(["train", "--config", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_sections_flat_access_and_construction():
    cfg = TrainConfig(epochs=3, arch="baseline", channels=[2, 2], strides=[2])
    assert isinstance(cfg.trainer, TrainerConfig) and isinstance(cfg.network, NetworkConfig)
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.canonicalizer, CanonicalizerConfig)
    assert (cfg.epochs, cfg.trainer.epochs, cfg.arch, cfg.channels) == (3, 3, "baseline", (2, 2))
    cfg.epochs = 7  # flat write reaches the section
    assert cfg.trainer.epochs == 7
    cfg.network.group = "trivial"
    assert cfg.group == "trivial"
    by_section = TrainConfig(trainer=TrainerConfig(epochs=3), network={"arch": "baseline", "channels": [2, 2],
                                                                       "strides": [2]})
    assert by_section == TrainConfig(epochs=3, arch="baseline", channels=(2, 2), strides=(2,))
    assert TrainConfig(trainer=TrainerConfig(epochs=3), epochs=4).epochs == 4  # flat keys win
    # dataclasses.replace (the training code's way to change a setting) copies, never shares, the sections
    other = dataclasses.replace(cfg, group="octa", epochs=2)
    assert (other.group, other.epochs, cfg.group, cfg.epochs) == ("octa", 2, "trivial", 7)
    other.model["head"] = "oriented"
    assert cfg.model == {}
    assert cfg.merged({"lr": 0.5, "seed": None}).lr == 0.5 and cfg.merged({"trainer": {"lr": 0.5}}).lr == 0.5
    assert list(cfg.to_dict()) == list(TrainConfig.field_names())  # flat, as checkpoints store it
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(TypeError, match="did you mean 'epochs'"):
        TrainConfig(epoch=3)
    import copy
    import pickle

    shallow = copy.copy(cfg)
    shallow.epochs = 1
    assert cfg.epochs == 7 and pickle.loads(pickle.dumps(cfg)) == cfg == copy.deepcopy(cfg)
    flat_state = {f: getattr(cfg, f) for f in TrainConfig.field_names()}  # a config pickled before the sections
    old = object.__new__(TrainConfig)
    old.__setstate__(flat_state)
    assert old == cfg


def test_config_errors_are_user_errors_and_value_errors():
    with pytest.raises(ConfigError) as info:
        TrainConfig(augment="flip")
    assert isinstance(info.value, ValueError) and isinstance(info.value, UserError)
    assert "augment must be one of none, grid, so3, got 'flip'" in str(info.value)


def test_the_config_package_imports_no_torch():
    """``equivox --help`` reads the config's metadata: the package stays light."""
    import subprocess
    import sys

    code = ("import sys, equivox.config, equivox.cli; equivox.cli.build_parser(); "
            "print(sorted(m for m in ('torch', 'escnn', 'monai', 'equivox.training') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_flags_from_the_command_line_override_the_nested_yaml(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("trainer:\n  epochs: 3\n  lr: 0.01\nnetwork:\n  model: {head: linear}\n")
    args = cli.build_parser().parse_args(["train", "--config", str(f), "--epochs", "1", "--model-arg", "norm=null",
                                          "--no-plots", "--extra", "model_summary=false"])
    cfg = cli.train_config_from_args(args)
    assert (cfg.epochs, cfg.lr, cfg.plots) == (1, 0.01, False)
    assert cfg.model == {"head": "linear", "norm": None} and cfg.extra == {"model_summary": False}
    assert isinstance(args, argparse.Namespace)
