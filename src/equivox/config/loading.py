"""Reading settings: YAML files and dicts of :class:`~equivox.config.TrainConfig` keys, flat (``epochs: 3``) or by
section (``trainer: {epochs: 3}``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from .errors import ConfigError
from .train import SECTIONS, TrainConfig, flatten_sections

__all__ = ["load_yaml_config", "flatten_sections"]


def load_yaml_config(path) -> Dict[str, Any]:
    """Read a YAML mapping of :class:`TrainConfig` keys from ``path``, flat (``epochs: 3``) or by section
    (``trainer: {epochs: 3}``), and return it flat; raises ``FileNotFoundError`` / :class:`ConfigError` with the
    path named.

    A top-level ``train:`` section is used when present (so one YAML file can hold several sections, e.g.
    ``train:`` and ``evaluate:``): its keys are returned, merged over any top-level :class:`TrainConfig` keys
    (other top-level sections are ignored)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {p} is not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values, got {type(data).__name__}")
    try:
        if "train" in data:
            section = data["train"] or {}
            if not isinstance(section, dict):
                raise ConfigError(f"the 'train:' section must be a mapping of keys to values, got "
                                  f"{type(section).__name__}")
            fields = set(TrainConfig.field_names()) | set(SECTIONS)
            return {**flatten_sections({k: v for k, v in data.items() if k in fields}), **flatten_sections(section)}
        return flatten_sections(data)
    except ConfigError as err:
        raise ConfigError(f"config file {p}: {err}") from None
