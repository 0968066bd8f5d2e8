"""equivox.data.binvox: binvox files round-trip (voxels, translate, scale), with binvox's byte layout (x slowest,
then z, y fastest; run-length pairs); truncated or foreign files are refused without being changed."""
import hashlib

import numpy as np
import pytest

from equivox.data import DataError, load_voxel_file, read_binvox, write_binvox


def test_binvox_roundtrip_and_layout(tmp_path):
    rng = np.random.default_rng(1)
    vox = rng.random((6, 7, 9)) > 0.6
    vox[:, :, :] |= False
    vox[0, 0, :] = True  # long runs; > 255 zeros below
    big = np.zeros((10, 10, 10), bool)
    big[9, 9, 9] = True
    p = write_binvox(tmp_path / "a.binvox", vox, translate=(0.5, -1.0, 2.0), scale=3.5)
    g = read_binvox(p)
    np.testing.assert_array_equal(g.data, vox)
    assert g.translate == (0.5, -1.0, 2.0) and g.scale == 3.5
    np.testing.assert_array_equal(read_binvox(write_binvox(tmp_path / "b.binvox", big)).data, big)
    # byte layout: x slowest, then z, y fastest; RLE (value, count)
    one = np.zeros((2, 2, 2), bool)
    one[0, 1, 0] = True  # x=0, y=1, z=0 -> stored index x*4 + z*2 + y = 1
    raw = write_binvox(tmp_path / "c.binvox", one).read_bytes()
    assert raw.endswith(b"data\n" + bytes([0, 1, 1, 1, 0, 6]))
    np.testing.assert_array_equal(load_voxel_file(tmp_path / "c.binvox"), one)
    # truncated file: clear error, file untouched
    t = tmp_path / "trunc.binvox"
    t.write_bytes(raw[:-2])
    h = hashlib.sha256(t.read_bytes()).hexdigest()
    with pytest.raises(DataError, match="trunc.binvox.*holds 2 voxels, header says"):
        read_binvox(t)
    (tmp_path / "notbv.binvox").write_bytes(b"hello\nworld\n")
    with pytest.raises(DataError, match="not a binvox file"):
        read_binvox(tmp_path / "notbv.binvox")
    assert hashlib.sha256(t.read_bytes()).hexdigest() == h
