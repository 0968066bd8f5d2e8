""":class:`TrainConfig`: the four sections (data, network, canonicalizer, trainer) as one config, with flat access."""
from __future__ import annotations

import copy
import dataclasses
import difflib
import numbers
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

from .errors import ConfigError
from .options import Option, section_options
from .sections import ARCH_CHOICES, EXTRA_KEYS, CanonicalizerConfig, DataConfig, NetworkConfig, TrainerConfig

__all__ = ["TrainConfig", "SECTIONS", "config_options", "flatten_sections"]

#: the sections of :class:`TrainConfig`: YAML section name -> section class
SECTIONS: Dict[str, type] = {"data": DataConfig, "network": NetworkConfig, "canonicalizer": CanonicalizerConfig,
                             "trainer": TrainerConfig}

def config_options() -> Tuple[Option, ...]:
    """Every field of :class:`TrainConfig` as an :class:`~equivox.config.options.Option` (name, section, default,
    help, choices, command-line option), sections in order (data, network, canonicalizer, trainer)."""
    return _OPTIONS


_OPTIONS: Tuple[Option, ...] = tuple(o for name, cls in SECTIONS.items() for o in section_options(cls, name))
_SECTION_OF: Dict[str, str] = {o.name: o.section for o in _OPTIONS}
_BY_NAME: Dict[str, Option] = {o.name: o for o in _OPTIONS}


def flatten_sections(d: Mapping[str, Any]) -> Dict[str, Any]:
    """``d`` with its section mappings (``data:``, ``network:``, ``canonicalizer:``, ``trainer:``) replaced by their
    keys: ``{"trainer": {"epochs": 3}, "lr": 0.01}`` -> ``{"epochs": 3, "lr": 0.01}``. Other keys are kept as they
    are (:meth:`TrainConfig.from_dict` rejects unknown ones).

    Raises:
        ConfigError: a section is not a mapping, holds a key that is not one of its fields (the message names the
            section it belongs to, or the closest field), or a key is given twice (flat and in its section).
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"settings must be a mapping of keys to values, got {type(d).__name__}")
    flat = {k: v for k, v in d.items() if k not in SECTIONS}
    for section in SECTIONS:
        if section not in d or d[section] is None:
            continue
        values = d[section]
        if not isinstance(values, Mapping):
            raise ConfigError(f"the {section}: section must be a mapping of keys to values, got "
                              f"{type(values).__name__}")
        own = [o.name for o in _OPTIONS if o.section == section]
        for key, value in values.items():
            if key not in own:
                if key in _SECTION_OF:
                    raise ConfigError(f"{key} belongs in the {_SECTION_OF[key]}: section, not in "
                                      f"{section}:")
                close = difflib.get_close_matches(str(key), own, n=1)
                raise ConfigError(f"unknown config key {key!r} in the {section}: section"
                                  + (f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(own)}"))
            if key in flat:
                raise ConfigError(f"{key} is given twice: at the top level and in the {section}: section")
            flat[key] = value
    return flat


def _section_value(name: str, value: Any):
    """A section given to :class:`TrainConfig`: a copy of a section object, or one built from a mapping."""
    cls = SECTIONS[name]
    if isinstance(value, cls):
        return copy.deepcopy(value)  # dataclasses.replace passes the original's sections: never share them
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown keys {unknown} in the {name}: section; valid: "
                              f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**copy.deepcopy(dict(value)))
    raise TypeError(f"TrainConfig({name}=...) takes a {cls.__name__} or a mapping, got {type(value).__name__}")


@dataclass(init=False)
class TrainConfig:
    """Everything :func:`equivox.training.fit` needs, in four sections; every field has a default that trains
    something sane.

    * :attr:`data` (:class:`DataConfig`): task, dataset or image/label folders, sizes, patches, spacing, intensity,
      augmentation;
    * :attr:`network` (:class:`NetworkConfig`): arch, group, channels, strides, ..., ``model`` (constructor
      arguments);
    * :attr:`canonicalizer` (:class:`CanonicalizerConfig`): ``canonicalize`` and its settings;
    * :attr:`trainer` (:class:`TrainerConfig`): epochs, optimiser, devices, output folder, ...

    Every field is also an attribute of the config itself, read and write: ``cfg.epochs`` is ``cfg.trainer.epochs``.
    Build it flat (``TrainConfig(epochs=3, arch="baseline")``), by section (``TrainConfig(trainer=TrainerConfig(
    epochs=3))`` or ``trainer={"epochs": 3}``), or both (flat keys win), from a dict (:meth:`from_dict`, flat or
    nested) or a YAML file (:func:`~equivox.config.load_yaml_config`). Field names are the YAML keys and the
    command-line options (``epochs`` / ``--epochs``); each field's help text is in its metadata
    (:func:`config_options`). Bad values raise :class:`~equivox.config.ConfigError` (a ``ValueError``) naming the
    field.
    """

    data: DataConfig
    network: NetworkConfig
    canonicalizer: CanonicalizerConfig
    trainer: TrainerConfig

    def __init__(self, data: Any = None, network: Any = None, canonicalizer: Any = None, trainer: Any = None,
                 **settings: Any):
        given = {"data": data, "network": network, "canonicalizer": canonicalizer, "trainer": trainer}
        for name, cls in SECTIONS.items():
            object.__setattr__(self, name, cls() if given[name] is None else _section_value(name, given[name]))
        for key, value in settings.items():
            if key not in _SECTION_OF:
                close = difflib.get_close_matches(key, list(_SECTION_OF), n=1)
                raise TypeError(f"TrainConfig() got an unexpected keyword argument {key!r}"
                                + (f"; did you mean {close[0]!r}?" if close else ""))
            setattr(getattr(self, _SECTION_OF[key]), key, value)
        self.validate()

    def __copy__(self) -> "TrainConfig":
        """A shallow copy with its own sections (a flat config's shallow copy had its own fields too)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for name in SECTIONS:
            object.__setattr__(new, name, copy.copy(getattr(self, name)))
        return new

    def __setstate__(self, state: Dict[str, Any]) -> None:
        """Unpickle, also a config pickled before it had sections (flat fields)."""
        if not all(name in state for name in SECTIONS):
            flat = {k: v for k, v in state.items() if k in _SECTION_OF}
            state = {name: cls(**{k: v for k, v in flat.items() if _SECTION_OF[k] == name})
                     for name, cls in SECTIONS.items()}
        self.__dict__.update(state)

    # ------------------------------------------------------------------ validation
    def validate(self) -> "TrainConfig":
        """Check values (and normalise spellings: ``"none"`` -> ``None``, lists -> tuples); raises
        :class:`~equivox.config.ConfigError` naming the bad field."""
        if isinstance(self.intensity, str) and self.intensity.lower() in ("none", "null", ""):
            self.intensity = None
        if isinstance(self.canonicalize, str) and self.canonicalize.lower() in ("none", "null", ""):
            self.canonicalize = None
        for opt in _OPTIONS:  # the closed sets of values
            value = getattr(self, opt.name)
            if opt.closed_choices and not (value is None and opt.optional) and value not in opt.closed_choices:
                raise ConfigError(opt.invalid + f", got {value!r}" if opt.invalid else
                                  f"{opt.name} must be one of {', '.join(opt.closed_choices)}, got {value!r}")
        if self.arch not in ARCH_CHOICES:
            from ..nets.registry import available_models

            if self.arch not in available_models():
                raise ConfigError(f"arch must be one of {', '.join(ARCH_CHOICES)} or a registered model "
                                  f"({', '.join(available_models())}), got {self.arch!r}")
        if self.task != "segment" and (self.image_dir is not None or self.label_dir is not None):
            raise ConfigError("image_dir / label_dir (an image/label folder pair) are segmentation data, but task is "
                              f"{self.task!r}; use --task segment (task: segment)")
        if self.arch == "monai_unet" and self.task != "segment":
            raise ConfigError("arch 'monai_unet' is for task 'segment' only")
        for name in ("epochs", "batch_size", "patch_size", "patches_per_epoch", "downsample", "kernel_size",
                     "convs_per_level", "num_nodes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.class_names is not None:
            if isinstance(self.class_names, str) or not all(isinstance(n, str) and n for n in self.class_names):
                raise ConfigError(f"class_names must be a list of non-empty strings, got {self.class_names!r}")
            self.class_names = [str(n) for n in self.class_names]
        for name in ("input_size", "max_train", "max_val", "val_crop", "num_classes", "max_epochs"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {v!r}")
        if self.max_epochs is not None and self.max_epochs < self.epochs:
            raise ConfigError(f"max_epochs must be >= epochs ({self.epochs}), got {self.max_epochs}")
        for name in ("overwrite", "plots", "until_plateau", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.overwrite and self.resume is not None:
            raise ConfigError("overwrite and resume exclude each other: resume continues the run in out_dir, "
                              "overwrite removes it first; give one")
        if not isinstance(self.lr, numbers.Real) or self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        for name in ("channels", "strides", "hidden_features", "canonicalizer_channels"):
            vals = getattr(self, name)
            if isinstance(vals, (int, str)) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                                       for v in vals):
                raise ConfigError(f"{name} must be a list of positive integers, got {vals!r}")
            setattr(self, name, tuple(int(v) for v in vals))
        if self.prior_weight < 0 or self.canonical_margin < 0 or self.canonical_temperature <= 0:
            raise ConfigError(f"need prior_weight >= 0, canonical_margin >= 0 and canonical_temperature > 0, got "
                              f"{self.prior_weight}, {self.canonical_margin}, {self.canonical_temperature}")
        if len(self.strides) != len(self.channels) - 1:
            raise ConfigError(f"strides needs len(channels) - 1 = {len(self.channels) - 1} entries for "
                              f"channels={self.channels}, got {self.strides}")
        if self.spacing is not None:
            if isinstance(self.spacing, (int, float)):
                self.spacing = (self.spacing,) * 3
            try:
                self.spacing = tuple(float(s) for s in self.spacing)
            except (TypeError, ValueError):
                raise ConfigError(f"spacing must be 3 positive values (mm along D, H, W), got {self.spacing!r}") \
                    from None
            if len(self.spacing) != 3 or min(self.spacing) <= 0:
                raise ConfigError(f"spacing must be 3 positive values (mm along D, H, W), got {self.spacing}")
        self._check_group()
        for name in ("model", "extra"):
            value = getattr(self, name)
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise ConfigError(f"{name} must be a mapping of names to values, got {value!r}")
        unknown_extra = sorted(set(self.extra) - set(EXTRA_KEYS))
        if unknown_extra:
            raise ConfigError(f"unknown extra keys {unknown_extra} (valid: {', '.join(EXTRA_KEYS)}); model "
                              "constructor options go in the model: section / --model-arg key=value")
        return self

    def _check_group(self) -> None:
        from ..groups import group_name_error

        for name in ("group", "canonicalize"):
            value = getattr(self, name)
            error = None if value is None else group_name_error(value, name, ("auto",) if name == "group" else ())
            if error:
                raise ConfigError(error)

    def validate_dataset(self):
        """Check ``dataset`` against the dataset registry and return its :class:`~equivox.data.DatasetSpec`, or
        ``None`` when the data are files (``image_dir``/``label_dir`` given, or ``dataset`` is a path: these are
        checked when loaded).

        :meth:`validate` checks only what the config holds; this check reads the registry (which user code may
        extend) and the file system, so it runs where the data are needed: in
        :func:`~equivox.training.build_datasets` and before ``equivox train`` starts (a config whose datasets are
        passed to :func:`~equivox.training.fit` directly may use ``dataset`` as a plain label).

        Raises:
            DataError: (a ``ValueError``) ``dataset`` is neither registered nor a path (the message lists the
                registered datasets of the task), or it is registered for the other task.
        """
        from ..data.sources import dataset_spec  # the one rule: a registered name of the task, or a path

        if self.image_dir is not None or self.label_dir is not None:
            return None
        return dataset_spec(self.dataset, self.task)

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> Dict[str, Any]:
        """Flat dict of every field (tuples as lists), e.g. for YAML or checkpoint hyper-parameters."""
        return {o.name: _plain(getattr(self, o.name)) for o in _OPTIONS}

    def to_nested_dict(self) -> Dict[str, Dict[str, Any]]:
        """``{section: {field: value}}`` (tuples as lists): the nested YAML form."""
        return {name: {o.name: _plain(getattr(self, o.name)) for o in _OPTIONS if o.section == name}
                for name in SECTIONS}

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        """The config's field names (flat), sections in order."""
        return tuple(_SECTION_OF)

    @classmethod
    def section_of(cls, name: str) -> str:
        """The section holding field ``name`` (``"trainer"`` for ``"epochs"``)."""
        return _SECTION_OF[name]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Build from a dict of field names, flat or by section (``{"trainer": {"epochs": 3}}``, as in YAML); unknown
        keys raise :class:`~equivox.config.ConfigError` listing them (typos fail loudly)."""
        flat = flatten_sections(d)
        unknown = sorted(set(flat) - set(_SECTION_OF))
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; valid keys: {', '.join(_SECTION_OF)} (the network's "
                              "own constructor options go in the model: section)")
        return cls(**flat)

    def merged(self, overrides: Mapping[str, Any]) -> "TrainConfig":
        """A copy with ``overrides`` (flat or by section) applied (``None`` values are ignored: "flag not given")."""
        d = self.to_dict()
        d.update({k: v for k, v in flatten_sections(overrides).items() if v is not None})
        return type(self).from_dict(d)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def _flat_property(name: str, section: str) -> property:
    def get(self):
        return getattr(getattr(self, section), name)

    def set_(self, value):
        setattr(getattr(self, section), name, value)

    return property(get, set_, doc=f"``{section}.{name}``: {_BY_NAME[name].help}")


for _opt in _OPTIONS:  # cfg.epochs is cfg.trainer.epochs (read and write)
    setattr(TrainConfig, _opt.name, _flat_property(_opt.name, _opt.section))
del _opt
