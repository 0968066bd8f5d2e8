"""equivox.data.medical_headers: facts read from image headers before training: the voxel spacing along the RAS
axes, the channel count (mixed counts refused naming the odd image), the spacing the images share (or none), and the
intensity rule chosen from the value range (CT when the values span Hounsfield units, else MRI)."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data import DataError
from equivox.data.medical_headers import check_same_channels, choose_intensity, common_spacing, is_nifti, scan_images


def test_scan_images_spacing_along_ras_axes_and_channels(tmp_path, save_nifti):
    # voxel axes (i, j, k) stored as (A, R, S): zooms (2, 3, 4) -> RAS spacing (3, 2, 4)
    aff = np.zeros((4, 4))
    aff[1, 0], aff[0, 1], aff[2, 2], aff[3, 3] = 2.0, -3.0, 4.0, 1.0
    a = save_nifti(tmp_path / "a.nii.gz", np.zeros((5, 6, 7), np.float32), aff)
    b = save_nifti(tmp_path / "b.nii.gz", np.zeros((5, 6, 7, 2), np.float32), aff)
    infos = scan_images([a, b])
    assert infos[0]["spacing"] == (3.0, 2.0, 4.0) and infos[0]["shape"] == (5, 6, 7)
    assert [i["channels"] for i in infos] == [1, 2]
    assert common_spacing(infos) == (3.0, 2.0, 4.0)
    c = save_nifti(tmp_path / "c.nii.gz", np.zeros((5, 6, 7), np.float32), aff)
    with pytest.raises(DataError, match=r"image .*b\.nii\.gz has 2 channel\(s\) .* 2 other image\(s\) have 1"):
        check_same_channels(scan_images([a, b, c]))
    d = save_nifti(tmp_path / "d.nii.gz", np.zeros((5, 6, 7), np.float32), np.diag([1.0, 1.0, 1.0, 1.0]))
    assert common_spacing(scan_images([a, d])) is None


def test_choose_intensity_from_the_value_range(tmp_path, save_nifti):
    ct = save_nifti(tmp_path / "ct.nii.gz", np.linspace(-1024, 1500, 64, dtype=np.float32).reshape(4, 4, 4), np.eye(4))
    mr = save_nifti(tmp_path / "mr.nii.gz", np.linspace(0, 900, 64, dtype=np.float32).reshape(4, 4, 4), np.eye(4))
    assert choose_intensity([ct])[0] == "ct"
    assert choose_intensity([mr])[0] == "mri"  # large positive values alone are not HU
    name, why = choose_intensity([mr, ct])
    assert name == "ct" and "-1024..1500" in why
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(ct.read_bytes()[:200])
    with pytest.raises(DataError, match="broken.nii.gz"):
        choose_intensity([broken])


def test_is_nifti_by_the_file_name():
    assert is_nifti("a.nii") and is_nifti("dir/B.NII.GZ")
    assert not is_nifti("a.npy") and not is_nifti("a.nii.zip")
