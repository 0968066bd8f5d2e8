"""equivox.training.config: YAML and command-line settings reach TrainConfig; every example config loads."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from equivox.training import TrainConfig, load_yaml_config



def test_yaml_train_section_is_honoured(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("train:\n  epochs: 3\n  dataset: furniture\n  intensity: none\nevaluate:\n  rotations: grid\n")
    d = load_yaml_config(f)
    cfg = TrainConfig.from_dict(d)
    assert (cfg.epochs, cfg.dataset, cfg.intensity) == (3, "furniture", None)
    f.write_text("train: [1, 2]\n")
    with pytest.raises(ValueError, match=r"run\.yaml.*'train:' section must be a mapping"):
        load_yaml_config(f)


def test_intensity_none_from_the_command_line():
    from equivox import cli

    args = cli.build_parser().parse_args(["train", "--intensity", "none"])
    assert cli.train_config_from_args(args).intensity is None
    with pytest.raises(ValueError, match="intensity must be 'ct', 'mri' or 'none'"):
        TrainConfig(intensity="hu")


# ------------------------------------------------------------------------------------------- training data


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_loads_into_a_train_config(path):
    raw = yaml.safe_load(path.read_text())
    cfg = TrainConfig.from_dict(load_yaml_config(path))
    section = raw.get("train", raw)
    for key, value in section.items():  # every key in the file reached the config
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


# ------------------------------------------------------------------------------------------- sections
def test_training_config_re_exports_the_config_package():
    from equivox import config
    from equivox.training import config as training_config

    for name in ("TrainConfig", "load_yaml_config", "ARCH_CHOICES", "RESIZE_CHOICES", "ConfigError"):
        assert getattr(training_config, name) is getattr(config, name), name
    assert TrainConfig is config.TrainConfig


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
