"""equivox.data.bundled_meshes: the mesh files behind the bundled KiCad stores, in the order of their items: a missing
mesh folder is named with the package to install; with the Debian package kicad-packages3d installed, the paths are
the items' own meshes and re-voxelising one reproduces the bundled grid."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from equivox.data.bundled_meshes import kicad_part_meshes, kicad_part_segment_meshes
from equivox.data.bundled_shapes import load_kicad_part_segments, load_kicad_parts
from equivox.data.bundled_torch import KiCadPartsDataset


def test_kicad_part_meshes_revoxelize_to_the_bundled_grids(tmp_path):
    ds = KiCadPartsDataset("val")
    item = ds[0]
    with pytest.raises(FileNotFoundError, match="kicad-packages3d"):
        kicad_part_meshes("val", root=tmp_path)
    if not Path(load_kicad_parts("val")["metadata"]["mesh_root"]).is_dir():
        pytest.skip("Debian package kicad-packages3d not installed: the mesh-level check needs it")
    from equivox.data import voxelize_mesh

    paths = kicad_part_meshes("val")
    assert len(paths) == len(ds)
    # re-voxelising a mesh reproduces the bundled grid: the mesh-level rotation protocol starts from it
    assert np.array_equal(voxelize_mesh(paths[0], size=32, method="fill"), item["image"][0].numpy() > 0.5)


def test_kicad_part_segment_meshes_are_the_items_meshes_in_order(tmp_path):
    d = load_kicad_part_segments("val")
    with pytest.raises(FileNotFoundError, match=r"of \d+ KiCad mesh files are missing.*kicad-packages3d"):
        kicad_part_segment_meshes("val", root=tmp_path)
    if not Path(d["metadata"]["mesh_root"]).is_dir():
        pytest.skip("Debian package kicad-packages3d not installed: the mesh-level check needs it")
    paths = kicad_part_segment_meshes("val")
    assert [p.suffix for p in paths] == [".wrl"] * len(d["model_path"])
    assert [str(p.relative_to(d["metadata"]["mesh_root"])) for p in paths] == [str(m) for m in d["model_path"]]
