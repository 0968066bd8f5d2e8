"""equivox.cli.demo and the demo's presets (equivox.demo): section overrides, the same settings as before the
config had sections, validated before anything is written; ``--help`` shows the presets' values."""
from __future__ import annotations

import re

import pytest

from equivox import cli, demo
from equivox.config import ConfigError, TrainConfig

#: the presets as dicts, as they were written before (every key repeated in full and quick)
BEFORE = {
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
def test_presets_hold_the_settings_they_held_before(preset):
    for mode, quick in (("full", False), ("quick", True)):
        assert preset.settings(quick) == BEFORE[preset.label][mode]
        cfg = preset.config(preset.settings(quick))  # every preset is a valid TrainConfig
        assert isinstance(cfg, TrainConfig) and cfg.task == preset.task and cfg.epochs == BEFORE[preset.label][mode][
            "epochs"]


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


def test_a_bad_value_ends_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--epochs", "0", "--out", str(out)]) == 2
    assert "epochs must be a positive integer, got 0" in capsys.readouterr().err
    assert not out.exists()


def test_help_shows_the_presets_values(capsys):
    assert cli.main(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"--epochs EPOCHS training epochs .*\(default: classify 25, segment 8, segment on the chest CT "
                     r"20; with --quick 1\)", text)
    assert "(default: classify all, 16 with --quick; segment 120, 32 with --quick; segment on the chest CT all)" in text
    assert "--hidden-features" in text  # used by the classification preset, so listed
    assert cli.demo_settings() == {k for p in demo.DEMO_PRESETS for k in p.uses}
