"""equivox.training.config: the training code's names for the config (TrainConfig, its sections, YAML loading, the
choices) are :mod:`equivox.config`'s own objects. (The config itself: tests/config/.)"""
from __future__ import annotations

from equivox.training import TrainConfig


def test_training_config_re_exports_the_config_package():
    from equivox import config
    from equivox.training import config as training_config

    for name in ("TrainConfig", "load_yaml_config", "ARCH_CHOICES", "RESIZE_CHOICES", "ConfigError"):
        assert getattr(training_config, name) is getattr(config, name), name
    assert TrainConfig is config.TrainConfig
