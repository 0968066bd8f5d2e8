"""equivox.data.bundled_shapes: the bundled voxel-grid stores: the LIDC nodules (labels from the malignancy median,
splits disjoint by patient, balanced classes) and their shape-rating labels, the furniture shapes (classes in both
splits, placed in a 1-voxel margin, beds flat and doors tall), the KiCad parts (classes, splits, licences, grids placed
and upright) and the KiCad part segments (material labels, occupancy image); a bad split is refused."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from equivox.data.bundled_files import BUNDLED_DIR
from equivox.data.bundled_shapes import (load_furniture_shapes, load_kicad_part_segments, load_kicad_parts,
                                         load_lidc_attributes, load_lidc_nodules)


@pytest.fixture(scope="module")
def lidc():
    return load_lidc_nodules()


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
    test = load_lidc_nodules("test")
    assert set(test["split"]) == {"test"}
    assert len(test["label"]) == int((lidc["split"] == "test").sum())


def test_lidc_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_lidc_nodules("training")


def test_furniture_shapes():
    d = load_furniture_shapes()
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


@pytest.fixture(scope="module")
def kicad():
    return load_kicad_parts()


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
    test = load_kicad_parts("test")
    assert set(test["split"]) == {"test"} and len(test["label"]) == sizes["test"]
    with pytest.raises(ValueError, match="split"):
        load_kicad_parts("testing")


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


@pytest.mark.parametrize("attribute,threshold", [("spiculation", 2), ("lobulation", 2), ("sphericity", 4),
                                                 ("margin", 4)])
def test_lidc_attributes_follow_the_stated_rule(lidc, attribute, threshold):
    d = load_lidc_attributes(attribute)
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
    masks = (BUNDLED_DIR / "lidc_nodules_32.npz").read_bytes()
    assert d["metadata"]["masks_sha256"] == hashlib.sha256(masks).hexdigest()
    for s in ("train", "val", "test"):
        part = load_lidc_attributes(attribute, s)
        assert set(part["split"]) == {s} and 0.15 < part["label"].mean() < 0.85, (attribute, s)
        assert part["label"].tolist() == d["label"][d["split"] == s].tolist()
    with pytest.raises(ValueError, match="attribute must be one of"):
        load_lidc_attributes("texture")


def test_kicad_part_segments_labels_image_and_split():
    d = load_kicad_part_segments("val")
    n = len(d["part_class"])
    assert d["labels"].shape == d["image"].shape == (n, 16, 16, 16) and d["labels"].dtype == np.uint8
    assert np.array_equal(d["image"], (d["labels"] > 0).astype(np.float32))  # the image is the part's occupancy
    assert d["label_names"] == ["background", "body", "metal"] and set(np.unique(d["labels"])) == {0, 1, 2}
    assert set(d["split"]) == {"val"} and len(d["model_path"]) == n and d["metadata"]["licence"]
    assert set(np.unique(d["part_class"])) <= set(range(len(d["class_names"])))
    with pytest.raises(ValueError, match="split"):
        load_kicad_part_segments("validation")
