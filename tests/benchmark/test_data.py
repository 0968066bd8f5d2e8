"""equivox.benchmark.data: the harness's data path: stratified, nested training fractions and hold-outs, a
registered classification dataset loaded through the training path (its own validation split, or one held out of
train when its "val" is the test split; 8-bit images divided by 255 as ``equivox train`` does), a registered
segmentation dataset's scored volumes, left/right class pairs read from class names, and the datasets that offer
meshes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivox.benchmark import load_classification_data, load_segmentation_data, nested_fractions
from equivox.benchmark.data import VAL_FRACTION, mesh_dataset, stratified_holdout
from equivox.data import DataError, DatasetSpec, register_dataset, unregister_dataset


def test_nested_fractions_are_stratified_and_nested():
    labels = np.array([0] * 20 + [1] * 10)
    subsets = nested_fractions(labels, (0.1, 0.5, 1.0), seed=3)
    assert [len(subsets[f]) for f in (0.1, 0.5, 1.0)] == [3, 15, 30]
    assert np.bincount(labels[subsets[0.5]]).tolist() == [10, 5]
    assert set(subsets[0.1]) <= set(subsets[0.5]) <= set(subsets[1.0])
    again = nested_fractions(labels, (0.5,), seed=3)[0.5]
    assert np.array_equal(again, subsets[0.5]) and not np.array_equal(nested_fractions(labels, (0.5,), 4)[0.5], again)
    with pytest.raises(ValueError, match=r"train fractions must be in \(0, 1\]"):
        nested_fractions(labels, (0.0,), seed=0)


def test_stratified_holdout_takes_a_share_of_every_class_with_more_than_two_items():
    y = np.array([0] * 10 + [1] * 5 + [2] * 2)
    keep, hold = stratified_holdout(y, 0.2, seed=0)
    assert np.bincount(y[hold], minlength=3).tolist() == [2, 1, 0]  # a class of two items keeps both
    assert sorted(np.concatenate([keep, hold]).tolist()) == list(range(len(y)))


def _same_val_and_test(split):
    rng = np.random.default_rng(0 if split == "train" else 1)
    n = 20 if split == "train" else 6
    return {"images": (rng.random((n, 4, 4, 4)) * 255).astype(np.uint8), "labels": np.arange(n) % 2,
            "class_names": ["a", "b"]}


def _volumes(split):
    img = np.random.default_rng(2).random((1, 8, 8, 8)).astype(np.float32)
    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:6, 2:6, 2:4], lab[2:6, 2:6, 4:6] = 1, 2
    return {"volumes": [(img, lab)], "label_names": {0: "background", 1: "part_L", 2: "part_R"}}


@pytest.fixture
def registered():
    specs = [register_dataset(DatasetSpec(name="bench_test_cls", task="classification", load=_same_val_and_test,
                                          description="bench toy", licence="CC0 (test data)")),
             register_dataset(DatasetSpec(name="bench_test_seg", task="segment", load=_volumes,
                                          description="bench seg toy", licence="CC0 (test data)"))]
    yield [s.name for s in specs]
    for s in specs:
        unregister_dataset(s.name)


def test_classification_data_holds_out_val_from_train_when_val_is_the_test_split(registered):
    data = load_classification_data("bench_test_cls")
    assert data.name == "bench_test_cls" and data.metric == "auroc" and data.class_names == ["a", "b"]
    assert len(data.y_test) == 6 and len(data.y_val) == round(VAL_FRACTION * 10) * 2
    assert len(data.y_train) + len(data.y_val) == 20
    assert tuple(data.x_train.shape[1:]) == (1, 4, 4, 4) and float(data.x_train.max()) <= 1.0  # 8-bit: / 255
    assert "held out" in data.caption and "intensities / 255" in data.caption


def test_segmentation_data_crops_volumes_and_finds_left_right_pairs(registered):
    data = load_segmentation_data("bench_test_seg", downsample=1, crop=4)
    assert data.class_names == ["background", "part_L", "part_R"] and data.class_swaps == ((1, 2),)
    assert len(data.volumes) == 1 and tuple(data.volumes[0]["image"].shape[-3:]) == (4, 4, 4)
    assert data.in_channels == 1 and "centre 4^3" in data.caption


def test_only_registered_datasets_with_meshes_offer_them(registered):
    with pytest.raises(DataError, match="'nowhere.npz' is not a registered dataset"):
        mesh_dataset("nowhere.npz")
    with pytest.raises(DataError, match="bench_test_cls"):
        mesh_dataset("bench_test_cls")


def test_classification_data_follow_the_training_path_intensity_rule(tmp_path):
    """8-bit images are divided by 255 (decided on the training split) as ``equivox train`` does; labels kept."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 8, 8, 8), dtype=np.uint8)
    y = np.repeat(np.arange(4), 10)
    p = tmp_path / "toy.npz"
    np.savez(p, train_images=x[:30], train_labels=y[:30], val_images=x[30:], val_labels=y[30:],
             test_images=x[30:], test_labels=y[30:])
    data = load_classification_data(str(p))
    assert float(data.x_test.max()) <= 1.0 and data.metric == "accuracy"
    assert torch.allclose(data.x_test[:, 0], torch.from_numpy(x[30:].astype(np.float32) / 255))
    assert np.array_equal(data.y_test, y[30:])
    assert len(data.y_train) + len(data.y_val) == 30 and len(data.y_val) >= 4  # 15 % held out, every class


def test_fractions_are_nested_and_stratified():
    y = np.repeat(np.arange(3), [40, 20, 10])
    subsets = nested_fractions(y, (0.1, 0.5, 1.0), seed=3)
    assert set(subsets[0.1]) <= set(subsets[0.5]) <= set(subsets[1.0]) and len(subsets[1.0]) == 70
    assert np.bincount(y[subsets[0.5]]).tolist() == [20, 10, 5]
    assert np.bincount(y[subsets[0.1]]).tolist() == [4, 2, 1]
    assert not np.array_equal(subsets[0.5], nested_fractions(y, (0.5,), seed=4)[0.5])


def test_left_right_pairs_from_class_names():
    from equivox.benchmark import left_right_pairs
    names = ["background", "frontal_L", "frontal_R", "vermis", "Left lung", "right lung", "occipital_L"]
    assert left_right_pairs(names) == ((1, 2), (4, 5))  # occipital_L has no right partner, vermis no side
    assert left_right_pairs(["background", "liver", "spleen"]) == ()
