"""equivox.data.arrays: .npy / .npz arrays load, bad files, keys and shapes are refused naming the file, NaN / inf
are refused, and the user's files are never changed."""
from __future__ import annotations


import numpy as np
import pytest

from equivox.data import DataError, load_array, load_voxel_file


def test_load_array_reads_npy_and_rejects_nan(tmp_path, file_hashes):
    a = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    bad = a.copy()
    bad[1, 2, 3] = np.nan
    bad[0, 0, 0] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    before = file_hashes(tmp_path)
    np.testing.assert_array_equal(load_array(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(load_array(str(tmp_path / "a.npy")), a)
    with pytest.raises(DataError, match=r"bad\.npy.*1 NaN and 1 inf"):
        load_voxel_file(tmp_path / "bad.npy")
    assert file_hashes(tmp_path) == before


def test_npy_npz_roundtrip(tmp_path, file_hashes):
    a = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "one.npz", vol=a)
    np.savez(tmp_path / "two.npz", x=a, y=a[:, :, :2])
    np.testing.assert_array_equal(load_voxel_file(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(load_array(tmp_path / "one.npz"), a)
    np.testing.assert_array_equal(load_voxel_file(tmp_path / "two.npz", key="x"), a)
    before = file_hashes(tmp_path)
    with pytest.raises(DataError, match=r"holds arrays \['x', 'y'\]"):
        load_array(tmp_path / "two.npz")
    with pytest.raises(DataError, match="no array 'z'"):
        load_array(tmp_path / "two.npz", key="z")
    with pytest.raises(DataError, match="not found.*missing.npy"):
        load_voxel_file(tmp_path / "missing.npy")
    np.save(tmp_path / "flat.npy", np.zeros(4))
    with pytest.raises(DataError, match="expected a 3D volume"):
        load_voxel_file(tmp_path / "flat.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="cannot read array file .*bad.npy"):
        load_voxel_file(tmp_path / "bad.npy")
    after = file_hashes(tmp_path)
    assert all(after[p] == h for p, h in before.items())
