"""equivox.data.arrays: arrays load, and NaN / inf are refused naming the file."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from equivox.data import DataError, load_array, load_voxel_file



def _hashes(folder: Path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_load_array_reads_npy_and_rejects_nan(tmp_path):
    a = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    bad = a.copy()
    bad[1, 2, 3] = np.nan
    bad[0, 0, 0] = np.inf
    np.save(tmp_path / "bad.npy", bad)
    before = _hashes(tmp_path)
    np.testing.assert_array_equal(load_array(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(load_array(str(tmp_path / "a.npy")), a)
    with pytest.raises(DataError, match=r"bad\.npy.*1 NaN and 1 inf"):
        load_voxel_file(tmp_path / "bad.npy")
    assert _hashes(tmp_path) == before


# ------------------------------------------------------------------------------------------- 2. cache folder
