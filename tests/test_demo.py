"""equivox.demo: the demo presets (which one a task and dataset get, the settings of a full and of a --quick run,
each preset's settings a valid training configuration), settings from YAML and overrides with unknown names
refused and unused ones reported. (Running the demo: tests/cli/test_demo.py.)"""
from __future__ import annotations

import pytest

from equivox import demo
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


#: every preset's settings written out in full (every key repeated in full and quick)
WRITTEN_OUT = {
    "classify": dict(
        full=dict(dataset="furniture", input_size=16, channels=(4, 8, 16), strides=(2, 2), convs_per_level=1,
                  hidden_features=(64,), epochs=25, batch_size=16, lr=3e-3, seed=0),
        quick=dict(dataset="furniture", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1,
                   hidden_features=(8,), epochs=1, batch_size=16, lr=3e-3, seed=0)),
    "segment": dict(
        full=dict(dataset="kicad_part_segments", downsample=1, patch_size=16, val_crop=16, test_crop=None,
                  max_test=120, channels=(2, 4), strides=(2,), convs_per_level=2, epochs=8, patches_per_epoch=512,
                  batch_size=16, lr=3e-3, seed=0),
        quick=dict(dataset="kicad_part_segments", downsample=1, patch_size=16, val_crop=16, test_crop=None,
                   max_test=32, channels=(1, 2), strides=(2,), convs_per_level=1, epochs=1, patches_per_epoch=16,
                   batch_size=4, lr=3e-3, seed=0)),
    "segment on the chest CT": dict(
        full=dict(dataset="chest_ct", downsample=2, patch_size=24, val_crop=48, test_crop=48, max_test=None,
                  channels=(2, 4), strides=(2,), convs_per_level=2, epochs=20, patches_per_epoch=32, batch_size=16,
                  lr=3e-3, seed=0),
        quick=dict(dataset="chest_ct", downsample=4, patch_size=16, val_crop=16, test_crop=16, max_test=None,
                   channels=(1, 2), strides=(2,), convs_per_level=1, epochs=1, patches_per_epoch=8, batch_size=4,
                   lr=3e-3, seed=0)),
}


@pytest.mark.parametrize("preset", demo.DEMO_PRESETS, ids=lambda p: p.label)
def test_presets_hold_their_settings_written_out(preset):
    for mode, quick in (("full", False), ("quick", True)):
        assert preset.settings(quick) == WRITTEN_OUT[preset.label][mode]
        cfg = preset.config(preset.settings(quick))  # every preset is a valid TrainConfig
        want = WRITTEN_OUT[preset.label][mode]
        assert isinstance(cfg, TrainConfig) and cfg.task == preset.task and cfg.epochs == want["epochs"]


def test_preset_choice_and_settings_from_yaml_and_overrides(tmp_path):
    assert demo.demo_preset("classify") is demo._DEMO_CLASSIFY
    assert demo.demo_preset("segment", "chest_ct") is demo._DEMO_SEGMENT_CHEST
    with pytest.raises(ConfigError):
        demo.demo_preset("detect")
    f = tmp_path / "d.yaml"
    f.write_text("trainer:\n  epochs: 2\n  lr: 0.01\nnetwork:\n  group: full_octa\n")
    s, ignored = demo._demo_settings(demo._DEMO_CLASSIFY, True, str(f), {"epochs": 3, "seed": None})
    assert (s["epochs"], s["lr"], s["input_size"]) == (3, 0.01, 8) and ignored == ["group"]
    with pytest.raises(ConfigError, match=r"unknown demo settings \['epoch'\]"):
        demo._demo_settings(demo._DEMO_CLASSIFY, False, None, {"epoch": 3})
