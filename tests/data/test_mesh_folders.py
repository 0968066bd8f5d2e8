"""equivox.data.mesh_folders / meshes: unusable files are skipped and named, thin parts fall back to fill,
an unusable voxel cache warns and continues; the user's files are unchanged."""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh

from equivox import cache
from equivox.data import DataError, DataWarning, MeshFolderVoxels, voxelize_mesh
from equivox.training import TrainConfig, build_datasets



TINY_CLS = dict(task="classify", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,),
                epochs=1, batch_size=4, progress=False, accelerator="cpu")


def _hashes(folder: Path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Reset equivox's warn-once memory so this test sees its own cache warnings."""
    monkeypatch.setattr(cache, "_warned", set())


def _mesh_folder(root: Path) -> Path:
    for name, make in {"box": lambda k: trimesh.creation.box(extents=[1.0, 0.6 + 0.1 * k, 0.4]),
                       "ball": lambda k: trimesh.creation.icosphere(subdivisions=1)}.items():
        for split in ("train", "test"):
            d = root / name / split
            d.mkdir(parents=True)
            for k in range(3):
                (d / f"{name}_{k}.off").write_text(trimesh.exchange.off.export_off(make(k)))
    (root / "box" / "train" / "broken.off").write_text("OFF\n3 1 0\n0 0 0\n")
    (root / "ball" / "train" / "flat.off").write_text("OFF\n0 0 0\n")  # a valid header, no faces
    return root


def test_thin_watertight_part_auto_falls_back_to_fill():
    thin = trimesh.creation.box(extents=[1.0, 1.0, 0.01])  # a BGA-package-like plate: 0.3 voxel thick at 32^3
    assert thin.is_watertight
    with pytest.raises(DataError, match="empty grid"):
        voxelize_mesh(thin, size=32, method="inside")
    occ = voxelize_mesh(thin, size=32, method="auto")
    np.testing.assert_array_equal(occ, voxelize_mesh(thin, size=32, method="fill"))
    assert occ.sum() >= 30 * 30


def test_mesh_folder_skips_unusable_files_names_them_and_counts_them(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path / "cache"))  # build_datasets' default voxel cache
    root = _mesh_folder(tmp_path / "shapes")
    before = _hashes(root)
    with pytest.warns(DataWarning) as rec:
        ds = MeshFolderVoxels(root, "train", size=12, cache_dir=tmp_path / "vc", progress=False)
    msgs = [str(w.message) for w in rec if issubclass(w.category, DataWarning)]
    assert len(msgs) == 2
    assert any("broken.off" in m and "cannot read mesh" in m for m in msgs), msgs
    assert any("flat.off" in m and "empty (no faces)" in m for m in msgs), msgs
    assert len(ds) == 6 and len(ds.skipped) == 2 and ds.class_names == ["ball", "box"]
    assert [f.name for f in ds.files].count("broken.off") == 0 and list(ds.labels) == [0, 0, 0, 1, 1, 1]
    # from the cache: the same files skipped and warned about again
    with pytest.warns(DataWarning, match="broken.off"):
        again = MeshFolderVoxels(root, "train", size=12, cache_dir=tmp_path / "vc", progress=False)
    np.testing.assert_array_equal(again.voxels, ds.voxels)
    with pytest.raises(DataError, match=r"flat\.off is empty \(no faces\)"):  # the first unusable file, sorted
        MeshFolderVoxels(root, "train", size=12, cache_dir=tmp_path / "vc2", progress=False, strict=True)
    # the training data path reports the count (FitResult.skipped_files comes from it)
    with pytest.warns(DataWarning):
        train, val, info = build_datasets(TrainConfig(**{**TINY_CLS, "dataset": str(root), "input_size": None}))
    assert len(info.extra["skipped_files"]) == 2 and len(train) == 6 and len(val) == 6
    assert _hashes(root) == before


def test_voxel_cache_in_an_unusable_folder_warns_and_continues(tmp_path, fresh_warnings):
    root = _mesh_folder(tmp_path / "shapes")
    (tmp_path / "afile").write_text("x")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = MeshFolderVoxels(root, "test", size=8, cache_dir=tmp_path / "afile" / "cache", progress=False)
    assert len(ds) == 6
    cw = [w for w in rec if issubclass(w.category, cache.CacheWarning)]
    assert len(cw) == 1 and "could not write voxel cache" in str(cw[0].message)


# ------------------------------------------------------------------------------------------- 5. NIfTI
