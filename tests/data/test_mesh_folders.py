"""equivox.data.mesh_folders: ModelNet-style class folders voxelize into a dataset with a voxel cache (reused,
rebuilt when corrupt or when a file changed, written with equivox.cache's atomic write); unusable files are skipped
and named, bad folders are refused, an unusable voxel cache warns and continues; the user's files are unchanged."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from equivox import cache
from equivox.data import (DataError, DataWarning, MeshFolderVoxels, ModelNetVoxels, load_mesh, voxelize_files,
                          voxelize_mesh)
from equivox.training import TrainConfig, build_datasets


TINY_CLS = dict(task="classify", input_size=8, channels=(2, 2), strides=(2,), convs_per_level=1, hidden_features=(8,),
                epochs=1, batch_size=4, progress=False, accelerator="cpu")


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


def test_mesh_folder_skips_unusable_files_names_them_and_counts_them(tmp_path, monkeypatch, file_hashes):
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path / "cache"))  # build_datasets' default voxel cache
    root = _mesh_folder(tmp_path / "shapes")
    before = file_hashes(root)
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
    assert file_hashes(root) == before


def test_voxel_cache_in_an_unusable_folder_warns_and_continues(tmp_path, fresh_warnings):
    root = _mesh_folder(tmp_path / "shapes")
    (tmp_path / "afile").write_text("x")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = MeshFolderVoxels(root, "test", size=8, cache_dir=tmp_path / "afile" / "cache", progress=False)
    assert len(ds) == 6
    cw = [w for w in rec if issubclass(w.category, cache.CacheWarning)]
    assert len(cw) == 1 and "could not write voxel cache" in str(cw[0].message)


def _modelnet(root: Path):
    shapes = {
        "box": lambda k: trimesh.creation.box(extents=[1.0, 0.5 + 0.1 * k, 0.3]),
        "sphere": lambda k: trimesh.creation.icosphere(subdivisions=1 + k % 2),
    }
    for name, make in shapes.items():
        for split, n in (("train", 3), ("test", 2)):
            d = root / name / split
            d.mkdir(parents=True)
            for k in range(n):
                (d / f"{name}_{k:04d}.off").write_text(trimesh.exchange.off.export_off(make(k)))
    (root / "README.txt").write_text("not a class")


def test_modelnet_folder_dataset_and_cache(tmp_path, caplog, file_hashes):
    root = tmp_path / "ModelNet2"
    _modelnet(root)
    before = file_hashes(root)
    cache = tmp_path / "cache"
    ds = ModelNetVoxels(root, "train", size=12, cache_dir=cache, progress=False)
    assert ds.class_names == ["box", "sphere"] and len(ds) == 6 and ds.num_classes == 2
    item = ds[4]
    assert item["image"].shape == (1, 12, 12, 12) and item["image"].dtype == torch.float32
    assert item["label"] == 1 and set(item["image"].unique().tolist()) == {0.0, 1.0}
    expect = voxelize_mesh(load_mesh(ds.files[4]), size=12, margin=1)
    np.testing.assert_array_equal(item["image"][0].numpy().astype(bool), expect)
    assert ds.cache_file.exists() and ds.cache_file.parent == cache
    # second load comes from the cache (same voxels), test split gets its own cache file
    stamp = ds.cache_file.stat().st_mtime_ns
    ds2 = ModelNetVoxels(root, "train", size=12, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(ds2.voxels, ds.voxels)
    assert ds.cache_file.stat().st_mtime_ns == stamp
    test = ModelNetVoxels(root, "test", size=12, cache_dir=cache, progress=False)
    assert len(test) == 4 and test.cache_file != ds.cache_file
    # corrupt cache is rebuilt, not trusted
    ds.cache_file.write_bytes(b"corrupt")
    ds3 = ModelNetVoxels(root, "train", size=12, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(ds3.voxels, ds.voxels)
    assert ds.cache_file.read_bytes() != b"corrupt"
    # a changed file invalidates the cache
    f = ds.files[0]
    f.write_text(trimesh.exchange.off.export_off(trimesh.creation.box(extents=[1.0, 1.0, 1.0])))
    os.utime(f, ns=(stamp + 10**9, stamp + 10**9))
    ds4 = ModelNetVoxels(root, "train", size=12, cache_dir=cache, progress=False)
    assert ds4.voxels[0].sum() == 10**3 and not np.array_equal(ds4.voxels[0], ds.voxels[0])
    # transforms apply to the dictionary
    ds5 = ModelNetVoxels(root, "train", size=12, cache_dir=cache, progress=False,
                         transform=lambda d: {**d, "image": d["image"] * 2})
    assert ds5[0]["image"].max() == 2.0
    # other files untouched (only the one we rewrote changed)
    after = file_hashes(root)
    assert all(after[p] == h for p, h in before.items() if p != f)


def test_modelnet_bad_folders(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        ModelNetVoxels(tmp_path / "nothing", progress=False)
    (tmp_path / "ds" / "chair" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no mesh files"):
        ModelNetVoxels(tmp_path / "ds", progress=False, cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="no '<class>/test/' folders"):
        ModelNetVoxels(tmp_path / "ds", "test", progress=False, cache_dir=tmp_path / "c")
    (tmp_path / "ds" / "chair" / "train" / "broken.off").write_text("OFF\n3 1 0\n0 0 0\n")
    with pytest.raises(DataError, match="broken.off"):
        voxelize_files([tmp_path / "ds" / "chair" / "train" / "broken.off"], size=8, progress=False)


def test_voxel_cache_uses_the_cache_modules_atomic_write(tmp_path, monkeypatch):
    import inspect

    import equivox.cache
    from equivox.data import mesh_folders

    for module in ("meshes", "arrays", "medmnist", "mesh_folders"):  # the voxel modules: none writes files itself
        src = inspect.getsource(__import__(f"equivox.data.{module}", fromlist=["x"]))
        assert "os.replace" not in src and "mkstemp" not in src and "def atomic_write" not in src, module
    calls = []
    real = equivox.cache.atomic_write

    def spy(path, write):
        calls.append(Path(path))
        return real(path, write)

    assert mesh_folders.atomic_write is equivox.cache.atomic_write  # imported, not a copy
    monkeypatch.setattr(mesh_folders, "atomic_write", spy)
    mesh = tmp_path / "box.stl"
    trimesh.creation.box().export(str(mesh))
    cache = tmp_path / "cache" / "v.npz"
    vox, skipped = voxelize_files([mesh], size=8, cache_file=cache, progress=False)
    assert calls == [cache] and cache.is_file() and vox.shape == (1, 8, 8, 8) and not skipped
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
