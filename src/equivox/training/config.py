"""Training configuration: :class:`TrainConfig` and its YAML loading, defined in :mod:`equivox.config` (the sections,
each field's help text and command-line option) and re-exported here, where the training code imports them.

``ARCH_CHOICES`` and ``RESIZE_CHOICES`` are defined once, in :mod:`equivox.config.sections`.
"""
from __future__ import annotations

from ..config import (ARCH_CHOICES, EXTRA_KEYS, RESIZE_CHOICES, CanonicalizerConfig, ConfigError, DataConfig,
                      NetworkConfig, TrainConfig, TrainerConfig, load_yaml_config)

__all__ = ["TrainConfig", "load_yaml_config", "ARCH_CHOICES", "RESIZE_CHOICES", "EXTRA_KEYS", "ConfigError",
           "DataConfig", "NetworkConfig", "CanonicalizerConfig", "TrainerConfig"]
