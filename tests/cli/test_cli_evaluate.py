"""equivox.cli.evaluate and what moved out of it: the data a checkpoint is scored on
(equivox.evaluation.trained) and the rotations exact for a voxel spacing (equivox.evaluation.rotations)."""
from __future__ import annotations

import pytest

from equivox import cli
from equivox.config import ConfigError
from equivox.evaluation.rotations import rotations_for_spacing
from equivox.evaluation.trained import as_trained, evaluation_data, model_label, scored_spacing


def test_rotations_for_spacing():
    assert rotations_for_spacing("standard", "octa", None) == ("standard", "octa", None)
    assert rotations_for_spacing("so3", "octa", (1.0, 1.0, 1.0)) == ("so3", "octa", None)
    kind, group, note = rotations_for_spacing("standard", "octa", (0.7, 0.7, 3.0))
    assert (kind, group) == ("grid", "d4_axial") and "no random SO(3) rotations" in note and "0.7x0.7x3 mm" in note
    assert rotations_for_spacing("grid", "c4_axial", (0.7, 0.7, 3.0))[:2] == ("grid", "c4_axial")
    assert rotations_for_spacing("identity", "octa", (0.7, 0.7, 3.0)) == ("identity", "octa", None)
    with pytest.raises(ConfigError, match=r"anisotropic \(0.7x0.7x3 mm\)"):
        rotations_for_spacing("so3", "octa", (0.7, 0.7, 3.0))


def test_checkpoint_settings_helpers():
    hp = {"config": {"task": "classify", "input_size": 4}, "data_info": {"input_shape": [8, 8, 8]}}
    new, note = as_trained(hp)
    assert new["config"]["input_size"] == 8 and "trained on 8^3 inputs" in note and hp["config"]["input_size"] == 4
    assert as_trained({"config": {"task": "segment"}}) == ({"config": {"task": "segment"}}, None)
    assert scored_spacing({"config": {"task": "segment", "spacing": None}, "data_info": {"spacing": [1, 1, 2]}}) == (
        1.0, 1.0, 2.0)
    assert scored_spacing({"config": {"task": "classify", "spacing": [1, 1, 2]}}) is None

    class M:
        group = "octa"

    assert model_label({"model_spec": {"cls": "EquivariantUNet"}}, M()) == "EquivariantUNet (octa)"


@pytest.mark.parametrize("kwargs, message", [
    (dict(image_dir="i"), "give both image_dir and label_dir"),
    (dict(val_crop=8), "val_crop is for scoring a labelled folder"),
    (dict(split="test"), "split 'test': segmentation checkpoints are scored on the validation split only"),
])
def test_evaluation_data_rejects_options_that_do_not_go_together(kwargs, message):
    hp = {"config": {"task": "segment", "dataset": "chest_ct"}, "num_classes": 6}
    with pytest.raises(ConfigError, match=message):
        evaluation_data(hp, **kwargs)


def test_evaluation_data_of_a_classification_checkpoint(tmp_path):
    import numpy as np

    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(data, images=rng.random((20, 8, 8, 8)).astype(np.float32), labels=np.arange(20) % 2)
    hp = {"config": {"task": "classify", "dataset": str(data), "input_size": 8}, "num_classes": 2}
    d = evaluation_data(hp, max_items=4)
    x, y = d.inputs
    assert d.task == "classify" and d.where.endswith("[test]") and d.description == "4 items"
    assert tuple(x.shape[1:]) == (1, 8, 8, 8) and len(y) == 4 and d.spacing is None
    with pytest.raises(ConfigError, match="for segmentation checkpoints"):
        evaluation_data(hp, image_dir="i", label_dir="l")


@pytest.mark.parametrize("argv, expected", [
    (["evaluate", "/no/such.ckpt", "--val-crop", "8"], "--val-crop is for scoring a labelled folder"),
    (["evaluate", "/no/such.ckpt", "--crop", "8"], "--crop is for scoring a labelled folder"),
    (["evaluate", "/no/such.ckpt", "--image-dir", "i"], "give both --image-dir and --label-dir"),
    (["evaluate", "/no/such.ckpt"], "checkpoint not found: /no/such.ckpt"),
])
def test_option_mistakes_are_named_as_given(argv, expected, capsys):
    assert cli.main(argv) == 2
    assert expected in capsys.readouterr().err.strip().splitlines()[-1]
