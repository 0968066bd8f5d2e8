"""Tests of data_scripts/: parsing/extraction on tiny files in the real formats, and
download failure behaviour with a mocked (offline) network. Never touches the network."""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "data_scripts"
sys.path.insert(0, str(SCRIPTS))

import _download  # noqa: E402
import build_furniture_shapes as furn  # noqa: E402
import build_lidc_nodules as lidc  # noqa: E402
import download_decathlon as msd  # noqa: E402
import download_medmnist3d as mm  # noqa: E402
import download_modelnet10 as mn  # noqa: E402


@pytest.fixture(autouse=True)
def _no_pkg_resources_stand_in_left_behind():
    """The LIDC builds install a ``pkg_resources`` stand-in for pylidc; later tests in the same process must not
    see it (pytest's ``syspath_prepend`` calls into a real ``pkg_resources`` when one is imported)."""
    had = "pkg_resources" in sys.modules
    yield
    if not had:
        sys.modules.pop("pkg_resources", None)


CUBE_OFF = """OFF
# a unit cube
8 6 0
0 0 0
1 0 0
1 1 0
0 1 0
0 0 1
1 0 1
1 1 1
0 1 1
4 0 3 2 1
4 4 5 6 7
4 0 1 5 4
4 1 2 6 5
4 2 3 7 6
4 3 0 4 7
"""
# ModelNet quirk: counts glued to the header; a flat box 2 x 1 x 0.5
BOX_OFF_QUIRK = "OFF8 12 0\n" + "\n".join(
    f"{x} {y} {z}" for x, y, z in
    [(0, 0, 0), (2, 0, 0), (2, 1, 0), (0, 1, 0), (0, 0, .5), (2, 0, .5), (2, 1, .5), (0, 1, .5)]
) + "\n" + "\n".join(f"3 {a} {b} {c}" for a, b, c in
                     [(0, 2, 1), (0, 3, 2), (4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4),
                      (1, 2, 6), (1, 6, 5), (2, 3, 7), (2, 7, 6), (3, 0, 4), (3, 4, 7)]) + "\n"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any real network call fails the test."""
    def boom(*a, **k):
        raise AssertionError("test tried to use the real network")

    monkeypatch.setattr("urllib.request.urlopen", boom)
    monkeypatch.setattr("socket.create_connection", boom)


# --------------------------------------------------------------------------- ModelNet
def test_parse_off_standard_and_quirk():
    v, f = mn.parse_off(CUBE_OFF)
    assert v.shape == (8, 3) and f.shape == (12, 3)  # quads fan-triangulated
    v2, f2 = mn.parse_off(BOX_OFF_QUIRK)
    assert v2.shape == (8, 3) and f2.shape == (12, 3)
    assert np.allclose(v2.max(0), [2, 1, .5])
    with pytest.raises(ValueError, match="OFF"):
        mn.parse_off("PLY\n")
    with pytest.raises(ValueError, match="truncated"):
        mn.parse_off("OFF\n8 6 0\n0 0 0\n")
    with pytest.raises(ValueError, match="out of range"):
        mn.parse_off("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n")


def _modelnet_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for cls, off in (("bed", BOX_OFF_QUIRK), ("chair", CUBE_OFF)):
            for sp, n in (("train", 2), ("test", 1)):
                for i in range(n):
                    z.writestr(f"ModelNet10/{cls}/{sp}/{cls}_{i + 1:04d}.off", off)
        z.writestr("__MACOSX/ModelNet10/bed/train/._bed_0001.off", "junk")
        z.writestr("ModelNet10/README.txt", "readme")
    return path


def test_iter_modelnet_zip(tmp_path):
    zp = _modelnet_zip(tmp_path / "ModelNet10.zip")
    items = list(mn.iter_modelnet_zip(zp))
    assert len(items) == 6
    assert {(i["class"], i["split"]) for i in items} == {
        ("bed", "train"), ("bed", "test"), ("chair", "train"), ("chair", "test")}
    assert [i["name"] for i in items if i["split"] == "train" and i["class"] == "bed"] == [
        "bed_0001", "bed_0002"]
    assert len(list(mn.iter_modelnet_zip(zp, split="test"))) == 2
    assert len(list(mn.iter_modelnet_zip(zp, limit_per_class=1))) == 4


def test_build_modelnet_npz(tmp_path):
    zp = _modelnet_zip(tmp_path / "ModelNet10.zip")
    s = mn.build_modelnet_npz(zp, tmp_path / "mn.npz", size=16, progress=False)
    assert s["n"] == 6 and not s["failed"]
    assert s["per_class"] == {"bed": {"train": 2, "test": 1}, "chair": {"train": 2, "test": 1}}
    z = np.load(tmp_path / "mn.npz")
    vox = np.unpackbits(z["voxels_packed"], axis=1, count=16 ** 3).reshape(-1, 16, 16, 16)
    assert list(z["class_names"]) == ["bed", "chair"]
    cube = vox[list(z["label"]).index(1)]
    box = vox[list(z["label"]).index(0)]
    # the longest side spans 14 voxels (+-1 discretisation), within the 1-voxel margin;
    # a cube is filled; the 2 x 1 x 0.5 box keeps its aspect ratio
    c_ext = np.ptp(np.argwhere(cube), axis=0) + 1
    assert len(set(c_ext)) == 1 and 13 <= c_ext[0] <= 14 and cube.sum() == c_ext.prod()
    ext = np.ptp(np.argwhere(box), axis=0) + 1
    assert 13 <= ext[0] <= 14 and abs(ext[1] - ext[0] / 2) <= 1 and abs(ext[2] - ext[0] / 4) <= 1
    assert not vox[:, 0].any() and not vox[:, -1].any()


def test_bad_zip_layout(tmp_path):
    zp = tmp_path / "x.zip"
    with zipfile.ZipFile(zp, "w") as z:
        z.writestr("foo/bar.off", CUBE_OFF)
    with pytest.raises(ValueError, match="no ModelNet10"):
        list(mn.iter_modelnet_zip(zp))


# --------------------------------------------------------------------------- MedMNIST
def _medmnist_npz(path: Path, size=28, n=(5, 2, 3), n_classes=2):
    rng = np.random.default_rng(0)
    arrays = {}
    for s, k in zip(("train", "val", "test"), n):
        arrays[f"{s}_images"] = rng.integers(0, 255, (k, size, size, size), dtype=np.uint8)
        arrays[f"{s}_labels"] = rng.integers(0, n_classes, (k, 1)).astype(np.uint8)
    np.savez_compressed(path, **arrays)
    return path


def test_load_medmnist3d_npz(tmp_path):
    p = _medmnist_npz(tmp_path / "nodulemnist3d.npz")
    d = mm.load_medmnist3d_npz(p, n_classes=2)
    assert set(d) == {"train", "val", "test"}
    assert d["train"]["images"].shape == (5, 28, 28, 28) and d["train"]["images"].dtype == np.uint8
    assert d["val"]["labels"].shape == (2,) and d["val"]["labels"].dtype == np.int64
    with pytest.raises(ValueError, match="labels outside"):
        mm.load_medmnist3d_npz(_medmnist_npz(tmp_path / "o.npz", n_classes=5), n_classes=2)


def test_medmnist_bad_files(tmp_path):
    np.savez(tmp_path / "a.npz", train_images=np.zeros((2, 28, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="missing"):
        mm.load_medmnist3d_npz(tmp_path / "a.npz")
    bad = {f"{s}_{k}": np.zeros((2, 28, 28) if k == "images" else (2, 1), np.uint8)
           for s in ("train", "val", "test") for k in ("images", "labels")}
    np.savez(tmp_path / "b.npz", **bad)
    with pytest.raises(ValueError, match="expected \\(N, S, S, S\\)"):
        mm.load_medmnist3d_npz(tmp_path / "b.npz")


def test_medmnist_urls():
    url, md5 = mm.url_and_md5("organmnist3d", 64)
    assert url.startswith("https://zenodo.org/records/") and "organmnist3d_64.npz" in url
    assert len(md5) == 32
    with pytest.raises(ValueError):
        mm.url_and_md5("pathmnist")


# --------------------------------------------------------------------------- Decathlon
def _nifti_bytes(arr, affine=np.diag([1.5, 1.5, 3.0, 1.0])):
    import nibabel as nib

    img = nib.Nifti1Image(arr, affine)
    return img.to_bytes()


def _decathlon_tar(path: Path, task="Task09_Spleen", n=2, extra_members=()):
    import gzip

    meta = {"name": "Spleen", "labels": {"0": "background", "1": "spleen"},
            "numTraining": n, "numTest": 1,
            "training": [{"image": f"./imagesTr/spleen_{i}.nii.gz",
                          "label": f"./labelsTr/spleen_{i}.nii.gz"} for i in range(n)],
            "test": ["./imagesTs/spleen_99.nii.gz"]}
    files = {f"{task}/dataset.json": json.dumps(meta).encode()}
    rng = np.random.default_rng(0)
    for i in range(n):
        files[f"{task}/imagesTr/spleen_{i}.nii.gz"] = gzip.compress(
            _nifti_bytes(rng.integers(-1000, 1000, (8, 8, 4)).astype(np.int16)))
        files[f"{task}/labelsTr/spleen_{i}.nii.gz"] = gzip.compress(
            _nifti_bytes((rng.random((8, 8, 4)) > .7).astype(np.uint8)))
        files[f"{task}/imagesTr/._spleen_{i}.nii.gz"] = b"mac resource fork"
    files[f"{task}/imagesTs/spleen_99.nii.gz"] = gzip.compress(_nifti_bytes(np.zeros((8, 8, 4), np.int16)))
    with tarfile.open(path, "w") as tf:
        for name, data in list(files.items()) + list(extra_members):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return path


def test_extract_and_index_decathlon(tmp_path):
    import nibabel as nib

    tar = _decathlon_tar(tmp_path / "Task09_Spleen.tar")
    task_dir = msd.extract_decathlon_tar(tar, tmp_path / "out")
    assert task_dir == tmp_path / "out" / "Task09_Spleen"
    assert not list(task_dir.rglob("._*")), "macOS junk must be skipped"
    items = msd.read_decathlon_index(task_dir)
    assert len(items) == 2 and set(items[0]) == {"image", "label"}
    img = nib.load(items[1]["image"])
    assert img.shape == (8, 8, 4) and np.allclose(img.header.get_zooms(), (1.5, 1.5, 3.0))
    assert set(np.unique(np.asarray(nib.load(items[1]["label"]).dataobj))) <= {0, 1}
    assert msd.read_decathlon_index(task_dir, "test")[0]["image"].endswith("spleen_99.nii.gz")
    assert msd.decathlon_labels(task_dir) == {0: "background", 1: "spleen"}
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".extract-")]
    # second call reuses the extraction
    assert msd.extract_decathlon_tar(tar, tmp_path / "out") == task_dir


def test_decathlon_missing_files_and_unsafe_tar(tmp_path):
    tar = _decathlon_tar(tmp_path / "t.tar")
    task_dir = msd.extract_decathlon_tar(tar, tmp_path / "o")
    (task_dir / "labelsTr" / "spleen_0.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        msd.read_decathlon_index(task_dir)
    evil = _decathlon_tar(tmp_path / "evil.tar", extra_members=[("Task09_Spleen/../../evil.txt", b"x")])
    with pytest.raises(ValueError, match="unsafe"):
        msd.extract_decathlon_tar(evil, tmp_path / "o2")
    assert not (tmp_path / "evil.txt").exists()


# --------------------------------------------------------------------------- downloads
def test_download_offline_fails_fast_with_clear_message(tmp_path, monkeypatch):
    calls = []

    def offline(req, timeout=None):
        calls.append(timeout)
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(_download.time, "sleep", lambda s: None)
    dest = tmp_path / "Task09_Spleen.tar"
    with pytest.raises(_download.DownloadError) as ei:
        msd.download_decathlon("Task09_Spleen", tmp_path, opener=offline, retries=1)
    msg = str(ei.value)
    assert "msd-for-monai" in msg and "Task09_Spleen.tar" in msg
    assert "offline" in msg and str(dest) in msg and msd.MD5["Task09_Spleen"] in msg
    assert len(calls) == 2 and all(t is not None and t > 0 for t in calls)
    assert not dest.exists()


def test_medmnist_and_modelnet_offline(tmp_path, monkeypatch):
    def offline(req, timeout=None):
        raise TimeoutError("timed out")

    monkeypatch.setattr(_download.time, "sleep", lambda s: None)
    with pytest.raises(_download.DownloadError, match="nodulemnist3d.npz"):
        mm.download_medmnist3d("nodulemnist3d", tmp_path, opener=offline, retries=0)
    monkeypatch.setenv("EQUIVOX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(_download.urllib.request, "urlopen", offline)
    with pytest.raises(SystemExit, match="could not download .*ModelNet10.zip"):
        mn.main(["--timeout", "1"])


class _FakeResponse(io.BytesIO):
    def __init__(self, data, status=200):
        super().__init__(data)
        self.status = status
        self.headers = {"Content-Length": str(len(data))}

    def getcode(self):
        return self.status


def test_download_resume_checksum_atomic(tmp_path):
    payload = bytes(range(256)) * 1000
    md5 = hashlib.md5(payload).hexdigest()
    dest = tmp_path / "f.bin"
    part = tmp_path / "f.bin.part"
    part.write_bytes(payload[:1000])  # interrupted earlier download
    seen = []

    def server(req, timeout=None):
        rng = req.get_header("Range")
        seen.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        return _FakeResponse(payload[start:], status=206 if rng else 200)

    out = _download.download("https://example.org/f.bin", dest, md5=md5, opener=server,
                             progress=False)
    assert out == dest and dest.read_bytes() == payload and not part.exists()
    assert seen == ["bytes=1000-"]
    # existing verified file: no network at all
    assert _download.download("https://example.org/f.bin", dest, md5=md5, opener=None,
                              progress=False) == dest


def test_download_checksum_mismatch_leaves_no_file(tmp_path):
    def server(req, timeout=None):
        return _FakeResponse(b"corrupted")

    dest = tmp_path / "g.bin"
    with pytest.raises(_download.DownloadError, match="md5 mismatch"):
        _download.download("https://example.org/g.bin", dest, md5="0" * 32, opener=server,
                           progress=False)
    assert not dest.exists() and not (tmp_path / "g.bin.part").exists()


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.delenv("EQUIVOX_DATA_DIR", raising=False)
    monkeypatch.setenv("EQUIVOX_CACHE_DIR", str(tmp_path))
    assert _download.data_root() == tmp_path / "datasets"
    monkeypatch.setenv("EQUIVOX_DATA_DIR", str(tmp_path / "d"))
    assert _download.data_root() == tmp_path / "d"


# --------------------------------------------------------------------------- build helpers
def test_lidc_fit_to_grid_and_split():
    # ellipsoid nodule, anisotropic voxels 0.7 x 0.7 x 2.5 mm, 10 x 10 x 10 mm -> ~10 voxels wide
    ii, jj, kk = np.meshgrid(np.arange(30), np.arange(30), np.arange(10), indexing="ij")
    m = ((ii - 15) * .7) ** 2 + ((jj - 15) * .7) ** 2 + ((kk - 5) * 2.5) ** 2 <= 25
    g, v, ext = lidc.fit_to_grid(m, (0.7, 0.7, 2.5), size=32)
    assert g.shape == (32, 32, 32) and v == 1.0
    vol = g.sum() * v ** 3
    assert abs(vol - 4 / 3 * np.pi * 125) / (4 / 3 * np.pi * 125) < 0.25
    idx = np.argwhere(g)
    assert np.all(np.abs(idx.mean(0) - 15.5) < 1.0)
    big = np.ones((100, 100, 20), bool)  # 70 x 70 x 50 mm -> scaled down to fit
    g2, v2, _ = lidc.fit_to_grid(big, (0.7, 0.7, 2.5), size=32)
    assert v2 == pytest.approx(70 / 30) and not g2[0].any() and not g2[-1].any()
    pids = [f"P{i % 37}" for i in range(200)]
    s1, s2 = lidc.split_by_patient(pids, seed=0), lidc.split_by_patient(pids, seed=0)
    assert (s1 == s2).all()
    by = {s: {p for p, x in zip(pids, s1) if x == s} for s in ("train", "val", "test")}
    assert not (by["train"] & by["test"]) and not (by["train"] & by["val"])


def test_furniture_catalog_parsing_and_classes():
    text = ("# comment\nid=X\nlicense=Creative Commons Attribution 3.0\n"
            "name#1=Desk lamp\nmodel#1=/a/lamp.obj\nname#2=Caf\\u00e9 table\nmodel#2=/a/t.obj\n"
            "modelRotation#2=1 0 0 0 0 1 0 -1 0\nlong=a\\\n  b\n")
    p = furn.parse_properties(text)
    assert p["name#2"] == "Café table" and p["long"] == "ab" and p["license"].startswith("Creative")
    assert furn.classify("Desk lamp") == "lamp"
    assert furn.classify("Glass door cabinet") == "storage"
    assert furn.classify("Bedside table") == "table"
    assert furn.classify("Bunk bed") == "bed"
    assert furn.classify("Armchair") == "chair"
    assert furn.classify("Window blind") is None and furn.classify("Doormat") is None
    assert furn.classify("Wheelchair") is None and furn.classify("Toaster") is None


def test_furniture_read_catalog_from_tiny_sh3f(tmp_path):
    import trimesh

    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    obj = trimesh.exchange.obj.export_obj(box)
    props = ("id=T\nname=Tiny\nlicense=Public domain\n"
             "id#1=T#bench\nname#1=Bench table\ncategory#1=Living room\nmodel#1=/t/bench.obj\n"
             "creator#1=me\nmodelRotation#1=1 0 0 0 0 1 0 -1 0\n")
    sh3f = tmp_path / "Tiny.sh3f"
    with zipfile.ZipFile(sh3f, "w") as z:
        z.writestr("PluginFurnitureCatalog.properties", props)
        z.writestr("t/bench.obj", obj)
    info, entries = furn.read_catalog(sh3f)
    assert info["license"] == "Public domain" and len(entries) == 1
    e = entries[0]
    assert e["model"] == "t/bench.obj" and e["rotation"].shape == (3, 3)
    assert furn.classify(e["name"]) == "table"
    with zipfile.ZipFile(sh3f) as z:
        g = furn.process_entry(z, e, 32)
    ext = np.ptp(np.argwhere(g), axis=0) + 1
    # rotation maps z->y (up): extents (x 2, y 1, z .5) -> (x 2, y -.5, z 1); axes (up, depth, width)
    # surface voxels round outwards: thin sides can gain up to 2 voxels
    assert 29 <= ext[2] <= 30 and abs(ext[1] - ext[2] / 2) <= 2 and abs(ext[0] - ext[2] / 4) <= 2
    assert g.sum() == ext.prod()  # a filled box
    assert not g[0].any() and not g[-1].any() and not g[:, :, 0].any() and not g[:, :, -1].any()


# --------------------------------------------------------------------------- KiCad parts (VRML)
import build_brain_atlas as brain  # noqa: E402
import build_kicad_parts as kicad  # noqa: E402


def _box_wrl(sx: float, sy: float, sz: float, x0: float = 0.0, extra: str = "") -> str:
    """A closed box [x0, x0+sx] x [0, sy] x [0, sz] as one IndexedFaceSet of quads (kicad StepUp layout:
    coordIndex before coord, comma separated, a material DEF and a USE), plus ``extra`` shapes."""
    pts = [(x0 + x, y, z) for z in (0, sz) for y in (0, sy) for x in (0, sx)]
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    return ("#VRML V2.0 utf8\n# kicad StepUp wrl exported\n"
            "Shape {\n appearance Appearance {material DEF BODY-01 Material {\n diffuseColor 0.1 0.1 0.1\n }\n}\n}\n"
            "Shape { geometry IndexedFaceSet\n{ creaseAngle 0.50 coordIndex ["
            + ",".join(f"{a},{b},{c},{d},-1" for a, b, c, d in quads) + "]\ncoord Coordinate { point ["
            + ",".join(f"{x:.3f} {y:.3f} {z:.3f}" for x, y, z in pts) + "]\n}}\n"
            "appearance Appearance{material USE BODY-01 }\n}\n" + extra)


_TRIANGLE_SHAPE = ("Shape { geometry IndexedFaceSet\n{ coordIndex [0,1,2]\ncoord Coordinate { point "
                   "[5 5 5,6 5 5,5 6 5]\n}}}\n")


def test_parse_vrml_quads_offsets_and_errors():
    from equivox.data import DataError, parse_vrml

    v, f = parse_vrml(_box_wrl(2.0, 1.0, 0.5, extra=_TRIANGLE_SHAPE))
    assert v.shape == (11, 3) and f.shape == (13, 3)  # 6 quads -> 12 triangles, + 1 (no trailing -1)
    assert f[0].tolist() == [0, 2, 3] and f[1].tolist() == [0, 3, 1]  # fan (c0, c1, c2), (c0, c2, c3)
    assert f[-1].tolist() == [8, 9, 10]  # indices of the second set are offset by the first set's points
    assert np.allclose(v.max(0), [6, 6, 5]) and np.allclose(v[:8].max(0), [2, 1, 0.5])
    with pytest.raises(DataError, match="VRML V2.0"):
        parse_vrml("#VRML V1.0 ascii\n")
    with pytest.raises(DataError, match="Transform"):
        parse_vrml("#VRML V2.0 utf8\nTransform { children [ " + _TRIANGLE_SHAPE + "] }")
    with pytest.raises(DataError, match="refers to point 7"):
        parse_vrml("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coordIndex [0,1,7,-1] "
                   "coord Coordinate { point [0 0 0,1 0 0,0 1 0] } } }")
    with pytest.raises(DataError, match="no IndexedFaceSet"):
        parse_vrml("#VRML V2.0 utf8\nShape { }")
    with pytest.raises(DataError, match="multiple of 3"):
        parse_vrml("#VRML V2.0 utf8\nShape { geometry IndexedFaceSet { coordIndex [0,1,2] "
                   "coord Coordinate { point [0 0 0,1 0 0,0 1] } } }")


def test_load_and_voxelize_wrl_keeps_orientation(tmp_path):
    from equivox.data import load_mesh, voxelize_mesh

    p = tmp_path / "flat.wrl"
    p.write_text(_box_wrl(4.0, 2.0, 1.0))
    mesh = load_mesh(p)
    assert mesh.is_watertight and np.isclose(abs(mesh.volume), 8.0)
    g = voxelize_mesh(mesh, size=16, method="fill")
    ext = np.ptp(np.argwhere(g), axis=0) + 1
    # x (longest) spans the 14 voxels inside the margin; y half of it, z (up) a quarter; filled solid
    assert 14 <= ext[0] <= 16 and abs(ext[1] - ext[0] / 2) <= 2 and abs(ext[2] - ext[0] / 4) <= 2
    assert g.sum() == ext.prod()


def test_kicad_family_names_and_dep5_licences():
    assert kicad.family_of("Package_SO.3dshapes") == "Package_SO"
    assert kicad.family_of("Connector_PinHeader_2.54mm.3dshapes") == "Connector_PinHeader"
    assert kicad.family_of("Connector_PinSocket_1.00mm.3dshapes") == "Connector_PinSocket"
    assert kicad.family_of("Connector_Phoenix_MC_HighVoltage.3dshapes") == "Connector_Phoenix"
    assert kicad.family_of("Connector_FFC-FPC.3dshapes") == "Connector_FFC-FPC"
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: 2018-2022, KiCad Community\nLicense: CC-BY-SA-4.0-with-exception\n\n"
            "Files: Capacitor_THT.3dshapes/*\nCopyright: 2017, kicad StepUp\nLicense: GPL-3+\n"
            "Comment: generated\n\n"
            "Files: Capacitor_THT.3dshapes/C_Disc_A.wrl\n Capacitor_THT.3dshapes/C_Disc_A.step\n"
            "Copyright: 2019, Someone\nLicense: CC-BY-SA-4.0-with-exception\n\n"
            "License: GPL-3+\n On Debian systems ...\n")
    st = kicad.parse_dep5(text)
    assert len(st) == 3 and st[2][0] == ["Capacitor_THT.3dshapes/C_Disc_A.wrl", "Capacitor_THT.3dshapes/C_Disc_A.step"]
    # the last matching stanza wins
    assert kicad.licence_of("Package_SO.3dshapes/SOIC-8.wrl", st) == ("CC-BY-SA-4.0-with-exception",
                                                                      "2018-2022, KiCad Community")
    assert kicad.licence_of("Capacitor_THT.3dshapes/C_Disc_B.wrl", st) == ("GPL-3+", "2017, kicad StepUp")
    assert kicad.licence_of("Capacitor_THT.3dshapes/C_Disc_A.wrl", st)[0] == "CC-BY-SA-4.0-with-exception"


def test_kicad_split_by_hash_per_class_and_deterministic():
    paths = [f"F{c}.3dshapes/m{i}.wrl" for c in range(2) for i in range(10)]
    labels = [c for c in range(2) for _ in range(10)]
    s1 = kicad.split_by_hash(paths, labels, test=0.3, val=0.1)
    assert s1.tolist() == kicad.split_by_hash(paths, labels, test=0.3, val=0.1).tolist()
    for c in range(2):
        m = np.array(labels) == c
        assert (s1[m] == "test").sum() == 3 and (s1[m] == "val").sum() == 1 and (s1[m] == "train").sum() == 6
    # order of the input does not change which model goes where
    rev = kicad.split_by_hash(paths[::-1], labels[::-1], test=0.3, val=0.1)
    assert rev[::-1].tolist() == s1.tolist()


def _kicad_tree(root: Path) -> tuple[Path, Path]:
    """Fake /usr/share/kicad/3dmodels + debian/copyright: flat packages (Package_SO, 4 models), tall pin
    headers in two pitch folders (3 + 1 models), one lone model (dropped) and two GPL-3+ models (left out)."""
    models = root / "3dmodels"
    for folder, boxes in {
        "Package_SO.3dshapes": [(4, 3, 1), (5, 3, 1), (6, 4, 1), (4, 4, 1)],
        "Connector_PinHeader_2.54mm.3dshapes": [(1, 1, 4), (1, 2, 4), (1, 1, 5)],
        "Connector_PinHeader_1.27mm.3dshapes": [(1, 2, 5)],
        "Lonely.3dshapes": [(1, 1, 1)],
        "Capacitor_THT.3dshapes": [(2, 2, 2), (2, 3, 2)],
    }.items():
        (models / folder).mkdir(parents=True)
        for i, (sx, sy, sz) in enumerate(boxes):
            (models / folder / f"m{i}.wrl").write_text(_box_wrl(sx, sy, sz))
            (models / folder / f"m{i}.step").write_text("ISO-10303-21;")  # ignored
    (models / "Package_SO.3dshapes" / "broken.wrl").write_text("#VRML V2.0 utf8\nShape { }")
    cr = root / "copyright"
    cr.write_text("Files: *\nCopyright: 2018-2022, KiCad Community\nLicense: CC-BY-SA-4.0-with-exception\n\n"
                  "Files: Capacitor_THT.3dshapes/*\nCopyright: 2017, kicad StepUp\nLicense: GPL-3+\n")
    return models, cr


def test_build_kicad_parts_end_to_end(tmp_path):
    models, cr = _kicad_tree(tmp_path)
    out = tmp_path / "out"
    s = kicad.main(["--out", str(out), "--source", str(models), "--copyright", str(cr), "--size", "16",
                    "--min-per-class", "3", "--cap", "5", "--workers", "1", "--test-fraction", "0.25",
                    "--val-fraction", "0.25"])
    assert s["classes"] == 2 and s["voxelised"] == 8 and s["failed"] == 1  # broken.wrl recorded, not fatal
    assert s["licences_in_package"] == {"CC-BY-SA-4.0-with-exception": 10, "GPL-3+": 2}
    z = np.load(out / "kicad_parts_16.npz")
    assert list(z["class_names"]) == ["Connector_PinHeader", "Package_SO"]
    assert np.bincount(z["label"]).tolist() == [4, 4]
    assert not any(p.startswith(("Capacitor_THT", "Lonely")) for p in z["model_path"])
    assert set(z["licence"]) == {"CC-BY-SA-4.0-with-exception"}
    for c in range(2):
        assert sorted(z["split"][z["label"] == c].tolist()) == ["test", "train", "train", "val"]
    vox = np.unpackbits(z["voxels_packed"], axis=1, count=16 ** 3).reshape(-1, 16, 16, 16).astype(bool)
    # designed orientation kept: packages are flat (z thinnest), pin headers stand up (z longest)
    for g, lab in zip(vox, z["label"]):
        ext = np.ptp(np.argwhere(g), axis=0) + 1
        if z["class_names"][lab] == "Package_SO":
            assert ext[2] < ext[0] and ext[2] <= 5
        else:
            assert ext[2] == ext.max() and ext[0] < ext[2]
    # the grid is the library voxelizer's, bit for bit
    from equivox.data import load_mesh, voxelize_mesh

    i = 0
    ref = voxelize_mesh(load_mesh(models / str(z["model_path"][i])), size=16, method="fill")
    assert np.array_equal(vox[i], ref)
    meta = json.loads((out / "kicad_parts_16.json").read_text())
    assert "CC BY-SA 4.0" in meta["licence"] and meta["counts"]["per_split"] == {"train": 4, "val": 2, "test": 2}
    assert meta["files"]["kicad_parts_16.npz"]["sha256"] == hashlib.sha256(
        (out / "kicad_parts_16.npz").read_bytes()).hexdigest()


def test_build_kicad_parts_missing_source(tmp_path):
    with pytest.raises(SystemExit, match="kicad-packages3d"):
        kicad.main(["--out", str(tmp_path), "--source", str(tmp_path / "nope")])


# --------------------------------------------------------------------------- brain atlas left/right
def test_brain_lr_classes_never_mix_hemispheres():
    rows = [(1, "Precentral_L", 2001), (2, "Precentral_R", 2002), (3, "Insula_L", 3001), (4, "Insula_R", 3002),
            (5, "Cerebelum_3_L", 9021), (6, "Cerebelum_3_R", 9022), (7, "Vermis_3", 9110),
            (8, "Temporal_Pole_Mid_L", 8211), (9, "Temporal_Pole_Mid_R", 8212)]
    names = brain.lr_class_names()
    groups = brain.group_regions_lr(rows)
    name_of = {v: n for v, n, _ in rows}
    assert names[1] == "frontal_L" and names[2] == "frontal_R" and names[15] == "vermis" and len(names) == 16
    assert groups[1] == [1] and groups[2] == [2] and groups[3] == [3] and groups[4] == [4]
    assert groups[13] == [5] and groups[14] == [6] and groups[15] == [7] and groups[11] == [8]
    for c, values in groups.items():
        sides = {name_of[v][-2:] for v in values}
        want = {"_L"} if names[c].endswith("_L") else {"_R"} if names[c].endswith("_R") else set()
        assert not values or sides == want or (c == 15 and all(name_of[v].startswith("Vermis") for v in values))
    swaps = brain.lr_class_swaps()
    assert swaps == [[2 * g - 1, 2 * g] for g in range(1, 8)]
    for a, b_ in swaps:
        assert names[a][:-2] == names[b_][:-2] and {names[a][-2:], names[b_][-2:]} == {"_L", "_R"}
    with pytest.raises(ValueError, match="no hemisphere"):
        brain.group_regions_lr([(1, "Midbrain", 2001)])


def test_build_brain_atlas_lr_on_tiny_volumes(tmp_path):
    import nibabel as nib

    src = tmp_path / "src"
    src.mkdir()
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    aff[:3, 3] = [-4, -4, -4]
    t1 = np.full((8, 8, 8), 10, np.uint8)
    aal = np.zeros((8, 8, 8), np.int16)
    aal[:4, :, 4:] = 1  # Precentral_L on the low-x (left, RAS) half
    aal[4:, :, 4:] = 2  # Precentral_R
    aal[:, :, :4] = 7  # vermis
    nib.save(nib.Nifti1Image(t1, aff), str(src / "ch2.nii.gz"))
    nib.save(nib.Nifti1Image(aal, aff), str(src / "aal.nii.gz"))
    (src / "aal.nii.txt").write_text("1 Precentral_L 2001\n2 Precentral_R 2002\n7 Vermis_3 9110\n")
    out = tmp_path / "out"
    brain.main(["--out", str(out), "--source", str(src)])
    lr = np.asarray(nib.load(str(out / "brain_atlas_lr_2mm_label.nii.gz")).dataobj)
    coarse = np.asarray(nib.load(str(out / "brain_atlas_2mm_label.nii.gz")).dataobj)
    assert lr.shape == coarse.shape == (4, 4, 4)
    assert set(np.unique(lr[:2, :, 2:])) == {1} and set(np.unique(lr[2:, :, 2:])) == {2}
    assert set(np.unique(lr[:, :, :2])) == {15} and set(np.unique(coarse[:, :, :2])) == {7}
    meta = json.loads((out / "brain_atlas_lr_2mm.json").read_text())
    assert meta["class_swaps"][0] == [1, 2] and meta["labels"]["15"] == "vermis"
    assert set(meta["files"]) == {"brain_atlas_2mm_image.nii.gz", "brain_atlas_lr_2mm_label.nii.gz"}


# --------------------------------------------------------------------------- LIDC shape attributes
import types  # noqa: E402

import build_lidc_attributes as lattr  # noqa: E402


def test_lidc_attribute_labels_and_ratings_table():
    med = np.array([1, 1.5, 2, 2.5, 3, 4, 5])
    assert lattr.binary_label(med, "spiculation").tolist() == [0, 0, 1, 1, 1, 1, 1]  # >= 2
    assert lattr.binary_label(med, "margin").tolist() == [0, 0, 0, 0, 0, 1, 1]  # >= 4
    with pytest.raises(KeyError):
        lattr.binary_label(med, "texture")
    t = lattr.ratings_table([[3, 1, 2], [5], [4, 4, 4, 4, 4]])
    assert t.dtype == np.int8 and t.tolist() == [[1, 2, 3, 0], [5, 0, 0, 0], [4, 4, 4, 4]]


class _Col:
    def __init__(self, name):
        self.name = name

    def __eq__(self, value):
        return lambda obj: getattr(obj, self.name) == value

    __hash__ = object.__hash__


class _Query:
    def __init__(self, items):
        self.items = list(items)

    def order_by(self, col):
        return _Query(sorted(self.items, key=lambda s: getattr(s, col.name)))

    def filter(self, pred):
        return _Query([s for s in self.items if pred(s)])

    def first(self):
        return self.items[0] if self.items else None

    def count(self):
        return len(self.items)

    def __iter__(self):
        return iter(self.items)


def _fake_pylidc(scans):
    mod = types.ModuleType("pylidc")
    mod.Scan = type("Scan", (), {"id": _Col("id")})
    mod.query = lambda cls: _Query(scans)
    return mod


def _ann(mal, spic, lob, sph, mar):
    return types.SimpleNamespace(malignancy=mal, spiculation=spic, lobulation=lob, sphericity=sph, margin=mar)


def _scan(sid, patient, clusters):
    return types.SimpleNamespace(id=sid, patient_id=patient, cluster_annotations=lambda verbose=False: clusters)


def test_build_lidc_attributes_with_a_fake_pylidc(tmp_path, monkeypatch):
    scans = [
        _scan(2, "LIDC-IDRI-0002", [[_ann(5, 4, 3, 2, 1), _ann(4, 3, 3, 2, 2)],     # malignant, spiculated
                                    [_ann(3, 1, 1, 5, 5)]]),                       # indeterminate: dropped
        _scan(1, "LIDC-IDRI-0001", [[_ann(1, 1, 1, 5, 5), _ann(2, 1, 2, 4, 4), _ann(1, 2, 1, 5, 4)]]),
    ]
    monkeypatch.setitem(sys.modules, "pylidc", _fake_pylidc(scans))
    out = tmp_path / "bundled"
    out.mkdir()
    masks = dict(patient_id=np.array(["LIDC-IDRI-0001", "LIDC-IDRI-0002"]), scan_id=np.array([1, 2], np.int32),
                 n_annotations=np.array([3, 2], np.int8), malignancy_median=np.array([1, 4.5], np.float32),
                 split=np.array(["train", "test"]))
    np.savez(out / "lidc_nodules_32.npz", **masks)
    counts = lattr.main(["--out", str(out), "--workers", "1"])
    z = np.load(out / "lidc_attributes_32.npz")
    assert z["patient_id"].tolist() == ["LIDC-IDRI-0001", "LIDC-IDRI-0002"]
    assert z["spiculation_median"].tolist() == [1.0, 3.5] and z["margin_median"].tolist() == [4.0, 1.5]
    assert z["lobulation_ratings"].tolist() == [[1, 1, 2, 0], [3, 3, 0, 0]]
    assert counts["spiculation"]["test"] == {"not_spiculated": 0, "spiculated": 1}
    assert counts["margin"]["train"] == {"not_sharp": 0, "sharp": 1}
    meta = json.loads((out / "lidc_attributes_32.json").read_text())
    assert meta["labels"]["sphericity"]["threshold"] == 4.0 and meta["labels"]["sphericity"]["1"] == "round"
    assert meta["masks_sha256"] == hashlib.sha256((out / "lidc_nodules_32.npz").read_bytes()).hexdigest()
    # a mask file of other nodules is refused, naming the first difference
    masks["n_annotations"] = np.array([3, 4], np.int8)
    np.savez(out / "lidc_nodules_32.npz", **masks)
    with pytest.raises(SystemExit, match="nodule 1 differs"):
        lattr.main(["--out", str(out), "--workers", "1"])
    with pytest.raises(SystemExit, match="build_lidc_nodules.py"):
        lattr.main(["--out", str(tmp_path / "empty"), "--workers", "1"])


# --------------------------------------------------------------------------- KiCad part segments (materials)
import build_kicad_part_segments as kicad_seg  # noqa: E402


def test_build_kicad_part_segments_labels_materials(tmp_path):
    """Tiny KiCad-style VRML parts (epoxy bodies with PIN-01 leads, plastic headers with MET-SILVER pins): the
    build keeps kicad_parts' selection and split rule, labels metal / body / background per voxel from the
    materials, records the materials and the voxel counts per class."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
    from test_part_labels import box, vrml_shape

    models = tmp_path / "3dmodels"
    for folder, parts in {"Package_SO.3dshapes": 4, "Connector_PinHeader_2.54mm.3dshapes": 4,
                          "Lonely.3dshapes": 1}.items():
        (models / folder).mkdir(parents=True)
        for i in range(parts):
            if folder.startswith("Package"):  # flat body, leads out of both long sides
                text = (vrml_shape(*box(0, 0, 1, 6 + i, 4, 3), "IC-BODY-EPOXY-04", True)
                        + vrml_shape(*box(-2, 1.5, 0, 1, 2.5, 2), "PIN-01", True)
                        + vrml_shape(*box(5 + i, 1.5, 0, 8 + i, 2.5, 2), "PIN-01", False))
            else:  # plastic block, a tall pin through it
                text = (vrml_shape(*box(0, 0, 0, 2, 2, 2), "PLASTIC-WHITE-01", True)
                        + vrml_shape(*box(0.7, 0.7, -3, 1.3, 1.3, 6 + i), "MET-SILVER", True))
            (models / folder / f"m{i}.wrl").write_text("#VRML V2.0 utf8\n" + text)
    (models / "Package_SO.3dshapes" / "broken.wrl").write_text("#VRML V2.0 utf8\nShape { }")
    cr = tmp_path / "copyright"
    cr.write_text("Files: *\nCopyright: 2018-2022, KiCad Community\nLicense: CC-BY-SA-4.0-with-exception\n")
    out = tmp_path / "out"
    s = kicad_seg.main(["--out", str(out), "--source", str(models), "--copyright", str(cr), "--size", "16",
                        "--min-per-class", "3", "--workers", "1", "--test-fraction", "0.25", "--val-fraction",
                        "0.25"])
    assert s["families"] == 2 and s["labelled"] == 8 and s["failed"] == 1
    z = np.load(out / "kicad_part_segments_16.npz")
    assert list(z["label_names"]) == ["background", "body", "metal"]
    assert list(z["class_names"]) == ["Connector_PinHeader", "Package_SO"]
    assert z["labels"].shape == (8, 16, 16, 16) and z["labels"].dtype == np.uint8
    # the same split rule as kicad_parts, on the same paths
    assert z["split"].tolist() == kicad.split_by_hash(list(z["model_path"]), z["part_class"], 0.25, 0.25).tolist()
    for lab, fam in zip(z["labels"], z["part_class"]):
        metal = np.argwhere(lab == 2)
        assert len(metal) and (lab == 1).any()
        ext = np.ptp(metal, axis=0) + 1
        if z["class_names"][fam] == "Package_SO":  # leads at both ends along x, none in the middle
            assert ext[0] == np.ptp(np.argwhere(lab > 0)[:, 0]) + 1 and not (lab[7:9] == 2).any()
        else:  # the pin stands up along z (the designed orientation is kept) through the plastic
            assert ext[2] == 14 and ext[0] <= 2
    meta = json.loads((out / "kicad_part_segments_16.json").read_text())
    assert meta["materials"] == {"IC-BODY-EPOXY-04": 4, "PIN-01": 8, "PLASTIC-WHITE-01": 4, "MET-SILVER": 4}
    total = {c: int((z["labels"] == i).sum()) for i, c in enumerate(["background", "body", "metal"])}
    assert {c: sum(meta["counts"]["voxels_per_class"][s][c] for s in ("train", "val", "test")) for c in total} == total
    assert "CC BY-SA 4.0" in meta["licence"] and meta["task"] == "segmentation"


def test_build_kicad_part_segments_missing_source(tmp_path):
    with pytest.raises(SystemExit, match="kicad-packages3d"):
        kicad_seg.main(["--out", str(tmp_path), "--source", str(tmp_path / "nope")])
