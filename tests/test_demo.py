"""equivox.demo: the demo presets (which one a task and dataset get, the settings of a full and of a --quick run,
each preset's settings a valid training configuration), settings from YAML and overrides with unknown names
refused and unused ones reported. (Running the demo: tests/cli/test_cli_demo.py.)"""
from __future__ import annotations

import pytest

from equivox.config import ConfigError, TrainConfig
from equivox.demo import DEMO_PRESETS, TEST_SETTINGS, _demo_settings, demo_preset


def test_each_task_and_dataset_gets_its_preset():
    assert demo_preset("classify").task == "classify"
    seg, chest = demo_preset("segment"), demo_preset("segment", "chest_ct")
    assert seg.task == chest.task == "segment" and seg is not chest and chest in DEMO_PRESETS
    assert demo_preset("segment", "kicad_part_segments") is seg
    with pytest.raises(ConfigError, match="task must be 'classify' or 'segment', got 'detect'"):
        demo_preset("detect")


@pytest.mark.parametrize("preset", DEMO_PRESETS, ids=lambda p: p.label)
def test_full_and_quick_settings_are_valid_configs_and_quick_is_smaller(preset):
    full, quick = preset.settings(), preset.settings(quick=True)
    assert set(full) == set(quick) == set(preset.uses) | set(preset.test)
    assert set(preset.quick) <= set(full)
    assert all(quick[k] == v for k, v in preset.quick.items())
    assert quick["epochs"] <= full["epochs"] and sum(quick["channels"]) <= sum(full["channels"])
    for s in (full, quick):
        cfg = preset.config(s)
        assert isinstance(cfg, TrainConfig) and cfg.task == preset.task
        assert all(getattr(cfg, k) == (tuple(v) if isinstance(v, list) else v) for k, v in s.items()
                   if k not in TEST_SETTINGS)
    with pytest.raises(ConfigError):
        preset.config({**full, "epochs": -1})


def test_yaml_then_overrides_and_what_the_demo_does_not_use(tmp_path):
    preset = demo_preset("classify")
    f = tmp_path / "demo.yaml"
    f.write_text("epochs: 3\nlr: 0.01\ngroup: so3\n")
    s, ignored = _demo_settings(preset, quick=True, config=str(f), overrides={"epochs": 2, "seed": None})
    assert s["epochs"] == 2 and s["lr"] == 0.01 and s["input_size"] == preset.quick["input_size"]
    assert ignored == ["group"]  # a valid setting the demo's roles fix
    with pytest.raises(ConfigError, match=r"unknown demo settings \['epochz'\]"):
        _demo_settings(preset, quick=False, config=None, overrides={"epochz": 2})
