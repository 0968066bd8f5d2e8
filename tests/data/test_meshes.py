"""equivox.data.meshes: meshes load (ModelNet's fused OFF header included) and voxelize into centred solids whose
voxel counts are worked out here, spheres to their volume and symmetric under np.rot90; thin watertight parts fall
back to the surface fill; empty and degenerate meshes are refused."""
import math

import numpy as np
import pytest
import trimesh

from equivox.data import DataError, load_mesh, voxelize_mesh


def _count_centres(lo, hi):
    """Number of voxel centres i + 0.5 (integer i) in [lo, hi]."""
    return math.floor(hi - 0.5) - math.ceil(lo - 0.5) + 1


@pytest.mark.parametrize("size,margin", [(16, 1), (20, 2)])
def test_box_fills_expected_fraction(size, margin):
    extents = np.array([4.0, 2.3, 1.1])  # chosen so no face lands exactly on a voxel centre
    box = trimesh.creation.box(extents=extents)
    vox = voxelize_mesh(box, size=size, margin=margin)
    assert vox.dtype == bool and vox.shape == (size,) * 3
    scaled = extents * (size - 2 * margin) / extents.max()
    counts = [_count_centres(size / 2 - e / 2, size / 2 + e / 2) for e in scaled]
    assert counts[0] == size - 2 * margin  # longest extent fills size - 2 * margin voxels
    assert vox.sum() == np.prod(counts)
    # it is a centred solid block along (d, h, w) = (x, y, z)
    idx = np.argwhere(vox)
    assert (idx.max(0) - idx.min(0) + 1).tolist() == counts
    np.testing.assert_allclose((idx.min(0) + idx.max(0) + 1) / 2, size / 2)
    # surface+fill method is conservative: contains the exact solid
    filled = voxelize_mesh(box, size=size, margin=margin, method="fill")
    assert filled[vox].all() and filled.sum() >= vox.sum()


def test_sphere_fill_fraction():
    size, margin = 24, 2
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=7.0)
    sphere.apply_translation([3.0, -2.0, 5.0])  # placement does not depend on where the mesh sits
    vox = voxelize_mesh(sphere, size=size, margin=margin)
    r = (size - 2 * margin) / 2
    expected = 4 / 3 * math.pi * r**3 / size**3
    assert abs(vox.mean() - expected) / expected < 0.03
    # symmetric under the grid's 90-degree rotations (up to the icosphere's faceting)
    assert (vox != np.rot90(vox, 1, axes=(0, 1))).mean() < 0.01
    filled = voxelize_mesh(sphere, size=size, margin=margin, method="fill")
    assert 1.0 < filled.mean() / expected < 1.35


def test_empty_and_degenerate_meshes_raise(tmp_path):
    with pytest.raises(DataError, match="empty"):
        voxelize_mesh(trimesh.Trimesh(), size=8)
    (tmp_path / "empty.off").write_text("OFF\n0 0 0\n")
    with pytest.raises(DataError, match="empty.off.*empty"):
        load_mesh(tmp_path / "empty.off")
    with pytest.raises(DataError, match="mesh file not found: .*nope.obj"):
        load_mesh(tmp_path / "nope.obj")
    flat = trimesh.Trimesh([[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0, 1, 2]], process=False)
    with pytest.raises(DataError, match="zero"):
        voxelize_mesh(flat, size=8)


def test_modelnet_off_header_quirk(tmp_path):
    box = trimesh.creation.box(extents=[1, 1, 1])
    text = trimesh.exchange.off.export_off(box)
    fused = text.replace("OFF\n", "OFF", 1)  # ModelNet's "OFF8 12 0" header
    assert fused.startswith("OFF8")
    (tmp_path / "fused.off").write_text(fused)
    before = (tmp_path / "fused.off").read_bytes()
    m = load_mesh(tmp_path / "fused.off")
    assert len(m.faces) == 12 and (tmp_path / "fused.off").read_bytes() == before


def test_thin_watertight_part_auto_falls_back_to_fill():
    thin = trimesh.creation.box(extents=[1.0, 1.0, 0.01])  # a BGA-package-like plate: 0.3 voxel thick at 32^3
    assert thin.is_watertight
    with pytest.raises(DataError, match="empty grid"):
        voxelize_mesh(thin, size=32, method="inside")
    occ = voxelize_mesh(thin, size=32, method="auto")
    np.testing.assert_array_equal(occ, voxelize_mesh(thin, size=32, method="fill"))
    assert occ.sum() >= 30 * 30
