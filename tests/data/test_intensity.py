"""equivox.data.intensity: the classification divisor and the NIfTI rule, configured or chosen from the images."""
from __future__ import annotations

import nibabel as nib
import numpy as np

from equivox.data import intensity_scale, resolve_intensity


def test_intensity_scale():
    assert intensity_scale(np.array([0, 200], np.uint8)) == 255.0
    assert intensity_scale(np.array([0, 1], np.uint8)) == 1.0  # a binary mask stays as stored
    assert intensity_scale(np.array([0.0, 200.0])) == 1.0  # float data (HU, z-scores) stay as stored
    assert intensity_scale(np.array([-3, 200], np.int16)) == 1.0


def test_resolve_intensity(tmp_path):
    assert resolve_intensity("ct", []) == ("ct", "as configured")
    assert resolve_intensity(None, []) == (None, "as configured")
    img = np.linspace(-1000, 1000, 8 ** 3, dtype=np.float32).reshape(8, 8, 8)
    nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp_path / "ct.nii.gz"))
    rule, why = resolve_intensity("auto", [{"image": str(tmp_path / "ct.nii.gz")}])
    assert rule == "ct" and why
    nib.save(nib.Nifti1Image(img / 10 + 100, np.eye(4)), str(tmp_path / "mr.nii.gz"))
    assert resolve_intensity("auto", [{"image": str(tmp_path / "mr.nii.gz")}])[0] == "mri"
