"""equivox.data.medical_checks: files checked on disk before any work (nibabel, read-only): validate_pair (shapes,
affines within a tolerance, label values in range, missing, truncated or unreadable files, NaN / inf, labels that are
not integers or not one 3D volume, 2D files) and load_image_checked, each refusal naming the file; the user's files
are never changed."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data import DataError, segmentation_transforms
from equivox.data.medical_checks import load_image_checked, validate_pair


def test_validate_pair_ok_and_errors(tmp_path, file_hashes, random_nifti_pair):
    ip, lp, _, _ = random_nifti_pair(tmp_path / "ok")
    info = validate_pair(ip, lp, num_classes=2)
    assert info["shape"] == (10, 12, 8) and info["label_values"] == [0, 1]
    np.testing.assert_allclose(info["spacing"], (2.0, 1.5, 3.0))

    bad = tmp_path / "bad"
    ip2, lp2, _, _ = random_nifti_pair(bad, "shape", label=np.zeros((10, 12, 9), np.uint8))
    ip3, lp3, _, _ = random_nifti_pair(bad, "affine", label_affine=np.diag([2.0, 1.5, 3.1, 1.0]))
    lab = np.zeros((10, 12, 8), np.int16)
    lab[0, 0, 0], lab[1, 1, 1], lab[2, 2, 2] = 3, -1, 7
    ip4, lp4, _, _ = random_nifti_pair(bad, "values", label=lab)
    trunc = bad / "trunc_lab.nii.gz"
    trunc.write_bytes(lp.read_bytes()[:-60])
    notnii = bad / "junk.nii"
    notnii.write_bytes(b"this is not a nifti file at all" * 20)
    before = file_hashes(bad)

    with pytest.raises(DataError, match=r"label file not found: .*missing\.nii\.gz"):
        validate_pair(ip, bad / "missing.nii.gz", 2)
    with pytest.raises(DataError, match=r"shape mismatch.*\(10, 12, 8\).*\(10, 12, 9\)"):
        validate_pair(ip2, lp2, 2)
    with pytest.raises(DataError, match="affine mismatch.*affine_img.*affine_lab"):
        validate_pair(ip3, lp3, 2)
    validate_pair(ip3, lp3, 2, affine_atol=0.2)  # within a looser tolerance
    with pytest.raises(DataError, match=r"values_lab.*label values \[-1, 3, 7\] are outside range\(2\)"):
        validate_pair(ip4, lp4, 2)
    validate_pair(ip4, lp4, None)  # value check skipped
    with pytest.raises(DataError, match=r"cannot read label file .*trunc_lab\.nii\.gz.*truncated"):
        validate_pair(ip, trunc, 2)
    with pytest.raises(DataError, match=r"cannot read image file .*junk\.nii"):
        validate_pair(notnii, lp, 2)
    assert file_hashes(bad) == before  # user files untouched


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_nifti_with_nan_or_inf_is_rejected_naming_the_file(tmp_path, value, word, file_hashes, nifti_pair):
    img = np.random.default_rng(0).normal(size=(6, 6, 6)).astype(np.float32)
    img[2, 3, 4] = value
    lab = np.zeros((6, 6, 6), np.uint8)
    lab[1:3, 1:3, 1:3] = 1
    ip, lp = nifti_pair(tmp_path / "d", "case", img, lab)
    before = file_hashes(tmp_path / "d")
    with pytest.raises(DataError, match=rf"image file .*case\.nii\.gz.* 1 {word}"):
        validate_pair(ip, lp, num_classes=2)
    with pytest.raises(DataError, match=rf"case\.nii\.gz.*{word}"):  # the MONAI pipeline checks it too
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})
    assert file_hashes(tmp_path / "d") == before


def test_label_guards_non_integer_and_4d(tmp_path, nifti_pair):
    img = np.zeros((6, 6, 6), np.float32)
    ip, lp = nifti_pair(tmp_path / "a", "frac", img, np.full((6, 6, 6), 0.5, np.float32))
    with pytest.raises(DataError, match=r"frac_seg\.nii\.gz.*not integers"):
        validate_pair(ip, lp)
    ip, lp = nifti_pair(tmp_path / "b", "four", img, np.zeros((6, 6, 6, 2), np.uint8))
    with pytest.raises(DataError, match=r"four_seg\.nii\.gz must be a single 3D volume.*\(6, 6, 6, 2\)"):
        validate_pair(ip, lp)
    with pytest.raises(DataError, match=r"four_seg\.nii\.gz must have one channel"):
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})


def test_files_must_be_3d_in_nibabels_reader(tmp_path, nifti_pair):
    """A 2D NIfTI image or label is refused naming the file (read with nibabel). (Other formats, read with MONAI's
    readers: tests/data/test_medical_pipeline.py.)"""
    ip, lp = nifti_pair(tmp_path / "flat", "slice", np.zeros((6, 6), np.float32), np.zeros((6, 6), np.uint8))
    with pytest.raises(DataError, match=r"^image file .*slice\.nii\.gz is 2D \(shape \(6, 6\)\); it must be a 3D "
                                        r"volume \(D, H, W\), or 4D with channels last"):
        validate_pair(ip, lp, 2)
    with pytest.raises(DataError, match=r"^label file .*slice_seg\.nii\.gz is 2D .* must be a 3D volume \(D, H, W\)$"):
        load_image_checked(lp, "label")
