"""equivox.data.errors: DataError is a ValueError, DataWarning a UserWarning; check_finite names where NaN / inf
values are, how many, and the first index (integer arrays pass unscanned); require_file names a missing file or a
folder given as a file."""
from __future__ import annotations

import numpy as np
import pytest

from equivox.data.errors import DataError, DataWarning, check_finite, require_file


def test_error_and_warning_types():
    assert issubclass(DataError, ValueError) and issubclass(DataWarning, UserWarning)
    with pytest.raises(ValueError):  # code catching ValueError keeps working
        raise DataError("x")


def test_check_finite_counts_and_locates_bad_values():
    a = np.zeros((2, 3, 4), np.float32)
    check_finite(a, "scan.nii.gz")  # finite: no error
    a[1, 2, 3] = np.nan
    a[0, 1, 0] = np.inf
    a[0, 1, 1] = -np.inf
    with pytest.raises(DataError, match=r"scan\.nii\.gz holds 1 NaN and 2 inf value\(s\) \(first at index "
                                        r"\(0, 1, 0\)\) in an array of shape \(2, 3, 4\); replace or mask them "
                                        r"before prediction"):
        check_finite(a, "scan.nii.gz", before="prediction")
    with pytest.raises(DataError, match=r"1 NaN value\(s\).*before training"):
        check_finite(np.array([1.0, np.nan]), "labels.npy")
    check_finite(np.array([1, 2, 3], np.int16), "ints")  # integer and boolean arrays pass without a scan
    check_finite(np.array([True, False]), "mask")


def test_require_file_names_what_is_missing(tmp_path):
    f = tmp_path / "a.nii.gz"
    f.write_bytes(b"x")
    assert require_file(str(f)) == f
    with pytest.raises(DataError, match=r"image not found: .*b\.nii\.gz"):
        require_file(tmp_path / "b.nii.gz", "image")
    with pytest.raises(DataError, match="file is not a regular file: "):
        require_file(tmp_path)
