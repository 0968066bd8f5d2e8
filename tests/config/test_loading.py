"""equivox.config.loading: a YAML file of TrainConfig keys, flat or by section (or under a ``train:`` section),
loads into the same config; mistakes in it name the key and the file (one line on the command line); every
example config under examples/configs loads, flat and in sections."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from equivox import cli
from equivox.config import ConfigError, TrainConfig, load_yaml_config

ROOT = Path(__file__).resolve().parents[2]


#: a complete flat settings file: every key of TrainConfig at the top level, none in a section
FLAT_YAML = """\
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


def test_flat_and_nested_yaml_load_the_same_config(tmp_path):
    flat = tmp_path / "flat.yaml"
    flat.write_text(FLAT_YAML)
    cfg = TrainConfig.from_dict(load_yaml_config(flat))
    nested = tmp_path / "nested.yaml"
    import yaml

    nested.write_text(yaml.safe_dump(cfg.to_nested_dict()))
    assert TrainConfig.from_dict(load_yaml_config(nested)) == cfg
    assert TrainConfig.from_dict(cfg.to_nested_dict()) == cfg  # from_dict takes sections too
    assert (cfg.epochs, cfg.trainer.epochs, cfg.channels, cfg.model, cfg.spacing) == (
        3, 3, (2, 4, 8), {"norm": "instance"}, (1.5, 1.5, 3.0))
    # every key of the flat file reached the config, with its value
    for key, value in yaml.safe_load(FLAT_YAML).items():
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


def test_yaml_train_section_is_honoured(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("train:\n  epochs: 3\n  dataset: furniture\n  intensity: none\nevaluate:\n  rotations: grid\n")
    d = load_yaml_config(f)
    cfg = TrainConfig.from_dict(d)
    assert (cfg.epochs, cfg.dataset, cfg.intensity) == (3, "furniture", None)
    f.write_text("train: [1, 2]\n")
    with pytest.raises(ValueError, match=r"run\.yaml.*'train:' section must be a mapping"):
        load_yaml_config(f)



@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads_into_a_train_config(path):
    raw = yaml.safe_load(path.read_text())
    cfg = TrainConfig.from_dict(load_yaml_config(path))
    section = raw.get("train", raw)
    for key, value in section.items():  # every key in the file reached the config
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_in_sections_loads_the_same(path, tmp_path):
    """The nested form of each example (``data:``, ``network:``, ``canonicalizer:``, ``trainer:``) gives the same
    config as the flat file."""
    flat = TrainConfig.from_dict(load_yaml_config(path))
    raw = yaml.safe_load(path.read_text())
    nested = {}
    for key, value in raw.get("train", raw).items():
        nested.setdefault(TrainConfig.section_of(key), {})[key] = value
    f = tmp_path / "nested.yaml"
    f.write_text(yaml.safe_dump(nested))
    assert TrainConfig.from_dict(load_yaml_config(f)) == flat


def test_yaml_errors_are_config_errors_naming_the_file(tmp_path):
    from equivox.config import ConfigError

    f = tmp_path / "broken.yaml"
    f.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml is not valid YAML"):
        load_yaml_config(f)
    f.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_yaml_config(f)
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_yaml_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="unknown config keys"):
        TrainConfig.from_dict({"epoch": 3})
