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
