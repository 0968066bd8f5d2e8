"""equivox.data.medical: NIfTI images with NaN / inf and bad labels are refused naming the file."""
from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from equivox.data import DataError, folder_pair_items, segmentation_transforms, validate_pair



def _hashes(folder: Path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def _nifti_pair(folder: Path, name: str, image: np.ndarray, label: np.ndarray):
    folder.mkdir(parents=True, exist_ok=True)
    ip, lp = folder / f"{name}.nii.gz", folder / f"{name}_seg.nii.gz"
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(ip))
    nib.save(nib.Nifti1Image(label, np.eye(4)), str(lp))
    return ip, lp


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_nifti_with_nan_or_inf_is_rejected_naming_the_file(tmp_path, value, word):
    img = np.random.default_rng(0).normal(size=(6, 6, 6)).astype(np.float32)
    img[2, 3, 4] = value
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    ip, lp = _nifti_pair(tmp_path / "d", "case", img, lab)
    before = _hashes(tmp_path / "d")
    with pytest.raises(DataError, match=rf"image file .*case\.nii\.gz.* 1 {word}"):
        validate_pair(ip, lp, num_classes=2)
    with pytest.raises(DataError, match=rf"case\.nii\.gz.*{word}"):  # the MONAI pipeline checks it too
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})
    assert _hashes(tmp_path / "d") == before


def test_label_guards_non_integer_4d_and_duplicate_names(tmp_path):
    img = np.zeros((6, 6, 6), np.float32)
    ip, lp = _nifti_pair(tmp_path / "a", "frac", img, np.full((6, 6, 6), 0.5, np.float32))
    with pytest.raises(DataError, match=r"frac_seg\.nii\.gz.*not integers"):
        validate_pair(ip, lp)
    ip, lp = _nifti_pair(tmp_path / "b", "four", img, np.zeros((6, 6, 6, 2), np.uint8))
    with pytest.raises(DataError, match=r"four_seg\.nii\.gz must be a single 3D volume.*\(6, 6, 6, 2\)"):
        validate_pair(ip, lp)
    with pytest.raises(DataError, match=r"four_seg\.nii\.gz must have one channel"):
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})
    for d in ("img", "lab"):
        (tmp_path / d).mkdir()
    for name in ("case.nii", "case.nii.gz"):
        nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp_path / "img" / name))
    nib.save(nib.Nifti1Image(img.astype(np.uint8), np.eye(4)), str(tmp_path / "lab" / "case.nii.gz"))
    before = _hashes(tmp_path)
    with pytest.raises(DataError, match=r"share the name 'case': case\.nii, case\.nii\.gz"):
        folder_pair_items(tmp_path / "img", tmp_path / "lab")
    assert _hashes(tmp_path) == before


# ------------------------------------------------------------------------------------------- 6. config


def test_files_must_be_3d_in_either_reader(tmp_path):
    """A 2D image or label is refused naming the file (nibabel for NIfTI, MONAI's readers for other formats, here
    .npy); a good pair loads, a mismatched one is refused before any pipeline runs."""
    from equivox.data import load_image_checked, load_monai_checked

    ip, lp = _nifti_pair(tmp_path / "flat", "slice", np.zeros((6, 6), np.float32), np.zeros((6, 6), np.uint8))
    with pytest.raises(DataError, match=r"^image file .*slice\.nii\.gz is 2D \(shape \(6, 6\)\); it must be a 3D "
                                        r"volume \(D, H, W\), or 4D with channels last"):
        validate_pair(ip, lp, 2)
    with pytest.raises(DataError, match=r"^label file .*slice_seg\.nii\.gz is 2D .* must be a 3D volume \(D, H, W\)$"):
        load_image_checked(lp, "label")
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
