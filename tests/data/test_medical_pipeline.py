"""equivox.data.medical_pipeline: the segmentation pipeline keeps the geometry (RAS orientation, resampling to a
spacing, the label's world position), normalises intensity (CT window, MRI z-score over the non-zero voxels), samples
patches with rotation augmentation, and its datasets cache in memory or on disk (a second dataset reads the disk
cache); load_monai_checked checks the files MONAI's readers load."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from equivox.data import DataError, RandGridRotatedd, decathlon_items, decathlon_labels
from equivox.data.medical_pipeline import load_monai_checked, segmentation_dataset, segmentation_transforms
from equivox.data.medical_transforms import LoadImageCheckedd


def test_decathlon_items_and_pipeline_geometry(tmp_path, monkeypatch, file_hashes, random_nifti_pair):
    root = tmp_path / "Task99_Tiny"
    # LPS-like orientation (flipped first two axes) with anisotropic spacing
    affine = np.array([[-2.0, 0, 0, 10], [0, -1.5, 0, 20], [0, 0, 3.0, -5], [0, 0, 0, 1]])
    for k in range(2):
        ip, lp, img, lab = random_nifti_pair(root / "tmp", f"c{k}", affine=affine, seed=k)
        (root / "imagesTr").mkdir(exist_ok=True)
        (root / "labelsTr").mkdir(exist_ok=True)
        ip.rename(root / "imagesTr" / f"case_{k}.nii.gz")
        lp.rename(root / "labelsTr" / f"case_{k}.nii.gz")
    (root / "tmp").rmdir()
    meta = {"name": "Tiny", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "organ"},
            "training": [{"image": f"./imagesTr/case_{k}.nii.gz", "label": f"./labelsTr/case_{k}.nii.gz"}
                         for k in range(2)], "test": []}
    (root / "dataset.json").write_text(json.dumps(meta))
    before = file_hashes(root)

    items = decathlon_items(root)
    assert len(items) == 2 and items[1]["label"].endswith("labelsTr/case_1.nii.gz")
    labels = decathlon_labels(root)
    assert labels == {0: "background", 1: "organ"}

    tf = segmentation_transforms(spacing=(1.0, 1.0, 1.0), intensity="ct", ct_window=(-500, 500),
                                 num_classes=len(labels))
    out = tf(items[0])
    image, label = out["image"], out["label"]
    # RAS orientation: positive diagonal; spacing 1 mm
    aff = image.affine.numpy()
    np.testing.assert_allclose(np.abs(np.diag(aff)[:3]), 1.0, atol=1e-6)
    assert (np.diag(aff)[:3] > 0).all()
    np.testing.assert_allclose(label.affine.numpy(), aff)
    # physical extent preserved: 10*2, 12*1.5, 8*3 mm at 1 mm spacing (MONAI keeps the centre)
    assert image.shape[0] == 1 and abs(image.shape[1] - 19) <= 1 and abs(image.shape[2] - 17) <= 1
    assert abs(image.shape[3] - 22) <= 1 and label.shape == image.shape
    # CT window to [0, 1], label values exact
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
    assert set(torch.unique(label).tolist()) == {0.0, 1.0}
    # the label's world-space centre of mass is where it was in the source file
    src = nib.load(items[0]["label"])
    src_idx = np.argwhere(np.asarray(src.dataobj) > 0).mean(0)
    src_world = src.affine @ np.r_[src_idx, 1]
    new_idx = np.argwhere(label[0].numpy() > 0).mean(0)
    new_world = aff @ np.r_[new_idx, 1]
    np.testing.assert_allclose(new_world[:3], src_world[:3], atol=1.0)

    # patches + rotation augmentation inside the pipeline, with caching
    tf2 = segmentation_transforms(spacing=(2.0, 2.0, 2.0), intensity="mri", patch_size=(8, 8, 8), num_samples=2,
                                  num_classes=2, extra=[RandGridRotatedd(("image", "label"))])
    tf2.set_random_state(0)
    ds = segmentation_dataset(items, tf2, cache="memory")
    patches = ds[0]
    assert isinstance(patches, list) and len(patches) == 2
    for p in patches:
        assert p["image"].shape == (1, 8, 8, 8) and p["label"].shape == (1, 8, 8, 8)
    plain = segmentation_transforms(spacing=None, intensity=None, num_classes=2)
    ref = plain(dict(items[1]))  # the uncached pipeline
    ds_disk = segmentation_dataset(items, plain, cache="disk", cache_dir=tmp_path / "pcache")
    first = ds_disk[1]
    cached_files = sorted((tmp_path / "pcache").iterdir())
    assert cached_files
    # a second dataset instance must read the cache: loading the files again would fail here
    def no_loading(self, data, reader=None):
        raise AssertionError("the disk cache was not used")

    monkeypatch.setattr(LoadImageCheckedd, "__call__", no_loading)
    ds_again = segmentation_dataset(items, segmentation_transforms(spacing=None, intensity=None, num_classes=2),
                                    cache="disk", cache_dir=tmp_path / "pcache")
    second = ds_again[1]
    for key in ("image", "label"):
        np.testing.assert_array_equal(first[key].numpy(), ref[key].numpy())
        np.testing.assert_array_equal(second[key].numpy(), ref[key].numpy())
        np.testing.assert_allclose(first[key].affine.numpy(), ref[key].affine.numpy())
    assert sorted((tmp_path / "pcache").iterdir()) == cached_files
    assert file_hashes(root) == before


def test_mri_zscore_over_nonzero(tmp_path, save_nifti):
    img = np.zeros((8, 8, 8), np.float32)
    img[2:6, 2:6, 2:6] = np.random.default_rng(3).normal(100, 20, (4, 4, 4))
    ip = save_nifti(tmp_path / "mri.nii.gz", img, np.eye(4))
    lp = save_nifti(tmp_path / "mri_seg.nii.gz", (img > 100).astype(np.uint8), np.eye(4))
    out = segmentation_transforms(spacing=None, intensity="mri", num_classes=2)({"image": str(ip), "label": str(lp)})
    x = out["image"][0].numpy()
    inside = x[2:6, 2:6, 2:6]
    assert abs(inside.mean()) < 1e-5 and abs(inside.std() - 1) < 1e-3
    assert np.all(x[0] == 0)


def test_load_monai_checked_files_must_be_3d_finite_and_matching(tmp_path):
    """A 2D image is refused naming the file by MONAI's readers too (here .npy), as are a NaN and a label whose shape
    differs from its image's; a good pair loads; all before any pipeline runs. (NIfTI, read with nibabel:
    tests/data/test_medical_checks.py.)"""
    vol = np.ones((6, 6, 6), np.float32)
    vol[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", vol)
    np.save(tmp_path / "flat.npy", np.ones((6, 6), np.float32))
    np.save(tmp_path / "img.npy", np.ones((6, 6, 6), np.float32))
    np.save(tmp_path / "lab.npy", np.ones((6, 6, 6), np.uint8))
    np.save(tmp_path / "short.npy", np.ones((6, 6, 4), np.uint8))
    loaded = load_monai_checked({"image": tmp_path / "img.npy", "label": tmp_path / "lab.npy"}, num_classes=2)
    assert tuple(loaded["image"].shape) == tuple(loaded["label"].shape) == (1, 6, 6, 6)
    with pytest.raises(DataError, match=r"^image file .*flat\.npy is 2D \(shape \(6, 6\)\)"):
        load_monai_checked({"image": tmp_path / "flat.npy"})
    with pytest.raises(DataError, match=r"^image file .*nan\.npy holds 1 NaN .* before prediction"):
        load_monai_checked({"image": tmp_path / "nan.npy"}, before="prediction")
    with pytest.raises(DataError, match=r"^shape mismatch: image .*img\.npy .*\(6, 6, 6\), label .*short\.npy has "
                                        r"\(6, 6, 4\)"):
        load_monai_checked({"image": tmp_path / "img.npy", "label": tmp_path / "short.npy"}, num_classes=2)
