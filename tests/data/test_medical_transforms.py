"""equivox.data.medical_transforms: the checking transforms inside the pipeline name the file: a missing file
(CheckFilesd), an unreadable or truncated one (LoadImageCheckedd, the truncated file alone), an image/label pair
whose affines or label values do not fit (ValidatePaird); SegmentationCompose surfaces these errors unwrapped; the
user's files are never changed."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data import DataError, segmentation_transforms
from equivox.data.medical_transforms import CheckFilesd


def test_pipeline_errors_name_the_files(tmp_path, file_hashes, random_nifti_pair):
    ip, lp, _, _ = random_nifti_pair(tmp_path, "a")
    ip2, lp2, _, _ = random_nifti_pair(tmp_path, "b", label_affine=np.diag([2.0, 1.5, 3.0, 1.0]) + np.eye(4) * 0.01)
    lab = np.zeros((10, 12, 8), np.uint8)
    lab[0, 0, 0] = 5
    ip3, lp3, _, _ = random_nifti_pair(tmp_path, "c", label=lab)
    trunc = tmp_path / "t_img.nii.gz"
    trunc.write_bytes(ip.read_bytes()[:100])
    before = file_hashes(tmp_path)
    tf = segmentation_transforms(spacing=None, intensity=None, num_classes=2)
    with pytest.raises(DataError, match=r"image file not found: .*gone\.nii\.gz"):
        tf({"image": str(tmp_path / "gone.nii.gz"), "label": str(lp)})
    with pytest.raises(DataError, match="affine mismatch.*b_img"):
        tf({"image": str(ip2), "label": str(lp2)})
    with pytest.raises(DataError, match=r"c_lab.*label values \[5\] are outside range\(2\)"):
        tf({"image": str(ip3), "label": str(lp3)})
    with pytest.raises(DataError, match=r"cannot read .*t_img\.nii\.gz"):
        tf({"image": str(trunc), "label": str(lp)})
    assert file_hashes(tmp_path) == before


def test_truncated_file_is_named_alone(tmp_path, random_nifti_pair):
    ip, lp, _, _ = random_nifti_pair(tmp_path)
    ip.write_bytes(ip.read_bytes()[: ip.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        segmentation_transforms(spacing=None, intensity=None, num_classes=2)({"image": str(ip), "label": str(lp)})
    msg = str(err.value)
    assert str(ip) in msg and str(lp) not in msg and "{" not in msg.split(":")[0]


def test_check_files_names_the_key_and_the_missing_path(tmp_path):
    present = tmp_path / "a.nii.gz"
    present.write_bytes(b"")
    check = CheckFilesd(("image", "label"))
    item = {"image": str(present), "label": present, "other": "not a file"}
    assert check(item) == item  # only the listed keys are checked, nothing is read
    with pytest.raises(DataError, match=r"^label file not found: .*gone\.nii\.gz$"):
        check({"image": str(present), "label": str(tmp_path / "gone.nii.gz")})
