"""equivox.cli.train: its options are generated from TrainConfig; defaults < YAML < command line; the patch size is
checked before training."""
from __future__ import annotations

import pytest

from equivox import cli
from equivox.cli import train as train_cmd
from equivox.config import TrainConfig, config_options


def _cfg(argv):
    return cli.train_config_from_args(cli.build_parser().parse_args(["train", *argv]))


def test_every_field_can_be_set_from_the_command_line():
    values = {"int": "3", "float": "0.5", "ints": "2,2", "floats3": "1,1,2", "names": "a,b", "devices": "2"}
    special = {"task": "segment", "dataset": "chest_ct", "resize": "pool", "intensity": "ct", "augment": "grid",
               "arch": "baseline", "group": "trivial", "canonicalize": "octa", "canonical_mode": "soft",
               "strategy": "auto", "accelerator": "cpu", "precision": "32-true", "out_dir": "o", "image_dir": None,
               "label_dir": None, "resume": None, "overwrite": None, "strides": "2", "max_steps": "10",
               "max_epochs": "6", "class_names": None, "model": "head=linear", "extra": "model_summary=false"}
    argv = []
    for o in config_options():
        value = special.get(o.name, values.get(o.kind))
        if value is None and o.kind != "flag":
            continue
        argv += [o.flag] if o.kind == "flag" and o.name not in special else [o.flag, value] if value else []
    cfg = _cfg(argv)
    assert (cfg.task, cfg.epochs, cfg.lr, cfg.channels, cfg.spacing, cfg.devices, cfg.canonical_mode) == (
        "segment", 3, 0.5, (2, 2), (1.0, 1.0, 2.0), 2, "soft")
    assert cfg.model == {"head": "linear"} and cfg.extra == {"model_summary": False} and cfg.out_dir == "o"
    assert cfg.strict and cfg.progress and cfg.deterministic and cfg.until_plateau and cfg.canonical_pose


def test_defaults_then_yaml_then_flags(tmp_path):
    assert _cfg([]) == TrainConfig()
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  dataset: furniture\ntrainer:\n  epochs: 3\n  lr: 0.01\n")
    cfg = _cfg(["--config", str(f), "--epochs", "1"])
    assert (cfg.dataset, cfg.epochs, cfg.lr) == ("furniture", 1, 0.01)


def test_a_folder_pair_implies_segmentation():
    assert _cfg(["--image-dir", "i", "--label-dir", "l"]).task == "segment"
    with pytest.raises(ValueError, match="segmentation data"):
        _cfg(["--task", "classify", "--image-dir", "i"])


def test_size_multiple_of_the_built_network():
    assert train_cmd.config_size_multiple(TrainConfig(channels=(2, 2, 2), strides=(2, 2))) == 4
    assert train_cmd.config_size_multiple(TrainConfig(model={"strides": [2, 2, 2]})) == 8
    cfg = TrainConfig(task="segment", patch_size=7)
    with pytest.raises(cli.CLIError, match="--patch-size 7 is not a multiple of the model's size multiple 2"):
        train_cmd.check_patch_size(cfg, 2)
    train_cmd.check_patch_size(TrainConfig(), 2)  # classification: no patches


def test_unknown_model_argument_is_a_user_error(capsys):
    assert cli.main(["train", "--model-arg", "nohead=1", "--out", "/nonexistent/x"]) == 2
    assert "unknown model argument nohead" in capsys.readouterr().err
