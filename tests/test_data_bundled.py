"""Checks on the real bundled datasets (equivox/data/bundled)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_PY = ROOT / "src" / "equivox" / "data" / "bundled.py"


def _load_module():
    # the installed package must be this checkout's, and importing it must work (no fallback hiding an error)
    from equivox.data import bundled as mod

    assert Path(mod.__file__).resolve() == BUNDLED_PY, mod.__file__
    return mod


b = _load_module()
D = b.BUNDLED_DIR
NAMES = ["lidc_nodules_32", "chest_ct_3mm", "furniture_shapes_32", "brain_atlas_2mm", "kicad_parts_32",
         "kicad_part_segments_16", "brain_atlas_lr_2mm", "lidc_attributes_32"]


@pytest.fixture(scope="module")
def lidc():
    return b.load_lidc_nodules()


# --------------------------------------------------------------------------- provenance
@pytest.mark.parametrize("name", NAMES)
def test_provenance_json_and_checksums(name):
    meta = json.loads((D / f"{name}.json").read_text())
    for key in ("licence", "citation", "source_package", "build_command", "build_date", "files",
                "description", "task"):
        assert meta.get(key), f"{name}.json lacks {key}"
    assert meta["files"]
    for fname, rec in meta["files"].items():
        data = (D / fname).read_bytes()
        assert len(data) == rec["bytes"]
        assert hashlib.sha256(data).hexdigest() == rec["sha256"], f"{fname} changed since build"


def test_provenance_md_mentions_every_dataset_and_licence():
    text = (D / "PROVENANCE.md").read_text()
    for name in NAMES:
        assert name in text
    for lic in ("CC BY 3.0", "MIT", "CC0", "BSD-3-clause", "CC BY-SA 4.0"):
        assert lic in text


def test_total_size_is_small():
    total = sum(p.stat().st_size for p in D.iterdir() if p.is_file())
    assert total < 10 * 2**20, f"bundled data is {total / 2**20:.1f} MB"


def test_bundled_datasets_listing():
    listing = b.bundled_datasets()
    assert set(NAMES) <= set(listing)
    for name in NAMES:
        info = listing[name]
        assert info["available"] is True
        assert info["licence"] and info["description"] and info["loader"]
        assert info["task"] in ("classification", "segmentation")


def test_missing_file_error_is_loud():
    with pytest.raises(FileNotFoundError, match="data_scripts/build_lidc_nodules.py"):
        b.bundled_path("lidc_nodules_32_does_not_exist.npz")


# --------------------------------------------------------------------------- LIDC
def test_lidc_shapes_dtypes_labels(lidc):
    n = len(lidc["label"])
    assert n > 1000  # 1695 nodules at build time
    assert lidc["masks"].shape == (n, 32, 32, 32) and lidc["masks"].dtype == bool
    assert set(np.unique(lidc["label"])) == {0, 1}
    med = lidc["malignancy_median"]
    assert not np.any(med == 3), "indeterminate nodules must be dropped"
    assert np.all((med < 3) == (lidc["label"] == 0))
    assert np.all((med > 3) == (lidc["label"] == 1))
    assert lidc["class_names"] == ["benign", "malignant"]
    # every nodule has voxels, centred in the grid
    vox = lidc["masks"].reshape(n, -1).sum(1)
    assert vox.min() >= 1
    idx = np.argwhere(lidc["masks"][np.argmax(vox)])
    assert np.all(np.abs(idx.mean(0) - 15.5) < 3)
    # ratings are consistent with the median
    r = lidc["malignancy_ratings"].astype(float)
    for i in np.random.default_rng(0).choice(n, 50, replace=False):
        rr = r[i][r[i] > 0]
        assert len(rr) == lidc["n_annotations"][i] or lidc["n_annotations"][i] > 4
        assert np.median(rr) == med[i]
    assert np.all(lidc["voxel_size_mm"] >= 1.0)
    big = lidc["voxel_size_mm"] > 1.0
    assert np.all(lidc["extent_mm"][big] > 30.0)


def test_lidc_class_balance_report(lidc):
    counts = {s: np.bincount(lidc["label"][lidc["split"] == s], minlength=2).tolist()
              for s in ("train", "val", "test")}
    print("LIDC class balance (benign, malignant) per split:", counts)
    for s, (ben, mal) in counts.items():
        assert ben > 0 and mal > 0, f"{s} lacks a class"
        assert 0.15 < mal / (ben + mal) < 0.5
    meta = lidc["metadata"]["counts"]
    assert meta["nodules_kept"] == len(lidc["label"])
    assert meta["benign"] + meta["malignant"] == meta["nodules_kept"]


def test_lidc_split_disjoint_by_patient(lidc):
    pats = {s: set(lidc["patient_id"][lidc["split"] == s]) for s in ("train", "val", "test")}
    assert not (pats["train"] & pats["val"])
    assert not (pats["train"] & pats["test"])
    assert not (pats["val"] & pats["test"])
    assert sum(len(p) for p in pats.values()) == len(set(lidc["patient_id"]))
    assert all(p.startswith("LIDC-IDRI-") for p in pats["train"])
    # split selection returns exactly that split
    test = b.load_lidc_nodules("test")
    assert set(test["split"]) == {"test"}
    assert len(test["label"]) == int((lidc["split"] == "test").sum())


def test_lidc_bad_split():
    with pytest.raises(ValueError, match="split"):
        b.load_lidc_nodules("training")


def test_lidc_torch_dataset():
    torch = pytest.importorskip("torch")
    ds = b.LIDCNoduleDataset("val")
    item = ds[3]
    assert item["image"].shape == (1, 32, 32, 32) and item["image"].dtype == torch.float32
    assert set(torch.unique(item["image"]).tolist()) <= {0.0, 1.0}
    assert item["label"] in (0, 1) and isinstance(item["label"], int)
    assert item["patient_id"].startswith("LIDC-IDRI-")
    assert sum(ds.class_counts().values()) == len(ds)
    loader = torch.utils.data.DataLoader(ds, batch_size=8)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 1, 32, 32, 32) and batch["label"].shape == (8,)


# --------------------------------------------------------------------------- chest CT
def test_chest_ct_sample():
    s = b.load_chest_ct_sample()
    img, lab = s["image"], s["label"]
    assert img.dtype == np.int16 and img.shape == lab.shape == (120, 120, 110)
    assert -1100 <= img.min() and img.max() <= 3071
    assert img.min() <= -900, "air should be present"
    assert set(np.unique(lab)) <= set(s["label_names"]) == set(range(6))
    assert s["label_names"] == {0: "background", 1: "lungs", 2: "heart", 3: "aorta",
                                4: "liver", 5: "vertebrae"}
    assert np.allclose(s["spacing"], (3.0, 3.0, 3.0))
    assert np.allclose(np.abs(np.diag(s["affine"])[:3]), 3.0)
    assert np.allclose(s["affine"], s["label_affine"])
    assert np.allclose(s["affine"], np.array(s["metadata"]["affine"]), atol=1e-4)
    # plausible HU per organ
    hu = {n: np.median(img[lab == k]) for k, n in s["label_names"].items() if k}
    assert hu["lungs"] < -600
    assert 0 < hu["liver"] < 200  # soft tissue
    # contrast-enhanced scan: blood pool of heart and aorta well above soft tissue
    assert 150 < hu["heart"] < 600 and 150 < hu["aorta"] < 600
    assert hu["vertebrae"] > 150
    # lungs are the biggest organ, every class present
    counts = np.bincount(lab.ravel(), minlength=6)
    assert counts.min() > 1000 and counts[1] == counts[1:].max()


def test_chest_ct_torch_dataset():
    torch = pytest.importorskip("torch")
    ds = b.ChestCTDataset(repeats=2)
    assert len(ds) == 2
    item = ds[1]
    assert item["image"].shape == (1, 120, 120, 110) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 120, 120, 110)
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    with pytest.raises(IndexError):
        ds[2]


# --------------------------------------------------------------------------- brain
def test_brain_atlas_sample():
    s = b.load_brain_atlas_sample()
    img, lab = s["image"], s["label"]
    assert img.shape == lab.shape == (90, 108, 90) and img.dtype == np.uint8
    assert set(np.unique(lab)) == set(range(8)) == set(s["label_names"])
    assert np.allclose(s["spacing"], 2.0)
    # MNI space: world origin (AC) lies inside the grid, near the brain centre
    ijk = np.linalg.solve(s["affine"], [0, 0, 0, 1])[:3]
    assert np.all(ijk > 20) and np.all(ijk < np.array(img.shape) - 20)
    # brain voxels are brighter than background air on average
    assert img[lab > 0].mean() > 2 * img[lab == 0].mean()
    # hemispheric symmetry of the coarse classes (x axis is left-right)
    for k in (1, 6, 7):
        m = lab == k
        xs = np.argwhere(m)[:, 0]
        xw = (s["affine"][0, 0] * xs + s["affine"][0, 3])
        assert abs(np.mean(xw)) < 6, f"class {k} not symmetric"


def test_brain_torch_dataset():
    torch = pytest.importorskip("torch")
    item = b.BrainAtlasDataset()[0]
    assert item["image"].shape == (1, 90, 108, 90) and item["label"].dtype == torch.int64
    assert item["label"].max().item() == 7


# --------------------------------------------------------------------------- furniture
def test_furniture_shapes():
    d = b.load_furniture_shapes()
    n = len(d["label"])
    assert n >= 200
    assert d["voxels"].shape == (n, 32, 32, 32) and d["voxels"].dtype == bool
    assert len(d["class_names"]) == 9 and set(np.unique(d["label"])) == set(range(9))
    counts = np.bincount(d["label"], minlength=9)
    print("furniture class counts:", dict(zip(d["class_names"], counts.tolist())))
    assert counts.min() >= 10
    for c in range(9):
        m = d["label"] == c
        assert set(d["split"][m]) == {"train", "test"}, f"class {d['class_names'][c]} not in both splits"
    assert not set(d["model_id"][d["split"] == "train"]) & set(d["model_id"][d["split"] == "test"])
    # 1-voxel margin, longest side touches it on both ends
    occ = d["voxels"]
    assert not occ[:, 0].any() and not occ[:, -1].any()
    assert not occ[:, :, 0].any() and not occ[:, :, :, -1].any()
    ext = [max(np.ptp(np.argwhere(g), axis=0)) + 1 for g in occ[:20]]
    assert all(29 <= e <= 30 for e in ext)
    assert all(lic for lic in d["licence"]) and all(a.endswith(".sh3f") for a in d["archive"])
    # beds are wider than tall, doors taller than wide (axis 0 is up)
    def hw(c):
        g = occ[d["label"] == d["class_names"].index(c)]
        return np.mean([np.ptp(np.argwhere(x)[:, 0]) / max(np.ptp(np.argwhere(x)[:, 1:], axis=0).max(), 1)
                        for x in g])
    assert hw("bed") < 0.8 and hw("door") > 1.3
    train = b.FurnitureShapesDataset("train")
    assert len(train) == int((d["split"] == "train").sum())
    assert train[0]["image"].shape == (1, 32, 32, 32)


# --------------------------------------------------------------------------- brain, left/right
def test_brain_atlas_lr_left_and_right_never_share_a_class():
    s = b.load_brain_atlas_lr_sample()
    coarse = b.load_brain_atlas_sample()
    lab = s["label"]
    assert lab.shape == (90, 108, 90) and np.array_equal(s["image"], coarse["image"])
    assert set(np.unique(lab)) == set(range(16)) == set(s["label_names"])
    assert s["class_swaps"] == [[2 * g - 1, 2 * g] for g in range(1, 8)]
    names = s["label_names"]
    x = s["affine"][0, 0] * np.arange(lab.shape[0]) + s["affine"][0, 3]  # world x (mm, RAS): left < 0 < right
    for a, r in s["class_swaps"]:
        assert names[a].endswith("_L") and names[r].endswith("_R") and names[a][:-2] == names[r][:-2]
        xl, xr = x[np.argwhere(lab == a)[:, 0]], x[np.argwhere(lab == r)[:, 0]]
        # each lateral class lies in its own hemisphere (AAL's midline is within a few mm of x = 0)
        assert (xl < 0).mean() > 0.95 and xl.max() <= 6, names[a]
        assert (xr > 0).mean() > 0.95 and xr.min() >= -6, names[r]
        assert 0.8 < (lab == a).sum() / (lab == r).sum() < 1.25  # the hemispheres are of similar size
    assert names[15] == "vermis" and abs(x[np.argwhere(lab == 15)[:, 0]].mean()) < 4
    # refining the coarse map: group g -> 2g - 1 / 2g, vermis inside cerebellum (7)
    both = (lab > 0) & (coarse["label"] > 0)
    assert np.array_equal(np.where(lab == 15, 7, (lab + 1) // 2)[both], coarse["label"][both])
    ds = b.BrainAtlasLRDataset()
    assert ds[0]["label"].max().item() == 15 and ds.class_swaps == s["class_swaps"]


# --------------------------------------------------------------------------- KiCad parts
@pytest.fixture(scope="module")
def kicad():
    return b.load_kicad_parts()


def test_kicad_parts_classes_splits_and_licences(kicad):
    n = len(kicad["label"])
    assert kicad["voxels"].shape == (n, 32, 32, 32) and kicad["voxels"].dtype == bool
    assert len(kicad["class_names"]) == 31 and set(np.unique(kicad["label"])) == set(range(31))
    counts = np.bincount(kicad["label"])
    print("KiCad class counts:", dict(zip(kicad["class_names"], counts.tolist())))
    assert counts.min() >= 30 and counts.max() <= 150
    for c in range(31):
        m = kicad["label"] == c
        assert set(kicad["split"][m]) == {"train", "val", "test"}, kicad["class_names"][c]
        assert all(p.split("/")[0].startswith(kicad["class_names"][c]) for p in kicad["model_path"][m])
    sizes = {s: int((kicad["split"] == s).sum()) for s in ("train", "val", "test")}
    assert sizes["test"] >= 800 and sizes == kicad["metadata"]["counts"]["per_split"]
    assert len(set(kicad["model_path"])) == n
    assert set(kicad["licence"]) == {"CC-BY-SA-4.0-with-exception"} and all(kicad["copyright"])
    test = b.load_kicad_parts("test")
    assert set(test["split"]) == {"test"} and len(test["label"]) == sizes["test"]
    with pytest.raises(ValueError, match="split"):
        b.load_kicad_parts("testing")


def test_kicad_parts_grids_are_placed_and_upright(kicad):
    occ = kicad["voxels"]
    # the mesh's longest extent is scaled to 30 voxels inside a 1-voxel margin; the "fill" voxelizer's
    # conservative surface shell may add the voxel below it (index 0), never the one above (index 31)
    assert not occ[:, -1].any() and not occ[:, :, -1].any() and not occ[:, :, :, -1].any()
    ext = np.array([np.ptp(np.argwhere(g), axis=0) + 1 for g in occ])
    assert set(ext.max(1)) <= {30, 31}
    # designed orientation: surface-mount IC packages lie flat (z, the last axis, is out of the board)
    for fam in ("Package_SO", "Package_QFP", "Package_BGA", "Package_DFN_QFN"):
        g = occ[kicad["label"] == kicad["class_names"].index(fam)]
        flat = [np.ptp(np.argwhere(x)[:, 2]) < 0.6 * np.ptp(np.argwhere(x)[:, :2], axis=0).max() for x in g]
        assert np.mean(flat) > 0.9, fam


def test_kicad_parts_torch_dataset_and_meshes(tmp_path):
    ds = b.KiCadPartsDataset("val")
    item = ds[0]
    assert item["image"].shape == (1, 32, 32, 32) and item["model_path"].endswith(".wrl")
    assert sum(ds.class_counts().values()) == len(ds)
    with pytest.raises(FileNotFoundError, match="kicad-packages3d"):
        b.kicad_part_meshes("val", root=tmp_path)
    if not Path(b.load_kicad_parts("val")["metadata"]["mesh_root"]).is_dir():
        pytest.skip("Debian package kicad-packages3d not installed: the mesh-level check needs it")
    from equivox.data import voxelize_mesh

    paths = b.kicad_part_meshes("val")
    assert len(paths) == len(ds)
    # re-voxelising a mesh reproduces the bundled grid: the mesh-level rotation protocol starts from it
    assert np.array_equal(voxelize_mesh(paths[0], size=32, method="fill"), item["image"][0].numpy() > 0.5)


# --------------------------------------------------------------------------- LIDC shape attributes
@pytest.mark.parametrize("attribute,threshold", [("spiculation", 2), ("lobulation", 2), ("sphericity", 4),
                                                 ("margin", 4)])
def test_lidc_attributes_follow_the_stated_rule(lidc, attribute, threshold):
    d = b.load_lidc_attributes(attribute)
    assert np.array_equal(d["masks"], lidc["masks"]) and np.array_equal(d["split"], lidc["split"])
    r = d["ratings"].astype(float)
    few = lidc["n_annotations"] <= 4  # clusters of > 4 annotations store only 4 ratings
    assert few.mean() > 0.95
    for i in np.flatnonzero(few):  # the median of the stored reader ratings, and the label from it
        rr = r[i][r[i] > 0]
        assert len(rr) == lidc["n_annotations"][i] and np.median(rr) == d["median"][i]
        assert 1 <= rr.min() and rr.max() <= 5
    assert np.array_equal(d["label"], (d["median"] >= threshold).astype(np.int64))
    assert d["metadata"]["labels"][attribute]["threshold"] == threshold
    assert d["metadata"]["masks_sha256"] == hashlib.sha256((D / "lidc_nodules_32.npz").read_bytes()).hexdigest()
    for s in ("train", "val", "test"):
        part = b.load_lidc_attributes(attribute, s)
        assert set(part["split"]) == {s} and 0.15 < part["label"].mean() < 0.85, (attribute, s)
        assert part["label"].tolist() == d["label"][d["split"] == s].tolist()
    with pytest.raises(ValueError, match="attribute must be one of"):
        b.load_lidc_attributes("texture")
