"""The command-line options of :class:`~equivox.config.TrainConfig`, generated from its fields' metadata
(:func:`equivox.config.config_options`): one option per field (its name, help text, choices as metavar, default
shown in ``--help``), and the config a command line gives (:func:`train_config_from_args`).

The options' argparse default is ``None`` ("not given"), so that a YAML ``--config`` file can set them; ``--help``
shows the command's real default (``default_text``). ``train``, ``canonicalize`` and ``demo`` take them.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Collection, Dict, Mapping, Optional, Sequence

from ..config import ConfigError, Option, TrainConfig, config_options, load_yaml_config
from ._parsing import VALUE_TYPES, add_flag, shown

__all__ = ["add_config_options", "train_config_from_args", "parse_model_args", "parse_pairs", "config_defaults",
           "option_default_text"]


def option_default_text(o: Option, value: Any = None, use_default: bool = True) -> str:
    """``--help``'s text for ``o``'s default (``value`` instead of the field's when ``use_default`` is False)."""
    value = o.default if use_default else value
    if o.default_help is not None and value == o.default:
        return o.default_help
    if value is None:
        return o.none_means or "none"
    return shown(value)


def config_defaults() -> Dict[str, Any]:
    """:class:`~equivox.config.TrainConfig`'s field defaults (what ``train --help`` shows), by field name."""
    return {o.name: o.default for o in config_options()}


def add_config_options(p: argparse.ArgumentParser, skip: Collection[str] = (), only: Optional[Collection[str]] = None,
                       default_text: Optional[Callable[[Option], Optional[str]]] = None) -> None:
    """Add an option for every :class:`~equivox.config.TrainConfig` field but those in ``skip`` (field or section
    names) to ``p``: ``--name`` (``--x`` / ``--no-x`` for on/off fields; repeatable ``KEY=VALUE`` for mappings),
    help and metavar from the field's metadata.

    Args:
        only: the fields listed in ``--help``; the others are accepted but hidden (the demo reports them as not
            used).
        default_text: ``--help``'s default of an option (default: the field's default, :func:`option_default_text`).
    """
    added = []
    for o in config_options():
        if o.name in skip or o.section in skip:
            continue
        added.append(o.name)
        help_ = o.help if only is None or o.name in only else argparse.SUPPRESS
        if o.kind == "flag":
            action = add_flag(p, o.flag, o.name, help_)
        elif o.kind == "mapping":
            action = p.add_argument(o.flag, dest=o.name, action="append", default=None, metavar=o.metavar,
                                    help=help_)
        else:
            action = p.add_argument(o.flag, dest=o.name, type=VALUE_TYPES[o.kind], default=None, metavar=o.metavar,
                                    help=help_)
        action.config_field = o.name
        action.default_text = (default_text or option_default_text)(o)
    p.set_defaults(_config_fields=tuple(added))  # a command's own argument may share a field's name ("model")


def _given(args: argparse.Namespace):
    """The config options of ``args``' command, as :class:`~equivox.config.Option` s."""
    names = set(getattr(args, "_config_fields", ()))
    return [o for o in config_options() if o.name in names]


def parse_pairs(pairs: Sequence[str], flag: str = "--model-arg") -> Dict[str, Any]:
    """``["head=oriented", "class_swaps=[[1, 2]]"]`` -> ``{"head": "oriented", "class_swaps": [[1, 2]]}`` (values
    parsed as YAML). Raises :class:`~equivox.config.ConfigError` naming ``flag`` for an item without ``=``."""
    import yaml

    out: Dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects key=value (value as YAML, e.g. head=oriented or "
                              f"\"class_swaps=[[1, 2]]\"), got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{flag} {pair!r}: the value is not valid YAML") from None
    return out


def parse_model_args(pairs: Sequence[str]) -> Dict[str, Any]:
    """``--model-arg`` values as a ``model`` mapping (:func:`parse_pairs`)."""
    return parse_pairs(pairs, "--model-arg")


def given_settings(args: argparse.Namespace) -> Dict[str, Any]:
    """The config options given on the command line (``None``: not given), mappings as lists of ``KEY=VALUE``."""
    return {o.name: getattr(args, o.name) for o in _given(args) if getattr(args, o.name, None) is not None}


def train_config_from_args(args: argparse.Namespace, base: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """:class:`~equivox.config.TrainConfig` from defaults < ``base`` < YAML ``--config`` < command-line options
    (a ``KEY=VALUE`` mapping option is merged over the YAML's mapping). ``--image-dir`` / ``--label-dir`` (an
    image/label folder pair) imply ``--task segment`` when no task is given."""
    d: Dict[str, Any] = dict(base or {})
    if getattr(args, "config", None):
        d.update(load_yaml_config(args.config))
    for o in _given(args):
        v = getattr(args, o.name, None)
        if v is None:
            continue
        if o.kind == "mapping":
            merged = dict(d.get(o.name) or {})
            merged.update(parse_pairs(v, o.flag))
            v = merged
        d[o.name] = v
    if "task" not in d and (d.get("image_dir") is not None or d.get("label_dir") is not None):
        d["task"] = "segment"  # an image/label folder pair is segmentation data: the task is implied
    return TrainConfig.from_dict(d)
