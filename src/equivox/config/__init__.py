"""The training configuration: one typed config in four sections, the single source of its YAML keys and of the
``equivox train`` / ``canonicalize`` / ``demo`` command-line options.

* :class:`TrainConfig`: :class:`DataConfig`, :class:`NetworkConfig`, :class:`CanonicalizerConfig`,
  :class:`TrainerConfig` (:mod:`.sections`), with flat access (``cfg.epochs``), flat or nested construction,
  :meth:`~TrainConfig.validate`, :meth:`~TrainConfig.to_dict`, :meth:`~TrainConfig.from_dict`,
  :meth:`~TrainConfig.merged`;
* :func:`load_yaml_config`, :func:`flatten_sections` (:mod:`.loading`): YAML files, flat or by section;
* :func:`config_options`, :func:`option`, :class:`Option` (:mod:`.options`): each field's help text, choices and
  command-line option, from which :mod:`equivox.cli` generates its options;
* :class:`UserError`, :class:`ConfigError` (:mod:`.errors`): mistakes in what the user gave (one line, exit code 2
  on the command line), as opposed to bugs.

Importing this package is cheap (no torch): ``equivox --help`` reads it.
"""
from .errors import ConfigError, UserError
from .loading import flatten_sections, load_yaml_config
from .options import Option, option
from .sections import (ARCH_CHOICES, EXTRA_KEYS, RESIZE_CHOICES, CanonicalizerConfig, DataConfig, NetworkConfig,
                       TrainerConfig)
from .train import SECTIONS, TrainConfig, config_options

__all__ = ["TrainConfig", "DataConfig", "NetworkConfig", "CanonicalizerConfig", "TrainerConfig", "SECTIONS",
           "load_yaml_config", "flatten_sections", "config_options", "option", "Option", "ConfigError", "UserError",
           "ARCH_CHOICES", "RESIZE_CHOICES", "EXTRA_KEYS"]
