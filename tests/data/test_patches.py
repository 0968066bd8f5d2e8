"""equivox.data.patches: stratified, deterministic subsampling, in-memory classification datasets, random
segmentation patches (seeded per item and epoch), fixed validation crops, and grid augmentation that rotates image
and label together."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from equivox.data import ArrayClassificationDataset, VolumeCrops, VolumePatches, augmentation_transform
from equivox.data import subsample_indices


def test_subsample_indices_keeps_the_class_proportions():
    labels = np.array([0] * 80 + [1] * 20)
    idx = subsample_indices(labels, 10, seed=3)
    assert len(idx) == 10 and list(idx) == sorted(idx) and np.bincount(labels[idx]).tolist() == [8, 2]
    assert np.array_equal(idx, subsample_indices(labels, 10, seed=3))
    assert not np.array_equal(idx, subsample_indices(labels, 10, seed=4))
    assert np.array_equal(subsample_indices(labels, None), np.arange(100))


def test_array_classification_dataset():
    ds = ArrayClassificationDataset(torch.zeros(3, 1, 4, 4, 4), [0, 2, 1])
    assert len(ds) == 3 and ds.class_names == ["0", "1", "2"] and ds[1]["label"] == 2
    assert ds[0]["image"].shape == (1, 4, 4, 4)
    with pytest.raises(ValueError, match="N == len\\(labels\\)"):
        ArrayClassificationDataset(torch.zeros(3, 1, 4, 4, 4), [0, 1])


def test_volume_patches_are_seeded_per_item_and_epoch():
    img = torch.arange(10 ** 3, dtype=torch.float32).reshape(1, 10, 10, 10)
    lab = torch.zeros(1, 10, 10, 10, dtype=torch.long)
    lab[0, 2:5, 2:5, 2:5] = 1
    ds = VolumePatches([(img, lab), (img.clone(), lab.clone())], patch=4, length=6, seed=1)
    a = [ds[i]["image"] for i in range(6)]
    assert all(p.shape == (1, 4, 4, 4) for p in a) and ds[0]["label"].dtype == torch.long
    assert all(torch.equal(p, ds[i]["image"]) for i, p in enumerate(a))  # the same patch whoever draws it
    ds.set_epoch(1)
    assert any(not torch.equal(p, ds[i]["image"]) for i, p in enumerate(a))  # another one next epoch
    small = VolumePatches([(img[:, :3, :3, :3], lab[:, :3, :3, :3])], patch=4, length=1)
    assert small[0]["image"].shape == (1, 4, 4, 4)  # padded up to the patch


def test_volume_crops_and_augmentation():
    img = torch.randn(1, 6, 6, 6)
    lab = torch.ones(1, 6, 6, 6, dtype=torch.int32)
    crops = VolumeCrops([(img, lab)], 4)
    assert crops[0]["image"].shape == (1, 4, 4, 4) and torch.equal(crops[0]["image"], img[:, 1:5, 1:5, 1:5])
    assert crops[0]["label"].dtype == torch.long and VolumeCrops([(img, lab)], None)[0]["image"].shape == (1, 6, 6, 6)
    assert augmentation_transform("none", ["image"]) is None
    t = augmentation_transform("grid", ["image"], "so3", seed=0)  # continuous group: the cube's rotations
    out = t({"image": img})["image"]
    assert sorted(torch.as_tensor(out).flatten().tolist()) == sorted(img.flatten().tolist())  # exact: a permutation
    with pytest.raises(ValueError, match="augment must be"):
        augmentation_transform("flip", ["image"])


def test_subsample_indices_is_stratified_and_deterministic():
    y = np.array([0] * 80 + [1] * 20)
    idx = subsample_indices(y, 10, seed=3)
    assert len(idx) == 10 and (y[idx] == 1).sum() == 2
    assert np.array_equal(idx, subsample_indices(y, 10, seed=3))
    assert len(subsample_indices(y, None)) == 100


def test_grid_augmentation_rotates_image_and_label_together():
    t = augmentation_transform("grid", ["image", "label"], "octa", seed=0)
    lab = torch.randint(0, 3, (1, 6, 6, 6))
    seen = set()
    for _ in range(6):
        d = t({"image": lab.float(), "label": lab.clone()})
        assert torch.equal(d["image"], d["label"].float())
        seen.add(tuple(d["label"].flatten()[:20].tolist()))
    assert len(seen) > 1  # it really rotates
