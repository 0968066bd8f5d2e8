"""equivox.config.train: TrainConfig, the four sections as one config: flat and by-section construction and access,
copies that never share sections, to/from dicts, merging, pickling; validation turns the spelled-out "none" into
None and names the field of a bad value; flatten_sections."""
from __future__ import annotations

import dataclasses

import pytest

from equivox.config import (CanonicalizerConfig, ConfigError, DataConfig, NetworkConfig, TrainConfig, TrainerConfig,
                            flatten_sections)


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
    flat_state = {f: getattr(cfg, f) for f in TrainConfig.field_names()}  # as a config pickled without sections
    flat = object.__new__(TrainConfig)
    flat.__setstate__(flat_state)
    assert flat == cfg


def test_intensity_none_from_the_command_line():
    from equivox import cli

    args = cli.build_parser().parse_args(["train", "--intensity", "none"])
    assert cli.train_config_from_args(args).intensity is None
    with pytest.raises(ValueError, match="intensity must be 'ct', 'mri' or 'none'"):
        TrainConfig(intensity="hu")


def test_flatten_sections_lifts_each_section_and_keeps_the_rest():
    flat = flatten_sections({"trainer": {"epochs": 3}, "network": None, "lr": 0.01, "unknown": 1})
    assert flat == {"lr": 0.01, "unknown": 1, "epochs": 3}  # unknown keys are left to TrainConfig.from_dict
    with pytest.raises(ConfigError, match="settings must be a mapping"):
        flatten_sections([("epochs", 3)])
    with pytest.raises(ConfigError, match="lr is given twice"):
        flatten_sections({"lr": 0.1, "trainer": {"lr": 0.2}})


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="augment"):
        TrainConfig(augment="flip")
    with pytest.raises(ValueError, match="strides"):
        TrainConfig(channels=(2, 4, 8), strides=(2,))
    with pytest.raises(ValueError, match="unknown config keys.*epoch"):
        TrainConfig.from_dict({"epoch": 3})
    cfg = TrainConfig().merged({"epochs": 7, "lr": None})
    assert cfg.epochs == 7 and cfg.lr == TrainConfig().lr
