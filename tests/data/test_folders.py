"""equivox.data.folders: an image/label NIfTI folder pair found and checked in full, split into training and
validation items, and its validation pipeline."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from equivox.data import DataError, preflight_segmentation_files, segmentation_eval_transforms, segmentation_files
from equivox.data import split_items


def _pair_folder(root, n=3, bad_label=False):
    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    for i in range(n):
        lab = np.zeros((6, 6, 6), np.uint8)
        lab[1:4, 1:4, 1:4] = 2 if bad_label and i == n - 1 else 1
        nib.save(nib.Nifti1Image(lab.astype(np.float32) * 100, np.eye(4)), str(root / "img" / f"c{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, np.eye(4)), str(root / "lab" / f"c{i}.nii.gz"))
    return root / "img", root / "lab"


def test_split_items_is_seeded_and_cut():
    items = [{"image": str(i)} for i in range(10)]
    train, val = split_items(items, seed=0)
    assert len(val) == 2 and len(train) == 8 and sorted(train + val, key=lambda d: int(d["image"])) == items
    assert (train, val) == split_items(items, seed=0) and val != split_items(items, seed=1)[1]
    assert [len(s) for s in split_items(items, 0, max_train=3, max_val=1)] == [3, 1]
    with pytest.raises(DataError, match="need at least 2 image/label pairs"):
        split_items(items[:1], 0)


def test_segmentation_files_of_a_folder_pair(tmp_path):
    imgs, labs = _pair_folder(tmp_path)
    items, k, names = segmentation_files(str(imgs), str(labs), num_classes=2, class_names=["bg", "blob"])
    assert len(items) == 3 and k == 2 and names == ["bg", "blob"]
    assert items[0]["image"].endswith("c0.nii.gz") and items[0]["label"].endswith("c0.nii.gz")
    with pytest.raises(DataError, match="num_classes is required"):
        segmentation_files(str(imgs), str(labs))
    with pytest.raises(DataError, match="needs both image_dir and label_dir"):
        segmentation_files(str(imgs))
    with pytest.raises(DataError, match="class_names has 1 name"):
        segmentation_files(str(imgs), str(labs), num_classes=2, class_names=["bg"])
    with pytest.raises(DataError, match="nor a Decathlon folder"):
        segmentation_files(folder=str(tmp_path / "nothing"))


def test_preflight_names_the_label_out_of_range(tmp_path):
    imgs, labs = _pair_folder(tmp_path, bad_label=True)
    items = [{"image": str(imgs / f"c{i}.nii.gz"), "label": str(labs / f"c{i}.nii.gz")} for i in range(3)]
    preflight_segmentation_files(items[:2], 2)
    with pytest.raises(DataError, match="c2.nii.gz"):
        preflight_segmentation_files(items, 2)


def test_eval_transforms_crop_and_pad_to_the_size_multiple(tmp_path):
    imgs, labs = _pair_folder(tmp_path)
    item = {"image": str(imgs / "c0.nii.gz"), "label": str(labs / "c0.nii.gz")}
    out = segmentation_eval_transforms(2, None, None, val_crop=None, size_multiple=4)(item)
    assert tuple(out["image"].shape) == (1, 8, 8, 8) and tuple(out["label"].shape) == (1, 8, 8, 8)
    out = segmentation_eval_transforms(2, None, None, val_crop=4)(item)
    assert tuple(out["image"].shape) == (1, 4, 4, 4)
