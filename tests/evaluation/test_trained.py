"""equivox.evaluation.trained: the data a trained model is scored on (a checkpoint's dataset split, subsampled per
class when asked, with the grid size it was trained on) and what it is called in tables; the checkpoint's voxel
spacing for the rotation set. (The ``equivox evaluate`` command itself: tests/cli/test_evaluate.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivox.config import ConfigError
from equivox.data import DatasetSpec, register_dataset, unregister_dataset
from equivox.evaluation.trained import EvaluationData, as_trained, evaluation_data, model_label, scored_spacing


def _split(split: str) -> dict:
    n = {"train": 8, "val": 4, "test": 10}[split]
    rng = np.random.default_rng({"train": 0, "val": 1, "test": 2}[split])
    labels = np.arange(n) % 2
    return {"images": rng.random((n, 4, 4, 4)).astype(np.float32), "labels": labels, "class_names": ["a", "b"]}


@pytest.fixture
def scored_dataset():
    spec = register_dataset(DatasetSpec(name="scored_test_cls", task="classification", load=_split,
                                        licence="CC0 (test data)"))
    yield spec.name
    unregister_dataset(spec.name)


def _hp(dataset, **config):
    return {"config": {"task": "classify", "dataset": dataset, "input_size": 4, **config}, "num_classes": 2,
            "data_info": {"input_shape": [4, 4, 4]}}


def test_a_classification_checkpoint_is_scored_on_its_test_split(scored_dataset):
    data = evaluation_data(_hp(scored_dataset))
    assert isinstance(data, EvaluationData) and data.task == "classify" and data.num_classes == 2
    x, y = data.inputs
    assert x.shape == (10, 1, 4, 4, 4) and torch.equal(y, torch.as_tensor(np.arange(10) % 2))
    assert data.where == f"{scored_dataset} [test]" and data.description == "10 items" and data.notes == []
    val = evaluation_data(_hp(scored_dataset), split="val")
    assert val.inputs[0].shape[0] == 4 and val.where.endswith("[val]")


def test_max_items_keeps_both_classes_and_one_seed_the_same_items(scored_dataset):
    a = evaluation_data(_hp(scored_dataset), max_items=4, seed=3)
    b = evaluation_data(_hp(scored_dataset), max_items=4, seed=3)
    assert a.description == "4 items" and sorted(a.inputs[1].tolist()) == [0, 0, 1, 1]
    assert torch.equal(torch.as_tensor(a.inputs[0]), torch.as_tensor(b.inputs[0]))


def test_options_that_do_not_go_together_are_config_errors(scored_dataset):
    with pytest.raises(ConfigError, match="give both image_dir and label_dir"):
        evaluation_data(_hp(scored_dataset), label_dir="labels")
    with pytest.raises(ConfigError, match="an image/label folder pair is for segmentation checkpoints"):
        evaluation_data(_hp(scored_dataset), image_dir="i", label_dir="l")
    seg = {"config": {"task": "segment", "dataset": scored_dataset}, "num_classes": 2}
    with pytest.raises(ConfigError, match="scored on the validation split only"):
        evaluation_data(seg, split="test")


def test_as_trained_changes_only_a_classification_size_that_differs_from_the_cubic_training_grids():
    same = {"config": {"task": "classify", "input_size": 8}, "data_info": {"input_shape": [8, 8, 8]}}
    assert as_trained(same) == (same, None)
    not_cubic = {"config": {"task": "classify", "input_size": 4}, "data_info": {"input_shape": [8, 8, 4]}}
    assert as_trained(not_cubic) == (not_cubic, None)
    no_size = {"config": {"task": "classify", "input_size": None}, "data_info": {"input_shape": [8, 8, 8]}}
    assert as_trained(no_size) == (no_size, None)


def test_scored_spacing_prefers_the_configured_spacing():
    hp = {"config": {"task": "segment", "spacing": [2, 2, 3]}, "data_info": {"spacing": [1, 1, 1]}}
    assert scored_spacing(hp) == (2.0, 2.0, 3.0)
    assert scored_spacing({"config": {"task": "segment"}}) is None


def test_model_label_names_class_and_group():
    from equivox.models.specs import PICKLED_MODEL

    class Net(torch.nn.Module):
        pass

    assert model_label(None, Net()) == "Net"
    assert model_label({"model_spec": {"cls": "EquivariantUNet", "kwargs": {"group": "so3"}}}, Net()) == \
        "EquivariantUNet (so3)"
    assert model_label({"model_spec": {"cls": PICKLED_MODEL}}, Net()) == "Net"


def test_checkpoint_settings_helpers():
    """as_trained, scored_spacing and model_label read a checkpoint's settings dict."""
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
