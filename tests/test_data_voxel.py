"""Voxel-grid loaders of equivox.data: arrays, binvox, MedMNIST npz, mesh voxelization, ModelNet folders."""
import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from equivox.data import (
    DataError,
    MedMNIST3D,
    ModelNetVoxels,
    load_array,
    load_medmnist3d,
    load_mesh,
    load_voxel_file,
    read_binvox,
    voxelize_files,
    voxelize_mesh,
    write_binvox,
)


def _hashes(folder: Path):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_npy_npz_roundtrip(tmp_path):
    a = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "one.npz", vol=a)
    np.savez(tmp_path / "two.npz", x=a, y=a[:, :, :2])
    np.testing.assert_array_equal(load_voxel_file(tmp_path / "a.npy"), a)
    np.testing.assert_array_equal(load_array(tmp_path / "one.npz"), a)
    np.testing.assert_array_equal(load_voxel_file(tmp_path / "two.npz", key="x"), a)
    before = _hashes(tmp_path)
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
    after = _hashes(tmp_path)
    assert all(after[p] == h for p, h in before.items())


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


def test_medmnist_npz(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {}
    for split, n in (("train", 5), ("val", 2), ("test", 3)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1))
    np.savez(tmp_path / "organmnist3d.npz", **arrays)
    imgs, labels = load_medmnist3d(tmp_path / "organmnist3d.npz", "val")
    assert imgs.shape == (2, 28, 28, 28) and labels.shape == (2,) and labels.dtype == np.int64
    ds = MedMNIST3D(tmp_path / "organmnist3d.npz", "test")
    item = ds[1]
    assert len(ds) == 3 and item["image"].shape == (1, 28, 28, 28) and item["image"].dtype == torch.float32
    np.testing.assert_allclose(item["image"][0].numpy(), arrays["test_images"][1] / 255.0, atol=1e-7)
    assert item["label"] == int(arrays["test_labels"][1, 0])
    np.savez(tmp_path / "partial.npz", train_images=arrays["train_images"])
    with pytest.raises(DataError, match=r"missing \['train_labels'\]"):
        load_medmnist3d(tmp_path / "partial.npz", "train")
    np.savez(tmp_path / "short.npz", train_images=arrays["train_images"], train_labels=arrays["train_labels"][:2])
    with pytest.raises(DataError, match="5 train images but 2 labels"):
        load_medmnist3d(tmp_path / "short.npz")


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


def test_modelnet_folder_dataset_and_cache(tmp_path, caplog):
    root = tmp_path / "ModelNet2"
    _modelnet(root)
    before = _hashes(root)
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
    after = _hashes(root)
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


# one module per job: meshes, arrays, MedMNIST, mesh folders (the old voxel_grids module is gone)
MODULE_JOBS = {
    "meshes": {"MESH_EXTENSIONS", "load_mesh", "parse_vrml", "parse_vrml_shapes", "mesh_to_grid_coordinates",
               "voxelize_mesh"},
    "arrays": {"load_array", "load_voxel_file"},
    "medmnist": {"load_medmnist3d", "MedMNIST3D"},
    "mesh_folders": {"mesh_folder_items", "voxelize_files", "MeshFolderVoxels", "ModelNetVoxels"},
}


@pytest.mark.parametrize("module", sorted(MODULE_JOBS))
def test_voxel_modules_hold_one_job_each_and_are_reexported(module):
    import importlib

    import equivox.data as data

    mod = importlib.import_module(f"equivox.data.{module}")
    assert set(mod.__all__) == MODULE_JOBS[module]
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert getattr(data, name) is obj and name in data.__all__
        if callable(obj) and not isinstance(obj, tuple):
            assert obj.__module__ == mod.__name__ and obj.__doc__, name  # defined here, documented
    other = set().union(*(v for k, v in MODULE_JOBS.items() if k != module))
    # nothing of another job lives here (arrays and mesh folders use the mesh basics)
    assert not other & (set(vars(mod)) - {"MESH_EXTENSIONS", "load_mesh", "voxelize_mesh"})


def test_voxel_cache_uses_the_cache_modules_atomic_write(tmp_path, monkeypatch):
    import inspect

    import equivox.cache
    from equivox.data import mesh_folders

    for module in MODULE_JOBS:
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
