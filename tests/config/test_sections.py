"""equivox.config.sections: the four sections of TrainConfig (data, network, canonicalizer, trainer) hold every
field exactly once, each with a one-line help text; the sections are plain value holders with the choices the
config and the command line share."""
from __future__ import annotations

import dataclasses

from equivox.config import (ARCH_CHOICES, RESIZE_CHOICES, SECTIONS, CanonicalizerConfig, DataConfig, NetworkConfig,
                            TrainConfig, TrainerConfig, config_options)


def test_every_field_is_in_exactly_one_section_and_has_help():
    names = [o.name for o in config_options()]
    assert len(names) == len(set(names)) == len(TrainConfig.field_names())
    assert set(SECTIONS) == {"data", "network", "canonicalizer", "trainer"}
    for o in config_options():
        assert o.help and "\n" not in o.help and not o.help.endswith("."), o.name  # one line for --help
        assert TrainConfig.section_of(o.name) == o.section
        assert o.name in {f.name for f in dataclasses.fields(SECTIONS[o.section])}
    assert not set(names) & set(SECTIONS)  # a section name is never a field name (YAML stays unambiguous)


def test_sections_hold_values_and_declare_the_shared_choices():
    """A section is built without validation (TrainConfig.validate checks the values); the arch and resize fields
    offer the choices defined once in this module."""
    assert [SECTIONS[name] for name in ("data", "network", "canonicalizer", "trainer")] == [
        DataConfig, NetworkConfig, CanonicalizerConfig, TrainerConfig]
    assert TrainerConfig(epochs=0).epochs == 0  # a value only: TrainConfig(epochs=0) is the one that refuses it
    by_name = {o.name: o for o in config_options()}
    assert by_name["arch"].choices == ARCH_CHOICES and by_name["arch"].other == "MODEL"
    assert by_name["resize"].choices == RESIZE_CHOICES and by_name["resize"].closed_choices == RESIZE_CHOICES
    assert {f.name for f in dataclasses.fields(NetworkConfig)} >= {"arch", "group", "channels", "strides", "model"}
